"""The control socket: a Unix stream socket, 0600 in the 0700 runtime dir.

One thread per connection (there are a handful: the CLI, the GUI); each reads request
lines and writes reply lines. `subscribe` turns a connection into a stream of status
snapshots, one line per change (at most every `SUBSCRIBE_INTERVAL`). Peers of another
uid are refused even if they somehow reach the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3vault.agent.protocol import (
    ProtocolError,
    Request,
    encode,
    error_reply,
    ok_reply,
    parse_request,
    read_message,
)
from s3vault.agent.status import AgentStatus
from s3vault.errors import AccessDeniedError, RefusedError, S3VaultError

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, with the terminating NUL
SUBSCRIBE_INTERVAL = 0.25  # seconds: a progress burst is not a flood of lines
Dispatch = Callable[[Request], dict[str, Any]]


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves `dispatch` (every verb but subscribe) and status streams."""

    daemon_threads = True  # a subscriber must not keep the agent from exiting
    allow_reuse_address = False
    # socketserver's 5: a burst of clients (the app, scripts, a peer holding half
    # requests) filled it and the next connect failed at once with EAGAIN.
    request_queue_size = 128

    def __init__(
        self,
        path: Path,
        dispatch: Dispatch,
        status: AgentStatus,
        *,
        after_reply: Callable[[Request], None] = lambda request: None,
    ) -> None:
        self.path = path
        self.dispatch = dispatch
        self.after_reply = after_reply  # e.g. stop only once the reply to `stop` is out
        self.status = status
        self.closing = threading.Event()
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise RefusedError(
                f"the control socket path {path} is too long for a Unix socket",
                hint="Point XDG_RUNTIME_DIR at a shorter directory (systemd uses /run/user/UID).",
            )
        remove_stale_socket(path)
        # The umask makes the socket 0600 from birth (no window between bind and chmod).
        old = os.umask(0o177)
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    def close(self) -> None:
        """Stop serving and remove the socket file (call from another thread)."""
        self.closing.set()
        self.shutdown()
        self.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def remove_stale_socket(path: Path) -> None:
    """Unlink a socket left by an agent that died (we hold the lock, so it is dead).

    Only a socket is removed: anything else at that path is not ours to delete.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise RefusedError(f"{path} exists and is not a socket", hint="Remove it by hand.")
    os.unlink(path)


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED); None where unsupported."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class _Handler(socketserver.StreamRequestHandler):
    server: ControlServer

    def handle(self) -> None:
        uid = peer_uid(self.request)
        if uid is not None and uid != os.getuid():
            self._send(error_reply(AccessDeniedError(f"uid {uid} may not control this agent")))
            return
        while not self.server.closing.is_set():
            try:
                line = read_message(self.rfile)
            except ProtocolError as exc:
                self._send(error_reply(exc))
                return  # the rest of an oversized line is garbage: hang up
            if line is None:
                return
            if not line.strip():
                continue
            try:
                request = parse_request(line)
                if request.verb == "subscribe":
                    self._stream()
                    return
                reply = self.server.dispatch(request)
            except S3VaultError as exc:
                reply = error_reply(exc)
            except Exception as exc:  # a bug must not kill the agent, only this reply
                log.exception("control request failed")
                reply = error_reply(S3VaultError(f"internal error: {exc}"))
            sent = self._send(reply)
            if reply.get("ok"):
                self.server.after_reply(request)
            if not sent:
                return

    def _stream(self) -> None:
        status = self.server.status
        sent = -1
        while not self.server.closing.is_set():
            snapshot = status.snapshot()
            if snapshot["version"] != sent:
                if not self._send(ok_reply(status=snapshot)):
                    return
                sent = snapshot["version"]
                self.server.closing.wait(SUBSCRIBE_INTERVAL)
            # Wakes on a change, or each second to notice that the server is closing.
            status.wait_changed(sent, timeout=1.0)

    def _send(self, message: dict[str, Any]) -> bool:
        try:
            data = encode(message)
        except ProtocolError as exc:  # over the size cap: say so rather than go silent
            data = encode(error_reply(exc))
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False
