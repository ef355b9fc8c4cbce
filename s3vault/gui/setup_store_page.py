"""The setup's store page: where S3 is, whose credentials, which bucket; tested live.

Credentials are chosen, never typed: the usual AWS sources (environment, ~/.aws
files, SSO) or a named profile from ~/.aws/config. Next needs a bucket and a passed
test of the values shown, or an explicit "use them anyway" (an offline setup).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLineEdit,
    QVBoxLayout,
    QWizardPage,
)

from s3vault.config.model import S3Settings
from s3vault.gui.jobs import JobRunner
from s3vault.gui.messages import Problem
from s3vault.gui.store_test import StoreTester
from s3vault.vault.store_check import Verdict, aws_profiles

DEFAULT_CHAIN = "Default credential chain (environment, ~/.aws)"


class StorePage(QWizardPage):
    def __init__(self, jobs: JobRunner) -> None:
        super().__init__()
        self.setTitle("Your S3 store")
        self.setSubTitle(
            "Where your encrypted files go. Leave the endpoint empty for AWS; give it for "
            "another S3 service (MinIO, Ceph, Garage, SeaweedFS, Wasabi…)."
        )
        self._jobs = jobs
        self._passed_for: tuple[object, ...] | None = None

        self.endpoint = QLineEdit()
        self.endpoint.setAccessibleName("S3 endpoint URL")
        self.endpoint.setPlaceholderText("empty for AWS, e.g. https://s3.example.org")
        self.region = QLineEdit()
        self.region.setAccessibleName("Region")
        self.region.setPlaceholderText("from the profile or AWS_DEFAULT_REGION")
        self.addressing = QComboBox()
        self.addressing.setAccessibleName("Addressing style")
        self.addressing.addItem("auto", "auto")
        self.addressing.addItem("path (most self-hosted S3 servers)", "path")
        self.profile = QComboBox()
        self.profile.setAccessibleName("AWS credentials")
        self.profile.addItem(DEFAULT_CHAIN, None)
        self.bucket = QLineEdit()
        self.bucket.setAccessibleName("Bucket")
        self.bucket.setPlaceholderText("e.g. my-vault")
        self.tester = StoreTester(jobs, self.target)
        self.tester.tested.connect(self._tested)
        self.anyway = QCheckBox("Use these settings without a successful test")
        self.anyway.setAccessibleName("Use the settings without a successful test")
        self.anyway.toggled.connect(self.completeChanged)

        form = QFormLayout()
        form.addRow("&Endpoint URL:", self.endpoint)
        form.addRow("&Region:", self.region)
        form.addRow("&Addressing:", self.addressing)
        form.addRow("&Credentials:", self.profile)
        form.addRow("&Bucket:", self.bucket)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tester)
        layout.addStretch(1)
        layout.addWidget(self.anyway)

        for edit in (self.endpoint, self.region, self.bucket):
            edit.textChanged.connect(self._changed)
        for combo in (self.addressing, self.profile):
            combo.currentIndexChanged.connect(self._changed)

    def initializePage(self) -> None:
        if self.profile.count() == 1:
            # Reading ~/.aws/config is disk I/O: a job.
            self._jobs.start(
                "read the AWS profiles",
                lambda job: aws_profiles(),
                on_done=self._profiles,
                on_failed=self._profiles_failed,
            )

    def _profiles(self, names: list[str]) -> None:
        for name in names:
            if self.profile.findData(name) < 0:
                self.profile.addItem(f"Profile {name}", name)

    def _profiles_failed(self, problem: Problem) -> None:
        self.tester.status.setText(f"✗ {problem.text()}")

    def s3_settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.endpoint.text().strip() or None,
            region=self.region.text().strip() or None,
            profile=self.profile.currentData(),
            addressing_style=self.addressing.currentData(),
        )

    def bucket_name(self) -> str:
        return self.bucket.text().strip()

    def target(self) -> tuple[S3Settings, str | None]:
        return self.s3_settings(), self.bucket_name() or None

    def _values(self) -> tuple[object, ...]:
        return (self.s3_settings(), self.bucket_name())

    def _changed(self) -> None:
        self.tester.clear()
        self._passed_for = None
        self.completeChanged.emit()

    def _tested(self, verdicts: list[Verdict]) -> None:
        passed = bool(verdicts) and all(v.ok for v in verdicts)
        self._passed_for = self._values() if passed else None
        self.completeChanged.emit()

    @property
    def passed(self) -> bool:
        return self._passed_for is not None and self._passed_for == self._values()

    def isComplete(self) -> bool:
        if not self.bucket_name():
            return False
        return self.passed or self.anyway.isChecked()

    def validatePage(self) -> bool:
        return self.isComplete()
