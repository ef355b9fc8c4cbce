"""The other end of the control socket, for the CLI and the GUI.

with AgentClient() as agent:
    agent.pause()
    for status in agent.subscribe(): ...
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from s3vault.agent import paths
from s3vault.agent.protocol import ProtocolError, Request, decode, read_message
from s3vault.errors import (
    AccessDeniedError,
    ConflictError,
    ExitCode,
    NotFoundError,
    RefusedError,
    S3VaultError,
    UnreachableError,
    UsageError,
)

NOT_RUNNING_HINT = (
    "Start it with `s3vault agent`, or now and at every login with "
    "`s3vault service install`."
)
_ERRORS: dict[int, type[S3VaultError]] = {
    ExitCode.USAGE: UsageError,
    ExitCode.NOT_FOUND: NotFoundError,
    ExitCode.UNREACHABLE: UnreachableError,
    ExitCode.ACCESS_DENIED: AccessDeniedError,
    ExitCode.CONFLICT: ConflictError,
    ExitCode.REFUSED: RefusedError,
}


class AgentNotRunningError(UnreachableError):
    title = "Agent not running"


class AgentClient:
    """One connection to the running agent; a reply error is raised as S3VaultError."""

    def __init__(self, path: Path | None = None, *, timeout: float = 30.0) -> None:
        self.path = path if path is not None else paths.socket_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._connect(timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            self._sock.close()
            raise AgentNotRunningError(
                "the s3vault agent is not running", hint=NOT_RUNNING_HINT
            ) from None
        self._rfile = self._sock.makefile("rb")

    def _connect(self, timeout: float) -> None:
        """Connect, waiting while the agent's accept queue is full.

        A Unix socket's connect does not wait for room in the queue the way a TCP one
        does: with a timeout set it fails at once with EAGAIN. So wait here, up to
        ``timeout``, as a blocking connect would.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock.connect(str(self.path))
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._sock.close()
                    raise UnreachableError(
                        f"the s3vault agent did not accept a connection in {timeout:g} s",
                        hint="It is busy with many clients; try again.",
                    ) from None
                time.sleep(0.05)

    def close(self) -> None:
        self._rfile.close()
        self._sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- verbs --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.request("status")["status"]
        return status

    def hello(self) -> dict[str, Any]:
        """{"protocol": N, "verbs": [...], "pid": ...}; an agent older than protocol 2
        answers with an error (unknown verb): its protocol is 1."""
        return self.request("hello")

    def pause(self, folder: str | None = None) -> dict[str, Any]:
        """Pause every folder, or one (its id s3://BUCKET/PREFIX/ or absolute path)."""
        return self.request("pause", **_folder(folder))

    def resume(self, folder: str | None = None) -> dict[str, Any]:
        return self.request("resume", **_folder(folder))

    def sync_now(self, folder: str | None = None) -> dict[str, Any]:
        return self.request("sync-now", **_folder(folder))

    def stop(self) -> dict[str, Any]:
        return self.request("stop")

    def subscribe(self) -> Iterator[dict[str, Any]]:
        """Status snapshots as the agent pushes them, until it stops (then ends)."""
        self._sock.settimeout(None)  # updates come when something happens
        self._sock.sendall(Request("subscribe").encode())
        while True:
            reply = self._read()
            if reply is None:
                return
            status: dict[str, Any] = reply["status"]
            yield status

    def request(self, verb: str, **args: Any) -> dict[str, Any]:
        self._sock.sendall(Request(verb, args).encode())
        reply = self._read()
        if reply is None:
            raise AgentNotRunningError(
                "the s3vault agent closed the connection", hint=NOT_RUNNING_HINT
            )
        return reply

    def _read(self) -> dict[str, Any] | None:
        try:
            line = read_message(self._rfile)
        except ConnectionResetError:
            return None
        if line is None:
            return None
        reply = decode(line)
        if reply.get("ok") is True:
            return reply
        error = reply.get("error")
        if not isinstance(error, dict):
            raise ProtocolError("the agent sent a reply without ok or error")
        cls = _ERRORS.get(int(error.get("exit_code", 1)), S3VaultError)
        raise cls(str(error.get("message", "agent error")), hint=error.get("hint"))


def _folder(folder: str | None) -> dict[str, str]:
    # No "folder" at all for every folder: what a protocol-1 agent understands.
    return {} if folder is None else {"folder": folder}


def wait_until_stopped(
    socket_path: Path | None = None,
    *,
    timeout: float,
    check: Callable[[], None] | None = None,
) -> None:
    """Wait for a stopping agent to exit: it removes its socket on its way out.

    ``check`` runs between looks (a job's cancel check); UnreachableError after
    ``timeout`` seconds.
    """
    path = socket_path if socket_path is not None else paths.socket_path()
    deadline = time.monotonic() + timeout
    while path.exists():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise UnreachableError(
                f"the agent did not stop within {timeout:.0f} s",
                hint="It finishes the reconcile in progress first; check `s3vault status`.",
            )
        time.sleep(0.1)


def stop_agent(socket_path: Path | None = None, *, timeout: float) -> bool:
    """Ask the agent to stop and wait until it has; False if none was running."""
    try:
        with AgentClient(socket_path, timeout=5) as agent:
            agent.stop()
    except AgentNotRunningError:
        return False
    wait_until_stopped(socket_path, timeout=timeout)
    return True
