"""What the agent is doing, for `s3vault status`, the GUI and subscribers.

One `AgentStatus` is shared by the sync loop (which writes) and the socket threads
(which read `snapshot()` or wait in `wait_changed()` to push updates). Everything it
holds is bounded: the recent activity list and the per-file errors keep the newest.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from s3vault.sync.report import SyncReport

State = Literal["idle", "syncing", "paused", "offline", "error"]
FolderState = Literal["idle", "syncing", "offline", "error"]

MAX_RECENT = 100
MAX_FILE_ERRORS = 500


@dataclass(slots=True)
class _Folder:
    folder_id: str
    path: str
    state: FolderState = "idle"
    message: str | None = None  # why offline / error
    last_sync: float | None = None
    last_report: dict[str, Any] | None = None
    next_retry: float | None = None


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
        self._counters = _Counters(started=clock())

    # ---- writers (the sync loop) --------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        with self._changing():
            self._paused = paused
            self._note("paused" if paused else "resumed")

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

    def end_sync(self, folder_id: str, sync_report: SyncReport) -> None:
        """A reconcile finished with ``sync_report``; its per-file errors and conflicts
        replace the folder's old ones."""
        report = compact_report(sync_report.to_json())
        file_errors = file_problems(sync_report)
        with self._changing():
            now = self._clock()
            folder = self._folders[folder_id]
            folder.state, folder.message = "idle", None
            folder.last_sync, folder.last_report = now, report
            self._progress = None
            self._counters.reconciles += 1
            # A file that synced this time has no error any more; the run's errors
            # replace the folder's old ones.
            for key in [k for k in self._file_errors if k[0] == folder_id]:
                del self._file_errors[key]
            for path, message in file_errors:
                self._file_errors[(folder_id, path)] = {
                    "folder": folder_id,
                    "path": path,
                    "message": message,
                    "time": now,
                }
                while len(self._file_errors) > MAX_FILE_ERRORS:
                    self._file_errors.popitem(last=False)
            self._note("sync finished", folder_id=folder_id, report=report)

    def failed(
        self,
        folder_id: str,
        state: Literal["offline", "error"],
        message: str,
        *,
        retry_at: float | None,
    ) -> None:
        with self._changing():
            folder = self._folders[folder_id]
            folder.state, folder.message, folder.next_retry = state, message, retry_at
            self._progress = None
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
            return {
                "state": self._state(),
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
                        "state": f.state,
                        "message": f.message,
                        "last_sync": f.last_sync,
                        "last_report": f.last_report,
                        "next_retry": f.next_retry,
                    }
                    for f in self._folders.values()
                ],
                "recent": list(self._recent),
                "errors": list(self._file_errors.values()),
            }

    # ---- internals ------------------------------------------------------------------

    def _state(self) -> State:
        states = {f.state for f in self._folders.values()}
        if self._paused:
            return "paused"
        if "syncing" in states:
            return "syncing"
        if "offline" in states:
            return "offline"
        if "error" in states:
            return "error"
        return "idle"

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


def file_problems(report: SyncReport) -> list[tuple[str, str]]:
    """(path, message) of every file of the run that needs the user: its errors, and
    its conflicts, which need the user as much (docs/sync.md)."""
    problems = [(e.path, e.message) for e in report.errors]
    problems += [(c.path, f"conflict: {c.reason}") for c in report.conflicts]
    return problems
