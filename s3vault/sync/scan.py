"""What is in a sync folder now: a stat-only walk, the root's health, content hashes.

The scan never reads file content (it must go through 100,000 files in a few seconds,
and run every hour); the planner asks for a hash only where size and mtime cannot
decide. One bad entry never stops a scan: it lands in ``skipped`` (not a regular file)
or ``errors`` (could not be read), and the planner leaves the state of an unreadable
path alone instead of taking it for deleted.

Symbolic links are skipped unless the folder says ``follow_symlinks``; then each
directory is entered once (by device and inode), so a link loop ends. The sync root
itself may be a link: the user named it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from s3vault.errors import local_error
from s3vault.sync.ignore import IgnoreRules
from s3vault.sync.model import LocalFile, RootIdentity

RootStatus = Literal["ok", "missing", "not-a-directory", "unreadable"]

ROOT = "."  # how the root itself is named in ``errors`` and ``skipped``


@dataclass(slots=True)
class ScanResult:
    """Regular files by relative path, plus what was left out and why."""

    files: dict[str, LocalFile] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it is not synced
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read
    vanished: list[str] = field(default_factory=list)  # removed or moved during the scan
    ignored: int = 0  # entries matched by the ignore rules (a directory counts once)

    @property
    def unreadable(self) -> list[str]:
        """Paths whose content is unknown this time: pass to `plan(unreadable=...)`."""
        return [*self.errors, *self.vanished]

    def merge(self, other: ScanResult) -> None:
        self.files.update(other.files)
        self.skipped.update(other.skipped)
        self.errors.update(other.errors)
        self.vanished.extend(other.vanished)
        self.ignored += other.ignored


def scan(
    root: Path, rules: IgnoreRules, *, follow_symlinks: bool = False, under: str = ""
) -> ScanResult:
    """Walk ``root`` (or only its subtree ``under``, a relative POSIX path).

    A missing ``under`` gives an empty result: its files are gone. Check the root
    itself with `root_status` first; a missing root must never look like an empty one.
    """
    result = ScanResult()
    top = under.strip("/")
    start = os.path.join(os.fspath(root), *top.split("/")) if top else os.fspath(root)
    if top and (rules.is_ignored(top, is_dir=True) or _behind_link(root, top, follow_symlinks)):
        return result
    visited: set[tuple[int, int]] | None = None
    if follow_symlinks:
        # Directories entered so far, by identity: a link back up the tree ends here.
        visited = set()
        try:
            st = os.stat(start)
        except FileNotFoundError:
            if not top:
                result.errors[ROOT] = "the sync root does not exist"
            return result
        except OSError as exc:
            result.errors[top or ROOT] = _why(exc)
            return result
        visited.add((st.st_dev, st.st_ino))
    _walk(start, f"{top}/" if top else "", rules, visited, result)
    return result


def _walk(
    start: str,
    start_rel: str,
    rules: IgnoreRules,
    visited: set[tuple[int, int]] | None,
    result: ScanResult,
) -> None:
    # The hot loop: DirEntry answers is_dir/is_file/is_symlink from the directory
    # listing itself (d_type), so a regular file costs one lstat and nothing else.
    files, skipped, errors = result.files, result.skipped, result.errors
    is_ignored = rules.is_ignored
    stack = [(start, start_rel)]
    # Directories reached through links wait until every real one was walked, so a
    # directory is always synced under its real path, whatever the listing order.
    linked: list[tuple[str, str, tuple[int, int]]] = []
    while stack or linked:
        if not stack:
            linked.sort(key=lambda item: item[1], reverse=True)
            link_path, rel_link, ident = linked.pop()
            assert visited is not None  # links are followed only with a visited set
            if ident in visited:
                skipped[rel_link.rstrip("/")] = "link to a directory synced already (a loop?)"
            else:
                visited.add(ident)
                stack.append((link_path, rel_link))
            continue
        dir_path, rel_dir = stack.pop()
        try:
            with os.scandir(dir_path) as entries:
                for entry in entries:
                    name = entry.name
                    rel = rel_dir + name
                    if not name.isascii() and not _is_utf8(name):
                        skipped[rel] = "the name is not valid UTF-8 (S3 keys must be)"
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if is_ignored(rel, True):
                                result.ignored += 1
                            elif visited is None or _first_visit(entry, rel, visited, skipped):
                                stack.append((entry.path, rel + "/"))
                        elif is_ignored(rel, False):
                            result.ignored += 1
                        elif entry.is_file(follow_symlinks=False):
                            st = entry.stat(follow_symlinks=False)
                            files[rel] = LocalFile(rel, st.st_size, st.st_mtime_ns, st.st_ino)
                        elif entry.is_symlink():
                            _symlink(entry, rel, rules, visited is not None, linked, result)
                        else:
                            skipped[rel] = _kind(entry.stat(follow_symlinks=False).st_mode)
                    except FileNotFoundError:
                        # Removed since the listing, or renamed: unknown this time.
                        result.vanished.append(rel)
                    except OSError as exc:
                        errors[rel] = _why(exc)
        except FileNotFoundError:
            if rel_dir == "":
                errors[ROOT] = "the sync root does not exist"
            elif rel_dir != start_rel:
                # Removed or moved while the scan ran: a moved directory's files would
                # look deleted, so they count as unknown until the next look.
                result.vanished.append(rel_dir.rstrip("/"))
            # The ``under`` directory itself missing: its files are gone.
        except OSError as exc:
            # Unreadable, or failed mid-listing: what it holds is unknown, not deleted.
            errors[rel_dir.rstrip("/") or ROOT] = _why(exc)


def _symlink(
    entry: os.DirEntry[str],
    rel: str,
    rules: IgnoreRules,
    follow: bool,
    linked: list[tuple[str, str, tuple[int, int]]],
    result: ScanResult,
) -> None:
    if not follow:
        result.skipped[rel] = "symbolic link (not followed)"
        return
    try:
        st = entry.stat(follow_symlinks=True)
    except FileNotFoundError:
        result.skipped[rel] = "broken symbolic link"
        return
    except OSError as exc:
        result.skipped[rel] = f"symbolic link that cannot be followed: {_why(exc)}"
        return
    if stat.S_ISDIR(st.st_mode):
        if rules.is_ignored(rel, True):
            result.ignored += 1
        else:
            linked.append((entry.path, rel + "/", (st.st_dev, st.st_ino)))
    elif stat.S_ISREG(st.st_mode):
        result.files[rel] = LocalFile(rel, st.st_size, st.st_mtime_ns, st.st_ino)
    else:
        result.skipped[rel] = "link to a " + _kind(st.st_mode)


def _first_visit(
    entry: os.DirEntry[str], rel: str, visited: set[tuple[int, int]], skipped: dict[str, str]
) -> bool:
    st = entry.stat(follow_symlinks=False)
    ident = (st.st_dev, st.st_ino)
    if ident in visited:
        skipped[rel] = "directory synced already through a link"
        return False
    visited.add(ident)
    return True


def scan_paths(
    root: Path, paths: Iterable[str], rules: IgnoreRules, *, follow_symlinks: bool = False
) -> ScanResult:
    """Look at just these paths (a batch of watcher events): files, or whole subtrees
    for directories. A path that does not exist is simply absent from the result."""
    result = ScanResult()
    for rel in dict.fromkeys(p.strip("/") for p in paths):
        if not rel:
            result.merge(scan(root, rules, follow_symlinks=follow_symlinks))
            continue
        if _behind_link(root, rel, follow_symlinks):
            continue
        full = root.joinpath(*rel.split("/"))
        try:
            st = os.stat(full) if follow_symlinks else os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            result.errors[rel] = _why(exc)
            continue
        if stat.S_ISDIR(st.st_mode):
            result.merge(scan(root, rules, follow_symlinks=follow_symlinks, under=rel))
        elif rules.is_ignored(rel):
            result.ignored += 1
        elif stat.S_ISREG(st.st_mode):
            result.files[rel] = LocalFile(rel, st.st_size, st.st_mtime_ns, st.st_ino)
        elif stat.S_ISLNK(st.st_mode):
            result.skipped[rel] = "symbolic link (not followed)"
        else:
            result.skipped[rel] = _kind(st.st_mode)
    return result


def _behind_link(root: Path, rel: str, follow_symlinks: bool) -> bool:
    """Whether a parent directory of ``rel`` is a symbolic link the scan would not follow."""
    if follow_symlinks:
        return False
    here = root
    for part in rel.split("/")[:-1]:
        here = here / part
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return True
        except OSError:
            return False
    return False


# ---- the root ------------------------------------------------------------------------


def root_status(root: Path) -> RootStatus:
    """Whether the sync root can be synced at all; anything but "ok" stops the folder."""
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    if not stat.S_ISDIR(st.st_mode):
        return "not-a-directory"
    try:
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError:
        return "unreadable"
    return "ok"


def root_identity(root: Path) -> RootIdentity:
    """Device and inode of the root directory (following a root that is a link).

    s3vault writes no marker file into the folder (upload sync never modifies local
    files); it remembers this identity in the state database instead.
    """
    st = os.stat(root)
    return RootIdentity(device=st.st_dev, inode=st.st_ino)


# ---- content -------------------------------------------------------------------------


def hash_file(path: Path, *, follow_symlinks: bool = False) -> str:
    """SHA-256 (hex) of a regular file's content; OSError if it is not one any more."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with open(fd, "rb") as f:
        # O_NONBLOCK and this check: a file replaced by a FIFO since the scan must not
        # hang the agent on open or read.
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise IsADirectoryError(f"{path} is no longer a regular file")
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_hasher(root: Path, *, follow_symlinks: bool = False) -> Callable[[str], str | None]:
    """The ``hash_of`` the planner wants: relative path -> hash, None if unreadable."""

    def hash_of(relpath: str) -> str | None:
        try:
            return hash_file(root.joinpath(*relpath.split("/")), follow_symlinks=follow_symlinks)
        except OSError:
            return None

    return hash_of


# ---- helpers -------------------------------------------------------------------------


def _is_utf8(name: str) -> bool:
    # os.scandir decodes undecodable bytes as lone surrogates (surrogateescape).
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "not a regular file"


def _why(exc: OSError) -> str:
    """What a per-path error says: which path could not be read, and why in words
    ("cannot read /home/me/Documents/private: permission denied"), as for a file."""
    if exc.filename is None:
        return exc.strerror or str(exc)
    return local_error(exc, "read", os.fsdecode(exc.filename)).message
