"""The main window: a list of views on the left (Folders, Browser, Keys, Activity,
Settings), the chosen view on the right, the agent's state in the status bar.

Files and folders dropped anywhere on the window go to the bucket browser, which
uploads them at the prefix it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from s3vault.gui.activity_view import ActivityView
from s3vault.gui.browser_view import BrowserView
from s3vault.gui.context import AppContext
from s3vault.gui.folders_view import FoldersView
from s3vault.gui.keys_view import KeysView
from s3vault.gui.rotate_dialog import open_rotate_dialog
from s3vault.gui.settings_view import SettingsView

TITLE = "s3vault"


class MainWindow(QMainWindow):
    """``agent_restart_needed``: the config's folders changed (added in Folders, or a
    dropped folder kept in sync); the app restarts the agent to pick them up."""

    agent_restart_needed = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(TITLE)
        self.setAccessibleName("s3vault main window")
        self.resize(1180, 720)
        self.setAcceptDrops(True)

        self.folders = FoldersView(ctx)
        self.browser = BrowserView(ctx)
        self.keys = KeysView(ctx)
        self.activity = ActivityView(ctx)
        self.settings = SettingsView(ctx)
        self.views: list[tuple[str, QWidget]] = [
            ("Folders", self.folders),
            ("Browser", self.browser),
            ("Keys", self.keys),
            ("Activity", self.activity),
            ("Settings", self.settings),
        ]

        self.sidebar = QListWidget()
        self.sidebar.setAccessibleName("Views")
        # Room around each view's name, and a width in characters (any font, any scale).
        self.sidebar.setSpacing(3)
        self.sidebar.setFixedWidth(16 * self.fontMetrics().averageCharWidth())
        self.stack = QStackedWidget()
        for name, view in self.views:
            QListWidgetItem(name, self.sidebar)
            view.setAccessibleName(name)
            self.stack.addWidget(view)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.browser.rotate_requested.connect(self._rotate)
        self.browser.folder_added.connect(lambda _path: self.agent_restart_needed.emit())
        self.folders.browse_requested.connect(self._browse)
        self.folders.agent_restart_needed.connect(self.agent_restart_needed)
        self.sidebar.setCurrentRow(0)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.agent_label = QLabel("Agent: connecting…")
        self.agent_label.setAccessibleName("Agent state")
        self.statusBar().addPermanentWidget(self.agent_label)
        ctx.agent.connected_changed.connect(self._agent_connected)
        ctx.agent.status.connect(self._agent_status)

        # What closing does (hide to the tray, or ask); the app sets it (see app.py):
        # it gets the close event and returns whether the window closes.
        self.close_handler: Callable[[QCloseEvent], bool] | None = None

    def show_view(self, view: QWidget) -> None:
        self.sidebar.setCurrentRow(self.stack.indexOf(view))

    def _browse(self, bucket: str, prefix: str) -> None:
        self.show_view(self.browser)
        self.browser.open_location(bucket, prefix)

    def _rotate(self, bucket: str, keys: list[str], prefix: str | None) -> None:
        open_rotate_dialog(self, self.ctx, bucket, keys, prefix)

    # ---- agent state in the status bar ------------------------------------------------

    def _agent_connected(self, connected: bool) -> None:
        if not connected:
            self.agent_label.setText("Agent: not running")

    def _agent_status(self, status: dict[str, object]) -> None:
        self.agent_label.setText(f"Agent: {status.get('state', '?')}")

    # ---- drag and drop ---------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        self.show_view(self.browser)
        self.browser.upload_paths(paths)

    def closeEvent(self, event: QCloseEvent) -> None:
        handler = self.close_handler
        if handler is not None and not handler(event):
            event.ignore()
            return
        event.accept()
