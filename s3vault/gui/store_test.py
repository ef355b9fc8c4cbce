"""A "Test" button and its verdicts: the live store checks of `s3vault.vault.store_check`
shown on a page, one line per check (✓ / ✗ / – and what to do), with "Create bucket"
when the bucket is missing. Used by the setup's store page and the settings view.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from s3vault.config.model import S3Settings
from s3vault.gui.jobs import Job, JobRunner
from s3vault.gui.messages import Problem
from s3vault.vault import store_check
from s3vault.vault.store_check import Verdict, check_store

# What to test: the S3 settings and the bucket (None: credentials and endpoint only).
# It may raise ValueError (pydantic's ValidationError is one) for settings that are
# not even well-formed; the message is shown on the page.
Target = Callable[[], tuple[S3Settings, str | None]]


class StoreTester(QWidget):
    """``tested`` carries the list of verdicts; ``failed`` a Problem (a check that
    could not run at all, or a bucket that could not be created)."""

    tested = Signal(object)
    failed = Signal(object)

    def __init__(self, jobs: JobRunner, target: Target, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self._target = target
        self._job: Job | None = None
        self.verdicts: list[Verdict] = []

        self.test_button = QPushButton("&Test")
        self.test_button.setAccessibleName("Test the store")
        self.test_button.setToolTip("Check the credentials, the endpoint and the bucket now")
        self.test_button.clicked.connect(self.run)
        self.create_button = QPushButton("&Create bucket")
        self.create_button.setAccessibleName("Create the bucket")
        self.create_button.setVisible(False)
        self.create_button.clicked.connect(self.create_bucket)
        self.status = QLabel("")
        self.status.setAccessibleName("Store test status")
        self.status.setWordWrap(True)
        self.lines = QLabel("")
        self.lines.setAccessibleName("Store test verdicts")
        self.lines.setWordWrap(True)
        self.lines.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.create_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.lines)

    @property
    def running(self) -> bool:
        return self._job is not None

    def clear(self) -> None:
        """Forget the last verdicts (the settings they were about changed)."""
        self.verdicts = []
        self.lines.setText("")
        self.status.setText("")
        self.create_button.setVisible(False)

    def run(self) -> None:
        try:
            settings, bucket = self._target()
        except ValueError as exc:
            self._show_failure(Problem("Invalid input", _first_line(exc)))
            return
        self._begin("Testing…")
        self._job = self._jobs.start(
            "test the store",
            lambda job: check_store(settings, bucket),
            on_done=self._show,
            on_failed=self._show_failure,
            on_cancelled=self._end,
        )

    def create_bucket(self) -> None:
        try:
            settings, bucket = self._target()
        except ValueError as exc:
            self._show_failure(Problem("Invalid input", _first_line(exc)))
            return
        if not bucket:
            return
        self._begin(f"Creating bucket {bucket}…")

        def work(job: Job) -> list[Verdict]:
            store_check.create_bucket(settings, bucket)
            job.check()
            return check_store(settings, bucket)

        self._job = self._jobs.start(
            f"create bucket {bucket}",
            work,
            on_done=self._show,
            on_failed=self._show_failure,
            on_cancelled=self._end,
        )

    def _begin(self, text: str) -> None:
        self.clear()
        self.status.setText(text)
        self.test_button.setEnabled(False)

    def _end(self) -> None:
        self._job = None
        self.test_button.setEnabled(True)

    def _show(self, verdicts: list[Verdict]) -> None:
        self._end()
        self.verdicts = verdicts
        passed = all(v.ok for v in verdicts)
        self.status.setText("The store works." if passed else "The store is not usable yet:")
        self.lines.setText("\n".join(v.text() for v in verdicts))
        self.create_button.setVisible(any(v.missing_bucket for v in verdicts))
        self.tested.emit(verdicts)

    def _show_failure(self, problem: Problem) -> None:
        self._end()
        self.verdicts = []
        self.status.setText(f"✗ {problem.text()}")
        self.failed.emit(problem)


def _first_line(exc: ValueError) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
