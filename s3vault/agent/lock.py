"""One agent per user: an exclusive flock on a file in the runtime dir.

flock is released by the kernel when the process dies, however it dies (kill -9
included), so a stale lock file never blocks a restart; the pid inside is only for the
message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from s3vault.errors import ConflictError


class AgentRunningError(ConflictError):
    title = "Agent already running"


class AgentLock:
    """Held from `acquire` until `release` (or the process ends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AgentRunningError(
                f"an s3vault agent is already running (pid {pid or 'unknown'})",
                hint="Stop it with `s3vault stop` (or `systemctl --user stop s3vault-agent`).",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # Unlock before close; the file stays (unlinking it would race a new agent
            # that opened the old inode).
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
