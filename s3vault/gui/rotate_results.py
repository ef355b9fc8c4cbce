"""The result list of a rotation: one row per object (key, outcome, message), in the
order they finished, and the words each outcome is shown with."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from s3vault.vault.rotation import Action, Failed, Outcome, Rotated, Skipped

COLUMNS = ("Object", "Outcome", "Message")
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_USER = int(Qt.ItemDataRole.UserRole)
Index = QModelIndex | QPersistentModelIndex

ROTATED, SKIPPED, CHANGED, FAILED = "rotated", "skipped", "changed meanwhile", "failed"
TO_ROTATE = "to rotate"  # a count (dry run): nothing was written yet


def outcome_label(outcome: Outcome, *, dry_run: bool = False) -> str:
    """rotated (to rotate, in a count) / skipped / changed meanwhile / failed."""
    if isinstance(outcome, Rotated):
        return TO_ROTATE if dry_run else ROTATED
    if isinstance(outcome, Skipped):
        return SKIPPED
    return CHANGED if outcome.changed_meanwhile else FAILED


def outcome_message(outcome: Outcome, *, dry_run: bool = False) -> str:
    if isinstance(outcome, Rotated):
        if dry_run:
            verb = "re-wrap" if outcome.action is Action.REWRAP else "re-encrypt"
            return f"would {verb}: {outcome.from_key} → {outcome.to_key} ({outcome.format})"
        verb = "re-wrapped" if outcome.action is Action.REWRAP else "re-encrypted"
        checks = "verified" + (", content authenticated" if outcome.content_verified else "")
        return f"{verb}: {outcome.from_key} → {outcome.to_key} ({outcome.format}); {checks}"
    if isinstance(outcome, Skipped):
        return outcome.reason
    return _failure(outcome)


def _failure(failed: Failed) -> str:
    return f"{failed.reason}\n{failed.hint}" if failed.hint else failed.reason


class RotationResults(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.outcomes: list[Outcome] = []
        self.dry_run = False  # the rows are a count's: nothing was written

    def add(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        first = len(self.outcomes)
        self.beginInsertRows(QModelIndex(), first, first + len(outcomes) - 1)
        self.outcomes.extend(outcomes)
        self.endInsertRows()

    def clear(self, *, dry_run: bool = False) -> None:
        self.beginResetModel()
        self.outcomes = []
        self.dry_run = dry_run
        self.endResetModel()

    def labels(self) -> dict[str, str]:
        """Object key -> its outcome's label."""
        return {o.key: outcome_label(o, dry_run=self.dry_run) for o in self.outcomes}

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.outcomes)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or index.row() >= len(self.outcomes):
            return None
        role = int(role)
        outcome = self.outcomes[index.row()]
        if role in (_DISPLAY, _TOOLTIP):
            label = outcome_label(outcome, dry_run=self.dry_run)
            values = (outcome.key, label, outcome_message(outcome, dry_run=self.dry_run))
            return values[index.column()]
        if role == _USER:
            return outcome_label(outcome, dry_run=self.dry_run)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if int(role) == _DISPLAY and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None
