"""What the tray shows for an agent status snapshot: pure functions, no Qt.

A snapshot is the agent's status dict (docs/agent.md): ``state`` (idle, syncing,
paused, offline, error), ``folders``, ``errors`` (per-file problems, conflicts
included as "conflict: ..."), ``progress``. Newer agents add ``conflicts``,
``attention`` ({errors, conflicts}) and mass-delete refusals; everything is read
with ``.get()`` so an older or newer agent never breaks the tray.

The rule users ask for: never a calm icon while an error or a conflict stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s3vault.gui.folder_status import CONFLICT_PREFIX, NOT_RUNNING, Progress
from s3vault.gui.status_text import plural, progress_text

Status = dict[str, Any]

ICONS = ("idle", "syncing", "paused", "offline", "error", "attention")
STATES = ("idle", "syncing", "paused", "offline", "error")


@dataclass(frozen=True, slots=True)
class Attention:
    """What needs the user: file errors, conflicts, refused mass deletes."""

    errors: int = 0
    conflicts: int = 0
    refusals: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.errors or self.conflicts or self.refusals)


@dataclass(frozen=True, slots=True)
class TrayView:
    icon: str  # one of ICONS
    tooltip: str  # one status line
    connected: bool
    paused: bool  # the Pause item reads "Resume"
    can_control: bool  # pause/resume/sync now/stop make sense


def attention(status: Status | None) -> Attention:
    if not status:
        return Attention()
    counts = status.get("attention")
    errors_list = _list(status.get("errors"))
    is_conflict = [_is_conflict(e) for e in errors_list]
    if isinstance(counts, dict):
        errors = _int(counts.get("errors"))
        conflicts = _int(counts.get("conflicts"))
    else:
        conflicts_list = status.get("conflicts")
        if isinstance(conflicts_list, list):
            conflicts = len(conflicts_list)
            errors = sum(1 for c in is_conflict if not c)
        else:
            conflicts = sum(is_conflict)
            errors = len(errors_list) - conflicts
    return Attention(errors, conflicts, tuple(mass_delete_refusals(status)))


def mass_delete_refusals(status: Status) -> list[str]:
    """What the guard refused, one line each (message, then its hint): a folder's
    ``refused`` ({kind, message, hint}), or a top-level ``refusals``/``mass_delete``
    (a dict or a list of dicts or strings)."""
    found: list[str] = []
    for key in ("refusals", "mass_delete"):
        found += [_message(v) for v in _as_list(status.get(key)) if v]
    for folder in _list(status.get("folders")):
        if isinstance(folder, dict) and folder.get("refused"):
            refused = folder["refused"]
            if isinstance(refused, bool):
                found.append(str(folder.get("message") or folder.get("path") or "refused"))
            else:
                found.append(_message(refused))
    return [m for m in found if m]


def tray_view(status: Status | None, connected: bool) -> TrayView:
    """The icon name and tooltip for a snapshot (``None`` or not connected: the agent
    is not running)."""
    if not connected or status is None:
        return TrayView("offline", f"s3vault: {NOT_RUNNING}", False, False, False)
    state = str(status.get("state") or "idle")
    if state not in STATES:
        state = "error"
    need = attention(status)
    icon = state
    if need.any and state in ("idle", "syncing", "paused"):
        icon = "attention"
    return TrayView(icon, "s3vault: " + status_line(status, need), True, state == "paused", True)


def status_line(status: Status, need: Attention | None = None) -> str:
    """One line: "syncing 3 of 10 files, 2.1 MB/s; 2 conflicts"."""
    need = need if need is not None else attention(status)
    state = str(status.get("state") or "idle")
    progress = status.get("progress")
    if state == "syncing" and isinstance(progress, dict):
        line = progress_text(
            Progress(
                files_done=_int(progress.get("files_done")),
                files_total=_int(progress.get("files_total")),
                bytes_done=_int(progress.get("bytes_done")),
                bytes_total=_int(progress.get("bytes_total")),
                rate=_float(progress.get("rate")),
            )
        )
    elif state in ("offline", "error"):
        line = state
        why = _folder_message(status)
        if why:
            line += f": {why}"
    elif state == "idle":
        line = "up to date" if not need.any else "idle"
    else:
        line = state
    extra = []
    if need.conflicts:
        extra.append(plural(need.conflicts, "conflict"))
    if need.errors:
        extra.append(plural(need.errors, "file error"))
    if need.refusals:
        extra.append("a mass delete was refused")
    return line + ("; " + ", ".join(extra) if extra else "")


def _folder_message(status: Status) -> str:
    for folder in _list(status.get("folders")):
        if isinstance(folder, dict) and folder.get("message"):
            return str(folder["message"])
    return ""


def _is_conflict(entry: object) -> bool:
    if isinstance(entry, dict):
        return entry.get("kind") == "conflict" or str(entry.get("message", "")).startswith(
            CONFLICT_PREFIX
        )
    return False


def _message(value: object) -> str:
    if isinstance(value, dict):
        text = str(value.get("message") or value.get("reason") or value.get("folder") or "")
        hint = value.get("hint")
        return f"{text}\n{hint}" if text and hint else text
    return str(value)


def _as_list(value: object) -> list[object]:
    if value is None or value is False:
        return []
    return list(value) if isinstance(value, list) else [value]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
