"""One app per user: the first launch listens on a local socket in the user's runtime
dir (next to the agent's); a second launch connects, says "raise" and exits, and the
first raises its window.

A socket file left by a crashed app refuses connections; the next launch removes it
and listens in its place.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from s3vault.agent import paths

log = logging.getLogger(__name__)

SOCKET_NAME = "gui.sock"
RAISE = b"raise\n"
CONNECT_TIMEOUT_MS = 1000


def server_name() -> str:
    """The socket path of this user's app (in the private runtime dir)."""
    return str(paths.runtime_dir() / SOCKET_NAME)


class SingleInstance(QObject):
    """``raise_requested`` fires when a second launch asked the first to show itself."""

    raise_requested = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name if name is not None else server_name()
        self.server: QLocalServer | None = None

    def forward_to_running(self) -> bool:
        """Ask a running app to raise its window; True if one answered (this launch
        then exits). Blocks up to a second: called at start, before any window."""
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(CONNECT_TIMEOUT_MS):
            return False
        sock.write(RAISE)
        sent = sock.waitForBytesWritten(CONNECT_TIMEOUT_MS)
        sock.disconnectFromServer()
        return bool(sent)

    def listen(self) -> bool:
        """Become the running app; False (logged) if the name cannot be taken."""
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        server.newConnection.connect(self._accept)
        if not server.listen(self.name):
            # A stale socket file from a crashed app: nobody answered forward_to_running.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                log.warning(
                    "single instance: cannot listen on %s: %s", self.name, server.errorString()
                )
                return False
        self.server = server
        return True

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def _accept(self) -> None:
        assert self.server is not None
        while (sock := self.server.nextPendingConnection()) is not None:
            sock.readyRead.connect(lambda s=sock: self._read(s))
            # No deleteLater on `disconnected`: with PySide6 6.12 that deletes the socket
            # under its Python wrapper (a crash at teardown). A launch leaves one idle
            # socket, a child of the server, freed with it.
            if sock.bytesAvailable():
                self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        data = bytes(sock.readAll().data())
        if RAISE.strip() in data:
            self.raise_requested.emit()
