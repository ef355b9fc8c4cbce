"""The cross-process write lock of a key store: one lock file, held by one writer at a time.

Every read-modify-write of a key store (a key and the index that lists it) runs under
it, so that parallel `s3vault key` commands, scripts and the desktop app never lose an
update. The lock is advisory (`filelock`: ``flock`` on POSIX); the kernel drops it when
its holder dies, so a killed writer never leaves the store locked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from s3vault.errors import ConflictError, local_error
from s3vault.private import private_dir as make_private_dir

if TYPE_CHECKING:
    from filelock import FileLock

LOCK_TIMEOUT = 120.0
"""Seconds a writer waits for another: a key-store write takes well under a second, so
this is reached only when a writer hangs (a keyring prompt nobody answers)."""


def keyring_lock_path(service: str) -> Path:
    """The lock file of the keyring service ``service`` (under the user state dir)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", service)
    if safe != service:  # two services must not share a file by sanitising alike
        safe += "-" + hashlib.sha256(service.encode()).hexdigest()[:8]
    return Path(platformdirs.user_state_dir("s3vault")) / "locks" / f"keyring-{safe}.lock"


def file_lock_path(keystore: Path) -> Path:
    """The lock file of the file keystore ``keystore``: beside it."""
    return keystore.with_name(keystore.name + ".lock")


def private_dir(path: Path) -> None:
    """Create the folder ``path`` (and its missing parents) as 0700 when it is missing."""
    try:
        make_private_dir(path, tighten=False)  # maybe a keystore folder the user named
    except OSError as exc:
        raise local_error(exc, "create the folder", path) from None


class WriteLock:
    """An exclusive lock file, re-entrant within a thread (nested writes are one)."""

    def __init__(self, path: Path, *, what: str) -> None:
        self.path = path
        self._what = what
        self._file_lock: FileLock | None = None

    @property
    def _lock(self) -> FileLock:
        """Made on first use: readers take no lock, so `key list` never imports filelock."""
        if self._file_lock is None:
            from filelock import FileLock

            # mode: the file is created 0600. thread_local (the default): each thread has
            # its own descriptor, so two threads of one process exclude each other like
            # two processes do.
            self._file_lock = FileLock(self.path, mode=0o600, timeout=LOCK_TIMEOUT)
        return self._file_lock

    @contextmanager
    def held(self) -> Iterator[None]:
        from filelock import Timeout

        if not self._lock.is_locked:
            private_dir(self.path.parent)
        try:
            self._lock.acquire()
        except Timeout:
            raise ConflictError(
                f"another s3vault process has been changing {self._what} for "
                f"{LOCK_TIMEOUT:.0f} s (lock file {self.path})",
                hint="Wait for it to finish (a keyring prompt may be waiting for an answer), "
                "then retry.",
            ) from None
        except OSError as exc:
            raise local_error(exc, "lock", self.path) from None
        try:
            yield
        finally:
            self._lock.release()
