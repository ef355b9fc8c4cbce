"""Key rotation from the app: the selected objects, or every object under a prefix,
given another master key (re-wrap) or new data keys (re-encrypt, with a format).

    dialog = open_rotate_dialog(window, ctx, "my-vault", [], "docs/")   # a whole prefix
    dialog.run_finished.connect(lambda report: ...)

The steps are the CLI's (`s3vault rotate`), on `s3vault.vault.rotation` itself:
choose the target key and the mode -> Count (a dry run: what would change) -> the
confirmation shows that count -> Rotate, in a job, with progress (n of m) and Cancel
(stops between objects: what is done stays done, and the report says it was
cancelled) -> the result list (rotated / skipped / changed meanwhile / failed) and a
summary line, also in the activity list.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from s3vault.gui.activity import Level
from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem, show_problem
from s3vault.gui.rotate_results import RotationResults, outcome_label
from s3vault.gui.status_text import plural
from s3vault.vault import Version
from s3vault.vault.rotation import (
    Action,
    Outcome,
    RotationOptions,
    RotationReport,
    Rotator,
)

WHAT = "rotate"
REPORT_EVERY = 0.1  # seconds between progress batches sent to the UI thread


@dataclass(frozen=True, slots=True)
class RotationProgress:
    """A batch of outcomes, and how many objects were found so far."""

    found: int
    outcomes: list[Outcome]


def run_rotation(
    job: Job,
    rotator: Rotator,
    bucket: str,
    keys: list[str],
    prefix: str | None,
    cancel: threading.Event,
    workers: int,
) -> RotationReport:
    """Rotate the selection (or the prefix) on this (job) thread, reporting
    `RotationProgress` batches; ``cancel`` (or the job's cancel) stops between objects."""
    report = rotator.new_report(bucket, prefix if prefix is not None else _common(keys))
    found = len(keys)
    batch: list[Outcome] = []
    last = 0.0

    def flush(force: bool = False) -> None:
        nonlocal last
        if job.cancelled:  # the app is quitting
            cancel.set()
        if force or time.monotonic() - last >= REPORT_EVERY:
            job.report(RotationProgress(found, list(batch)))
            batch.clear()
            last = time.monotonic()

    def on_found(key: str) -> None:
        nonlocal found
        found += 1

    def on_done(outcome: Outcome) -> None:
        batch.append(outcome)
        flush()

    if prefix is not None:
        rotator.rotate_prefix(
            bucket,
            prefix,
            report,
            workers=workers,
            on_found=on_found,
            on_done=on_done,
            cancel=cancel,
        )
    else:
        rotator.rotate_keys(bucket, keys, report, workers=workers, on_done=on_done, cancel=cancel)
    flush(force=True)
    return report


def _common(keys: list[str]) -> str:
    if len(keys) == 1:
        return keys[0]
    folders = {k.rpartition("/")[0] for k in keys}
    return f"{folders.pop()}/" if len(folders) == 1 and "" not in folders else ""


# Objects rotated at once from the app (the CLI uses 8). Each object's requests are
# Python work under the interpreter lock, and worker threads that hold it starve the UI
# thread: re-wrapping 1,000 objects on a local S3 stalled the window up to 263 ms with
# 8 workers, 83 ms with 4, 50-66 ms with 3, 19-24 ms with 2, in about the same total
# time (bench/bench_gui.py). Over a slow link more workers would finish sooner: there
# `s3vault rotate` (8 workers) is the faster tool for a large prefix.
APP_WORKERS = 2

class RotateDialog(QDialog):
    """``counted`` (the dry run's `RotationReport`) after Count; ``run_started`` (the
    `Job`) when the rotation starts; ``run_finished`` (its `RotationReport`, also when
    cancelled) at its end."""

    counted = Signal(object)
    run_started = Signal(object)
    run_finished = Signal(object)

    def __init__(
        self,
        ctx: AppContext,
        bucket: str,
        keys: list[str],
        prefix: str | None,
        parent: QWidget | None = None,
        *,
        workers: int = APP_WORKERS,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.bucket = bucket
        self.keys = list(keys)
        self.prefix = prefix
        self.workers = workers
        self.count_report: RotationReport | None = None
        self.report: RotationReport | None = None
        self._cancel = threading.Event()
        self._job: Job | None = None
        self.setWindowTitle("s3vault: rotate keys")
        self.setAccessibleName("Rotate keys")
        self._build()
        self._load_keys()

    # ---- the form ------------------------------------------------------------------

    def _build(self) -> None:
        where = f"s3://{self.bucket}/{self.prefix or ''}"
        scope = (
            f"Every object under {where}"
            if self.prefix is not None
            else f"{plural(len(self.keys), 'selected object')} in s3://{self.bucket}/"
        )
        self.scope = QLabel(scope)
        self.scope.setAccessibleName("What is rotated")
        self.key_combo = QComboBox()
        self.key_combo.setAccessibleName("Target key")
        self.key_combo.addItem("Loading keys…")
        self.key_combo.setEnabled(False)
        self.rewrap_radio = QRadioButton(
            "Re-&wrap: the new key wraps each data key (no data moves)"
        )
        self.reencrypt_radio = QRadioButton("Re-&encrypt: new data keys (each object is rewritten)")
        self.rewrap_radio.setAccessibleName("Re-wrap")
        self.reencrypt_radio.setAccessibleName("Re-encrypt")
        self.rewrap_radio.setChecked(True)
        self.modes = QButtonGroup(self)
        self.modes.addButton(self.rewrap_radio)
        self.modes.addButton(self.reencrypt_radio)
        self.format_combo = QComboBox()
        self.format_combo.setAccessibleName("Format")
        self.format_combo.addItem("Each object's own format", None)
        self.format_combo.addItem("v3 (key commitment)", "v3")
        self.format_combo.addItem("v2 (older official clients)", "v2")
        self.format_combo.setEnabled(False)
        form = QFormLayout()
        form.addRow("What:", self.scope)
        form.addRow("Target &key:", self.key_combo)
        form.addRow("Mode:", self.rewrap_radio)
        form.addRow("", self.reencrypt_radio)
        form.addRow("&Format:", self.format_combo)

        self.status = QLabel("Choose the key, then Count what would change.")
        self.status.setAccessibleName("Rotation status")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Objects done")
        self.bar.setFormat("%v of %m")
        self.bar.setValue(0)
        self.results = RotationResults(self)
        self.table = QTableView()
        self.table.setAccessibleName("Results")
        self.table.setModel(self.results)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideLeft)  # keys share their prefix
        metrics = self.fontMetrics()
        self.table.horizontalHeader().resizeSection(0, 28 * metrics.averageCharWidth())
        self.table.horizontalHeader().resizeSection(1, 12 * metrics.averageCharWidth())
        # Room for a key, an outcome and its message without cutting (any font, any scale).
        self.resize(96 * metrics.averageCharWidth(), 30 * metrics.height())

        self.count_button = QPushButton("&Count")
        self.count_button.setAccessibleName("Count the objects that would change")
        self.rotate_button = QPushButton("&Rotate")
        self.rotate_button.setAccessibleName("Rotate the counted objects")
        self.cancel_button = QPushButton("C&ancel")
        self.cancel_button.setAccessibleName("Cancel the rotation")
        self.close_button = QPushButton("C&lose")
        self.close_button.setAccessibleName("Close")
        self.count_button.setEnabled(False)
        self.rotate_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (
            self.count_button,
            self.rotate_button,
            self.cancel_button,
            self.close_button,
        ):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

        self.count_button.clicked.connect(self.count)
        self.rotate_button.clicked.connect(self.rotate)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.reencrypt_radio.toggled.connect(self.format_combo.setEnabled)
        for changed in (self.key_combo.currentIndexChanged, self.format_combo.currentIndexChanged):
            changed.connect(self._options_changed)
        self.reencrypt_radio.toggled.connect(self._options_changed)

    def _load_keys(self) -> None:
        def work(job: Job) -> tuple[list[str], str | None]:
            store = self.ctx.keystore()
            names = [info.name for info in store.list()]
            return names, self.ctx.config.defaults.key or store.current()

        self.ctx.jobs.start("list keys", work, on_done=self._keys_loaded, on_failed=self._problem)

    def _keys_loaded(self, result: tuple[list[str], str | None]) -> None:
        names, current = result
        if current is not None and current not in names:
            names.append(current)  # a KMS key named in the config
        self.key_combo.clear()
        for name in names:
            self.key_combo.addItem(f"{name} (current)" if name == current else name, name)
        if current is not None:
            self.key_combo.setCurrentIndex(names.index(current))
        if not names:
            self.status.setText("No key to rotate to: generate or import one in Keys.")
            return
        self.key_combo.setEnabled(True)
        self.count_button.setEnabled(True)

    def options(self, *, dry_run: bool) -> RotationOptions:
        fmt = self.format_combo.currentData() if self.reencrypt_radio.isChecked() else None
        return RotationOptions(
            to_key=str(self.key_combo.currentData()),
            reencrypt=self.reencrypt_radio.isChecked(),
            version=Version(fmt) if fmt else None,
            dry_run=dry_run,
            # The count is of current objects; the real run also counts old versions.
            count_versions=not dry_run,
        )

    def _options_changed(self) -> None:
        # A count is for one key and mode: another choice needs another count.
        self.count_report = None
        self.rotate_button.setEnabled(False)
        self.rotate_button.setText("&Rotate")

    # ---- count, confirm, run -------------------------------------------------------

    def count(self) -> None:
        """The dry run: how many objects would change (nothing is written)."""
        self._start(self.options(dry_run=True), "Counting the objects that would change…")

    def rotate(self) -> None:
        """Rotate (after a count, which the button's text confirms)."""
        if self.count_report is None:
            return
        self._start(self.options(dry_run=False), "Rotating…")

    def cancel(self) -> None:
        """Stop between objects (thread-safe: a flag)."""
        self._cancel.set()

    def _start(self, options: RotationOptions, status: str) -> None:
        self._cancel = threading.Event()
        self.results.clear(dry_run=options.dry_run)
        self.status.setText(status)
        total = len(self.keys) if self.prefix is None else 0
        if not options.dry_run and self.count_report is not None:
            c = self.count_report
            total = len(c.rotated) + len(c.skipped) + len(c.failed)
        self.bar.setRange(0, total)
        self.bar.setValue(0)
        self._busy(True)
        cancel, bucket, keys, prefix, workers = (
            self._cancel,
            self.bucket,
            self.keys,
            self.prefix,
            self.workers,
        )
        vault_of = self.ctx.vault

        def work(job: Job) -> RotationReport:
            rotator = Rotator(vault_of(), options)
            return run_rotation(job, rotator, bucket, keys, prefix, cancel, workers)

        done = self._counted if options.dry_run else self._rotated
        self._job = self.ctx.jobs.start(
            "rotate" if not options.dry_run else "count a rotation",
            work,
            on_done=done,
            on_failed=self._problem,
            on_progress=self._progress,
            on_cancelled=lambda: self._busy(False),
        )
        if not options.dry_run:
            self.run_started.emit(self._job)

    def _busy(self, busy: bool) -> None:
        ready = self.key_combo.count() > 0 and self.key_combo.currentData() is not None
        self.count_button.setEnabled(not busy and ready)
        self.cancel_button.setEnabled(busy)
        for widget in (self.key_combo, self.rewrap_radio, self.reencrypt_radio):
            widget.setEnabled(not busy and ready)
        self.format_combo.setEnabled(not busy and self.reencrypt_radio.isChecked())
        self.rotate_button.setEnabled(not busy and self._can_rotate())

    def _can_rotate(self) -> bool:
        return self.count_report is not None and bool(self.count_report.rotated)

    def _progress(self, progress: RotationProgress) -> None:
        self.results.add(progress.outcomes)
        if progress.found > self.bar.maximum():
            self.bar.setMaximum(progress.found)
        self.bar.setValue(len(self.results.outcomes))

    def _counted(self, report: RotationReport) -> None:
        self.count_report = report if not report.interrupted else None
        verb = "re-wrapped" if report.action is Action.REWRAP else "re-encrypted"
        n = len(report.rotated)
        if report.interrupted:
            text = "Count cancelled: nothing was written."
        elif n:
            them = "it" if n == 1 else "them"
            text = (
                f"{plural(n, 'object')} will be {verb} to '{report.to_key}'. Rotate {them}?\n"
                f"Counted: {report.summary()}."
            )
        else:
            text = f"Nothing to rotate ({report.summary()})."
        self.status.setText(text)
        self.rotate_button.setText(f"&Rotate {plural(n, 'object')}" if n else "&Rotate")
        self._busy(False)
        self.counted.emit(report)

    def _rotated(self, report: RotationReport) -> None:
        self.report = report
        self.count_report = None  # a second run needs a new count
        summary = report.summary()
        if report.interrupted:
            done = len(report.rotated) + len(report.skipped) + len(report.failed)
            summary = f"Cancelled after {done} object(s): {summary}. What was done stays done."
        self.status.setText(summary + (f"\n{report.hint}" if report.hint else ""))
        level: Level = "error" if report.failed else "warning" if report.interrupted else "done"
        for failed in report.failed:  # rotated and skipped ones are in the summary
            self.ctx.activity.add(
                WHAT,
                f"s3://{self.bucket}/{failed.key}",
                f"{outcome_label(failed)}: {failed.reason}",
                "error",
            )
        self.ctx.activity.add(WHAT, report.target, summary, level)
        self.rotate_button.setText("&Rotate")
        self._busy(False)
        self.run_finished.emit(report)

    def _problem(self, problem: Problem) -> None:
        self.ctx.activity.add(
            WHAT, f"s3://{self.bucket}/{self.prefix or ''}", problem.text(), "error"
        )
        self.status.setText(problem.text())
        show_problem(self, problem)
        self._busy(False)


def open_rotate_dialog(
    parent: QWidget | None,
    ctx: AppContext,
    bucket: str,
    keys: list[str],
    prefix: str | None,
) -> RotateDialog:
    """Open the rotation dialog (window-modal, never blocking) for the selected ``keys``
    or, with ``prefix`` (not None), every object under it."""
    dialog = RotateDialog(ctx, bucket, keys, prefix, parent)
    dialog.open()
    return dialog
