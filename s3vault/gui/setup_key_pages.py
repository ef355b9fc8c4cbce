"""The setup's master key pages: choose a key (generate, import, or one already in
the keyring), then back it up.

The backup page cannot be passed without a backup (an export to a file, or the file
the key was imported from) or the explicit acknowledgement that without one, losing
this computer loses the data: a key only in one keyring is one disk failure from
every file it encrypts being unreadable.
"""

from __future__ import annotations

import datetime
import re
import socket
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from s3vault.errors import ConflictError, KeyMissingError
from s3vault.gui.jobs import Job, JobRunner
from s3vault.gui.messages import Problem
from s3vault.keys.manage import export_key, import_key_file
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore

GENERATE, IMPORT, EXISTING = 0, 1, 2
ACKNOWLEDGEMENT = "I understand that without a backup, losing this computer loses my data"


def default_key_name() -> str:
    """``<host>-<year>``, e.g. ``laptop-2026``: says where and when a key was made."""
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname().split(".")[0]).strip("-")
    return f"{host or 'my'}-{datetime.date.today().year}"[:64]


def _error_label(name: str) -> QLabel:
    label = QLabel("")
    label.setAccessibleName(name)
    label.setWordWrap(True)
    return label


class KeyPage(QWizardPage):
    """Next stores the key (in a job) and moves on once it is in the keyring."""

    def __init__(self, jobs: JobRunner, store: KeyStore) -> None:
        super().__init__()
        self.setTitle("Your master key")
        self.setSubTitle(
            "Every file is encrypted with a new data key, wrapped by this master key. "
            "It stays in your system keyring; s3vault never sends it anywhere."
        )
        self._jobs = jobs
        self._store = store
        self._busy = False
        self.ready_key: str | None = None  # the key stored for the values shown
        self._ready_for: tuple[object, ...] | None = None
        self._pending: tuple[object, ...] | None = None
        self.imported_from: Path | None = None

        self.choice = QButtonGroup(self)
        self.generate = QRadioButton("&Generate a new key")
        self.import_ = QRadioButton("&Import a key from a file")
        self.existing = QRadioButton("&Use a key already in the keyring")
        for button, ident in (
            (self.generate, GENERATE),
            (self.import_, IMPORT),
            (self.existing, EXISTING),
        ):
            button.setAccessibleName(button.text().replace("&", ""))
            self.choice.addButton(button, ident)
        self.generate.setChecked(True)

        self.name = QLineEdit(default_key_name())
        self.name.setAccessibleName("Key name")
        self.import_path = QLineEdit()
        self.import_path.setAccessibleName("Key file")
        self.import_path.setPlaceholderText("a file from `s3vault key export`")
        browse = QPushButton("&Browse…")
        browse.setAccessibleName("Choose the key file")
        browse.clicked.connect(self._browse)
        self.import_kind = QComboBox()
        self.import_kind.setAccessibleName("Key file type")
        self.import_kind.addItem("AES (base64, hex or raw)", "aes")
        self.import_kind.addItem("RSA (PEM private key)", "rsa")
        self.existing_names = QComboBox()
        self.existing_names.setAccessibleName("Existing keys")
        self.error = _error_label("Key error")

        file_row = QHBoxLayout()
        file_row.addWidget(self.import_path, 1)
        file_row.addWidget(browse)
        file_box = QWidget()
        file_box.setLayout(file_row)
        form = QFormLayout()
        form.addRow("Key &name:", self.name)
        form.addRow("Key &file:", file_box)
        form.addRow("File &type:", self.import_kind)
        form.addRow("&Existing key:", self.existing_names)
        layout = QVBoxLayout(self)
        for button in (self.generate, self.import_, self.existing):
            layout.addWidget(button)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addStretch(1)

        self._file_widgets: list[QWidget] = [file_box, self.import_kind]
        self.choice.idToggled.connect(self._mode_changed)
        for edit in (self.name, self.import_path):
            edit.textChanged.connect(self._changed)
        self.existing_names.currentIndexChanged.connect(self._changed)
        self.import_kind.currentIndexChanged.connect(self._changed)
        self._mode_changed()

    def initializePage(self) -> None:
        self._jobs.start(
            "list the keys",
            lambda job: self._store.names(),
            on_done=self._names,
            on_failed=self._failed,
        )

    def _names(self, names: list[str]) -> None:
        current = self.existing_names.currentText()
        self.existing_names.clear()
        self.existing_names.addItems(names)
        if current in names:
            self.existing_names.setCurrentText(current)
        self.existing.setEnabled(bool(names))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Key file to import")
        if path:
            self.import_path.setText(path)

    def _mode_changed(self, *_: object) -> None:
        mode = self.choice.checkedId()
        self.name.setEnabled(mode != EXISTING)
        for widget in self._file_widgets:
            widget.setEnabled(mode == IMPORT)
        self.existing_names.setEnabled(mode == EXISTING)
        self._changed()

    def _values(self) -> tuple[object, ...]:
        mode = self.choice.checkedId()
        if mode == EXISTING:
            return (mode, self.existing_names.currentText())
        if mode == IMPORT:
            return (
                mode,
                self.name.text().strip(),
                self.import_path.text().strip(),
                self.import_kind.currentData(),
            )
        return (mode, self.name.text().strip())

    def _changed(self) -> None:
        self.error.setText("")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self._busy and all(v not in ("", None) for v in self._values())

    def validatePage(self) -> bool:
        values = self._values()
        if self._ready_for == values:
            return True
        if self._busy:
            return False
        self._busy = True
        self._pending = values
        self.error.setText("Storing the key in the keyring…")
        self.completeChanged.emit()
        self._jobs.start(
            "store the master key",
            self._work(values),
            on_done=self._stored,
            on_failed=self._failed,
        )
        return False

    def _work(self, values: tuple[object, ...]) -> Callable[[Job], tuple[str, Path | None]]:
        store = self._store

        def work(job: Job) -> tuple[str, Path | None]:
            mode, name = values[0], str(values[1])
            if mode == EXISTING:
                store.get(name)  # still there and readable
                return name, None
            if mode == IMPORT:
                path = Path(str(values[2])).expanduser()
                key, _ = import_key_file(store, name, values[3], path)  # type: ignore[arg-type]
                return key.name, path
            try:
                store.get(name)
            except KeyMissingError:
                store.put(generate_key(name))
            else:
                raise ConflictError(
                    f"a key named '{name}' already exists",
                    hint="Choose another name, or use the existing key.",
                )
            return name, None

        return work

    def _stored(self, result: tuple[str, Path | None]) -> None:
        self._busy = False
        self.ready_key, self.imported_from = result
        self._ready_for = self._pending
        self.error.setText("")
        self.completeChanged.emit()
        wizard = self.wizard()
        if wizard is not None and wizard.currentPage() is self:  # not if the person went back
            wizard.next()

    def _failed(self, problem: Problem) -> None:
        self._busy = False
        self.error.setText(f"✗ {problem.text()}")
        self.completeChanged.emit()


class BackupPage(QWizardPage):
    """Complete once the key was exported (or imported from a file), or the
    acknowledgement is ticked."""

    def __init__(self, jobs: JobRunner, store: KeyStore, key_page: KeyPage) -> None:
        super().__init__()
        self.setTitle("Back up your master key")
        self._jobs = jobs
        self._store = store
        self._key_page = key_page
        self._key: str | None = None
        self.exported_to: Path | None = None

        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setAccessibleName("Why a backup")
        self.export_button = QPushButton("&Export the key to a file…")
        self.export_button.setAccessibleName("Export the key to a file")
        self.export_button.clicked.connect(self._choose_file)
        self.status = _error_label("Backup status")
        self.acknowledge = QCheckBox(ACKNOWLEDGEMENT)
        self.acknowledge.setAccessibleName(ACKNOWLEDGEMENT)
        self.acknowledge.toggled.connect(self.completeChanged)

        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.export_button)
        layout.addWidget(self.status)
        layout.addStretch(1)
        layout.addWidget(self.acknowledge)

    def initializePage(self) -> None:
        key = self._key_page.ready_key
        if key != self._key:  # another key: its backup is still to be made
            self._key = key
            self.exported_to = self._key_page.imported_from
            self.acknowledge.setChecked(False)
            self.status.setText("")
        self.setSubTitle(f"Key {key} exists only in this computer's keyring.")
        self.text.setText(
            "If this computer is lost, stolen or reinstalled, the key goes with it, and "
            "with it every file it encrypted: nobody, not even the S3 provider, can "
            "decrypt them. Export the key now and keep the file somewhere safe and "
            "offline (a USB stick in a drawer, a password manager). Anyone who has the "
            "file can read your data."
        )
        if self.exported_to is not None:
            self.status.setText(
                f"✓ Backed up: the key came from {self.exported_to}; keep that file safe."
            )
        self.completeChanged.emit()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the key backup", f"{self._key}.key")
        if path:
            # The dialog asked before replacing a file.
            self.export_to(Path(path), overwrite=True)

    def export_to(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the key to ``path`` (mode 0600) in a job."""
        key = self._key
        if key is None:
            return
        self.export_button.setEnabled(False)
        self.status.setText(f"Writing {path}…")
        self._jobs.start(
            f"export key {key}",
            lambda job: export_key(self._store, key, path, overwrite=overwrite),
            on_done=self._exported,
            on_failed=self._failed,
        )

    def _exported(self, path: Path) -> None:
        self.export_button.setEnabled(True)
        self.exported_to = path
        self.status.setText(f"✓ Exported to {path} (only you can read it). Keep it safe.")
        self.completeChanged.emit()

    def _failed(self, problem: Problem) -> None:
        self.export_button.setEnabled(True)
        self.status.setText(f"✗ {problem.text()}")

    def isComplete(self) -> bool:
        return self.exported_to is not None or self.acknowledge.isChecked()

    def validatePage(self) -> bool:
        # QWizard.next() (a keyboard shortcut, a script) does not look at isComplete.
        return self.isComplete()
