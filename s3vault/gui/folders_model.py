"""The synced folders as a table: name, bucket URL, state (with progress), last sync,
problems. One row per `FolderStatus`; a snapshot changes only the rows it changes.

Snapshots arrive up to four times a second while syncing, so `update` compares each
row with the one it replaces and emits ``dataChanged`` for the rows that differ, never
a model reset (a view keeps its selection and scroll position; a screen reader is not
told the whole table changed). Only a different set of folders (the config changed,
another agent answered) resets the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

from s3vault.gui.folder_status import FolderStatus
from s3vault.gui.status_text import folder_state_text, problems_text, relative_time

COLUMNS = ("Folder", "Bucket", "State", "Last sync", "Problems")
FOLDER, BUCKET, STATE, LAST_SYNC, PROBLEMS = range(len(COLUMNS))

STATUS_ROLE = int(Qt.ItemDataRole.UserRole)  # the row's FolderStatus
PROGRESS_ROLE = int(Qt.ItemDataRole.UserRole) + 1  # State column: done share in [0, 1] or None

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)

Index = QModelIndex | QPersistentModelIndex

_SP = QStyle.StandardPixmap
_STATE_ICONS = {
    "idle": _SP.SP_DialogApplyButton,
    "syncing": _SP.SP_BrowserReload,
    "paused": _SP.SP_MediaPause,
    "offline": _SP.SP_MessageBoxWarning,
    "error": _SP.SP_MessageBoxCritical,
}


def state_icon(status: FolderStatus) -> QIcon:
    """The style's icon for the state; never the "all good" icon while something needs
    the user (a conflict or a file error)."""
    pixmap = _STATE_ICONS.get(status.state, _SP.SP_MessageBoxInformation)
    if status.state == "idle" and (status.conflict_count or status.error_count):
        pixmap = _SP.SP_MessageBoxWarning
    return QApplication.style().standardIcon(pixmap)


class FoldersModel(QAbstractTableModel):
    def __init__(self, parent: Any = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self._clock = clock
        self._rows: list[FolderStatus] = []

    # ---- updates ---------------------------------------------------------------------

    def update(self, statuses: Sequence[FolderStatus]) -> None:
        new = list(statuses)
        if [s.folder_id for s in new] != [s.folder_id for s in self._rows]:
            self.beginResetModel()
            self._rows = new
            self.endResetModel()
            return
        last = len(COLUMNS) - 1
        for row, status in enumerate(new):
            if status != self._rows[row]:
                self._rows[row] = status
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))

    def refresh_times(self) -> None:
        """Relative times ("2 min ago", "retry in 30 s") age: redraw those cells."""
        if self._rows:
            self.dataChanged.emit(
                self.index(0, STATE), self.index(len(self._rows) - 1, LAST_SYNC), [_DISPLAY]
            )

    def status(self, row: int) -> FolderStatus:
        return self._rows[row]

    def statuses(self) -> list[FolderStatus]:
        return list(self._rows)

    def row_of(self, folder_id: str) -> int | None:
        for row, status in enumerate(self._rows):
            if status.folder_id == folder_id:
                return row
        return None

    # ---- the model -----------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        role = int(role)
        status = self._rows[index.row()]
        column = index.column()
        if role in (_DISPLAY, _ACCESSIBLE):
            return self._text(status, column)
        if role == _TOOLTIP:
            return self._tooltip(status, column)
        if role == _DECORATION and column == STATE:
            return state_icon(status)
        if role == STATUS_ROLE:
            return status
        if role == PROGRESS_ROLE and column == STATE and status.progress is not None:
            return status.progress.fraction
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if int(role) == _DISPLAY and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def _text(self, status: FolderStatus, column: int) -> str:
        if column == FOLDER:
            return status.name
        if column == BUCKET:
            return status.folder_id
        if column == STATE:
            return folder_state_text(status, self._clock())
        if column == LAST_SYNC:
            if status.last_sync is None:
                return "" if not status.agent_running else "not yet"
            return relative_time(status.last_sync, self._clock())
        return problems_text(status)

    def _tooltip(self, status: FolderStatus, column: int) -> str | None:
        if column == FOLDER:
            note = "" if status.configured else "\n(not in the config any more: restart the agent)"
            return status.path + note
        if column == STATE:
            lines = [folder_state_text(status, self._clock())]
            if status.message:
                lines.append(status.message)
            if status.progress is not None and status.progress.current:
                lines.append(f"now: {status.progress.current}")
            return "\n".join(lines)
        if column == LAST_SYNC and status.last_sync is not None:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.last_sync))
        return None
