"""What a drop of files and folders would upload: walked, checked and named, before
anything is sent. No Qt here: `uploads` runs it in a job (walking a folder touches the
disk) and shows the result.

- A dropped folder is walked recursively. Symbolic links inside it are followed only
  while they stay inside the dropped folder; a link out of it, a broken link and a
  link loop are each reported and skipped, never followed.
- FIFOs, sockets and devices are reported and skipped (reading one could block).
- A file that cannot be opened (permissions) is reported and skipped.
- Each file's object key is the drop's prefix + its path under the drop (POSIX
  separators); a key the vault would refuse is reported and skipped.
- `find_existing` says which of those keys already hold an object (and its ETag, so a
  replace is conditional on what was seen).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from s3vault.errors import NotFoundError, local_error
from s3vault.vault import Location, Vault
from s3vault.vault.vault import MAX_KEY_BYTES

HEAD_WORKERS = 8  # HEADs of dropped files in parallel (a handful of loose files)


@dataclass(frozen=True, slots=True)
class DropFile:
    """One regular file to upload, the object key it goes to, and the dropped item
    (a file, or the folder it was found in) it came from."""

    path: Path
    key: str
    size: int
    top: Path


@dataclass(frozen=True, slots=True)
class DropProblem:
    """A dropped path that will not be uploaded, and why, in words a person can act on."""

    path: Path
    message: str


@dataclass(slots=True)
class DropPlan:
    files: list[DropFile] = field(default_factory=list)
    problems: list[DropProblem] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # the dropped folders themselves
    existing: dict[str, str] = field(default_factory=dict)  # object key -> its ETag

    def without_folder(self, folder: Path) -> None:
        """Forget the files found in ``folder`` (it is synced instead of uploaded)."""
        self.files = [f for f in self.files if f.top != folder]
        self.folders = [f for f in self.folders if f != folder]


def key_refusal(vault: Vault, key: str) -> str | None:
    """Why the vault would refuse ``key`` as an object key; None if it takes it."""
    if vault.is_instruction_key(key):
        return (
            f"its name ends in {vault.instruction_suffix!r}, which is reserved for "
            "instruction files (the envelopes of other objects): rename it"
        )
    in_file = Location(vault.defaults.envelope) is Location.INSTRUCTION_FILE
    longest = vault.instruction_key(key) if in_file else key
    if len(longest.encode("utf-8")) > MAX_KEY_BYTES:
        return f"its object key would be longer than the {MAX_KEY_BYTES} bytes S3 allows"
    return None


def plan_drop(
    paths: list[Path],
    prefix: str,
    refuse: Callable[[str], str | None],
    check: Callable[[], None] = lambda: None,
) -> DropPlan:
    """Walk the dropped ``paths``; ``check`` is called between entries (it raises to
    stop: a cancelled job)."""
    plan = DropPlan()
    for dropped in paths:
        check()
        top = Path(os.path.abspath(dropped))  # a link's own name, not its target's
        _Walker(plan, prefix, refuse, check, top).add_top()
    return plan


class _Walker:
    def __init__(
        self,
        plan: DropPlan,
        prefix: str,
        refuse: Callable[[str], str | None],
        check: Callable[[], None],
        top: Path,
    ) -> None:
        self.plan = plan
        self.prefix = prefix
        self.refuse = refuse
        self.check = check
        self.top = top
        self.root = str(top)  # the real path of a dropped folder, once known

    def add_top(self) -> None:
        st = self._stat(self.top)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            self.plan.folders.append(self.top)
            self.root = os.path.realpath(self.top)
            self._walk(self.top, self.top.name, {(st.st_dev, st.st_ino)})
        else:
            self._add_file(self.top, self.top.name, st)

    def _walk(self, folder: Path, rel: str, ancestors: set[tuple[int, int]]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._problem(folder, local_error(exc, "read the folder", folder).message)
            return
        for entry in entries:
            self.check()
            path = Path(entry.path)
            if entry.is_symlink() and not self._inside(path):
                continue
            st = self._stat(path)
            if st is None:
                continue
            relpath = f"{rel}/{entry.name}"
            if stat.S_ISDIR(st.st_mode):
                here = (st.st_dev, st.st_ino)
                if here in ancestors:
                    self._problem(
                        path,
                        "a symbolic link loop (it leads back to a folder "
                        "that contains it): not followed",
                    )
                    continue
                self._walk(path, relpath, ancestors | {here})
            else:
                self._add_file(path, relpath, st)

    def _inside(self, link: Path) -> bool:
        """Whether a link inside the dropped folder points inside it (else reported)."""
        target = os.path.realpath(link)
        if os.path.commonpath([self.root, target]) == self.root:
            return True
        self._problem(
            link, f"a symbolic link to {target}, outside the dropped folder: not followed"
        )
        return False

    def _stat(self, path: Path) -> os.stat_result | None:
        """The stat of what ``path`` points to; None (and a problem) if there is none."""
        try:
            return os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._problem(
                    path, "a symbolic link loop (the link points back to itself): not followed"
                )
            elif exc.errno == errno.ENOENT and os.path.islink(path):
                self._problem(
                    path, f"a broken symbolic link (to {os.readlink(path)}): nothing to upload"
                )
            elif exc.errno == errno.ENOENT:
                self._problem(path, "it no longer exists (moved or deleted after the drop)")
            else:
                self._problem(path, local_error(exc, "read", path).message)
            return None

    def _add_file(self, path: Path, relpath: str, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            self._problem(
                path, f"a {_kind(st.st_mode)}, not a file: skipped (reading one could wait forever)"
            )
            return
        try:  # opening is harmless for a regular file and finds what permissions forbid
            with open(path, "rb"):
                pass
        except OSError as exc:
            self._problem(path, local_error(exc, "read", path).message)
            return
        key = self.prefix + relpath
        refusal = self.refuse(key)
        if refusal is not None:
            self._problem(path, f"not uploaded: {refusal}")
            return
        self.plan.files.append(DropFile(path, key, st.st_size, self.top))

    def _problem(self, path: Path, message: str) -> None:
        self.plan.problems.append(DropProblem(path, message))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def find_existing(
    vault: Vault, bucket: str, prefix: str, plan: DropPlan, check: Callable[[], None]
) -> None:
    """Fill ``plan.existing`` with the keys of the plan that hold an object already:
    one listing per dropped folder, one HEAD per dropped file."""
    wanted = {f.key for f in plan.files}
    for folder in plan.folders:
        for summary in vault.list_objects(bucket, f"{prefix}{folder.name}/"):
            check()
            if summary.key in wanted:
                plan.existing[summary.key] = summary.etag
    loose = [f.key for f in plan.files if f.top not in plan.folders]

    def head(key: str) -> tuple[str, str | None]:
        check()
        try:
            return key, vault.head(bucket, key).etag
        except NotFoundError:
            return key, None

    with ThreadPoolExecutor(max_workers=HEAD_WORKERS, thread_name_prefix="drop-head") as pool:
        for key, etag in pool.map(head, loose):
            if etag is not None:
                plan.existing[key] = etag
