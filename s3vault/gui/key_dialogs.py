"""The key manager's dialogs: generate, import, the backup prompt, and export (which
the setup helper reuses through `export_key_dialog`).

Dialogs only gather input; the keys view does the work in jobs. Export is the
exception: a dialog of its own that any view can open for a key name, so it runs its
own job. Every dialog is opened with ``open()`` (never ``exec()``): nothing blocks the
event loop, and tests find and drive them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from s3vault.errors import ConflictError, S3VaultError
from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem, show_problem
from s3vault.keys.manage import export_bytes, write_private_file
from s3vault.keys.material import GenerateType, KmsKey, validate_name
from s3vault.keys.store import KeyStore

GENERATE_CHOICES: tuple[tuple[str, GenerateType], ...] = (
    ("AES-256 (recommended)", "aes256"),
    ("RSA-2048", "rsa2048"),
    ("RSA-4096", "rsa4096"),
)

LOSS_WARNING = (
    "Losing a key loses data: without a copy of this key, every object it protects "
    "can never be read again."
)


def _name_error(name: str) -> str | None:
    """Why ``name`` cannot name a key (the store's own rule), or None."""
    try:
        validate_name(name)
    except S3VaultError as exc:
        return exc.hint or exc.message
    return None


def _buttons(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
    )
    ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
    ok.setText(ok_text)
    ok.setAccessibleName(ok_text)
    buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Cancel")
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class _NamedKeyDialog(QDialog):
    """A dialog with a key-name field that keeps OK disabled until the name is valid."""

    def __init__(self, parent: QWidget | None, title: str, ok_text: str) -> None:
        super().__init__(parent)
        # Gone once answered: the view has taken what it needs in `accepted`.
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Key name")
        self.name_edit.setPlaceholderText("e.g. laptop-2026")
        self.name_error = QLabel()
        self.name_error.setAccessibleName("Key name problem")
        self.name_error.setWordWrap(True)
        self.buttons = _buttons(self, ok_text)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.name_edit.textChanged.connect(self._validate)

    def name(self) -> str:
        return self.name_edit.text().strip()

    def _validate(self) -> None:
        error = _name_error(self.name()) if self.name() else None
        self.name_error.setText(error or "")
        self.name_error.setVisible(error is not None)
        self.ok_button.setEnabled(self._ready())

    def _ready(self) -> bool:
        return bool(self.name()) and _name_error(self.name()) is None


class GenerateKeyDialog(_NamedKeyDialog):
    """Name, type and "make current" of a new random key."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, "Generate a master key", "Generate")
        self.type_box = QComboBox()
        self.type_box.setAccessibleName("Key type")
        for label, kind in GENERATE_CHOICES:
            self.type_box.addItem(label, kind)
        self.current_box = QCheckBox("Make it the current key (new objects use it)")
        self.current_box.setAccessibleName("Make it the current key")
        form = QFormLayout()
        form.addRow("&Name:", self.name_edit)
        form.addRow("", self.name_error)
        form.addRow("&Type:", self.type_box)
        form.addRow("", self.current_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._validate()

    def kind(self) -> GenerateType:
        kind: GenerateType = self.type_box.currentData()
        return kind

    def make_current(self) -> bool:
        return self.current_box.isChecked()


class ImportKeyDialog(_NamedKeyDialog):
    """A key from a file, from pasted text, or a reference to an AWS KMS key.

    The pasted text is a secret: the view takes it with `take_pasted` (which clears the
    field and its undo history) and the field never keeps an undo history at all.
    """

    FILE, PASTE, KMS = range(3)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, "Import a master key", "Import")
        self.path_edit = QLineEdit()
        self.path_edit.setAccessibleName("Key file")
        browse = QPushButton("&Browse…")
        browse.setAccessibleName("Choose the key file")
        browse.clicked.connect(self._browse)
        file_tab = QWidget()
        file_row = QHBoxLayout()
        file_row.addWidget(self.path_edit, 1)
        file_row.addWidget(browse)
        file_layout = QVBoxLayout(file_tab)
        file_layout.addWidget(
            QLabel("An AES key (raw, hex or base64) or an RSA private key (PEM).")
        )
        file_layout.addLayout(file_row)
        file_layout.addStretch(1)

        self.paste_edit = QPlainTextEdit()
        self.paste_edit.setAccessibleName("Pasted key")
        self.paste_edit.setUndoRedoEnabled(False)  # no copy of the secret in an undo stack
        self.paste_edit.setPlaceholderText("Paste an AES key (hex or base64) or a PEM private key")
        paste_tab = QWidget()
        QVBoxLayout(paste_tab).addWidget(self.paste_edit)

        self.kms_edit = QLineEdit()
        self.kms_edit.setAccessibleName("KMS key id")
        self.kms_edit.setPlaceholderText("alias/s3vault, a key id or a key ARN")
        kms_tab = QWidget()
        kms_layout = QFormLayout(kms_tab)
        kms_layout.addRow("&Key id or ARN:", self.kms_edit)
        kms_layout.addRow(QLabel("Only the reference is stored: the key stays in AWS KMS."))

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Where the key comes from")
        self.tabs.addTab(file_tab, "From a &file")
        self.tabs.addTab(paste_tab, "&Pasted text")
        self.tabs.addTab(kms_tab, "AWS &KMS key")
        for edit in (self.path_edit, self.kms_edit):
            edit.textChanged.connect(self._validate)
        self.paste_edit.textChanged.connect(self._validate)
        self.tabs.currentChanged.connect(self._validate)

        form = QFormLayout()
        form.addRow("&Name:", self.name_edit)
        form.addRow("", self.name_error)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.buttons)
        self.rejected.connect(self.paste_edit.clear)
        self._validate()

    def source(self) -> int:
        return self.tabs.currentIndex()

    def path(self) -> str:
        return self.path_edit.text().strip()

    def kms_key_id(self) -> str:
        return self.kms_edit.text().strip()

    def take_pasted(self) -> bytes:
        """The pasted text, removed from the field."""
        data = self.paste_edit.toPlainText().encode()
        self.paste_edit.clear()
        return data

    def _ready(self) -> bool:
        source = self.source()
        if source == self.FILE:
            filled = bool(self.path())
        elif source == self.PASTE:
            filled = bool(self.paste_edit.toPlainText().strip())
        else:
            filled = bool(self.kms_key_id())
        return filled and super()._ready()

    def _browse(self) -> None:
        chooser = QFileDialog(self, "Choose a key file")
        chooser.setAccessibleName("Choose a key file")
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        chooser.fileSelected.connect(self.path_edit.setText)
        chooser.open()


def backup_prompt(parent: QWidget | None, name: str, export: Callable[[], object]) -> QMessageBox:
    """The prompt after a key was generated: it exists only in this keyring; export
    now (calls ``export``) or later. Opened (window-modal) and returned."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("s3vault: back up the new key")
    box.setAccessibleName("Back up the new key")
    box.setText(f"The key '{name}' exists only in this computer's keyring.")
    box.setInformativeText(
        f"{LOSS_WARNING} If this computer or its keyring is lost, so is the key. Export "
        "it now and keep the copy offline (e.g. on a USB stick in a drawer)."
    )
    now = box.addButton("&Export now…", QMessageBox.ButtonRole.AcceptRole)
    now.setAccessibleName("Export now")
    later = box.addButton("&Later", QMessageBox.ButtonRole.RejectRole)
    later.setAccessibleName("Later")
    box.setDefaultButton(now)
    now.clicked.connect(export)
    box.open()
    return box


class ExportKeyDialog(QDialog):
    """Save a copy of key NAME to a new private file (mode 0600), after a warning.

    ``exported(path)`` after the file was written (the dialog then closes);
    ``failed(problem)`` when it could not be (the dialog stays open to retry).
    """

    exported = Signal(str)
    failed = Signal(object)

    def __init__(
        self,
        ctx: AppContext,
        name: str,
        parent: QWidget | None = None,
        *,
        keystore: Callable[[], KeyStore] | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.key_name = name
        self._keystore = keystore or ctx.keystore
        self.job: Job | None = None
        title = f"Export key '{name}'"
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        warning = QLabel(
            f"<b>{LOSS_WARNING}</b><br><br>The export file holds the secret key: anyone "
            "who gets a copy can read every object it protects. Keep it offline, and "
            "never in the synced folders or a bucket.<br><br>AES keys are written as one "
            "line of base64, RSA keys as a PEM private key (PKCS#8), KMS keys as their "
            "key id; <code>s3vault&nbsp;key&nbsp;import</code> and this app read them back. A "
            "recovery kit is the key as checked groups of characters, to print and type "
            "back with <code>s3vault&nbsp;key&nbsp;import&nbsp;--recovery</code>."
        )
        warning.setWordWrap(True)
        warning.setAccessibleName("Warning")
        self.path_edit = QLineEdit(str(Path.home() / f"{name}.key"))
        self.path_edit.setAccessibleName("Export file")
        browse = QPushButton("&Browse…")
        browse.setAccessibleName("Choose the export file")
        browse.clicked.connect(self._browse)
        self.replace_box = QCheckBox("&Replace the file if it exists")
        self.replace_box.setAccessibleName("Replace the file if it exists")
        self.kit_box = QCheckBox("Write a recovery &kit to print instead")
        self.kit_box.setAccessibleName("Write a recovery kit to print instead")
        self.kit_box.toggled.connect(self._kit_toggled)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.buttons = _buttons(self, "Export")
        self.buttons.accepted.disconnect()
        self.buttons.accepted.connect(self.export)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addWidget(warning)
        layout.addWidget(QLabel("Save to:"))
        layout.addLayout(row)
        layout.addWidget(self.replace_box)
        layout.addWidget(self.kit_box)
        layout.addWidget(self.buttons)

    def _kit_toggled(self, kit: bool) -> None:
        """The default file name follows the choice (a name the user typed stays)."""
        plain, printable = f"{self.key_name}.key", f"{self.key_name}-recovery-kit.txt"
        path = Path(self.path_edit.text().strip()).expanduser()
        if path.name == (plain if kit else printable):
            self.path_edit.setText(str(path.with_name(printable if kit else plain)))

    def export(self) -> Job | None:
        """Write the key to the chosen file in a job (the Export button)."""
        text = self.path_edit.text().strip()
        if not text or self.job is not None:
            return None
        path = Path(text).expanduser()
        overwrite = self.replace_box.isChecked()
        kit = self.kit_box.isChecked()
        keystore = self._keystore
        name = self.key_name

        def work(job: Job) -> str:
            store = keystore()
            key, data = export_bytes(store, name, recovery=kit)
            try:
                write_private_file(path, data, overwrite=overwrite)
            except ConflictError as exc:
                raise ConflictError(
                    exc.message, hint="Choose another file, or tick “Replace the file”."
                ) from None
            what = "KMS key id" if isinstance(key, KmsKey) else "secret key"
            return f"recovery kit of the {what}" if kit else what

        self.ok_button.setEnabled(False)
        self.job = self.ctx.jobs.start(
            f"export key {name}", work, on_done=self._done, on_failed=self._failed
        )
        return self.job

    def _done(self, what: str) -> None:
        self.job = None
        path = self.path_edit.text().strip()
        self.ctx.activity.add("key", self.key_name, f"exported the {what} to {path}", "done")
        self.exported.emit(path)
        self.accept()

    def _failed(self, problem: Problem) -> None:
        self.job = None
        self.ok_button.setEnabled(True)
        self.ctx.activity.add("key", self.key_name, f"export failed: {problem.message}", "error")
        show_problem(self, problem)
        self.failed.emit(problem)

    def _browse(self) -> None:
        chooser = QFileDialog(self, "Export the key to")
        chooser.setAccessibleName("Export the key to")
        chooser.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        # The "Replace" box decides, in the job: an existing file is never overwritten
        # silently, and the user is not asked twice.
        chooser.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
        chooser.selectFile(self.path_edit.text())
        chooser.fileSelected.connect(self.path_edit.setText)
        chooser.open()


def export_key_dialog(
    parent: QWidget | None,
    ctx: AppContext,
    name: str,
    *,
    keystore: Callable[[], KeyStore] | None = None,
) -> ExportKeyDialog:
    """Open the export dialog for key ``name`` (window-modal) and return it."""
    dialog = ExportKeyDialog(ctx, name, parent, keystore=keystore)
    dialog.open()
    return dialog
