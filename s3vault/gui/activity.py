"""The app's activity list: what the app did (uploads, downloads, rotations, key
changes) and what the agent reported (syncs, per-file errors), newest first, bounded.

Every view adds to the one `ActivityLog` of the `AppContext`; the Activity view and
the tray's "recent activity" show it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Level = Literal["info", "done", "warning", "error"]
MAX_ENTRIES = 2000
COLUMNS = ("Time", "What", "Item", "Result")
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)

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

    def add(self, what: str, item: str, result: str, level: Level = "info") -> Entry:
        entry = Entry(time.time(), what, item, result, level)
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._entries.insert(0, entry)
        self.endInsertRows()
        if len(self._entries) > MAX_ENTRIES:
            self.beginRemoveRows(QModelIndex(), MAX_ENTRIES, len(self._entries) - 1)
            del self._entries[MAX_ENTRIES:]
            self.endRemoveRows()
        return entry

    def entries(self) -> list[Entry]:
        return list(self._entries)

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
            return (entry.what, entry.item, entry.result)[column - 1]
        if role == _TOOLTIP:
            return entry.result
        if role == int(Qt.ItemDataRole.UserRole):
            return entry.level
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if int(role) == _DISPLAY and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None
