"""Below the folders list: what is wrong with the selected folder (why it is offline
or failing, when it is tried again) and its files that need the user (errors and
conflicts), from the agent's last snapshot. Also the progress bar the list draws in
a syncing folder's State cell.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QHeaderView,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from s3vault.gui.folder_status import FileProblem, FolderStatus
from s3vault.gui.folders_model import PROGRESS_ROLE
from s3vault.gui.status_text import folder_state_text, home_relative, relative_time


class ProgressDelegate(QStyledItemDelegate):
    """Draws the cell as a progress bar (with its text) while the folder syncs."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        fraction = index.data(PROGRESS_ROLE)
        if not isinstance(fraction, float):
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(1, 1, -1, -1)  # type: ignore[attr-defined]
        bar.state = option.state | QStyle.StateFlag.State_Horizontal  # type: ignore[attr-defined]
        bar.direction = option.direction  # type: ignore[attr-defined]
        bar.fontMetrics = option.fontMetrics  # type: ignore[attr-defined]
        bar.palette = option.palette  # type: ignore[attr-defined]
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(fraction * 1000)
        bar.text = str(index.data(int(Qt.ItemDataRole.DisplayRole)) or "")
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        style = option.widget.style() if option.widget else QApplication.style()  # type: ignore[attr-defined]
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class FolderDetails(QWidget):
    """The selected folder's message and problem files; `show_status(None)` clears it."""

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._shown: tuple[FileProblem, ...] | None = None
        self.summary = QLabel("Select a folder to see its details.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAccessibleName("Folder details")
        self.problems = QTreeWidget()
        self.problems.setAccessibleName("Files that need attention")
        self.problems.setHeaderLabels(["File", "Problem", "When"])
        self.problems.setRootIsDecorated(False)
        self.problems.setAlternatingRowColors(True)
        header = self.problems.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.problems, 1)

    def show_status(self, status: FolderStatus | None) -> None:
        if status is None:
            self.summary.setText("Select a folder to see its details.")
            self._set_problems(())
            return
        now = self._clock()
        lines = [
            f"{home_relative(status.path)}  →  {status.folder_id}",
            home_relative(folder_state_text(status, now)),
        ]
        if status.message:
            # The engine's words start lower case (the CLI prints "error: " first).
            message = home_relative(status.message)
            lines.append(message[:1].upper() + message[1:])
        if status.next_retry is not None:
            when = time.strftime("%H:%M:%S", time.localtime(status.next_retry))
            lines.append(f"Next try {relative_time(status.next_retry, now)} (at {when}).")
        if not status.configured:
            lines.append("Not in the config file any more: restart the agent to stop syncing it.")
        if status.problems:
            lines.append("Files that need attention:")
        self.summary.setText("\n".join(lines))
        self._set_problems(status.problems)

    def _set_problems(self, problems: tuple[FileProblem, ...]) -> None:
        # Snapshots come up to 4 times a second: rebuild only when the list changed.
        if problems == self._shown:
            return
        self._shown = problems
        self.problems.clear()
        style = QApplication.style()
        for problem in problems:
            when = (
                time.strftime("%H:%M:%S", time.localtime(problem.time))
                if problem.time is not None
                else ""
            )
            prefix = "Conflict: " if problem.kind == "conflict" else ""
            item = QTreeWidgetItem([problem.path, prefix + problem.message, when])
            icon = (
                QStyle.StandardPixmap.SP_MessageBoxWarning
                if problem.kind == "conflict"
                else QStyle.StandardPixmap.SP_MessageBoxCritical
            )
            item.setIcon(0, style.standardIcon(icon))
            item.setToolTip(1, problem.message)
            self.problems.addTopLevelItem(item)
        self.problems.setVisible(bool(problems))
