"""Adding and removing a synced folder: the dialog, and the config edits behind it.

Both only change the config file (through `config_file.edit`, which keeps comments and
validates before it writes): adding never uploads anything by itself, removing never
deletes a local file or an object. The agent reads the config at start, so the view
asks the app to restart it afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from s3vault.config.model import Config
from s3vault.config.sync import FolderSettings
from s3vault.errors import UsageError
from s3vault.gui.config_file import Document, edit, validate
from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem
from s3vault.keys.store import KeyStore

log = logging.getLogger(__name__)


# ---- the config edits (run in jobs) ----------------------------------------------------


def add_folder(config_path: Path, settings: FolderSettings) -> Config:
    """Append the folder to the config file; UsageError if the local folder does not
    exist, ConfigError if it overlaps another folder (nothing written then)."""
    if not settings.path.is_dir():
        raise UsageError(
            f"{settings.path} is not a folder",
            hint="Choose an existing folder (create it first if it is new).",
        )

    def change(doc: Document) -> None:
        folders = doc.get("folders")
        if not isinstance(folders, list):
            folders = CommentedSeq()
            doc["folders"] = folders
        entry = CommentedMap()
        entry["path"] = str(settings.path)
        entry["bucket"] = settings.bucket
        if settings.prefix:
            entry["prefix"] = settings.prefix
        entry["key"] = settings.key
        folders.append(entry)

    return edit(config_path, change)


def remove_folder(config_path: Path, folder_id: str) -> Config:
    """Remove the folder's entry from the config file, and nothing else: its local
    files and its objects in S3 stay where they are."""

    def change(doc: Document) -> None:
        config = validate(doc, config_path)
        folders = doc.get("folders")
        for index, folder in enumerate(config.folders):
            if folder.folder_id == folder_id and isinstance(folders, list):
                del folders[index]
                if not folders:
                    # ruamel writes an emptied, commented block sequence as a bare
                    # "[]" at column 0, which is not valid YAML: drop the setting.
                    del doc["folders"]
                return
        raise UsageError(f"{folder_id} is not in the config file {config_path}")

    return edit(config_path, change)


def validation_message(exc: ValidationError) -> str:
    """A pydantic error in words: "bucket: 'a b' is not a bucket name"."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


# ---- the dialog ----------------------------------------------------------------------------


class AddFolderDialog(QDialog):
    """Choose a local folder and where it goes; ``added(FolderSettings)`` once the config
    file has it. Errors (not a folder, overlap, bad bucket name) show inside the dialog,
    which stays open to fix them."""

    added = Signal(object)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Add a synced folder")
        self.setAccessibleName("Add a synced folder")
        self._job: Job | None = None

        self.path_edit = QLineEdit()
        self.path_edit.setAccessibleName("Local folder")
        self.path_edit.setPlaceholderText("/home/me/Documents")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.setAccessibleName("Choose the local folder")
        self.choose_button.clicked.connect(self._choose)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.choose_button)

        config = ctx.config
        self.bucket_edit = QComboBox()
        self.bucket_edit.setEditable(True)
        self.bucket_edit.setAccessibleName("Bucket")
        buckets = [b.removeprefix("s3://").split("/", 1)[0] for b in config.buckets]
        buckets += [f.bucket for f in config.folders]
        self.bucket_edit.addItems(list(dict.fromkeys(b for b in buckets if b)))
        self.prefix_edit = QLineEdit()
        self.prefix_edit.setAccessibleName("Prefix in the bucket")
        self.prefix_edit.setPlaceholderText("laptop/documents (empty: the bucket's root)")
        self.key_edit = QComboBox()
        self.key_edit.setEditable(True)
        self.key_edit.setAccessibleName("Master key")
        keys = [config.defaults.key] + [f.key for f in config.folders]
        self.key_edit.addItems(list(dict.fromkeys(k for k in keys if k)))

        form = QFormLayout()
        form.addRow("Local &folder:", path_row)
        form.addRow("&Bucket:", self.bucket_edit)
        form.addRow("&Prefix:", self.prefix_edit)
        form.addRow("Master &key:", self.key_edit)

        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.preview.setAccessibleName("Where the folder goes")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setAccessibleName("Problem")
        self.error_label.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Add folder")
        self.ok_button.setAccessibleName("Add folder")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        for signal in (self.path_edit.textChanged, self.prefix_edit.textChanged):
            signal.connect(self._update_preview)
        self.bucket_edit.editTextChanged.connect(self._update_preview)
        self._update_preview()
        self._load_key_names()

    def settings(self) -> FolderSettings:
        """The form as a FolderSettings; ValidationError when a field is wrong."""
        return FolderSettings(
            path=Path(self.path_edit.text().strip()),
            bucket=self.bucket_edit.currentText().strip(),
            prefix=self.prefix_edit.text().strip(),
            key=self.key_edit.currentText().strip(),
        )

    def accept(self) -> None:
        if self._job is not None:
            return
        if not self.path_edit.text().strip():
            self._show_error("Choose the local folder to sync.")
            return
        try:
            settings = self.settings()
        except ValidationError as exc:
            self._show_error(validation_message(exc))
            return
        self._show_error(None)
        self.ok_button.setEnabled(False)
        path = self.ctx.config_path
        self._job = self.ctx.jobs.start(
            f"add folder {settings.path}",
            lambda _job: add_folder(path, settings),
            on_done=lambda _config: self._added(settings),
            on_failed=self._failed,
        )

    def _added(self, settings: FolderSettings) -> None:
        self._job = None
        self.added.emit(settings)
        super().accept()

    def _failed(self, problem: Problem) -> None:
        self._job = None
        self.ok_button.setEnabled(True)
        self._show_error(problem.text())

    def _show_error(self, text: str | None) -> None:
        self.error_label.setText(text or "")
        self.error_label.setVisible(bool(text))

    def _update_preview(self) -> None:
        try:
            settings = self.settings()
        except ValidationError:
            self.preview.setText("")
            return
        self.preview.setText(
            f"Files in {settings.path} are encrypted on this computer and kept in "
            f"{settings.folder_id}. Nothing is uploaded until the agent restarts."
        )

    def _choose(self) -> None:
        dialog = QFileDialog(self, "Folder to sync")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(self.path_edit.setText)
        dialog.open()  # never blocks the event loop

    def _load_key_names(self) -> None:
        def fill(names: object) -> None:
            if not isinstance(names, list):
                return
            current = self.key_edit.currentText()
            known = {self.key_edit.itemText(i) for i in range(self.key_edit.count())}
            self.key_edit.addItems([n for n in names if n not in known])
            if not current and names:
                self.key_edit.setCurrentText(names[0])

        def failed(problem: Problem) -> None:
            # The key store may be locked; the name can still be typed.
            self.key_edit.setToolTip(f"The key store could not be read: {problem.message}")

        self.ctx.jobs.start(
            "list master keys",
            lambda _job: _key_names(self.ctx.keystore()),
            on_done=fill,
            on_failed=failed,
        )


def _key_names(keystore: KeyStore) -> list[str]:
    names, current = keystore.names(), keystore.current()
    # The current key first: it is what new objects get by default.
    return sorted(names, key=lambda n: (n != current, n))
