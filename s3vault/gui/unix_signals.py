"""SIGINT, SIGTERM and SIGHUP end the app cleanly (jobs cancelled, agent link closed).

Python runs signal handlers only between bytecodes of the main thread, and the main
thread sits in Qt's event loop, in C++: a plain handler would wait for the next
Python slot, maybe forever. The wakeup fd (a socket pair watched by a
QSocketNotifier) makes the event loop itself wake up on the signal.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable

from PySide6.QtCore import QObject, QSocketNotifier

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class QuitOnSignals(QObject):
    """While it lives, the signals in `SIGNALS` call ``quit`` on the UI thread."""

    def __init__(self, quit: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._quit = quit
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._old_handlers = {sig: signal.signal(sig, self._note) for sig in SIGNALS}
        self._received: list[int] = []
        self._notifier = QSocketNotifier(
            self._reader.fileno(), QSocketNotifier.Type.Read, self
        )
        self._notifier.activated.connect(self._wake)

    def _note(self, signum: int, frame: object) -> None:
        self._received.append(signum)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._reader.recv(64)
        if self._received:
            self._received.clear()
            self._quit()

    def restore(self) -> None:
        """Put the previous handlers back (at exit)."""
        self._notifier.setEnabled(False)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_fd)
        self._reader.close()
        self._writer.close()
