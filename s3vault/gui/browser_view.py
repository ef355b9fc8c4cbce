"""The bucket browser: a bucket and prefix, the table of what is under it (folders
first), the envelope of the selected object beside it, and what to do with the
selection (inspect, download, rotate, delete).

Everything that touches S3 runs in jobs; the table fills a page at a time
(`BucketModel`). Failures show in the message bar above the table and in the
activity list, never as a crash.

Open a location from code with `open_location(bucket, prefix)`; the model's
`complete` property (and its `loaded` signal) say when every row is in.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from s3vault.errors import S3VaultError
from s3vault.gui.bucket_model import COLUMN_SAMPLES, NAME, BucketModel
from s3vault.gui.context import AppContext
from s3vault.gui.downloads import (
    DownloadProgress,
    DownloadReport,
    choose_folder,
    show_failures,
    start_download,
)
from s3vault.gui.envelope_panel import EnvelopePanel
from s3vault.gui.jobs import Job
from s3vault.gui.message_bar import MessageBar
from s3vault.gui.messages import Problem, show_problem


def parse_location(text: str) -> tuple[str, str] | None:
    """``BUCKET``, ``BUCKET/PREFIX`` or ``s3://BUCKET/PREFIX`` as (bucket, prefix);
    the prefix is "" or ends in "/". None for empty text."""
    text = text.strip()
    if text.startswith("s3://"):
        text = text[len("s3://") :]
    bucket, _, prefix = text.partition("/")
    if not bucket:
        return None
    return bucket, normal_prefix(prefix)


def normal_prefix(prefix: str) -> str:
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def parent_prefix(prefix: str) -> str:
    """``a/b/`` -> ``a/``; ``a/`` -> ``""``."""
    head, _, _ = prefix.rstrip("/").rpartition("/")
    return head + "/" if head else ""


class BrowserView(QWidget):
    """``rotate_requested(bucket, keys, prefix)``: rotate these objects' keys, or
    everything under ``prefix`` (str, or None when ``keys`` are given).
    ``download_finished(outcome)``: a download started here ended (shown already)."""

    rotate_requested = Signal(str, list, object)
    download_finished = Signal(object)  # a DownloadReport, or a Problem
    folder_added = Signal(object)  # a dropped folder now kept in sync (its Path)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.model = BucketModel(ctx, self)
        self._shown_once = False
        self._download_job: Job | None = None
        self.confirm_box: QMessageBox | None = None

        self.bucket_box = QComboBox()
        self.bucket_box.setEditable(True)
        self.bucket_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.bucket_box.setAccessibleName("Bucket")
        self.bucket_box.setToolTip("A bucket of the config, or type one (BUCKET or s3://…)")
        self.bucket_box.setMinimumContentsLength(16)
        self.bucket_box.activated.connect(self._bucket_chosen)
        line = self.bucket_box.lineEdit()
        assert line is not None
        line.returnPressed.connect(self._bucket_typed)
        self.up_button = QPushButton("Up")
        self.up_button.setAccessibleName("Up to the parent folder")
        self.up_button.setIcon(
            self.style().standardIcon(QStyle.StandardPixmap.SP_FileDialogToParent)
        )
        self.up_button.clicked.connect(self.go_up)
        self.path_edit = QLineEdit()
        self.path_edit.setAccessibleName("Prefix")
        self.path_edit.setPlaceholderText("prefix/ (empty: the bucket's top)")
        self.path_edit.returnPressed.connect(self._path_typed)
        self.filter_edit = QLineEdit()
        self.filter_edit.setAccessibleName("Filter by name")
        self.filter_edit.setPlaceholderText("Filter names")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.model.set_filter)
        top = QHBoxLayout()
        top.addWidget(QLabel("Bucket:"))
        top.addWidget(self.bucket_box)
        top.addWidget(self.up_button)
        top.addWidget(self.path_edit, 2)
        top.addWidget(self.filter_edit, 1)

        self.message_bar = MessageBar()

        self.table = QTableView()
        self.table.setAccessibleName("Objects and folders")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        metrics = self.table.fontMetrics()
        for column, sample in COLUMN_SAMPLES.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + metrics.height())
        header.setStretchLastSection(True)
        header.setSortIndicator(NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.doubleClicked.connect(self._double_clicked)
        selection = self.table.selectionModel()
        selection.currentRowChanged.connect(self._current_changed)
        selection.selectionChanged.connect(self._update_actions)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        self.panel = EnvelopePanel(ctx)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([6500, 3500])  # scaled to the real width when shown

        self.toolbar = QToolBar()
        self.toolbar.setAccessibleName("Browser actions")
        self.inspect_action = self._action("Inspect", self.inspect_selected, "Return")
        self.download_action = self._action("Download…", lambda: self.download_selected())
        self.rotate_action = self._action("Rotate…", self.rotate_selected)
        self.delete_action = self._action(
            "Delete…", self.delete_selected, QKeySequence.StandardKey.Delete
        )
        self.refresh_action = self._action(
            "Refresh", self.refresh, QKeySequence.StandardKey.Refresh
        )

        self.status = QLabel("")
        self.status.setAccessibleName("Listing state")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Download progress")
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setAccessibleName("Cancel the download")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_download)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(bottom)

        self.model.loading_changed.connect(self._update_status)
        self.model.rowsInserted.connect(self._update_status)
        self.model.modelReset.connect(self._update_status)
        self.model.failed.connect(self._listing_failed)
        ctx.config_changed.connect(self.fill_buckets)
        self.fill_buckets()
        self._update_actions()
        self._update_status()

    def _action(self, text: str, slot: object, shortcut: object = None) -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))  # type: ignore[call-overload]
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.toolbar.addAction(action)
        self.table.addAction(action)
        return action

    # ---- where we are -------------------------------------------------------------------

    def location(self) -> tuple[str, str] | None:
        """(bucket, prefix) shown, or None before a bucket was chosen."""
        if self.model.bucket is None:
            return None
        return self.model.bucket, self.model.prefix

    def open_location(self, bucket: str, prefix: str = "") -> None:
        """Show ``bucket/prefix``; the first page loads in a job."""
        prefix = normal_prefix(prefix)
        self.message_bar.hide()
        self.bucket_box.setEditText(bucket)
        self.path_edit.setText(prefix)
        self.panel.clear()
        self.model.open(bucket, prefix)
        self._update_actions()

    def refresh(self) -> None:
        if self.model.bucket is not None:
            self.open_location(self.model.bucket, self.model.prefix)

    def go_up(self) -> None:
        if self.model.bucket is not None and self.model.prefix:
            self.open_location(self.model.bucket, parent_prefix(self.model.prefix))

    def fill_buckets(self) -> None:
        """The config's buckets and the synced folders' locations."""
        seen: list[tuple[str, str]] = []
        for entry in self.ctx.config.buckets:
            where = parse_location(entry)
            if where is not None and where not in seen:
                seen.append(where)
        for folder in self.ctx.config.folders:
            where = (folder.bucket, normal_prefix(folder.prefix))
            if where not in seen:
                seen.append(where)
        text = self.bucket_box.currentText()
        self.bucket_box.clear()
        for bucket, prefix in seen:
            label = f"s3://{bucket}/{prefix}" if prefix else bucket
            self.bucket_box.addItem(label, (bucket, prefix))
        self.bucket_box.setEditText(text)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # The first time the view shows, open the first bucket of the config (not
        # before: an app that starts on another view lists nothing).
        if not self._shown_once:
            self._shown_once = True
            if self.model.bucket is None and self.bucket_box.count():
                self._bucket_chosen(0)

    def _bucket_chosen(self, index: int) -> None:
        where = self.bucket_box.itemData(index)
        if where is not None:
            self.open_location(*where)

    def _bucket_typed(self) -> None:
        where = parse_location(self.bucket_box.currentText())
        if where is not None:
            self.open_location(*where)

    def _path_typed(self) -> None:
        bucket = self.model.bucket or self.bucket_box.currentText().strip()
        if bucket:
            self.open_location(bucket, self.path_edit.text())

    def _double_clicked(self, index: QModelIndex) -> None:
        row = self.model.row_at(index.row())
        if row.folder and self.model.bucket is not None:
            self.open_location(self.model.bucket, row.key)

    # ---- selection --------------------------------------------------------------------

    def _selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.table.selectionModel().selectedRows()})

    def selected_keys(self) -> list[str]:
        """The keys of the selected objects (folders left out)."""
        rows = (self.model.row_at(r) for r in self._selected_rows())
        return [row.key for row in rows if not row.folder]

    def selected_prefixes(self) -> list[str]:
        """The prefixes of the selected folders."""
        rows = (self.model.row_at(r) for r in self._selected_rows())
        return [row.key for row in rows if row.folder]

    def select_keys(self, keys: list[str]) -> None:
        """Select the rows of ``keys`` (objects or folder prefixes) that are loaded."""
        self.table.clearSelection()
        flags = self.table.selectionModel().SelectionFlag
        for key in keys:
            row = self.model.row_of_key(key)
            if row >= 0:
                self.table.selectionModel().select(
                    self.model.index(row, 0), flags.Select | flags.Rows
                )
                self.table.selectionModel().setCurrentIndex(
                    self.model.index(row, 0), flags.NoUpdate
                )

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or self.model.bucket is None:
            self.panel.clear()
            return
        row = self.model.row_at(current.row())
        if row.folder:
            self.panel.clear(f"Folder {row.key}: double-click to open it.")
        else:
            self.panel.show_object(self.model.bucket, row.key)

    def _update_actions(self, *_args: object) -> None:
        has_bucket = self.model.bucket is not None
        keys = self.selected_keys() if has_bucket else []
        self.inspect_action.setEnabled(len(keys) == 1)
        self.download_action.setEnabled(has_bucket)
        self.rotate_action.setEnabled(has_bucket)
        self.delete_action.setEnabled(bool(keys))
        self.refresh_action.setEnabled(has_bucket)
        self.up_button.setEnabled(has_bucket and bool(self.model.prefix))

    def _update_status(self, *_args: object) -> None:
        model = self.model
        if model.bucket is None:
            text = "Choose a bucket."
        elif model.loading:
            text = f"Loading… ({model.rowCount()} items so far)"
        elif model.problem is not None:
            text = "The listing failed."
        else:
            more = "; more load as you scroll" if model.canFetchMore() else ""
            text = f"{model.rowCount()} items{more}"
        self.status.setText(text)
        self._update_actions()

    def _listing_failed(self, problem: Problem) -> None:
        self.message_bar.show_problem(problem)
        where = f"s3://{self.model.bucket}/{self.model.prefix}"
        self.ctx.activity.add("browse", where, problem.message, "error")
        self._update_status()

    # ---- actions ------------------------------------------------------------------------

    def inspect_selected(self) -> None:
        keys = self.selected_keys()
        if len(keys) == 1 and self.model.bucket is not None:
            self.panel.show_object(self.model.bucket, keys[0])

    def rotate_selected(self) -> None:
        where = self.location()
        if where is None:
            return
        keys, prefixes = self.selected_keys(), self.selected_prefixes()
        if keys:
            self.rotate_requested.emit(where[0], keys, None)
        else:
            # One folder selected: that folder; nothing selected: where we are.
            self.rotate_requested.emit(where[0], [], prefixes[0] if prefixes else where[1])

    def download_selected(self, folder: Path | None = None) -> Job | None:
        """Download the selected objects and folders (nothing selected: the prefix
        shown) into ``folder``; without one, ask for it first."""
        where = self.location()
        if where is None:
            return None
        if folder is None:
            choose_folder(self, lambda chosen: self.download_selected(chosen))
            return None
        bucket, prefix = where
        keys, prefixes = self.selected_keys(), self.selected_prefixes()
        if not keys and not prefixes:
            prefixes = [prefix]
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self._download_job = start_download(
            self.ctx,
            bucket,
            keys,
            folder,
            prefixes=prefixes,
            base=prefix,
            on_progress=self._download_progress,
            on_finished=self._download_finished,
        )
        return self._download_job

    def cancel_download(self) -> None:
        if self._download_job is not None:
            self._download_job.cancel()

    def _download_progress(self, progress: DownloadProgress) -> None:
        self.progress.setRange(0, max(progress.total, 1))
        self.progress.setValue(progress.done)
        self.progress.setFormat(f"{progress.done} of {progress.total}")
        self.progress.setToolTip(progress.key)

    def _download_finished(self, outcome: DownloadReport | Problem) -> None:
        self._download_job = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if isinstance(outcome, Problem):
            self.message_bar.show_problem(outcome)
            show_problem(self, outcome)
        else:
            self.message_bar.show_text(outcome.summary(), warning=bool(outcome.failed))
            show_failures(self, outcome)
        self.download_finished.emit(outcome)

    def delete_selected(self) -> None:
        """Ask, then delete the selected objects (and their instruction files)."""
        where, keys = self.location(), self.selected_keys()
        if where is None or not keys:
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("s3vault: delete")
        names = "\n".join(keys[:10]) + (f"\n… and {len(keys) - 10} more" if len(keys) > 10 else "")
        box.setText(f"Delete {len(keys)} object(s) from s3://{where[0]}? This cannot be undone.")
        box.setInformativeText(names)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAccessibleName("Confirm delete")
        box.accepted.connect(lambda: self._delete(where[0], keys))
        self.confirm_box = box
        box.open()

    def _delete(self, bucket: str, keys: list[str]) -> Job:
        def work(job: Job) -> list[tuple[str, str | None]]:
            vault = self.ctx.vault()
            results: list[tuple[str, str | None]] = []
            for key in keys:
                try:
                    vault.delete(bucket, key)
                    results.append((key, None))
                except S3VaultError as exc:  # one failure must not stop the rest
                    results.append((key, exc.message))
            return results

        def done(results: list[tuple[str, str | None]]) -> None:
            for key, error in results:
                url = f"s3://{bucket}/{key}"
                if error is None:
                    self.ctx.activity.add("delete", url, "deleted", "done")
                else:
                    self.ctx.activity.add("delete", url, error, "error")
            self.refresh()

        return self.ctx.jobs.start(
            f"delete {len(keys)} object(s) from s3://{bucket}",
            work,
            on_done=done,
            on_failed=self.message_bar.show_problem,
        )

    def upload_paths(self, paths: list[Path]) -> None:
        """Encrypt and upload dropped files and folders at the prefix shown."""
        where = self.location()
        if where is None:
            self.message_bar.show_text("Choose a bucket first: files are uploaded where it shows.")
            return
        from s3vault.gui.uploads import start_upload

        bucket, prefix = where
        session = start_upload(self, self.ctx, paths, bucket, prefix, on_finished=self.refresh)
        if session is not None:
            session.folder_added.connect(self.folder_added)
