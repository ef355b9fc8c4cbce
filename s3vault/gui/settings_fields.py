"""One setting of the config file as a form field: its place in the file, its widget,
how a value goes in and comes out, and where its error is shown.

A field reads back ``None`` for "not set" (the setting is removed from the file and
its default applies). `SettingField.changed` compares with what was loaded, so Save
writes only what the person changed and every other line keeps its original form
(``rescan_interval: 1h`` stays ``1h``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPlainTextEdit, QSpinBox, QWidget

Path = tuple[str | int, ...]


@dataclass
class SettingField:
    path: Path  # ("s3", "endpoint_url"); a folder's: ("folders", 0, "delete")
    label: str
    widget: QWidget
    read: Callable[[], object]
    write: Callable[[object], None]
    error: QLabel = field(default_factory=QLabel)
    loaded: object = None
    override: str | None = None  # the environment variable that sets it, if any

    def __post_init__(self) -> None:
        self.widget.setAccessibleName(self.label)
        self.error.setAccessibleName(f"{self.label} error")
        self.error.setWordWrap(True)
        self.error.setVisible(False)

    @property
    def name(self) -> str:
        return ".".join(str(p) for p in self.path)

    def load(self, value: object) -> None:
        self.write(value)
        self.loaded = self.read()
        self.show_error(None)

    def changed(self) -> bool:
        return self.override is None and self.read() != self.loaded

    def show_error(self, message: str | None) -> None:
        self.error.setText(f"✗ {message}" if message else "")
        self.error.setVisible(bool(message))


def text_field(path: Path, label: str, placeholder: str = "") -> SettingField:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    return SettingField(
        path,
        label,
        edit,
        read=lambda: edit.text().strip() or None,
        write=lambda value: edit.setText("" if value is None else str(value)),
    )


def editable_choice_field(path: Path, label: str, placeholder: str = "") -> SettingField:
    """A free text with suggestions (profiles, key names) filled in later."""
    combo = QComboBox()
    combo.setEditable(True)
    line = combo.lineEdit()
    if line is not None:
        line.setPlaceholderText(placeholder)
    return SettingField(
        path,
        label,
        combo,
        read=lambda: combo.currentText().strip() or None,
        write=lambda value: combo.setCurrentText("" if value is None else str(value)),
    )


def choice_field(path: Path, label: str, options: Sequence[str]) -> SettingField:
    combo = QComboBox()
    for option in options:
        combo.addItem(option, option)

    def write(value: object) -> None:
        index = combo.findData(value)
        if index < 0:  # a value the form does not know: show it rather than hide it
            combo.addItem(str(value), value)
            index = combo.count() - 1
        combo.setCurrentIndex(index)

    return SettingField(path, label, combo, read=combo.currentData, write=write)


def integer_field(path: Path, label: str) -> SettingField:
    # Wide bounds on purpose: the schema decides what is valid, and says why next to
    # the field, the same words the CLI prints.
    spin = QSpinBox()
    spin.setRange(-1, 1_000_000_000)
    return SettingField(
        path,
        label,
        spin,
        read=spin.value,
        write=lambda value: spin.setValue(int(value) if isinstance(value, int | str) else 0),
    )


def patterns_field(path: Path, label: str) -> SettingField:
    edit = QPlainTextEdit()
    edit.setPlaceholderText("one gitignore-style pattern per line, e.g. *.tmp or build/")
    edit.setTabChangesFocus(True)  # keyboard users leave the box with Tab

    def read() -> list[str]:
        return [line.strip() for line in edit.toPlainText().splitlines() if line.strip()]

    def write(value: object) -> None:
        lines = value if isinstance(value, list) else []
        edit.setPlainText("\n".join(str(v) for v in lines))

    return SettingField(path, label, edit, read=read, write=write)


def duration_text(seconds: int) -> str:
    """3600 -> "1h", 90 -> "90s": how a person writes a default duration."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return str(seconds)
