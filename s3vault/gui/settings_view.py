"""The settings view: the config file the CLI and automation read, edited in a form.

Loading and saving are jobs (disk I/O). Save changes only the settings the person
changed, in place (comments, order and layout of the file survive, see
`config_file`), after validating the whole file against the schema: a bad value is
shown next to its field and nothing is written. A config marked ``managed_by`` is
shown read-only; a file with errors is shown as its error and path, and never
overwritten. "Start at login" writes or removes the XDG autostart entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from s3vault.config.load import default_config_path
from s3vault.config.model import Config, S3Settings
from s3vault.errors import RefusedError, S3VaultError
from s3vault.gui import autostart
from s3vault.gui.config_file import (
    Document,
    FieldProblem,
    field_problems,
    is_managed,
    read_document,
    set_value,
    validate,
    write_document,
)
from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem, problem_of, show_problem
from s3vault.gui.settings_fields import Path as FieldPath
from s3vault.gui.settings_form import SettingsForm
from s3vault.gui.store_test import StoreTester
from s3vault.vault.store_check import aws_profiles


@dataclass(frozen=True)
class Loaded:
    doc: Document
    config: Config | None  # None: the file breaks the schema (problems say how)
    problems: list[FieldProblem]
    autostart: bool


@dataclass(frozen=True)
class SaveResult:
    problems: list[FieldProblem]  # [] when the file was written


def apply_change(doc: Document, path: FieldPath, value: object) -> None:
    """Set one setting: ``("s3", "region")`` or a folder's ``("folders", 0, "delete")``."""
    if path[0] == "folders":
        entry = doc["folders"][int(path[1])]
        set_value(entry, (str(path[2]),), value)
    else:
        set_value(doc, tuple(str(p) for p in path), value)


def problems_text(problems: list[FieldProblem]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in loc) or 'config'}: {msg}" for loc, msg in problems)


class SettingsView(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.path: Path = ctx.config_path
        self.loaded: Loaded | None = None
        self.managed_by: str | None = None
        self._busy = False

        self.banner = QLabel("")
        self.banner.setAccessibleName("Settings notice")
        self.banner.setWordWrap(True)
        self.file_label = QLabel(f"Config file: {self.path}")
        self.file_label.setAccessibleName("Config file")
        self.file_label.setWordWrap(True)
        self.status = QLabel("Loading…")
        self.status.setAccessibleName("Settings status")
        self.status.setWordWrap(True)

        self.form = SettingsForm()
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(self.form)
        self.scroll_area.setAccessibleName("Settings")

        self.tester = StoreTester(ctx.jobs, self._test_target)
        self.tester.test_button.setText("&Test connection")
        self.tester.test_button.setAccessibleName("Test connection")
        self.start_at_login = QCheckBox("Start s3vault at &login")
        self.start_at_login.setAccessibleName("Start at login")
        self.start_at_login.clicked.connect(self._set_autostart)
        self.save_button = QPushButton("&Save")
        self.save_button.setAccessibleName("Save settings")
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("&Revert")
        self.revert_button.setAccessibleName("Revert settings")
        self.revert_button.clicked.connect(lambda: self.load())
        self.open_location = QPushButton("&Open file location")
        self.open_location.setAccessibleName("Open the config file's folder")
        self.open_location.clicked.connect(self._open_location)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_at_login)
        buttons.addStretch(1)
        buttons.addWidget(self.open_location)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.file_label)
        layout.addWidget(self.scroll_area, 1)
        layout.addWidget(self.tester)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self._set_editable(False)
        ctx.config_changed.connect(self._config_changed)
        self.load()
        self._suggestions()

    # ---- loading ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A load or a save is running."""
        return self._busy

    def load(self, *, then_say: str = "") -> None:
        """Read the file again (Revert; after a save, then saying ``then_say``)."""
        path = self.path
        self._then_say = then_say

        def work(job: Job) -> Loaded:
            doc = read_document(path)
            problems = field_problems(doc)
            config = validate(doc, path) if not problems else None
            return Loaded(doc, config, problems, autostart.is_enabled())

        self._busy = True
        self._set_editable(False)
        self.ctx.jobs.start(
            "read the config file", work, on_done=self._loaded, on_failed=self._unreadable
        )

    def _config_changed(self) -> None:
        """Another view (or the setup) wrote the file: show it, unless the person has
        unsaved edits here (they are kept; Revert shows the file)."""
        if self._busy:
            return
        if self.loaded is not None and self.loaded.config is not None and self.form.changes():
            return
        self.load()

    def _loaded(self, loaded: Loaded) -> None:
        self._busy = False
        self.loaded = loaded
        self.start_at_login.setChecked(loaded.autostart)
        if loaded.config is None:
            self._show_broken(
                f"invalid configuration in {self.path}: {problems_text(loaded.problems)}"
            )
            return
        self.managed_by = str(loaded.doc["managed_by"]) if is_managed(loaded.doc) else None
        self.form.fill(loaded.doc, loaded.config, os.environ)
        self.scroll_area.setVisible(True)
        self.tester.setVisible(True)
        if self.managed_by:
            self.banner.setText(
                f"Managed by {self.managed_by}: change it where it is provisioned. "
                "The settings are shown read-only."
            )
        else:
            self.banner.setText("")
        missing = "" if self.path.exists() else "No config file yet: Save creates it."
        self.status.setText(self._then_say or missing)
        self._set_editable(True)

    def _unreadable(self, problem: Problem) -> None:
        self._busy = False
        self.loaded = None
        self._show_broken(problem.message)

    def _show_broken(self, message: str) -> None:
        """The file cannot be edited here: say why and where, touch nothing."""
        self.managed_by = None
        self.banner.setText(
            f"✗ {message}\nFix the file in a text editor (`s3vault config check` shows "
            "the problems), then Revert to read it again. The app will not overwrite it."
        )
        self.scroll_area.setVisible(False)
        self.tester.setVisible(False)
        self.status.setText("")
        self._set_editable(False)
        self.revert_button.setEnabled(True)

    def _set_editable(self, editable: bool) -> None:
        writable = editable and self.managed_by is None
        self.form.set_read_only(not writable)
        self.save_button.setEnabled(writable)
        self.revert_button.setEnabled(editable)

    def _suggestions(self) -> None:
        """Profiles and key names for the combo boxes (disk and keyring: jobs).

        Callbacks are methods of the view, not lambdas: a method's connection ends with
        the view, so a late reply after the window closed reaches nothing."""
        self.ctx.jobs.start(
            "read the AWS profiles", lambda job: aws_profiles(), on_done=self._profiles_read
        )
        keystore = self.ctx.keystore
        self.ctx.jobs.start(
            "list the keys", lambda job: keystore().names(), on_done=self._keys_listed
        )

    def _profiles_read(self, names: list[str]) -> None:
        self._suggest(self.form.profile.widget, names)

    def _keys_listed(self, names: list[str]) -> None:
        self._suggest(self.form.default_key.widget, names)

    @staticmethod
    def _suggest(combo: QWidget, names: list[str]) -> None:
        if isinstance(combo, QComboBox):
            text = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentText(text)
            combo.blockSignals(False)

    # ---- saving ----------------------------------------------------------------------

    def save(self) -> None:
        if self.managed_by:
            self.status.setText(f"Not saved: the config is managed by {self.managed_by}.")
            return
        if self.loaded is None or self.loaded.config is None or self._busy:
            return
        changes = self.form.changes()
        if not changes:
            self.status.setText("Nothing changed.")
            return
        path = self.path

        def work(job: Job) -> SaveResult:
            doc = read_document(path)
            if is_managed(doc):
                raise RefusedError(f"{path} is managed by {doc['managed_by']}: not saved")
            for where, value in changes:
                apply_change(doc, where, value)
            problems = field_problems(doc)
            if problems:
                return SaveResult(problems)  # nothing written
            write_document(path, doc)
            return SaveResult([])

        self._busy = True
        self.save_button.setEnabled(False)
        self.status.setText("Saving…")
        self.ctx.jobs.start(
            "save the settings", work, on_done=self._saved, on_failed=self._save_failed
        )

    def _saved(self, result: SaveResult) -> None:
        self._busy = False
        self.save_button.setEnabled(True)
        if result.problems:
            self.form.show_problems(result.problems)
            self.status.setText(f"✗ Not saved: {problems_text(result.problems)}")
            return
        try:
            self.ctx.reload_config()
        except S3VaultError as exc:  # ConfigError: e.g. an S3VAULT_* variable is invalid
            self._save_failed(problem_of(exc))
            return
        self.ctx.activity.add("save settings", str(self.path), "saved", "done")
        self.load(then_say="✓ Saved.")

    def _save_failed(self, problem: Problem) -> None:
        self._busy = False
        self.save_button.setEnabled(self.managed_by is None)
        self.status.setText(f"✗ {problem.text()}")
        self.ctx.activity.add("save settings", str(self.path), problem.message, "error")
        show_problem(self, problem)

    # ---- the rest --------------------------------------------------------------------

    def _test_target(self) -> tuple[S3Settings, str | None]:
        form = self.form
        values = {
            name: form.field("s3", name).read()
            for name in ("endpoint_url", "region", "profile", "addressing_style")
        }
        settings = S3Settings.model_validate({k: v for k, v in values.items() if v is not None})
        return settings, self._bucket()

    def _bucket(self) -> str | None:
        config = self.ctx.config
        for place in [*config.buckets, *(f.bucket for f in config.folders)]:
            name = place.removeprefix("s3://").split("/", 1)[0]
            if name:
                return name
        return None

    def _set_autostart(self, enabled: bool) -> None:
        config_path = None if self.path == default_config_path() else self.path
        self.start_at_login.setEnabled(False)
        self._autostart_wanted = enabled
        self.ctx.jobs.start(
            "start at login",
            lambda job: autostart.set_enabled(enabled, config_path),
            on_done=self._autostart_set,
            on_failed=self._autostart_failed,
        )

    def _autostart_set(self, path: Path) -> None:
        self.start_at_login.setEnabled(True)
        what = "on" if self._autostart_wanted else "off"
        self.ctx.activity.add("start at login", str(path), what, "done")

    def _autostart_failed(self, problem: Problem) -> None:
        self.start_at_login.setEnabled(True)
        self.start_at_login.setChecked(not self._autostart_wanted)
        self.ctx.activity.add("start at login", "", problem.message, "error")
        show_problem(self, problem)

    def _open_location(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path.parent)))
