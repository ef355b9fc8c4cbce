"""Drives the app for scripts/screenshots.py: a generator of `Wait`s run on a QTimer.

No processEvents() loops (PySide6 6.12 on Python 3.11 leaks a reference per call and
crashes): each step runs from the event loop, and a wait that does not end within its
timeout stops the run with a message naming what did not happen.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass
class Wait:
    """A step waits until ``ready()`` (at most ``timeout`` seconds)."""

    ready: Callable[[], bool]
    what: str
    timeout: float = 30.0


def until(ready: Callable[[], bool], what: str, timeout: float = 30.0) -> Wait:
    return Wait(ready, what, timeout)


def pause(seconds: float) -> Wait:
    end = time.monotonic() + seconds
    return Wait(lambda: time.monotonic() >= end, f"a pause of {seconds} s", seconds + 5)


class Director:
    """Runs a generator of `Wait`s on a QTimer: each step runs when the last wait is over."""

    def __init__(self, steps: Iterator[Wait], fail: Callable[[str], None]) -> None:
        from PySide6.QtCore import QTimer

        self.steps = steps
        self.fail = fail
        self.wait: Wait | None = None
        self.deadline = 0.0
        self.timer = QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        try:
            while True:
                if self.wait is not None:
                    if not self.wait.ready():
                        if time.monotonic() > self.deadline:
                            self.stop(
                                f"timed out after {self.wait.timeout} s waiting for "
                                f"{self.wait.what}"
                            )
                        return
                    self.wait = None
                try:
                    self.wait = next(self.steps)
                except StopIteration:
                    self.timer.stop()
                    return
                self.deadline = time.monotonic() + self.wait.timeout
        except Exception:
            self.stop(traceback.format_exc())

    def stop(self, message: str) -> None:
        self.timer.stop()
        self.fail(message)
