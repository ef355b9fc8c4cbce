"""What s3vault keeps on disk is private to its user: 0700 folders, 0600 files.

The state database holds each synced file's name, size and SHA-256 (enough to confirm
a guess of its content); logs name files and folders; locks and temp files sit beside
them. None of it is anyone else's business, whatever the user's umask (022 makes
0644 files in 0755 folders). So the modes are set here, explicitly, and a folder or
file an older s3vault left open is tightened when it is next opened.

Not concerned: the files s3vault writes *for* the user (``get``, ``restore``, the
synced tree), which get the modes the user's umask gives, and the Prometheus textfile
(``agent.metrics_file``), which a collector running as another user must read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create the folder ``path`` 0700, and its missing parents 0700 too.

    ``tighten``: an existing ``path`` of ours loses its group and other bits. Give
    False for a folder the user named (a keystore's, a config file's): it may be
    their home, whose mode is theirs to choose.
    """
    if path.is_dir():
        if tighten:
            _tighten(path, os.stat(path), DIR_MODE)
        return path
    if path.parent != path:
        private_dir(path.parent, tighten=False)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:  # made meanwhile, or not a folder: mkdir below says which
        path.mkdir(exist_ok=True)
        return path
    os.chmod(path, DIR_MODE)  # the umask may have taken bits we need (umask 277)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 in its private folder, or tighten it to 0600.

    For a file another library then opens by name (SQLite): it finds the mode set.
    """
    os.close(_open(path, os.O_WRONLY | os.O_APPEND))
    return path


def open_private_append(path: Path) -> BinaryIO:
    """``path`` opened for appending (a log), created 0600 or tightened to 0600."""
    return os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND), "ab")


def _open(path: Path, flags: int) -> int:
    private_dir(path.parent)
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW, FILE_MODE)
    try:
        _tighten(path, os.fstat(fd), FILE_MODE, fd=fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _tighten(path: Path, st: os.stat_result, mode: int, *, fd: int | None = None) -> None:
    """Take group and other bits away from our own ``path`` (another user's is left)."""
    if st.st_uid != os.getuid() or not stat.S_IMODE(st.st_mode) & 0o077:
        return
    if fd is not None:
        os.fchmod(fd, mode)
    else:
        os.chmod(path, mode)
