"""The GUI's line to the sync agent: its control socket, read by the Qt event loop.

A `QLocalSocket` speaks the agent's JSON-lines protocol directly (no thread): one
connection subscribes and receives a status snapshot whenever something changes
(pushed by the agent, never polled); each request (pause, resume, sync-now, stop)
opens its own short connection, so a reply never interleaves with the stream. When
the agent is not there, the link says so and tries again every few seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalSocket

from s3vault.agent import paths
from s3vault.agent.protocol import MAX_MESSAGE, Request

log = logging.getLogger(__name__)

RECONNECT_MS = 2000

Reply = dict[str, Any]


class AgentLink(QObject):
    """Signals: `status(dict)` for every snapshot, `connected_changed(bool)`."""

    status = Signal(object)
    connected_changed = Signal(bool)

    def __init__(self, socket_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.socket_path = socket_path if socket_path is not None else paths.socket_path()
        self.last_status: dict[str, Any] | None = None
        self._connected: bool | None = None  # None: not tried yet
        self._buffer = b""
        self._stream = QLocalSocket(self)
        self._stream.connected.connect(self._on_connected)
        self._stream.disconnected.connect(self._on_lost)
        self._stream.errorOccurred.connect(lambda _error: self._on_lost())
        self._stream.readyRead.connect(self._on_ready_read)
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.setInterval(RECONNECT_MS)
        self._retry.timeout.connect(self.connect_now)
        self._pending: set[QLocalSocket] = set()

    @property
    def connected(self) -> bool:
        return bool(self._connected)

    def connect_now(self) -> None:
        """(Re)connect the status stream now (e.g. right after starting the agent)."""
        self._retry.stop()
        if self._stream.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            return
        self._buffer = b""
        self._stream.connectToServer(str(self.socket_path))

    def close(self) -> None:
        self._retry.stop()
        self._stream.abort()
        for sock in list(self._pending):
            sock.abort()

    # ---- requests -------------------------------------------------------------------

    def request(
        self, verb: str, callback: Callable[[Reply], None] | None = None, **args: Any
    ) -> None:
        """Send one request on its own connection; ``callback`` gets the reply, or
        ``{"ok": false, "error": {...}}`` when the agent is not there."""
        sock = QLocalSocket(self)
        self._pending.add(sock)
        received = bytearray()
        answered = False

        def answer(reply: Reply) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            self._pending.discard(sock)
            sock.disconnectFromServer()
            sock.deleteLater()
            if callback is not None:
                callback(reply)

        def on_ready() -> None:
            received.extend(bytes(sock.readAll().data()))
            if b"\n" in received:
                line = bytes(received).split(b"\n", 1)[0]
                answer(_decode(line))

        sock.connected.connect(lambda: sock.write(Request(verb, args).encode()))
        sock.readyRead.connect(on_ready)
        sock.errorOccurred.connect(lambda _e: answer(_not_running(sock.errorString())))
        sock.disconnected.connect(lambda: answer(_not_running("the agent closed the connection")))
        sock.connectToServer(str(self.socket_path))

    def pause(self, callback: Callable[[Reply], None] | None = None, **args: Any) -> None:
        self.request("pause", callback, **args)

    def resume(self, callback: Callable[[Reply], None] | None = None, **args: Any) -> None:
        self.request("resume", callback, **args)

    def sync_now(self, callback: Callable[[Reply], None] | None = None, **args: Any) -> None:
        self.request("sync-now", callback, **args)

    def stop_agent(self, callback: Callable[[Reply], None] | None = None) -> None:
        self.request("stop", callback)

    # ---- the status stream ------------------------------------------------------------

    def _on_connected(self) -> None:
        self._stream.write(Request("subscribe").encode())
        self._set_connected(True)

    def _on_lost(self) -> None:
        if self._stream.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            self._stream.abort()
        self._set_connected(False)
        if not self._retry.isActive():
            self._retry.start()

    def _on_ready_read(self) -> None:
        self._buffer += bytes(self._stream.readAll().data())
        if len(self._buffer) > MAX_MESSAGE + 1 and b"\n" not in self._buffer:
            log.warning("agent status line over %d bytes: reconnecting", MAX_MESSAGE)
            self._on_lost()
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            reply = _decode(line)
            status = reply.get("status")
            if reply.get("ok") and isinstance(status, dict):
                self.last_status = status
                self.status.emit(status)

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            if not connected:
                self.last_status = None
            self.connected_changed.emit(connected)


def _decode(line: bytes) -> Reply:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _error("the agent sent a malformed reply")
    return value if isinstance(value, dict) else _error("the agent sent a malformed reply")


def _not_running(why: str) -> Reply:
    return _error(f"the s3vault agent is not running ({why})")


def _error(message: str) -> Reply:
    return {"ok": False, "error": {"type": "Agent", "message": message, "hint": None}}
