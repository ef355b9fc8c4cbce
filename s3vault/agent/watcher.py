"""From file-system events and timers to reconciles: the agent's sync loop.

- `FolderWatch`: a watchdog observer's events on one folder root, as relative POSIX
  `FsEvent`s, into that folder's `Debouncer` (ignore rules applied there).
- `Schedule`: pure bookkeeping of *when* a folder needs which reconcile — start-up
  (with the S3 listing), "sync now", periodic rescans, debounced event batches, and
  retries with backoff after a failure. Tested with a fake clock.
- `SyncLoop`: the one thread that runs the reconciles, folder after folder, and keeps
  `AgentStatus` up to date; pause/resume/sync-now/stop arrive from the socket threads,
  for every folder or for one. A paused folder's events are kept; it is reconciled in
  full when resumed.

A reconcile is never interrupted: pause and stop take effect when the current one ends
(the engine's crash-safety makes a kill at any point safe, but a clean end is cheaper).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from s3vault.agent.status import AgentStatus
from s3vault.agent.trim import release_free_memory
from s3vault.config.sync import FolderSettings
from s3vault.errors import RefusedError, S3VaultError, UnreachableError
from s3vault.sync.events import Change, Debouncer, EventKind, FsEvent
from s3vault.sync.ignore import IGNORE_FILE
from s3vault.sync.report import SyncProgress, SyncReport

log = logging.getLogger(__name__)

BACKOFF_START = 5.0  # seconds before the first retry after S3 was unreachable
BACKOFF_MAX = 300.0
# Seconds before a deferred file (changing while read, or a write a killed run left
# that S3 may still commit) is looked at again: soon, but not at every debounce.
RELOOK_AFTER = 1.0
# How long the S3 listing of a full run is trusted for the targeted runs that follow:
# at most `rescan_interval`, and never more than this (docs/sync.md, "Targeted runs").
LISTING_TRUSTED_MAX = 3600.0
_KINDS: dict[str, EventKind] = {
    "created": "created",
    "modified": "modified",
    "deleted": "deleted",
    "moved": "moved",
}


class Reconciler(Protocol):
    """What the loop needs of `s3vault.sync.engine.SyncEngine`."""

    def reconcile(
        self,
        *,
        paths: Collection[str] | None = None,
        force: bool = False,
        dry_run: bool = False,
        with_remote_listing: bool = True,
        progress: Callable[[SyncProgress], None] | None = None,
    ) -> SyncReport: ...


class WatchLimitError(RefusedError):
    title = "Too many watched directories"


# ---- events --------------------------------------------------------------------------


class FolderWatch(FileSystemEventHandler):
    """Feeds one folder's watchdog events into its Debouncer (under ``lock``)."""

    def __init__(
        self,
        folder: FolderSettings,
        debouncer: Debouncer,
        lock: threading.Lock,
        wake: Callable[[], None],
        on_ignore_file: Callable[[], None],
    ) -> None:
        self.folder_path = folder.path
        self.root = os.path.realpath(folder.path)
        self.debouncer, self.lock, self.wake = debouncer, lock, wake
        self.on_ignore_file = on_ignore_file
        self.started = False

    def start(self, observer: BaseObserver) -> None:
        """Watch the root (recursively); translate the kernel's watch limits."""
        # Resolved now, not at construction: the root may be a link to a drive
        # mounted since.
        self.root = os.path.realpath(self.folder_path)
        try:
            observer.schedule(self, self.root, recursive=True)
        except OSError as exc:
            raise translate_watch_error(exc, self.root) from None
        self.started = True

    def on_any_event(self, event: FileSystemEvent) -> None:
        fs_event = self.to_fs_event(event)
        if fs_event is None:
            return
        if IGNORE_FILE in (fs_event.src, fs_event.dest):
            self.on_ignore_file()
        with self.lock:
            self.debouncer.add(fs_event)
        self.wake()

    def to_fs_event(self, event: FileSystemEvent) -> FsEvent | None:
        """Relative POSIX paths; a move across the root's edge is a create or delete."""
        kind = _KINDS.get(event.event_type)
        if kind is None:
            return None  # opened / closed / attrib: the content events cover them
        src = self._relative(os.fsdecode(event.src_path))
        dest = self._relative(os.fsdecode(event.dest_path)) if kind == "moved" else None
        is_dir = event.is_directory
        if kind == "moved":
            if src is None and dest is None:
                return None
            if src is None:
                assert dest is not None
                return FsEvent("created", dest, is_dir=is_dir)
            if dest is None:
                return FsEvent("deleted", src, is_dir=is_dir)
            return FsEvent("moved", src, dest=dest, is_dir=is_dir)
        if src is None:
            return None
        return FsEvent(kind, src, is_dir=is_dir)

    def _relative(self, path: str) -> str | None:
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None  # the root itself or outside it
        return PurePosixPath(Path(rel)).as_posix()


def translate_watch_error(exc: OSError, root: str) -> S3VaultError | OSError:
    """The kernel's inotify limits as an actionable message; other errors unchanged."""
    if exc.errno == errno.ENOSPC:
        return WatchLimitError(
            f"cannot watch {root}: the inotify watch limit is reached",
            hint="Increase fs.inotify.max_user_watches, e.g.\n"
            "  echo fs.inotify.max_user_watches=524288 | "
            "sudo tee /etc/sysctl.d/90-s3vault.conf && sudo sysctl --system",
        )
    if exc.errno == errno.EMFILE:
        return WatchLimitError(
            f"cannot watch {root}: too many inotify instances",
            hint="Increase fs.inotify.max_user_instances (sysctl), or stop other watchers.",
        )
    return exc


# ---- when to reconcile ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """One reconcile: everything (``paths`` None) or just these paths."""

    reason: str
    paths: frozenset[str] | None = None
    with_remote_listing: bool = False


class Schedule:
    """When one folder needs a reconcile, and which. Times are ``clock()`` seconds."""

    def __init__(self, debouncer: Debouncer, *, rescan_interval: float, now: float) -> None:
        self.debouncer = debouncer
        self.rescan_interval = rescan_interval
        self.full: str | None = "start"  # a full reconcile is owed, and why
        self.listing = True  # ... with the S3 listing (start-up, sync-now, rescans)
        # When the last full run with the listing began, if state, scan and S3 agreed
        # at its end; None: no listing to trust (a targeted run lists, see below).
        self.listed_at: float | None = None
        self._taken_at = now
        self.next_rescan: float | None = None
        self.retry_at: float | None = None
        self.backoff = BACKOFF_START
        self._now = now

    def sync_now(self) -> None:
        self.full, self.listing, self.retry_at = "sync-now", True, None

    def resumed(self) -> None:
        """After a pause of this folder: look at everything (its kept events too)."""
        if self.full is None:
            self.full = "resume"
        self.retry_at = None

    def next_job(self, now: float) -> Job | None:
        """The reconcile due at ``now``, taken out of the schedule; None if nothing is."""
        if self.retry_at is not None and now < self.retry_at:
            return None
        if self.full is None and self.next_rescan is not None and now >= self.next_rescan:
            self.full, self.listing = "rescan", True  # the rescan verifies the listing
        listing = not self.listing_trusted(now)
        if self.full is not None:
            self.debouncer.flush()  # a full reconcile looks at every path anyway
            job = Job(self.full, None, self.listing or listing)
            self.full, self.listing = None, False  # `failed` puts both back
            self._taken_at = now
            return job
        paths = paths_of(self.debouncer.due())
        if not paths:
            return None
        self._taken_at = now
        return Job("changes", frozenset(paths), with_remote_listing=listing)

    @property
    def listing_window(self) -> float:
        """How long a full run's listing is trusted: the rescan interval, at most 1 h."""
        if self.rescan_interval > 0:
            return min(self.rescan_interval, LISTING_TRUSTED_MAX)
        return LISTING_TRUSTED_MAX

    def listing_trusted(self, now: float) -> bool:
        """Whether a targeted run may go without the S3 listing at ``now``: a full
        run listed the prefix less than `listing_window` ago, and state, scan and S3
        agreed since (no conflict, no file error, no failed run)."""
        return self.listed_at is not None and now - self.listed_at < self.listing_window

    def next_wake(self) -> float | None:
        """When `next_job` may next have something (None: only on an event or a verb)."""
        if self.retry_at is not None:
            return self.retry_at
        if self.full is not None:
            return self._now
        times = [t for t in (self.debouncer.next_due(), self.next_rescan) if t is not None]
        return min(times) if times else None

    def succeeded(self, job: Job, now: float, *, agreed: bool = True) -> None:
        """After a reconcile that ran to its end; ``agreed``: it found no conflict and
        no file error (state, scan and S3 tell the same story)."""
        self._now = now
        self.retry_at, self.backoff = None, BACKOFF_START
        if not agreed:
            self.listed_at = None
        elif job.paths is None and job.with_remote_listing:
            self.listed_at = self._taken_at  # the listing is as old as the run
        if job.paths is None:
            self.next_rescan = now + self.rescan_interval if self.rescan_interval > 0 else None

    def failed(self, job: Job, now: float, *, retry: bool) -> float | None:
        """After a failed reconcile: retry it in full after the backoff (or not)."""
        self._now = now
        self.listed_at = None
        if not retry:
            self.retry_at = None
            if job.paths is None:
                self.next_rescan = now + self.rescan_interval if self.rescan_interval > 0 else None
            return None
        # A batch that failed half-way: a full reconcile finds what is left, whatever it is.
        self.full = job.reason if job.paths is None else "retry"
        self.listing = self.listing or job.with_remote_listing
        self.retry_at = now + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        return self.retry_at


def paths_of(changes: Collection[Change]) -> set[str]:
    """Every path a batch of net changes asks to look at (a move: both ends)."""
    paths: set[str] = set()
    for change in changes:
        paths.add(change.path)
        if change.src is not None:
            paths.add(change.src)
    return paths


# ---- the loop ------------------------------------------------------------------------


@dataclass(slots=True)
class FolderRun:
    """One folder as the loop sees it."""

    folder_id: str
    engine: Reconciler
    schedule: Schedule


class SyncLoop:
    """Runs every folder's reconciles in one thread (`run`); controlled from others."""

    def __init__(
        self,
        folders: list[FolderRun],
        status: AgentStatus,
        *,
        lock: threading.Lock,
        clock: Callable[[], float] = time.monotonic,
        on_reconciled: Callable[[], None] = lambda: None,
    ) -> None:
        self.folders = folders
        self.status = status
        self.lock = lock  # guards the debouncers, shared with the watchdog threads
        self.clock = clock
        self.on_reconciled = on_reconciled
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused = False
        self._paused_folders: set[str] = set()
        # Folders whose last run was refused: until a run succeeds, only whole-folder
        # runs, so a refused mass delete cannot pass the guard batch by batch.
        self._refused: set[str] = set()

    # ---- control (any thread) -----------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def pause(self, folder_id: str | None = None) -> None:
        """Pause every folder (None) or one; the reconcile in progress ends first."""
        if folder_id is None:
            self._paused = True
            self.status.set_paused(True)
        else:
            with self.lock:
                self._paused_folders.add(folder_id)
            self.status.set_folder_paused(folder_id, True)
        self.wake()

    def resume(self, folder_id: str | None = None) -> None:
        """Resume every folder (None: the global pause ends) or one (it then gets a
        full reconcile: its events were kept, but a rescan misses nothing)."""
        if folder_id is None:
            self._paused = False
            self.status.set_paused(False)
        else:
            with self.lock:
                if folder_id in self._paused_folders:
                    self._paused_folders.discard(folder_id)
                    self._run(folder_id).schedule.resumed()
            self.status.set_folder_paused(folder_id, False)
        self.wake()

    def sync_now(self, folder_id: str | None = None) -> None:
        """A full reconcile with the S3 listing of every folder, or of one (a paused
        folder's runs when it is resumed)."""
        with self.lock:
            for run in self.folders:
                if folder_id is None or run.folder_id == folder_id:
                    run.schedule.sync_now()
        self.wake()

    def is_paused(self, folder_id: str) -> bool:
        with self.lock:
            return folder_id in self._paused_folders

    def _run(self, folder_id: str) -> FolderRun:
        return next(run for run in self.folders if run.folder_id == folder_id)

    def stop(self) -> None:
        self._stop.set()
        self.wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ---- the loop -----------------------------------------------------------------

    def run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(self._sleep_time())
            self._wake.clear()

    def run_once(self) -> None:
        """Every folder's due reconcile, once (paused: none)."""
        for run in self.folders:
            if self._stop.is_set() or self._paused:
                return
            with self.lock:
                if run.folder_id in self._paused_folders:
                    continue  # its events wait in the debouncer
                job = run.schedule.next_job(self.clock())
            if job is not None and job.paths is not None and run.folder_id in self._refused:
                job = Job("changes after a refusal", None, job.with_remote_listing)
            if job is not None:
                self._reconcile(run, job)

    def _sleep_time(self) -> float:
        if self._paused:
            return 3600.0
        with self.lock:
            wakes = [
                w
                for r in self.folders
                if r.folder_id not in self._paused_folders
                and (w := r.schedule.next_wake()) is not None
            ]
        if not wakes:
            return 3600.0
        return max(0.0, min(wakes) - self.clock())

    def _reconcile(self, run: FolderRun, job: Job) -> None:
        fid = run.folder_id
        self.status.begin_sync(fid, reason=job.reason)
        log.info("%s: reconcile (%s)", fid, job.reason)

        def progress(p: SyncProgress) -> None:
            self.status.progress(
                fid,
                files_done=p.files_done,
                files_total=p.files_total,
                bytes_done=p.bytes_done,
                bytes_total=p.bytes_total,
                current=p.current,
            )

        try:
            report = run.engine.reconcile(
                paths=job.paths, with_remote_listing=job.with_remote_listing, progress=progress
            )
        except UnreachableError as exc:
            self._failed(run, job, "offline", exc, retry=True)
        except RefusedError as exc:
            # The guard refused (or a policy did): retrying changes nothing until the
            # user acts; the next rescan or `sync-now` tries again. The refusal's kind
            # (e.g. mass-delete) goes in the status for the GUI's notification.
            kind = getattr(exc, "kind", "") or "refused"
            refused = {"kind": kind, "message": exc.message, "hint": exc.hint}
            self._refused.add(fid)
            self._failed(run, job, "error", exc, retry=False, refused=refused)
        except S3VaultError as exc:
            self._failed(run, job, "error", exc, retry=True)
        except Exception as exc:  # a bug: keep the agent alive, say so, retry later
            log.exception("%s: reconcile failed", fid)
            self._failed(run, job, "error", S3VaultError(f"internal error: {exc!r}"), retry=True)
        else:
            self._refused.discard(fid)
            with self.lock:
                agreed = not report.conflicts and not report.errors
                run.schedule.succeeded(job, self.clock(), agreed=agreed)
                # Files that changed while they were read, and writes S3 may still
                # commit: look again in a while, once quiet.
                later = self.clock() + RELOOK_AFTER
                for path in report.deferred:
                    run.schedule.debouncer.add(FsEvent("modified", path, time=later))
            self.status.end_sync(fid, report, paths=job.paths)
            reason = report.offline_reason
            if reason is not None:
                # The engine retried and then gave up on these files, S3 (or KMS, or the
                # keyring) being unreachable: back off and try everything again, as after
                # a failed start. The status says which service did not answer.
                self._failed(run, job, "offline", UnreachableError(reason), retry=True)
        if job.paths is None:
            release_free_memory()  # after a full run: the agent idles at its working size
        self.on_reconciled()

    def _failed(
        self,
        run: FolderRun,
        job: Job,
        state: Any,
        exc: S3VaultError,
        *,
        retry: bool,
        refused: dict[str, str | None] | None = None,
    ) -> None:
        now = self.clock()
        with self.lock:
            retry_at = run.schedule.failed(job, now, retry=retry)
        wall = time.time() + (retry_at - now) if retry_at is not None else None
        log.warning("%s: %s%s", run.folder_id, exc.message, f" ({exc.hint})" if exc.hint else "")
        self.status.failed(run.folder_id, state, str(exc), retry_at=wall, refused=refused)
