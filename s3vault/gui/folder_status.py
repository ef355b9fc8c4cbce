"""Each synced folder's state, read from the config and the agent's status snapshot.

Pure (no Qt): the folders view, its details pane and the tray all read the same
`FolderStatus` rows. The snapshot is read defensively: a field an older agent does not
send (protocol 1 has no per-folder pause and no ``conflicts`` list) falls back to what
it does send, never to an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from s3vault.config.sync import FolderSettings

NOT_RUNNING = "agent not running"
NOT_IN_AGENT = "not in agent"  # in the config, but the running agent has an older config
CONFLICT_PREFIX = "conflict: "  # protocol 1 lists conflicts among the errors like this

Snapshot = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Progress:
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0
    current: str | None = None

    @property
    def fraction(self) -> float | None:
        """Done share in [0, 1] (bytes if known, else files); None while still planning."""
        if self.bytes_total > 0:
            return min(self.bytes_done / self.bytes_total, 1.0)
        if self.files_total > 0:
            return min(self.files_done / self.files_total, 1.0)
        return None


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A file that needs the user: an error, or a conflict (``kind``)."""

    path: str
    message: str
    time: float | None
    kind: str = "error"  # "error" or "conflict"


@dataclass(frozen=True, slots=True)
class FolderStatus:
    folder_id: str  # s3://bucket/prefix/
    path: str  # the local folder
    state: str  # idle, syncing, paused, offline, error, NOT_RUNNING, NOT_IN_AGENT
    configured: bool = True  # False: only the running agent knows it (config changed)
    message: str | None = None  # why offline / error
    last_sync: float | None = None
    next_retry: float | None = None
    progress: Progress | None = None
    problems: tuple[FileProblem, ...] = ()
    conflict_count: int = 0
    error_count: int = 0

    @property
    def name(self) -> str:
        return PurePath(self.path).name or self.path

    @property
    def bucket(self) -> str:
        return self.folder_id.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.folder_id.removeprefix("s3://").split("/", 1)
        return rest[1] if len(rest) > 1 else ""

    @property
    def agent_running(self) -> bool:
        return self.state not in (NOT_RUNNING, NOT_IN_AGENT)


def protocol_of(snapshot: Snapshot | None) -> int:
    """The agent's protocol version (1 when it does not say)."""
    if not snapshot:
        return 0
    value = snapshot.get("protocol", 1)
    return value if isinstance(value, int) else 1


def per_folder_control(snapshot: Snapshot | None) -> bool:
    """Whether the agent takes ``folder`` in pause / resume / sync-now (protocol 2)."""
    return protocol_of(snapshot) >= 2


def folder_statuses(
    configured: Iterable[FolderSettings], snapshot: Snapshot | None
) -> list[FolderStatus]:
    """One row per configured folder (config order), then folders only the running
    agent knows; ``snapshot`` None means the agent is not running."""
    config_folders = list(configured)
    if snapshot is None:
        return [FolderStatus(f.folder_id, str(f.path), NOT_RUNNING) for f in config_folders]
    agent_folders = {
        str(f.get("folder")): f for f in mappings(snapshot.get("folders")) if f.get("folder")
    }
    rows = []
    for settings in config_folders:
        entry = agent_folders.pop(settings.folder_id, None)
        if entry is None:
            rows.append(FolderStatus(settings.folder_id, str(settings.path), NOT_IN_AGENT))
        else:
            rows.append(_from_agent(entry, snapshot, configured=True))
    rows += [_from_agent(entry, snapshot, configured=False) for entry in agent_folders.values()]
    return rows


def _from_agent(entry: Mapping[str, Any], snapshot: Snapshot, *, configured: bool) -> FolderStatus:
    folder_id = str(entry["folder"])
    state = str(entry.get("state") or "idle")
    # Paused on its own (protocol 2), or with the whole agent (`s3vault pause`).
    paused = bool(entry.get("paused")) or bool(snapshot.get("paused"))
    if paused and state != "syncing":  # a reconcile in progress finishes first
        state = "paused"
    progress = None
    raw = snapshot.get("progress")
    if state == "syncing" and isinstance(raw, Mapping) and raw.get("folder") == folder_id:
        progress = Progress(
            files_done=_int(raw.get("files_done")),
            files_total=_int(raw.get("files_total")),
            bytes_done=_int(raw.get("bytes_done")),
            bytes_total=_int(raw.get("bytes_total")),
            rate=_float(raw.get("rate")),
            current=raw.get("current") if isinstance(raw.get("current"), str) else None,
        )
    problems = _problems(folder_id, snapshot)
    conflicts = sum(1 for p in problems if p.kind == "conflict")
    errors = len(problems) - conflicts
    # The lists are bounded; the per-folder counts (protocol 2) or the last report say more.
    conflicts = max(conflicts, _int(entry.get("conflicts")))
    report = entry.get("last_report")
    if isinstance(report, Mapping):
        errors = max(errors, _int(report.get("errors_count")))
        if "conflicts" not in entry:
            conflicts = max(conflicts, _int(report.get("conflicts_count")))
    return FolderStatus(
        folder_id=folder_id,
        path=str(entry.get("path") or ""),
        state=state,
        configured=configured,
        message=entry.get("message") if isinstance(entry.get("message"), str) else None,
        last_sync=_optional_float(entry.get("last_sync")),
        next_retry=_optional_float(entry.get("next_retry")),
        progress=progress,
        problems=problems,
        conflict_count=conflicts,
        error_count=errors,
    )


def _problems(folder_id: str, snapshot: Snapshot) -> tuple[FileProblem, ...]:
    problems: list[FileProblem] = []
    conflict_list = snapshot.get("conflicts")
    has_conflict_list = isinstance(conflict_list, list)
    for c in mappings(conflict_list):
        if c.get("folder") == folder_id:
            reason = str(c.get("reason") or c.get("message") or "conflict")
            problems.append(
                FileProblem(
                    str(c.get("path", "")), reason, _optional_float(c.get("time")), "conflict"
                )
            )
    conflict_paths = {p.path for p in problems}
    for e in mappings(snapshot.get("errors")):
        if e.get("folder") != folder_id:
            continue
        path, message = str(e.get("path", "")), str(e.get("message", ""))
        if message.startswith(CONFLICT_PREFIX):
            if has_conflict_list or path in conflict_paths:
                continue  # listed with the conflicts already
            kind, message = "conflict", message.removeprefix(CONFLICT_PREFIX)
        else:
            kind = "error"
        problems.append(FileProblem(path, message, _optional_float(e.get("time")), kind))
    return tuple(problems)


def mappings(value: object) -> list[Mapping[str, Any]]:
    """The objects of a snapshot list (anything else in it, or a missing list: none)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _optional_float(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
