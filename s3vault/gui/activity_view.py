"""What the app and the agent did, newest first: uploads, downloads, key changes, and
the agent's per-file results and errors, merged in as its snapshots arrive.

A text filter and a level filter (All / Problems) narrow the list; "Copy" puts the
selected rows on the clipboard as tab-separated text; "Clear" empties the list. The
list is bounded (`activity.MAX_ENTRIES`), so a plain proxy model stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from s3vault.gui.activity import LEVEL_WORDS, PROBLEM_LEVELS, ActivityLog
from s3vault.gui.context import AppContext

ALL, PROBLEMS = "All", "Problems"


class ActivityFilter(QSortFilterProxyModel):
    """Rows whose what/item/result contain the text (any case), of the chosen levels."""

    def __init__(self, log: ActivityLog) -> None:
        super().__init__(log)
        self._log = log
        self._text = ""
        self._problems_only = False
        self.setSourceModel(log)

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().casefold()))

    def set_problems_only(self, problems_only: bool) -> None:
        self._refilter(lambda: setattr(self, "_problems_only", problems_only))

    def _refilter(self, change: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9 deprecates invalidateFilter
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        entry = self._log.entry(row)
        if self._problems_only and entry.level not in PROBLEM_LEVELS:
            return False
        if not self._text:
            return True
        return any(self._text in part.casefold() for part in (entry.what, entry.item, entry.result))


class ActivityView(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        ctx.activity.follow(ctx.agent)

        self.filter_edit = QLineEdit()
        self.filter_edit.setAccessibleName("Filter activity")
        self.filter_edit.setPlaceholderText("Filter (file, folder, message)…")
        self.filter_edit.setClearButtonEnabled(True)
        self.level_box = QComboBox()
        self.level_box.setAccessibleName("Show")
        self.level_box.addItems([ALL, PROBLEMS])
        self.level_box.setToolTip("All entries, or only warnings and errors")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy selected entries")
        self.copy_button.setToolTip("Copy the selected entries as text")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setAccessibleName("Clear the activity list")
        self.clear_button.setToolTip("Empty the list (nothing else is affected)")

        self.proxy = ActivityFilter(ctx.activity)
        self.table = QTableView()
        self.table.setAccessibleName("Activity")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

        controls = QHBoxLayout()
        controls.addWidget(self.filter_edit, 1)
        controls.addWidget(self.level_box)
        controls.addWidget(self.copy_button)
        controls.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.table, 1)

        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.level_box.currentTextChanged.connect(
            lambda text: self.proxy.set_problems_only(text == PROBLEMS)
        )
        self.copy_button.clicked.connect(self.copy_selected)
        self.clear_button.clicked.connect(ctx.activity.clear)
        copy = QShortcut(QKeySequence.StandardKey.Copy, self.table)
        copy.activated.connect(self.copy_selected)

    def selected_text(self) -> str:
        """The selected rows, newest first, one tab-separated line each."""
        rows = sorted(
            {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        )
        lines = []
        for row in rows:
            e = self.ctx.activity.entry(row)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
            lines.append(
                "\t".join((when, LEVEL_WORDS.get(e.level, e.level), e.what, e.item, e.result))
            )
        return "\n".join(lines)

    def copy_selected(self) -> None:
        text = self.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text)
