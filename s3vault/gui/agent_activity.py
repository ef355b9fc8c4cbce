"""What the agent did, as activity entries: its per-file results (``files``, protocol
2), per-file errors and conflicts (``errors``), and its events (``recent``: syncs that
changed something, offline, errors, pause and resume).

Pure (no Qt). A snapshot repeats what the previous one said, so `AgentFeed` remembers,
per list and folder, the newest time it has passed on and only passes on newer
entries (plus same-time entries it has not seen: one reconcile stamps all its errors
with one time). Noise stays out: a reconcile that changed nothing adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Literal, NamedTuple

from s3vault.gui.folder_status import mappings
from s3vault.gui.status_text import report_summary

Level = Literal["info", "done", "warning", "error"]

_FAILED_ACTIONS = {"error", "failed", "refused"}


class AgentEntry(NamedTuple):
    time: float
    what: str
    item: str
    result: str
    level: Level


class AgentFeed:
    def __init__(self) -> None:
        # (list name, folder id) -> (newest time passed on, keys passed on at that time)
        self._seen: dict[tuple[str, str], tuple[float, set[tuple[Any, ...]]]] = {}

    def entries(self, snapshot: Mapping[str, Any]) -> list[AgentEntry]:
        """The snapshot's entries not passed on before, oldest first."""
        paths = {
            str(f.get("folder")): str(f.get("path") or "")
            for f in mappings(snapshot.get("folders"))
        }
        out: list[AgentEntry] = []
        files = snapshot.get("files")
        failed_files: set[tuple[str, str]] = set()
        for f in mappings(files):
            folder, path = str(f.get("folder") or ""), str(f.get("path") or "")
            action = str(f.get("action") or "sync")
            message = str(f.get("message") or _DONE.get(action, action))
            if action in _FAILED_ACTIONS or action == "conflict":
                failed_files.add((folder, path))
            level: Level = "done"
            if action in _FAILED_ACTIONS:
                level = "error"
            elif action == "conflict":
                level = "warning"
            key: tuple[str, ...] = ("files", folder, path, action, message)
            if self._fresh("files", folder, f.get("time"), key):
                out.append(AgentEntry(_time(f), action, _item(paths, folder, path), message, level))
        for e in mappings(snapshot.get("errors")):
            folder, path = str(e.get("folder") or ""), str(e.get("path") or "")
            if (folder, path) in failed_files:
                continue  # the per-file results (protocol 2) said it already
            message = str(e.get("message") or "failed")
            level = "warning" if message.startswith("conflict: ") else "error"
            key = ("errors", folder, path, message)
            if self._fresh("errors", folder, e.get("time"), key):
                out.append(AgentEntry(_time(e), "sync", _item(paths, folder, path), message, level))
        for event in mappings(snapshot.get("recent")):
            entry = _event_entry(event, paths)
            folder = str(event.get("folder") or "")
            key = ("recent", folder, str(event.get("event")))
            if self._fresh("recent", folder, event.get("time"), key) and entry is not None:
                out.append(entry)
        out.sort(key=lambda entry: entry.time)
        return out

    def _fresh(self, source: str, folder: str, when: object, key: tuple[Any, ...]) -> bool:
        if not isinstance(when, (int, float)):
            return False  # without a time it cannot be placed or deduplicated
        newest, keys = self._seen.get((source, folder), (float("-inf"), set()))
        if when < newest or (when == newest and key in keys):
            return False
        if when > newest:
            keys = set()
        keys.add(key)
        self._seen[(source, folder)] = (float(when), keys)
        return True


_DONE = {
    "upload": "encrypted and uploaded",
    "delete": "deleted in S3",
    "rename": "renamed in S3",
    "download": "downloaded and decrypted",
    "touch": "updated",
}


def _event_entry(event: Mapping[str, Any], paths: Mapping[str, str]) -> AgentEntry | None:
    name = str(event.get("event") or "")
    folder = str(event.get("folder") or "")
    item = paths.get(folder) or folder or "all folders"
    when = _time(event)
    message = event.get("message")
    if name == "sync started":
        return None
    if name == "sync finished":
        report = event.get("report")
        if not isinstance(report, Mapping):
            return None
        summary = report_summary(report)
        if summary == "no changes":
            return None  # a rescan that found nothing is not news
        problems = report.get("errors_count") or report.get("conflicts_count")
        return AgentEntry(when, "sync", item, summary, "warning" if problems else "done")
    if name in ("sync offline", "sync error"):
        level: Level = "warning" if name == "sync offline" else "error"
        return AgentEntry(when, "sync", item, str(message or name), level)
    if name in ("paused", "resumed"):
        return AgentEntry(when, "agent", item, name, "info")
    # Events of newer agents (e.g. a refused mass delete): shown as they come.
    text = f"{name}: {message}" if message else name
    return AgentEntry(when, "agent", item, text, "warning" if message else "info")


def _item(paths: Mapping[str, str], folder: str, path: str) -> str:
    """The local path of a file when its folder is known, else its s3:// URL."""
    root = paths.get(folder)
    if root:
        return str(PurePath(root, *path.split("/"))) if path else root
    return folder + path


def _time(entry: Mapping[str, Any]) -> float:
    value = entry.get("time")
    return float(value) if isinstance(value, (int, float)) else 0.0
