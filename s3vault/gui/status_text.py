"""The agent's state in words a person reads at a glance: state words, "syncing 3 of
10 files, 12 MB of 40 MB, 2.1 MB/s", "2 min ago", report summaries.

Pure functions (no Qt, no clock of their own: callers pass ``now``), shared by the
folders view, the activity view and the tray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s3vault.gui.folder_status import NOT_IN_AGENT, NOT_RUNNING, FolderStatus, Progress

STATE_WORDS = {
    "idle": "Idle",
    "syncing": "Syncing",
    "paused": "Paused",
    "offline": "Offline",
    "error": "Error",
    NOT_RUNNING: "Agent not running",
    NOT_IN_AGENT: "Not synced: restart the agent",
}

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")

# Report counters in the order a person cares about, with the verb for each.
_REPORT_WORDS = (
    ("uploaded", "uploaded"),
    ("copied", "renamed"),
    ("deleted", "deleted"),
    ("touched", "updated"),
    ("forgotten", "forgotten"),
    ("skipped", "skipped"),
)


def home_relative(text: str, home: str | None = None) -> str:
    """``text`` with the user's home folder written ``~`` (paths in messages read
    shorter and do not spell out the account's home)."""
    home = (home if home is not None else str(Path.home())).rstrip(os.sep)
    if not home or home == os.sep:
        return text
    return text.replace(home + os.sep, "~" + os.sep)


def state_word(state: str) -> str:
    return STATE_WORDS.get(state, state.capitalize())


def size(count: float) -> str:
    """Bytes in decimal units, as file managers show them: "999 B", "2.1 MB", "40 MB"."""
    value = float(max(count, 0))
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{text} {_UNITS[unit]}"


def rate(bytes_per_second: float) -> str:
    return f"{size(bytes_per_second)}/s"


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def progress_text(progress: Progress) -> str:
    """ "syncing 3 of 10 files, 12 MB of 40 MB, 2.1 MB/s"; "syncing: looking for
    changes" while the reconcile is still planning."""
    if progress.files_total <= 0:
        return "syncing: looking for changes"
    parts = [f"syncing {progress.files_done} of {plural(progress.files_total, 'file')}"]
    if progress.bytes_total > 0:
        parts.append(f"{size(progress.bytes_done)} of {size(progress.bytes_total)}")
    if progress.rate > 0:
        parts.append(rate(progress.rate))
    return ", ".join(parts)


def relative_time(then: float | None, now: float) -> str:
    """ "just now", "40 s ago", "2 min ago", "3 h ago", "yesterday", "5 days ago";
    a future time reads "in 30 s"; None reads "never"."""
    if then is None:
        return "never"
    delta = now - then
    if delta < 0:
        return f"in {_span(-delta)}"
    if delta < 5:
        return "just now"
    if 86400 <= delta < 2 * 86400:
        return "yesterday"
    return f"{_span(delta)} ago"


def _span(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return plural(seconds // 86400, "day")


def problems_text(status: FolderStatus) -> str:
    """ "2 conflicts, 1 error", or "" when nothing needs the user."""
    parts = []
    if status.conflict_count:
        parts.append(plural(status.conflict_count, "conflict"))
    if status.error_count:
        parts.append(plural(status.error_count, "error"))
    return ", ".join(parts)


def folder_state_text(status: FolderStatus, now: float) -> str:
    """The folder's state in one line: "Syncing 3 of 10 files, …", "Offline: retry in
    30 s", "Idle, 2 conflicts"."""
    if status.state == "syncing" and status.progress is not None:
        text = progress_text(status.progress)
        text = text[0].upper() + text[1:]
    else:
        text = state_word(status.state)
    if status.state in ("offline", "error") and status.next_retry is not None:
        text += f": retry {relative_time(status.next_retry, now)}"
    problems = problems_text(status)
    return f"{text}, {problems}" if problems else text


def report_summary(report: Mapping[str, Any]) -> str:
    """A reconcile's report in words: "3 uploaded, 1 deleted, 1 conflict" or "no changes"."""
    parts = []
    for field, verb in _REPORT_WORDS:
        count = report.get(field)
        if isinstance(count, int) and count:
            parts.append(f"{count} {verb}")
    for field, word in (("conflicts", "conflict"), ("errors", "error")):
        count = report.get(f"{field}_count")
        if not isinstance(count, int):
            listed = report.get(field)
            count = len(listed) if isinstance(listed, list) else 0
        if count:
            parts.append(plural(count, word))
    return ", ".join(parts) if parts else "no changes"


def overall_text(snapshot: Mapping[str, Any] | None) -> str:
    """The agent as a whole in one line (tray tooltip, status bar)."""
    if snapshot is None:
        return state_word(NOT_RUNNING)
    state = str(snapshot.get("state") or "idle")
    progress = snapshot.get("progress")
    if state == "syncing" and isinstance(progress, Mapping):
        text = progress_text(
            Progress(
                files_done=int(progress.get("files_done") or 0),
                files_total=int(progress.get("files_total") or 0),
                bytes_done=int(progress.get("bytes_done") or 0),
                bytes_total=int(progress.get("bytes_total") or 0),
                rate=float(progress.get("rate") or 0.0),
            )
        )
        return text[0].upper() + text[1:]
    return state_word(state)
