"""The rows of the key list: one per master key in the keyring (nothing secret), and
how many objects are known to use each key once the count arrives.

Keys are few, so a new listing resets the model; counts change one column in place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from s3vault.keys.manage import describe
from s3vault.keys.store import KeyInfo

COLUMNS = ("Name", "Type", "Created", "Current", "Fingerprint", "Objects using it")
NAME, TYPE, CREATED, CURRENT, FINGERPRINT, OBJECTS = range(len(COLUMNS))
KEY_NAME_ROLE = int(Qt.ItemDataRole.UserRole)  # the key's name, in every column
KEY_INFO_ROLE = int(Qt.ItemDataRole.UserRole) + 1  # its KeyInfo

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)

Index = QModelIndex | QPersistentModelIndex


class CountState(enum.Enum):
    """Where the "objects using it" count is."""

    COUNTING = "…"
    NOT_COUNTED = "not counted"  # no buckets configured
    FAILED = "?"
    DONE = ""


KMS_COUNT_TIP = (
    "Objects wrapped by a KMS key do not name it in their envelope, so they are not counted here."
)


class KeysModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._keys: list[KeyInfo] = []
        self._counts: Mapping[str, int] = {}
        self._count_state = CountState.COUNTING
        self._count_note = ""
        self._bold = QFont()
        self._bold.setBold(True)

    # ---- updates ---------------------------------------------------------------------

    def set_keys(self, keys: list[KeyInfo]) -> None:
        self.beginResetModel()
        self._keys = sorted(keys, key=lambda info: info.name)
        self.endResetModel()

    def set_counts(
        self, state: CountState, counts: Mapping[str, int] | None = None, note: str = ""
    ) -> None:
        """The count column's state; ``counts`` by key name once DONE; ``note`` is its
        tooltip (where was counted, or why not)."""
        self._count_state = state
        self._counts = dict(counts or {})
        self._count_note = note
        if self._keys:
            self.dataChanged.emit(self.index(0, OBJECTS), self.index(len(self._keys) - 1, OBJECTS))

    # ---- reading ---------------------------------------------------------------------

    def key_infos(self) -> list[KeyInfo]:
        return list(self._keys)

    def key_at(self, row: int) -> KeyInfo | None:
        return self._keys[row] if 0 <= row < len(self._keys) else None

    def row_of(self, name: str) -> int:
        """The row of key ``name``, -1 if it is not listed."""
        return next((i for i, info in enumerate(self._keys) if info.name == name), -1)

    def count_text(self, info: KeyInfo) -> str:
        if info.type == "kms":
            return "—"
        if self._count_state is CountState.DONE:
            return str(self._counts.get(info.name, 0))
        return self._count_state.value

    # ---- QAbstractTableModel ---------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._keys)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._keys):
            return None
        role = int(role)
        info = self._keys[index.row()]
        column = index.column()
        if role == _DISPLAY:
            return self._display(info, column)
        if role == _ACCESSIBLE:
            if column == CURRENT:
                return "current key" if info.current else "not current"
            return self._display(info, column)
        if role == _TOOLTIP:
            return self._tooltip(info, column)
        if role == _FONT:
            return self._bold if info.current else None
        if role == _ALIGN and column == CURRENT:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == _ALIGN and column == OBJECTS:  # a count: right-aligned, like sizes
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == KEY_NAME_ROLE:
            return info.name
        if role == KEY_INFO_ROLE:
            return info
        return None

    def _display(self, info: KeyInfo, column: int) -> str:
        if column == NAME:
            return info.name
        if column == TYPE:
            return describe(info.type, info.bits, info.key_id)
        if column == CREATED:
            return _local_time(info.created)
        if column == CURRENT:
            return "✓" if info.current else ""
        if column == FINGERPRINT:
            return info.fingerprint
        return self.count_text(info)

    def _tooltip(self, info: KeyInfo, column: int) -> str | None:
        if column == CURRENT:
            return "New objects are encrypted with this key" if info.current else None
        if column == OBJECTS:
            return KMS_COUNT_TIP if info.type == "kms" else self._count_note or None
        if column == CREATED:
            return info.created
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        role = int(role)
        if role == _DISPLAY:
            return COLUMNS[section]
        if role == _TOOLTIP and section == OBJECTS:
            return (
                "Objects in the configured buckets and synced folders whose envelope "
                "names this key (a key is known to be used, never known to be unused)"
            )
        return None


def _local_time(iso: str) -> str:
    """The key's creation time in the local zone, to the minute."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso
