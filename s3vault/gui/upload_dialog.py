"""What a person sees of an upload: the questions asked once per drop, and the
progress window (one row per file: state, progress, message; Cancel, Retry failed).

The questions go through an `Ask` callable, so a caller (or a test) can answer them
without a modal box; the default `ask_with_box` opens a window-modal `QMessageBox`
(`open()`, never `exec()`), and closing it without a choice is Cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    SignalInstance,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from s3vault.gui.upload_run import FileEvent, State

CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Question:
    """A question with a few answers; ``choices`` are (answer id, button label), the
    last one is the Cancel (Escape) answer."""

    title: str
    text: str
    choices: tuple[tuple[str, str], ...]
    detail: str = ""


Ask = Callable[[QWidget | None, Question, Callable[[str], None]], None]


def ask_with_box(parent: QWidget | None, question: Question, answer: Callable[[str], None]) -> None:
    """Ask in a window-modal message box; ``answer`` gets the choice's id exactly once."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(f"s3vault: {question.title}")
    box.setText(question.text)
    box.setAccessibleName(question.title)
    if question.detail:
        box.setInformativeText(question.detail)
    buttons: dict[QAbstractButton, str] = {}
    for i, (choice, label) in enumerate(question.choices):
        last = i == len(question.choices) - 1
        role = QMessageBox.ButtonRole.RejectRole if last else QMessageBox.ButtonRole.AcceptRole
        button = box.addButton(label, role)
        button.setAccessibleName(label)
        buttons[button] = choice
        if last:
            box.setEscapeButton(button)
        elif i == 0:
            box.setDefaultButton(button)

    def finished() -> None:
        # No button (the window closed): Cancel, never a default that uploads.
        answer(buttons.get(box.clickedButton(), CANCEL))
        box.deleteLater()

    box.finished.connect(finished)
    box.open()


# ---- the rows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadRow:
    path: Path
    key: str
    size: int
    state: State = State.QUEUED
    sent: int = 0
    message: str = ""

    def percent(self) -> int:
        if self.state is State.DONE:
            return 100
        return min(99, self.sent * 100 // self.size) if self.size else 0

    def state_text(self) -> str:
        if self.state is State.UPLOADING:
            return f"uploading {self.percent()}%"
        return self.state.value


COLUMNS = ("File", "Object key", "State", "Message")
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_USER = int(Qt.ItemDataRole.UserRole)
Index = QModelIndex | QPersistentModelIndex


class UploadModel(QAbstractTableModel):
    """One row per dropped file (and per dropped path that is not uploaded, and why)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[UploadRow] = []

    def add(self, rows: list[UploadRow]) -> int:
        """Append ``rows``; the index of the first."""
        first = len(self.rows)
        if rows:
            self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
            self.rows.extend(rows)
            self.endInsertRows()
        return first

    def apply(self, event: FileEvent) -> UploadRow:
        row = self.rows[event.row]
        row = replace(row, state=event.state, sent=event.sent, message=event.message)
        if event.key is not None:
            row = replace(row, key=event.key)
        self.rows[event.row] = row
        self.dataChanged.emit(self.index(event.row, 0), self.index(event.row, len(COLUMNS) - 1))
        return row

    def count(self, state: State) -> int:
        return sum(1 for r in self.rows if r.state is state)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        role = int(role)
        row = self.rows[index.row()]
        if role == _DISPLAY:
            return (row.path.name, row.key, row.state_text(), row.message)[index.column()]
        if role == _TOOLTIP:
            return (str(row.path), row.key, row.state_text(), row.message)[index.column()]
        if role == _USER:
            return row.state.value
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if int(role) == _DISPLAY and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


# ---- the window ----------------------------------------------------------------------


class Session(Protocol):
    """What the window needs of an `uploads.UploadSession`."""

    model: UploadModel
    changed: SignalInstance
    running: bool

    def counts(self) -> tuple[int, int]: ...
    def status_text(self) -> str: ...
    def cancel(self) -> None: ...
    def retry_failed(self) -> None: ...


class UploadWindow(QDialog):
    """The progress of one drop; stays open after the end to show what happened."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("s3vault: upload")
        self.setAccessibleName("Upload progress")
        self.setModal(False)
        self.status = QLabel("Checking the dropped files…")
        self.status.setAccessibleName("Upload status")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Files uploaded")
        self.bar.setRange(0, 0)  # busy until the files are known
        self.table = QTableView()
        self.table.setAccessibleName("Files")
        self.table.setModel(session.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # paths: both ends matter
        # Sizes in characters of the font: right at any font size and scale.
        char = self.fontMetrics().averageCharWidth()
        for column, chars in enumerate((24, 32, 10)):
            self.table.horizontalHeader().resizeSection(column, chars * char)
        self.resize(100 * char, 22 * self.fontMetrics().height())
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setAccessibleName("Cancel the upload")
        self.cancel_button.clicked.connect(session.cancel)
        self.retry_button = QPushButton("&Retry failed")
        self.retry_button.setAccessibleName("Retry the failed files")
        self.retry_button.setEnabled(False)
        self.retry_button.clicked.connect(session.retry_failed)
        self.close_button = QPushButton("C&lose")
        self.close_button.setAccessibleName("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.cancel_button, self.retry_button, self.close_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        session.changed.connect(self.refresh)

    def refresh(self) -> None:
        session = self.session
        self.status.setText(session.status_text())
        total, finished = session.counts()
        if total:
            self.bar.setRange(0, total)
            self.bar.setFormat("%v of %m files")
            self.bar.setValue(finished)
        elif not session.running:
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
        self.cancel_button.setEnabled(session.running)
        self.retry_button.setEnabled(not session.running and session.model.count(State.FAILED) > 0)
