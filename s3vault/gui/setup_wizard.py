"""The first start: with no config, a short setup instead of an empty window.

    wizard = SetupWizard(default_config_path(), keyring_service="s3vault")
    wizard.exec()
    wizard.choice        # "configured" | "try-locally" | "cancelled"
    wizard.config_path   # the file written (when "configured")

Pages: welcome (set up my store, or try it locally), the store (tested live), the
master key and its backup, a folder to keep in sync (optional), then a summary; Finish
writes the same config file the CLI uses. "Try it locally" writes nothing: the app
then starts `s3vault demo --gui`, which runs the embedded S3 (the app itself never
imports the embedded services).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from s3vault.config.sync import normalise_prefix
from s3vault.gui.jobs import JobRunner
from s3vault.gui.messages import Problem
from s3vault.gui.setup_config import SetupAnswers, write_setup_config
from s3vault.gui.setup_key_pages import BackupPage, KeyPage
from s3vault.gui.setup_store_page import StorePage
from s3vault.keys.store import KeyStore

Choice = Literal["configured", "try-locally", "cancelled"]
TRY_LOCALLY_COMMAND = ("demo", "--gui")  # the `s3vault` arguments the app re-executes


class WelcomePage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Welcome to s3vault")
        self.setSubTitle(
            "s3vault encrypts your files on this computer before they go to S3: the "
            "storage provider only ever sees ciphertext."
        )
        self.set_up = QRadioButton("&Set up my store (an S3 bucket I have)")
        self.set_up.setAccessibleName("Set up my store")
        self.try_locally = QRadioButton(
            "&Try it locally (an S3 server on this computer, with demo files)"
        )
        self.try_locally.setAccessibleName("Try it locally")
        self.set_up.setChecked(True)
        self.try_locally.toggled.connect(self._toggled)
        layout = QVBoxLayout(self)
        layout.addWidget(self.set_up)
        layout.addWidget(self.try_locally)
        layout.addStretch(1)

    def _toggled(self) -> None:
        # Finish instead of Next: nothing more to ask.
        self.setFinalPage(self.try_locally.isChecked())

    def nextId(self) -> int:
        return -1 if self.try_locally.isChecked() else super().nextId()


class FolderPage(QWizardPage):
    """Optional: a local folder and where in the bucket it goes."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("A folder to keep in sync")
        self.setSubTitle(
            "Optional. Files in this folder are encrypted and uploaded when they change; "
            "you can add folders later."
        )
        self.enabled = QCheckBox("&Keep a folder in sync")
        self.enabled.setAccessibleName("Keep a folder in sync")
        self.path = QLineEdit()
        self.path.setAccessibleName("Local folder")
        self.path.setPlaceholderText(str(Path.home() / "Documents"))
        browse = QPushButton("&Browse…")
        browse.setAccessibleName("Choose the local folder")
        browse.clicked.connect(self._browse)
        self.prefix = QLineEdit()
        self.prefix.setAccessibleName("Prefix in the bucket")
        self.prefix.setPlaceholderText("e.g. laptop/documents (empty: the bucket's root)")
        self.error = QLabel("")
        self.error.setAccessibleName("Folder error")
        self.error.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self._path_box = QWidget()
        self._path_box.setLayout(row)
        form = QFormLayout()
        form.addRow("&Folder:", self._path_box)
        form.addRow("&Prefix:", self.prefix)
        layout = QVBoxLayout(self)
        layout.addWidget(self.enabled)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addStretch(1)
        for signal in (self.enabled.toggled, self.path.textChanged, self.prefix.textChanged):
            signal.connect(self._changed)
        self._changed()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to keep in sync")
        if path:
            self.path.setText(path)
            if not self.prefix.text():
                self.prefix.setText(Path(path).name)

    def _changed(self) -> None:
        on = self.enabled.isChecked()
        self._path_box.setEnabled(on)
        self.prefix.setEnabled(on)
        self.error.setText(self._problem() if on else "")
        self.completeChanged.emit()

    def _problem(self) -> str:
        text = self.path.text().strip()
        if text and not Path(text).expanduser().is_absolute():
            return "The folder must be an absolute path (/home/me/x or ~/x)."
        try:
            normalise_prefix(self.prefix.text())
        except ValueError as exc:
            return str(exc)
        return ""

    def folder(self) -> Path | None:
        if not self.enabled.isChecked():
            return None
        return Path(self.path.text().strip()).expanduser()

    def prefix_text(self) -> str:
        return normalise_prefix(self.prefix.text()) if self.enabled.isChecked() else ""

    def isComplete(self) -> bool:
        if not self.enabled.isChecked():
            return True
        return bool(self.path.text().strip()) and not self._problem()

    def validatePage(self) -> bool:
        return self.isComplete()


class FinishPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Ready")
        self.summary = QLabel("")
        self.summary.setAccessibleName("Summary")
        self.summary.setWordWrap(True)
        self.error = QLabel("")
        self.error.setAccessibleName("Setup error")
        self.error.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        layout.addWidget(self.error)


class SetupWizard(QWizard):
    """``choice`` and ``config_path`` tell the app what to do once it closes."""

    def __init__(
        self,
        config_path: Path,
        *,
        keyring_service: str = "s3vault",
        keystore: KeyStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up s3vault")
        self.setAccessibleName("s3vault setup")
        self.config_path = config_path
        self.keyring_service = keyring_service
        self.choice: Choice = "cancelled"
        self.written = False
        self.jobs = JobRunner(max_threads=2, parent=self)
        self._writing = False
        store = keystore or KeyStore(keyring_service)  # the configured store, if given

        self.welcome = WelcomePage()
        self.store = StorePage(self.jobs)
        self.key = KeyPage(self.jobs, store)
        self.backup = BackupPage(self.jobs, store, self.key)
        self.folder = FolderPage()
        self.finish = FinishPage()
        for page in (self.welcome, self.store, self.key, self.backup, self.folder, self.finish):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Finish")

    def answers(self) -> SetupAnswers:
        return SetupAnswers(
            s3=self.store.s3_settings(),
            bucket=self.store.bucket_name(),
            keyring_service=self.keyring_service,
            key=self.key.ready_key or "",
            folder=self.folder.folder(),
            prefix=self.folder.prefix_text(),
        )

    def initializePage(self, page_id: int) -> None:
        super().initializePage(page_id)
        if self.page(page_id) is self.finish:
            self.finish.summary.setText(self._summary())

    def _summary(self) -> str:
        a = self.answers()
        where = a.s3.endpoint_url or "AWS"
        credentials = f"profile {a.s3.profile}" if a.s3.profile else "the default AWS sources"
        lines = [
            f"Store: bucket {a.bucket} at {where}"
            + (f", region {a.s3.region}" if a.s3.region else ""),
            f"Credentials: {credentials} (not copied into the config)",
            f"Master key: {a.key}, in the keyring service {a.keyring_service}",
            f"Folder: {a.folder} → s3://{a.bucket}/{a.prefix}" if a.folder else "Folder: none yet",
            f"Config file: {self.config_path}",
        ]
        return "\n".join(lines)

    def accept(self) -> None:
        if self.welcome.try_locally.isChecked():
            self.choice = "try-locally"
            super().accept()
            return
        if self.written:
            super().accept()
            return
        if self._writing:
            return
        self._writing = True
        self.finish.error.setText("Writing the config…")
        answers, path = self.answers(), self.config_path
        self.jobs.start(
            "write the config",
            lambda job: write_setup_config(path, answers),
            on_done=self._written,
            on_failed=self._write_failed,
        )

    def _written(self, _config: object) -> None:
        self._writing = False
        self.written = True
        self.choice = "configured"
        self.finish.error.setText("")
        super().accept()

    def _write_failed(self, problem: Problem) -> None:
        self._writing = False
        self.finish.error.setText(f"✗ {problem.text()}")

    def reject(self) -> None:
        self.jobs.cancel_all()
        self.choice = "cancelled"
        super().reject()
