"""Synced folders with their live state: idle, syncing n of m (bytes, rate), paused,
offline, error, conflicts; pause/resume, sync now, add and remove a folder.

The state is pushed by the agent (`AgentLink.status`), never polled; a 30 s timer only
redraws relative times ("2 min ago"). Without an agent, the configured folders show as
"agent not running". Adding or removing a folder only edits the config file; the app
then restarts the agent (``agent_restart_needed``), which reads the config at start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelection, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from s3vault.config.sync import FolderSettings
from s3vault.errors import S3VaultError
from s3vault.gui.context import AppContext
from s3vault.gui.folder_details import FolderDetails, ProgressDelegate
from s3vault.gui.folder_dialog import AddFolderDialog, remove_folder
from s3vault.gui.folder_status import FolderStatus, folder_statuses, per_folder_control
from s3vault.gui.folders_model import STATE, FoldersModel
from s3vault.gui.messages import Problem, problem_of, show_problem

TIME_REFRESH_MS = 30_000
TOO_OLD = "The running agent is too old to {what} one folder: use “{all}” (or update the agent)."
NO_AGENT = "The agent is not running."


class FoldersView(QWidget):
    """``browse_requested(bucket, prefix)``: show the folder in the bucket browser;
    ``agent_restart_needed()``: the config's folders changed."""

    browse_requested = Signal(str, str)
    agent_restart_needed = Signal()

    def __init__(
        self,
        ctx: AppContext,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._snapshot: dict[str, Any] | None = ctx.agent.last_status
        self._selected_id: str | None = None
        self.dialog: AddFolderDialog | None = None
        self.confirm_box: QMessageBox | None = None

        self.model = FoldersModel(self, clock=clock)
        self.table = QTableView()
        self.table.setAccessibleName("Synced folders")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(STATE, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STATE, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.activated.connect(lambda _index: self.open_folder())  # Enter or double-click

        self.add_button = self._button("Add folder…", "Add a synced folder", self.add_folder)
        self.remove_button = self._button(
            "Remove folder…", "Stop syncing the selected folder", self.remove_selected
        )
        self.pause_button = self._button(
            "Pause", "Pause or resume the selected folder", self.toggle_pause
        )
        self.sync_button = self._button("Sync now", "Sync the selected folder now", self.sync_now)
        self.pause_all_button = self._button("Pause all", "Pause every folder", self.pause_all)
        self.resume_all_button = self._button("Resume all", "Resume every folder", self.resume_all)
        self.open_button = self._button("Open folder", "Open the local folder", self.open_folder)
        self.browse_button = self._button(
            "Show in browser",
            "Show the folder's objects in the bucket browser",
            self.show_in_browser,
        )
        buttons = QHBoxLayout()
        for group in (
            (self.add_button, self.remove_button),
            (self.pause_button, self.sync_button, self.pause_all_button, self.resume_all_button),
            (self.open_button, self.browse_button),
        ):
            for button in group:
                buttons.addWidget(button)
            buttons.addSpacing(12)
        buttons.addStretch(1)

        self.details = FolderDetails(clock=clock)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)

        self._times = QTimer(self)
        self._times.setInterval(TIME_REFRESH_MS)
        self._times.timeout.connect(self._refresh_times)
        self._times.start()

        ctx.agent.status.connect(self._on_status)
        ctx.agent.connected_changed.connect(self._on_connected)
        ctx.config_changed.connect(self.refresh)
        self.refresh()

    def _button(self, text: str, description: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(text.rstrip("…"))
        button.setAccessibleDescription(description)
        button.setToolTip(description)
        button.clicked.connect(slot)
        return button

    # ---- state ---------------------------------------------------------------------------

    def selected(self) -> FolderStatus | None:
        row = self.model.row_of(self._selected_id) if self._selected_id else None
        return self.model.status(row) if row is not None else None

    def select(self, folder_id: str) -> None:
        row = self.model.row_of(folder_id)
        if row is not None:
            self.table.selectRow(row)

    def refresh(self) -> None:
        """Rebuild the rows from the config and the last snapshot (changed rows only)."""
        self.model.update(folder_statuses(self.ctx.config.folders, self._snapshot))
        if not self.table.selectionModel().hasSelection():
            # A reset (the folder set changed) drops the selection: keep the same
            # folder selected, else the first one, so the details pane shows something.
            keep = self._selected_id
            if keep is not None and self.model.row_of(keep) is not None:
                self.select(keep)
            elif self.model.rowCount() > 0:
                self.table.selectRow(0)
            else:
                self._selected_id = None
        self._update_actions()
        self.details.show_status(self.selected())

    def _on_status(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot
        self.refresh()

    def _on_connected(self, connected: bool) -> None:
        if not connected:
            self._snapshot = None
            self.refresh()

    def _refresh_times(self) -> None:
        self.model.refresh_times()
        self.details.show_status(self.selected())

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        self._selected_id = self.model.status(rows[0].row()).folder_id if rows else None
        self._update_actions()
        self.details.show_status(self.selected())

    def _update_actions(self) -> None:
        status = self.selected()
        snapshot = self._snapshot
        running = snapshot is not None
        in_agent = status is not None and status.agent_running
        managed = self.ctx.config.managed_by
        for button in (self.add_button, self.remove_button):
            button.setEnabled(not managed)
        if managed:
            note = (
                f"The config is managed by {managed}: change its folders where it is provisioned."
            )
            self.add_button.setToolTip(note)
            self.remove_button.setToolTip(note)
        else:
            self.add_button.setToolTip("Add a synced folder")
            self.remove_button.setToolTip("Stop syncing the selected folder (deletes nothing)")
        self.remove_button.setEnabled(not managed and status is not None and status.configured)

        per_folder = per_folder_control(snapshot)
        paused = status is not None and status.state == "paused"
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setAccessibleName("Resume folder" if paused else "Pause folder")
        self.pause_button.setEnabled(in_agent and per_folder)
        if not running:
            self.pause_button.setToolTip(NO_AGENT)
        elif not per_folder:
            self.pause_button.setToolTip(TOO_OLD.format(what="pause", all="Pause all"))
        else:
            self.pause_button.setToolTip("Resume this folder" if paused else "Pause this folder")
        self.sync_button.setEnabled(in_agent)
        self.sync_button.setToolTip(
            NO_AGENT
            if not running
            else "Sync the selected folder now"
            if per_folder
            else "Sync every folder now (the running agent syncs all folders at once)"
        )
        any_paused = bool(snapshot and snapshot.get("paused")) or any(
            s.state == "paused" for s in self.model.statuses()
        )
        all_paused = bool(snapshot and snapshot.get("paused"))
        self.pause_all_button.setEnabled(running and not all_paused)
        self.resume_all_button.setEnabled(running and any_paused)
        self.open_button.setEnabled(status is not None)
        self.browse_button.setEnabled(status is not None)

    # ---- actions ---------------------------------------------------------------------------

    def toggle_pause(self) -> None:
        status = self.selected()
        if status is None:
            return
        folder_id = status.folder_id
        if status.state == "paused":
            self.ctx.agent.resume(self._replied("resume", folder_id), folder=folder_id)
        else:
            self.ctx.agent.pause(self._replied("pause", folder_id), folder=folder_id)

    def sync_now(self) -> None:
        status = self.selected()
        if status is None:
            return
        if per_folder_control(self._snapshot):
            self.ctx.agent.sync_now(
                self._replied("sync-now", status.folder_id), folder=status.folder_id
            )
        else:
            self.ctx.agent.sync_now(self._replied("sync-now", "all folders"))

    def pause_all(self) -> None:
        self.ctx.agent.pause(self._replied("pause", "all folders"))

    def resume_all(self) -> None:
        self.ctx.agent.resume(self._replied("resume", "all folders"))

    def _replied(self, verb: str, item: str) -> Callable[[dict[str, Any]], None]:
        def on_reply(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                return
            error = reply.get("error")
            if not isinstance(error, dict):
                error = {}
            problem = Problem(
                "Agent",
                str(error.get("message") or f"the agent refused {verb}"),
                error.get("hint") if isinstance(error.get("hint"), str) else None,
            )
            self.ctx.activity.add(verb, item, problem.text(), "error")
            show_problem(self, problem)

        return on_reply

    def open_folder(self) -> None:
        status = self.selected()
        if status is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(status.path))

    def show_in_browser(self) -> None:
        status = self.selected()
        if status is not None:
            self.browse_requested.emit(status.bucket, status.prefix)

    # ---- add / remove ------------------------------------------------------------------------

    def add_folder(self) -> None:
        """Open the add-folder dialog (non-blocking; `self.dialog` while it is open)."""
        if self.ctx.config.managed_by:
            return
        dialog = AddFolderDialog(self.ctx, self)
        dialog.added.connect(self._folder_added)
        dialog.finished.connect(lambda _result: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()

    def _folder_added(self, settings: FolderSettings) -> None:
        self.ctx.activity.add(
            "add folder", str(settings.path), f"syncs to {settings.folder_id}", "done"
        )
        self._config_written(settings.folder_id)

    def remove_selected(self) -> None:
        """Ask, then remove the selected folder from the config (`self.confirm_box`)."""
        status = self.selected()
        if status is None or self.ctx.config.managed_by:
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Stop syncing a folder")
        box.setAccessibleName("Stop syncing a folder")
        box.setText(f"Stop syncing “{status.name}”?")
        box.setInformativeText(
            "This only removes the folder from the config file. Nothing is deleted: the "
            f"files stay in {status.path} and the encrypted objects stay in "
            f"{status.folder_id}. The agent restarts to stop syncing it."
        )
        remove = box.addButton("Remove from config", QMessageBox.ButtonRole.AcceptRole)
        remove.setAccessibleName("Remove from config")
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        folder_id, path = status.folder_id, self.ctx.config_path

        def answered() -> None:
            self.confirm_box = None
            if box.clickedButton() is remove:
                self.ctx.jobs.start(
                    f"remove folder {folder_id}",
                    lambda _job: remove_folder(path, folder_id),
                    on_done=lambda _config: self._folder_removed(status),
                    on_failed=self._edit_failed("remove folder", status.path),
                )

        box.finished.connect(answered)
        self.confirm_box = box
        box.open()

    def _folder_removed(self, status: FolderStatus) -> None:
        self.ctx.activity.add(
            "remove folder",
            status.path,
            f"no longer synced to {status.folder_id} (nothing deleted)",
            "done",
        )
        self._config_written(None)

    def _edit_failed(self, what: str, item: str) -> Callable[[Problem], None]:
        def failed(problem: Problem) -> None:
            self.ctx.activity.add(what, item, problem.text(), "error")
            show_problem(self, problem)

        return failed

    def _config_written(self, select: str | None) -> None:
        try:
            self.ctx.reload_config()  # config_changed refreshes the rows
        except S3VaultError as exc:  # the file changed under us: say so, keep the old one
            problem = problem_of(exc)
            self.ctx.activity.add("config", str(self.ctx.config_path), problem.text(), "error")
            show_problem(self, problem)
        if select is not None:
            self.select(select)
        self.agent_restart_needed.emit()
