"""The app's activity list: what the app did (uploads, downloads, rotations, key
changes) and what the agent reported (syncs, per-file errors), newest first, bounded.

Every view adds to the one `ActivityLog` of the `AppContext`; the Activity view and
the tray's "recent activity" show it. `follow(agent)` merges what the agent reports
(see `agent_activity`) as its snapshots arrive.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

from s3vault.gui.agent_activity import AgentFeed, Level
from s3vault.gui.agent_link import AgentLink
from s3vault.gui.status_text import home_relative

MAX_ENTRIES = 2000
COLUMNS = ("Time", "What", "Item", "Result")
PROBLEM_LEVELS = frozenset({"warning", "error"})
LEVEL_ROLE = int(Qt.ItemDataRole.UserRole)
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)

# Icons from the style, not colours: they follow the theme (dark mode) and read
# without colour vision.
_LEVEL_ICONS = {
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
    "done": QStyle.StandardPixmap.SP_MessageBoxInformation,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
}
LEVEL_WORDS = {"info": "Info", "done": "Done", "warning": "Warning", "error": "Error"}

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class Entry:
    time: float
    what: str  # "upload", "download", "rotate", "key", "sync", …
    item: str  # a path, an s3:// URL, a key name
    result: str  # "encrypted and uploaded", or the error's message
    level: Level = "info"


class ActivityLog(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._entries: list[Entry] = []  # newest first
        self._feeds: dict[int, AgentFeed] = {}
        self._icons: dict[str, QIcon] = {}

    def add(
        self, what: str, item: str, result: str, level: Level = "info", *, at: float | None = None
    ) -> Entry:
        """Add an entry, at its place by time (``at``: when it happened, default now)."""
        entry = Entry(time.time() if at is None else at, what, item, result, level)
        row = bisect.bisect_right(self._entries, -entry.time, key=lambda e: -e.time)
        if row >= MAX_ENTRIES:
            return entry  # older than everything kept
        self.beginInsertRows(QModelIndex(), row, row)
        self._entries.insert(row, entry)
        self.endInsertRows()
        if len(self._entries) > MAX_ENTRIES:
            self.beginRemoveRows(QModelIndex(), MAX_ENTRIES, len(self._entries) - 1)
            del self._entries[MAX_ENTRIES:]
            self.endRemoveRows()
        return entry

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def entry(self, row: int) -> Entry:
        return self._entries[row]

    def clear(self) -> None:
        """Forget every entry (what the agent reported stays forgotten too)."""
        self.beginResetModel()
        self._entries.clear()
        self.endResetModel()

    def follow(self, agent: AgentLink) -> None:
        """Merge the entries of the agent's status snapshots (its ``status`` signal) as
        they arrive; calling it again for the same agent does nothing."""
        if id(agent) in self._feeds:
            return
        feed = self._feeds[id(agent)] = AgentFeed()
        agent.status.connect(lambda snapshot: self.merge(feed, snapshot))
        if agent.last_status is not None:
            self.merge(feed, agent.last_status)

    def merge(self, feed: AgentFeed, snapshot: dict[str, Any]) -> None:
        for e in feed.entries(snapshot):
            self.add(e.what, e.item, e.result, e.level, at=e.time)

    def level_icon(self, level: str) -> QIcon:
        icon = self._icons.get(level)
        if icon is None:
            pixmap = _LEVEL_ICONS.get(level, QStyle.StandardPixmap.SP_MessageBoxInformation)
            icon = self._icons[level] = QApplication.style().standardIcon(pixmap)
        return icon

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or index.row() >= len(self._entries):
            return None
        role = int(role)
        entry = self._entries[index.row()]
        if role == _DISPLAY:
            column = index.column()
            if column == 0:
                return time.strftime("%H:%M:%S", time.localtime(entry.time))
            return (entry.what, home_relative(entry.item), home_relative(entry.result))[column - 1]
        if role == _TOOLTIP:
            return f"{LEVEL_WORDS.get(entry.level, entry.level)}: {entry.result}"
        if role == _DECORATION and index.column() == 0:
            return self.level_icon(entry.level)
        if role == _ACCESSIBLE:
            text = self.data(index, _DISPLAY)
            if index.column() == 0:  # the icon's meaning, for a screen reader
                return f"{LEVEL_WORDS.get(entry.level, entry.level)}, {text}"
            return text
        if role == LEVEL_ROLE:
            return entry.level
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if int(role) == _DISPLAY and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None
