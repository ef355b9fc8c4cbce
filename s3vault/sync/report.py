"""What a sync run reports: counts, the paths that need attention, progress.

`SyncReport` is what `SyncEngine.reconcile` returns to `s3vault sync` and to the
agent; `Tally` is how the run's worker threads add to it and to the progress
callback. `PlannedAction` is one step of a dry run, in the user's words.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s3vault.errors import ExitCode, S3VaultError, local_error
from s3vault.sync.model import (
    Action,
    Conflict,
    Copy,
    DeleteRemote,
    Forget,
    LocalFile,
    Plan,
    Touch,
    Upload,
)


@dataclass(frozen=True, slots=True)
class SyncProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str | None = None


@dataclass(frozen=True, slots=True)
class PathIssue:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class PathError:
    path: str
    message: str
    exit_code: int

    @classmethod
    def of(cls, path: str, exc: S3VaultError) -> PathError:
        return cls(path, exc.message, int(exc.exit_code))


@dataclass(frozen=True, slots=True)
class FileDone:
    """One file the run changed in S3: what the agent's per-file activity lists."""

    action: str  # uploaded, renamed, deleted
    path: str  # renamed: the new path
    src: str | None = None  # renamed: the old path


FILES_DONE_KEPT = 1000
"""A report names at most this many changed files (the newest); the counts are exact."""


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One step of a plan, in the user's words: what `sync --dry-run` lists."""

    action: str  # upload, rename, delete, touch, conflict, forget (see ACTION_NAMES)
    path: str
    to: str | None = None  # rename: the new path
    reason: str | None = None  # upload: new, changed, missing-remotely; conflict: why
    bytes: int | None = None  # upload: the file's size


@dataclass
class SyncReport:
    """What one run did; counts of files, plus the paths that need attention."""

    folder: str
    dry_run: bool = False
    uploaded: int = 0
    copied: int = 0  # renames and moves: a server-side copy, then the old object goes
    deleted: int = 0
    touched: int = 0
    forgotten: int = 0
    relearned: int = 0  # objects re-written with the same plaintext (key rotation)
    skipped: int = 0  # symlinks, special files, names that are not UTF-8
    conflicts: list[PathIssue] = field(default_factory=list)
    errors: list[PathError] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)  # action name -> count
    would: list[PlannedAction] = field(default_factory=list)  # dry run: every step
    bytes: int = 0
    duration: float = 0.0
    forced: str = ""  # the guard's reason when --force overruled it
    # The newest changed files, for the agent's activity; not in `to_json` (the counts are).
    done: deque[FileDone] = field(default_factory=lambda: deque(maxlen=FILES_DONE_KEPT))

    @property
    def exit_code(self) -> int:
        """0 clean, 8 with conflicts, else the first error's code."""
        if self.errors:
            return self.errors[0].exit_code
        if self.conflicts:
            return int(ExitCode.CONFLICT)
        return int(ExitCode.OK)

    @property
    def went_offline(self) -> bool:
        """Some files were given up on because S3 could not be reached (exit code 6)."""
        return self.offline_reason is not None

    @property
    def offline_reason(self) -> str | None:
        """Why the first file given up on could not be sent (S3, KMS or the keyring did
        not answer), None if none was."""
        return next((e.message for e in self.errors if e.exit_code == ExitCode.UNREACHABLE), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["done"]
        data["exit_code"] = self.exit_code
        return data


# ---- the plan in the user's words ----------------------------------------------------

ACTION_NAMES: dict[type, str] = {
    Upload: "upload",
    Copy: "rename",
    DeleteRemote: "delete",
    Touch: "touch",
    Conflict: "conflict",
    Forget: "forget",
}
"""What each kind of plan action is called in reports, the CLI and the docs."""


def steps(plan: Plan) -> Iterator[Action]:
    """The plan's actions as a user counts them: a rename is one step, not a copy
    and a delete."""
    for action in plan.actions:
        if not (isinstance(action, DeleteRemote) and action.renamed_to is not None):
            yield action


def planned_counts(plan: Plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in steps(plan):
        name = ACTION_NAMES[type(action)]
        counts[name] = counts.get(name, 0) + 1
    return counts


def described(action: Action, local: dict[str, LocalFile]) -> PlannedAction:
    name = ACTION_NAMES[type(action)]
    if isinstance(action, Upload):
        file = local.get(action.path)
        return PlannedAction(
            name, action.path, reason=action.reason, bytes=file.size if file else None
        )
    if isinstance(action, Copy):
        return PlannedAction(name, action.src_path, to=action.dst_path)
    if isinstance(action, Conflict):
        return PlannedAction(name, action.path, reason=action.reason)
    return PlannedAction(name, action.path)


# ---- adding to a report from many threads --------------------------------------------

# A file that vanished, became a folder or another kind of file, or changed while it
# was read since the scan: the next run sees what it is now.
_CHANGING = (FileNotFoundError, NotADirectoryError, IsADirectoryError, InterruptedError)


class Tally:
    """Thread-safe report updates and progress callbacks from the workers.

    Each path ends with exactly one of `done`, `uploaded`, `defer`, `conflict`,
    `error` or `unread`. Progress counts bytes as they are sent (`sending`), not
    only when a file is done, so a run busy with one large file still shows it moving.
    """

    NOTIFY_EVERY = 0.25  # seconds between progress callbacks while bytes flow

    def __init__(
        self,
        report: SyncReport,
        files_total: int,
        bytes_total: int,
        progress: Callable[[SyncProgress], None] | None,
    ) -> None:
        self.report = report
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.files_done = 0
        self.bytes_done = 0
        self.progress = progress
        self.lock = threading.Lock()
        self._sent: dict[str, int] = {}  # bytes of files still in flight, counted already
        self._notified = 0.0

    def update(self, change: Callable[[SyncReport], None]) -> None:
        with self.lock:
            change(self.report)

    def announce(self) -> None:
        """Tell the progress callback what the run is about to do (0 of n files)."""
        self._notify(None, force=True)

    def sending(self, path: str, size: int) -> Callable[[int], None]:
        """A callback for a transfer's progress: ``n`` more bytes of ``path`` went out.

        Counted up to the file's ``size`` (a retried upload sends its bytes again).
        """

        def sent(n: int) -> None:
            with self.lock:
                before = self._sent.get(path, 0)
                now = min(size, before + n)
                self._sent[path] = now
                self.bytes_done += now - before
            self._notify(path)

        return sent

    def done(self, path: str, nbytes: int = 0) -> None:
        with self.lock:
            self.files_done += 1
            # Bytes counted while sending are replaced by the file's final count.
            self.bytes_done += nbytes - self._sent.pop(path, 0)
        self._notify(path, force=True)

    # ---- how a path ended ------------------------------------------------------------

    def uploaded(self, path: str, size: int) -> None:
        def count(r: SyncReport) -> None:
            r.uploaded += 1
            r.bytes += size
            r.done.append(FileDone("uploaded", path))

        self.update(count)
        self.done(path, size)

    def renamed(self, src: str, dst: str) -> None:
        """Copied to ``dst`` server-side (its old object ``src`` goes with the deletes)."""

        def count(r: SyncReport) -> None:
            r.copied += 1
            r.done.append(FileDone("renamed", dst, src))

        self.update(count)
        self.done(dst)

    def deleted(self, path: str) -> None:
        def count(r: SyncReport) -> None:
            r.deleted += 1
            r.done.append(FileDone("deleted", path))

        self.update(count)
        self.done(path)

    def defer(self, path: str) -> None:
        """Changing or gone while read: the next run looks again."""
        self.update(lambda r: r.deferred.append(path))
        self.done(path)

    def conflict(self, path: str, reason: str) -> None:
        issue = PathIssue(path, reason)
        self.update(lambda r: r.conflicts.append(issue))
        self.done(path)

    def error(self, path: str, exc: S3VaultError) -> None:
        error = PathError.of(path, exc)
        self.update(lambda r: r.errors.append(error))
        self.done(path)

    def unread(self, path: str, exc: OSError, full: Path) -> None:
        """A file that could not be read for its upload.

        Changing or gone: deferred to the next run. Anything else (permission denied,
        an I/O error) will not go away by itself: a per-file error that says why.
        """
        if isinstance(exc, _CHANGING):
            self.defer(path)
        else:
            self.error(path, local_error(exc, "read", full))

    def _notify(self, path: str | None, *, force: bool = False) -> None:
        if not self.progress:
            return
        with self.lock:
            now = time.monotonic()
            if not force and now - self._notified < self.NOTIFY_EVERY:
                return
            self._notified = now
            snapshot = SyncProgress(
                self.files_done, self.files_total, self.bytes_done, self.bytes_total, path
            )
        self.progress(snapshot)
