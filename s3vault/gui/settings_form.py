"""The settings form: every editable setting of the config file, grouped as the file
is (S3, KMS, defaults, synced folders, the agent under "Advanced").

The form fills itself from a document and its validated `Config` (raw values where
the file has them, defaults where not), says which settings an ``S3VAULT_*``
environment variable overrides (read-only: saving them would be pointless), lists the
changes to write, and shows schema errors next to their fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from s3vault.config.load import env_variables
from s3vault.config.model import Config
from s3vault.gui.config_file import Document, FieldProblem
from s3vault.gui.settings_fields import (
    Path,
    SettingField,
    choice_field,
    duration_text,
    editable_choice_field,
    integer_field,
    patterns_field,
    text_field,
)

FOLDER_FIELDS = ("delete", "ignore")


class SettingsForm(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[Path, SettingField] = {}
        layout = QVBoxLayout(self)

        self.profile = editable_choice_field(
            ("s3", "profile"), "AWS profile", "default credential chain"
        )
        self._group(
            layout,
            "S3",
            [
                text_field(("s3", "endpoint_url"), "S3 endpoint URL", "empty for AWS"),
                text_field(("s3", "region"), "S3 region", "from the profile or environment"),
                self.profile,
                choice_field(
                    ("s3", "addressing_style"), "Addressing style", ["auto", "path", "virtual"]
                ),
            ],
        )
        self._group(
            layout,
            "AWS KMS",
            [
                text_field(("kms", "endpoint_url"), "KMS endpoint URL", "empty for AWS"),
                text_field(("kms", "region"), "KMS region", "the S3 region"),
            ],
        )
        self.default_key = editable_choice_field(
            ("defaults", "key"), "Default master key", "the current key"
        )
        self._group(
            layout,
            "New objects",
            [
                choice_field(("defaults", "format"), "Format", ["v3", "v2"]),
                choice_field(
                    ("defaults", "envelope"), "Envelope location", ["metadata", "instruction-file"]
                ),
                text_field(("defaults", "instruction_suffix"), "Instruction file suffix"),
                self.default_key,
            ],
        )

        # Synced folders: one set of fields, showing the folder chosen above them.
        self.folder_choice = QComboBox()
        self.folder_choice.setAccessibleName("Synced folder")
        self.folder_fields = {
            "delete": choice_field(("folders", 0, "delete"), "Delete policy", ["mirror", "keep"]),
            "ignore": patterns_field(("folders", 0, "ignore"), "Ignore patterns"),
        }
        self._folder_values: list[dict[str, object]] = []
        self._folder_loaded: list[dict[str, object]] = []
        self._shown_folder = -1
        self.folders_box = QGroupBox("Synced folders")
        self.folder_panel = QWidget()
        folder_form = QFormLayout(self.folder_panel)
        folder_form.setContentsMargins(0, 0, 0, 0)
        folder_form.addRow("&Folder:", self.folder_choice)
        for f in self.folder_fields.values():
            self._add_row(folder_form, f)
        self.no_folders = QLabel("No synced folders yet (the Folders view adds them).")
        box_layout = QVBoxLayout(self.folders_box)
        box_layout.addWidget(self.folder_panel)
        box_layout.addWidget(self.no_folders)
        layout.addWidget(self.folders_box)
        self.folder_choice.currentIndexChanged.connect(self._show_folder)

        self._group(
            layout,
            "Advanced: the sync agent",
            [
                integer_field(("agent", "workers"), "Parallel transfers"),
                integer_field(("agent", "debounce_ms"), "Wait after a change (ms)"),
                text_field(
                    ("agent", "rescan_interval"),
                    "Full rescan every",
                    "e.g. 30m, 1h; 0 = only at start",
                ),
                text_field(
                    ("agent", "bandwidth_limit"),
                    "Upload limit per second",
                    "off, or e.g. 10MiB, 500KB",
                ),
            ],
        )
        layout.addStretch(1)

    # ---- building ------------------------------------------------------------------

    def _group(self, layout: QVBoxLayout, title: str, fields: list[SettingField]) -> None:
        box = QGroupBox(title)
        form = QFormLayout(box)
        for f in fields:
            self.fields[f.path] = f
            self._add_row(form, f)
        layout.addWidget(box)

    @staticmethod
    def _add_row(form: QFormLayout, f: SettingField) -> None:
        label = QLabel(f"{f.label}:")
        label.setBuddy(f.widget)
        column = QVBoxLayout()
        column.addWidget(f.widget)
        column.addWidget(f.error)
        form.addRow(label, column)

    def all_fields(self) -> list[SettingField]:
        return [*self.fields.values(), *self.folder_fields.values()]

    def field(self, *path: str | int) -> SettingField:
        return self.fields[tuple(path)]

    # ---- filling ---------------------------------------------------------------------

    def fill(self, doc: Document, config: Config, environ: Mapping[str, str]) -> None:
        """Show the document's values (defaults where it has none) and overrides."""
        overrides = {
            where: variable for variable, where in env_variables().items() if environ.get(variable)
        }
        effective = config.model_dump()
        for path, f in self.fields.items():
            section, name = str(path[0]), str(path[1])
            variable = overrides.get((section, name))
            f.override = variable
            if variable is not None:
                f.load(environ[variable])
            else:
                f.load(self._shown_value(doc, section, name, effective[section][name]))
            f.widget.setToolTip(
                f"Set by {variable}: this environment variable overrides the file."
                if variable
                else f.name
            )
            if variable:
                f.error.setText(f"set by {variable} (overrides the config file)")
                f.error.setVisible(True)
        self._fill_folders(doc, config)

    @staticmethod
    def _shown_value(doc: Document, section: str, name: str, default: Any) -> object:
        raw = doc.get(section, {}).get(name) if isinstance(doc.get(section), dict) else None
        if raw is not None:
            return raw
        if name == "rescan_interval" and isinstance(default, int):
            return duration_text(default)
        return default

    def _fill_folders(self, doc: Document, config: Config) -> None:
        self._folder_values = [
            {"delete": f.delete, "ignore": list(f.ignore)} for f in config.folders
        ]
        self._folder_loaded = [dict(v) for v in self._folder_values]
        self._shown_folder = -1
        self.folder_choice.blockSignals(True)
        self.folder_choice.clear()
        for f in config.folders:
            self.folder_choice.addItem(f"{f.path} → {f.folder_id}")
        self.folder_choice.blockSignals(False)
        has = bool(config.folders)
        self.no_folders.setVisible(not has)
        self.folder_panel.setVisible(has)
        if has:
            self.folder_choice.setCurrentIndex(0)
            self._show_folder(0)

    def _keep_folder_edits(self) -> None:
        if 0 <= self._shown_folder < len(self._folder_values):
            for name, f in self.folder_fields.items():
                self._folder_values[self._shown_folder][name] = f.read()

    def _show_folder(self, index: int) -> None:
        self._keep_folder_edits()
        self._shown_folder = index
        if 0 <= index < len(self._folder_values):
            for name, f in self.folder_fields.items():
                f.path = ("folders", index, name)
                f.write(self._folder_values[index][name])
                f.loaded = self._folder_loaded[index][name]
                f.show_error(None)

    # ---- reading back ----------------------------------------------------------------

    def changes(self) -> list[tuple[Path, object]]:
        """(place in the file, new value) of every setting the person changed."""
        found = [(f.path, f.read()) for f in self.fields.values() if f.changed()]
        self._keep_folder_edits()
        for i, values in enumerate(self._folder_values):
            for name in FOLDER_FIELDS:
                if values[name] != self._folder_loaded[i][name]:
                    found.append((("folders", i, name), values[name]))
        return found

    def set_read_only(self, read_only: bool) -> None:
        for f in self.fields.values():
            f.widget.setEnabled(not read_only and f.override is None)
        for f in self.folder_fields.values():
            f.widget.setEnabled(not read_only)

    def show_problems(self, problems: list[FieldProblem]) -> None:
        """Each schema error next to its field (a folder's: that folder is shown)."""
        for f in self.all_fields():
            if f.override is None:
                f.show_error(None)
        for loc, message in problems:
            if len(loc) >= 3 and loc[0] == "folders" and isinstance(loc[1], int):
                self.folder_choice.setCurrentIndex(loc[1])
                target = self.folder_fields.get(str(loc[2]))
            else:
                target = self.fields.get(tuple(loc[:2]))
            if target is not None:
                target.show_error(message)
