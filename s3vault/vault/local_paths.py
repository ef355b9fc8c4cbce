"""Where an object goes in a local folder, refusing keys that would leave it.

Object keys come from a bucket, which may hold keys written by anyone: restore and
the desktop app's downloads map a key to a path only through `target_path`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from s3vault.errors import RefusedError, local_error

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows: 255 UTF-16 units)


def target_path(root: Path, relkey: str) -> Path:
    """Where the object with key ``prefix + relkey`` goes under ``root``.

    Raises RefusedError for a key that would leave ``root``: ``..`` segments (with
    ``/`` or ``\\``), absolute paths, drive letters, NUL, a name over `NAME_MAX` bytes;
    and, after resolving any links already under ``root``, anything that lands outside it.
    """
    if not relkey or "\x00" in relkey:
        raise RefusedError(f"object key {relkey!r} is not a usable file name")
    segments = re.split(r"[/\\]", relkey)
    if relkey.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(relkey):
        raise RefusedError(f"object key {relkey!r} is an absolute path: not restored")
    if any(s in ("..", ".") for s in segments) or "" in segments[:-1]:
        raise RefusedError(f"object key {relkey!r} would leave the target folder: not restored")
    if any(len(os.fsencode(s)) > NAME_MAX for s in relkey.split("/")):
        raise RefusedError(
            f"object key {relkey!r} has a name longer than the {NAME_MAX} bytes a file "
            "name may have: not restored",
            hint="Download it under another name with `s3vault get KEY LOCAL`.",
        )
    base = root.resolve()
    path = base.joinpath(*relkey.split("/"))
    if not path.resolve().is_relative_to(base):
        raise RefusedError(f"object key {relkey!r} resolves outside the target folder")
    return path


def free_target(root: Path, relkey: str, *, overwrite: bool = False) -> Path | None:
    """The path for ``relkey`` under ``root`` (`target_path`), its folder created; None
    when a file is already there and ``overwrite`` is not set (it is kept)."""
    path = target_path(root, relkey)
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a path longer than PATH_MAX: this file only
        raise local_error(exc, "write", path) from None
    if exists and not overwrite:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise local_error(exc, "create the folder", path.parent) from None
    return path


class WrittenNames:
    """The keys one restore or download wrote under ``root``, to refuse a later key
    that a file system folding case or Unicode normalisation (exFAT, FAT, NTFS, APFS,
    ext4 casefold) takes for the same file: there ``d/File`` and ``d/file`` are one
    file, and the second would overwrite the first (with `--overwrite`) or be taken
    for a file that was there before (without).

    Only a key that folds to an earlier one is looked at, and then the folder listings
    tell: on such a file system its path exists but a name of it is not listed as
    written. (Inode numbers do not: a FUSE file system may make one per name.) Kept
    per key: a number and a reference, a few dozen bytes.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._first: dict[int, str] = {}

    def add(self, relkey: str) -> None:
        self._first.setdefault(_folded(relkey), relkey)

    def refuse_clash(self, relkey: str) -> None:
        """RefusedError if ``relkey``'s path is the file an earlier key was written to."""
        first = self._first.get(_folded(relkey))
        if first is None or first == relkey or not _folds_here(self.root, relkey):
            return
        raise RefusedError(
            f"{relkey} and {first} are one file in {self.root}: its file system does not "
            "tell their names apart (case or Unicode normalisation); not written",
            hint="Download it elsewhere, e.g. `s3vault get s3://BUCKET/KEY OTHER-PATH`.",
        )


def _folded(relkey: str) -> int:
    return hash(unicodedata.normalize("NFC", relkey).casefold())


def _folds_here(root: Path, relkey: str) -> bool:
    """Whether ``relkey``'s path exists under ``root`` only as another spelling."""
    try:
        path = target_path(root, relkey)
        if not path.exists():
            return False
        parent = root.resolve()
        for name in path.relative_to(parent).parts:
            if name not in os.listdir(parent):
                return True
            parent = parent / name
    except (OSError, RefusedError):
        pass  # the restore itself reports what is wrong with this path
    return False
