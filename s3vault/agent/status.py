"""What the agent is doing, for `s3vault status`, the GUI and subscribers.

One `AgentStatus` is shared by the sync loop (which writes) and the socket threads
(which read `snapshot()` or wait in `wait_changed()` to push updates). Everything it
holds is bounded: the recent activity, the per-file results, errors and conflicts keep
the newest. The snapshot's fields are the control protocol (docs/agent.md); a field
added bumps `PROTOCOL`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from s3vault.agent.protocol import PROTOCOL
from s3vault.sync.report import SyncReport

State = Literal["idle", "syncing", "paused", "offline", "error"]
FolderState = Literal["idle", "syncing", "paused", "offline", "error"]

MAX_RECENT = 100
MAX_FILE_ERRORS = 500
MAX_CONFLICTS = 500
MAX_FILES = 200  # per-file results in the snapshot (newest first)
MAX_FILE_MESSAGE = 300  # characters of a per-file message: keeps a snapshot small


@dataclass(slots=True)
class _Folder:
    folder_id: str
    path: str
    state: FolderState = "idle"  # the last reconcile's outcome (never "paused")
    message: str | None = None  # why offline / error
    last_sync: float | None = None
    last_report: dict[str, Any] | None = None
    next_retry: float | None = None
    paused: bool = False
    refused: dict[str, Any] | None = None  # the guard's refusal that stands, if any
    last_success: float | None = None  # the last run that ended with no file errors


@dataclass(slots=True)
class _Progress:
    folder_id: str
    started: float
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str | None = None  # the file whose progress came last


@dataclass(slots=True)
class _Counters:
    reconciles: int = 0
    started: float = field(default_factory=time.time)
    # Since the agent started, for monitoring (`totals`): they only grow.
    bytes_uploaded: int = 0
    files_uploaded: int = 0
    file_errors: int = 0
    runs_failed: int = 0


class AgentStatus:
    """Thread-safe; every change wakes the subscribers."""

    def __init__(
        self,
        folders: Iterable[tuple[str, str]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._version = 0
        self._paused = False
        self._folders = {fid: _Folder(fid, path) for fid, path in folders}
        self._progress: _Progress | None = None
        self._recent: deque[dict[str, Any]] = deque(maxlen=MAX_RECENT)
        self._file_errors: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._conflicts: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._files: deque[dict[str, Any]] = deque(maxlen=MAX_FILES)
        self._counters = _Counters(started=clock())

    # ---- writers (the sync loop) --------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        with self._changing():
            self._paused = paused
            self._note("paused" if paused else "resumed")

    def set_folder_paused(self, folder_id: str, paused: bool) -> None:
        with self._changing():
            self._folders[folder_id].paused = paused
            self._note("paused" if paused else "resumed", folder_id=folder_id)

    def has_folder(self, folder_id: str) -> bool:
        return folder_id in self._folders

    def folders(self) -> list[tuple[str, str]]:
        """(folder id, local path) of every folder."""
        return [(f.folder_id, f.path) for f in self._folders.values()]

    def begin_sync(self, folder_id: str, *, reason: str) -> None:
        with self._changing():
            folder = self._folders[folder_id]
            folder.state, folder.next_retry = "syncing", None
            self._progress = _Progress(folder_id, started=self._clock())
            self._note("sync started", folder_id=folder_id, reason=reason)

    def progress(
        self,
        folder_id: str,
        *,
        files_done: int,
        files_total: int,
        bytes_done: int,
        bytes_total: int,
        current: str | None = None,
    ) -> None:
        with self._changing():
            p = self._progress
            if p is None or p.folder_id != folder_id:
                return
            p.files_done, p.files_total = files_done, files_total
            p.bytes_done, p.bytes_total = bytes_done, bytes_total
            p.current = current

    def end_sync(
        self, folder_id: str, sync_report: SyncReport, *, paths: Collection[str] | None = None
    ) -> None:
        """A reconcile of ``paths`` (None: the whole folder) finished with
        ``sync_report``: its per-file errors and conflicts replace the folder's old ones
        under ``paths``, and its changed files join the per-file results."""
        report = compact_report(sync_report.to_json())
        with self._changing():
            now = self._clock()
            folder = self._folders[folder_id]
            folder.state, folder.message, folder.refused = "idle", None, None
            folder.last_sync, folder.last_report = now, report
            if not sync_report.errors:
                folder.last_success = now
            self._progress = None
            counters = self._counters
            counters.reconciles += 1
            if not sync_report.dry_run:
                counters.bytes_uploaded += sync_report.bytes
                counters.files_uploaded += sync_report.uploaded
            counters.file_errors += len(sync_report.errors)
            # A file this run looked at has no old error or conflict any more; a run
            # of some paths says nothing of the others.
            covered = _covered_by(paths)
            for table in (self._file_errors, self._conflicts):
                for key in [k for k in table if k[0] == folder_id and covered(k[1])]:
                    del table[key]
            for path, message in file_problems(sync_report):
                entry = {"folder": folder_id, "path": path, "message": message, "time": now}
                _put_bounded(self._file_errors, (folder_id, path), entry, MAX_FILE_ERRORS)
            for c in sync_report.conflicts:
                entry = {"folder": folder_id, "path": c.path, "reason": c.reason, "time": now}
                _put_bounded(self._conflicts, (folder_id, c.path), entry, MAX_CONFLICTS)
            self._files.extendleft(file_results(folder_id, sync_report, now))
            self._note("sync finished", folder_id=folder_id, report=report)

    def failed(
        self,
        folder_id: str,
        state: Literal["offline", "error"],
        message: str,
        *,
        retry_at: float | None,
        refused: dict[str, str | None] | None = None,
    ) -> None:
        """A reconcile failed; ``refused`` ({"kind", "message", "hint"}) when it was
        refused (the guard's verdict); it stands until a reconcile of the folder ends."""
        with self._changing():
            folder = self._folders[folder_id]
            folder.state, folder.message, folder.next_retry = state, message, retry_at
            folder.refused = dict(refused, time=self._clock()) if refused else None
            self._progress = None
            self._counters.runs_failed += 1
            self._note(f"sync {state}", folder_id=folder_id, message=message)

    # ---- readers (socket threads) -------------------------------------------------

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def wait_changed(self, version: int, timeout: float) -> int:
        """Block until the status is newer than ``version`` (or ``timeout``); the new version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout=timeout)
            return self._version

    def snapshot(self) -> dict[str, Any]:
        """The whole status as plain JSON-able data (see docs/agent.md)."""
        with self._cond:
            now = self._clock()
            progress = None
            if self._progress is not None:
                p = self._progress
                elapsed = max(now - p.started, 1e-6)
                progress = {
                    "folder": p.folder_id,
                    "files_done": p.files_done,
                    "files_total": p.files_total,
                    "bytes_done": p.bytes_done,
                    "bytes_total": p.bytes_total,
                    "rate": p.bytes_done / elapsed,  # bytes per second since the start
                    "current": p.current,
                }
            conflicts = list(self._conflicts.values())
            return {
                "protocol": PROTOCOL,
                "state": self._state(),
                "attention": self._attention(),
                "pid": self._pid,
                "paused": self._paused,
                "version": self._version,
                "started_at": self._counters.started,
                "reconciles": self._counters.reconciles,
                "progress": progress,
                "folders": [
                    {
                        "folder": f.folder_id,
                        "path": f.path,
                        "state": _folder_state(f),
                        "paused": f.paused,
                        "message": f.message,
                        "refused": f.refused,
                        "conflicts": sum(1 for c in conflicts if c["folder"] == f.folder_id),
                        "last_sync": f.last_sync,
                        "last_report": f.last_report,
                        "next_retry": f.next_retry,
                    }
                    for f in self._folders.values()
                ],
                "recent": list(self._recent),
                "errors": list(self._file_errors.values()),
                "conflicts": conflicts,
                "files": list(self._files),
            }

    def totals(self) -> dict[str, Any]:
        """What monitoring counts since the agent started (s3vault.agent.metrics):
        ``bytes_uploaded``, ``files_uploaded``, ``file_errors`` (reported by runs),
        ``runs_failed`` (offline, refused, error) and per folder id ``last_success``
        (when its last run with no file errors ended). Not in the snapshot: that is
        the control protocol, and these are for the metrics file."""
        with self._cond:
            c = self._counters
            return {
                "bytes_uploaded": c.bytes_uploaded,
                "files_uploaded": c.files_uploaded,
                "file_errors": c.file_errors,
                "runs_failed": c.runs_failed,
                "last_success": {
                    f.folder_id: f.last_success
                    for f in self._folders.values()
                    if f.last_success is not None
                },
            }

    # ---- internals ------------------------------------------------------------------

    def _state(self) -> State:
        states = {f.state for f in self._folders.values()}
        if self._paused or all(f.paused for f in self._folders.values()):
            return "paused"
        if "syncing" in states:
            return "syncing"
        if "offline" in states:
            return "offline"
        if "error" in states:
            return "error"
        return "idle"

    def _attention(self) -> dict[str, Any]:
        """What needs the user, whatever the state: a tray must not look calm while a
        conflict or a refused run stands. ``level``: ok, warning or error."""
        folders = self._folders.values()
        conflicts = len(self._conflicts)
        errors = len(self._file_errors) - sum(1 for k in self._conflicts if k in self._file_errors)
        refused = sum(1 for f in folders if f.refused)
        failed = sum(1 for f in folders if f.state == "error")
        offline = sum(1 for f in folders if f.state == "offline")
        level = "error" if refused or failed or errors else "ok"
        if level == "ok" and (conflicts or offline):
            level = "warning"
        return {
            "level": level,
            "errors": errors,
            "conflicts": conflicts,
            "refused": refused,
            "folders_failed": failed,
            "folders_offline": offline,
        }

    def _note(self, event: str, *, folder_id: str | None = None, **details: Any) -> None:
        self._recent.append({"time": self._clock(), "event": event, "folder": folder_id, **details})

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the lock for a change, then bump the version and wake the subscribers."""
        with self._cond:
            yield
            self._version += 1
            self._cond.notify_all()


REPORT_LIST_ITEMS = 10


def compact_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report with each list cut to its first items plus a ``<name>_count``.

    The status keeps a report per folder and in each activity entry; a run with
    thousands of unreadable files must not push a status reply over the 1 MiB cap
    (the per-file errors themselves are kept, bounded, in the status's ``errors``).
    """
    short: dict[str, Any] = {}
    for name, value in report.items():
        if isinstance(value, list):
            short[name] = value[:REPORT_LIST_ITEMS]
            short[f"{name}_count"] = len(value)
        else:
            short[name] = value
    return short


def file_results(folder_id: str, report: SyncReport, now: float) -> list[dict[str, Any]]:
    """The run's per-file results (oldest first, so `extendleft` puts the newest first).

    action: uploaded, renamed (``message`` names the old path), deleted, conflict, error.
    """
    results: list[dict[str, Any]] = []

    def add(action: str, path: str, message: str | None) -> None:
        if message is not None and len(message) > MAX_FILE_MESSAGE:
            message = message[: MAX_FILE_MESSAGE - 1] + "…"
        results.append(
            {"time": now, "folder": folder_id, "path": path, "action": action, "message": message}
        )

    for done in list(report.done)[-MAX_FILES:]:
        add(done.action, done.path, f"from {done.src}" if done.src is not None else None)
    for c in report.conflicts[:MAX_FILES]:
        add("conflict", c.path, c.reason)
    for e in report.errors[:MAX_FILES]:
        add("error", e.path, e.message)
    return results


def _folder_state(folder: _Folder) -> FolderState:
    """A paused folder shows "paused" unless it is syncing (a run is never cut short)."""
    return "paused" if folder.paused and folder.state != "syncing" else folder.state


def _covered_by(paths: Collection[str] | None) -> Callable[[str], bool]:
    """Whether a file is at or under one of ``paths`` (None: every file)."""
    if paths is None:
        return lambda path: True
    tops = tuple(p.strip("/") for p in paths)
    return lambda path: any(path == t or path.startswith(t + "/") for t in tops)


def _put_bounded(
    table: OrderedDict[tuple[str, str], dict[str, Any]],
    key: tuple[str, str],
    entry: dict[str, Any],
    limit: int,
) -> None:
    table.pop(key, None)
    table[key] = entry
    while len(table) > limit:
        table.popitem(last=False)


def file_problems(report: SyncReport) -> list[tuple[str, str]]:
    """(path, message) of every file of the run that needs the user: its errors, and
    its conflicts, which need the user as much (docs/sync.md)."""
    problems = [(e.path, e.message) for e in report.errors]
    problems += [(c.path, f"conflict: {c.reason}") for c in report.conflicts]
    return problems
