"""The tray icon: the agent's state at a glance, and a menu (open, pause/resume, sync
now, recent activity, quit the app, stop the agent and quit).

`TrayController` holds the logic and drives any object with QSystemTrayIcon's few
methods (`setIcon`, `setToolTip`, `setContextMenu`, `show`, `showMessage`), so the
offscreen tests drive it with a stand-in; `TrayHost` builds the real QSystemTrayIcon
only once `isSystemTrayAvailable()` is true: Qt picks StatusNotifierItem or XEmbed
when the icon is built, and an icon built before the panel is up may never show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from s3vault.gui.context import AppContext
from s3vault.gui.tray_state import TrayView, tray_view

RECENT_ITEMS = 5
WAIT_FOR_TRAY_MS = 5000  # a tray appears within this at login, or the window opens
POLL_MS = 250
LATE_POLL_MS = 5000  # a tray enabled later (an extension turned on) is still picked up


@cache
def load_icon(name: str) -> QIcon:
    """One of the package's SVG icons (``idle``, ``syncing``, …, ``app``), drawn by
    Qt's SVG icon engine: sharp at any size and device pixel ratio."""
    path = resources.files("s3vault.gui").joinpath("icons", f"{name}.svg")
    icon = QIcon(str(path))  # the package is installed as files (pip, pipx)
    if icon.isNull():
        raise FileNotFoundError(f"icon {name!r} is missing from the s3vault package ({path})")
    return icon


class TrayLike(Protocol):
    """What the controller needs of a QSystemTrayIcon."""

    def setIcon(self, icon: QIcon, /) -> None: ...
    def setToolTip(self, tip: str, /) -> None: ...
    def setContextMenu(self, menu: QMenu, /) -> None: ...
    def show(self) -> None: ...
    def showMessage(self, title: str, msg: str, /, *args: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class TrayActions:
    """What the menu's app-level items do (the app provides them)."""

    open_window: Callable[[], None]
    show_activity: Callable[[], None]
    quit_app: Callable[[], None]
    stop_agent_and_quit: Callable[[], None]


class TrayController(QObject):
    """Keeps a tray's icon, tooltip and menu in step with the agent link."""

    def __init__(
        self, ctx: AppContext, tray: TrayLike, actions: TrayActions, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.tray = tray
        self.actions = actions
        self.view: TrayView = tray_view(None, False)
        self.menu = QMenu()
        self.menu.setAccessibleName("s3vault tray menu")
        self.open_action = self._add("Open s3vault", actions.open_window)
        self.menu.addSeparator()
        self.pause_action = self._add("Pause syncing", self.toggle_pause)
        self.sync_action = self._add("Sync now", self.sync_now)
        self.recent_menu = self.menu.addMenu("Recent activity")
        self.recent_menu.setAccessibleName("Recent activity")
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        self.menu.addSeparator()
        self.quit_action = self._add("Quit s3vault (the agent keeps syncing)", actions.quit_app)
        self.stop_action = self._add("Stop the agent and quit", actions.stop_agent_and_quit)
        tray.setContextMenu(self.menu)
        ctx.agent.status.connect(lambda _status: self.refresh())
        ctx.agent.connected_changed.connect(lambda _connected: self.refresh())
        self.fill_recent()
        self.refresh()

    def _add(self, text: str, slot: Callable[[], None]) -> QAction:
        action = self.menu.addAction(text)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def refresh(self) -> None:
        self.view = tray_view(self.ctx.agent.last_status, self.ctx.agent.connected)
        self.tray.setIcon(load_icon(self.view.icon))
        self.tray.setToolTip(self.view.tooltip)
        self.pause_action.setText("Resume syncing" if self.view.paused else "Pause syncing")
        for action in (self.pause_action, self.sync_action, self.stop_action):
            action.setEnabled(self.view.can_control)

    def fill_recent(self) -> None:
        """The last few activity entries (rebuilt each time the submenu opens)."""
        self.recent_menu.clear()
        entries = self.ctx.activity.entries()[:RECENT_ITEMS]
        if not entries:
            self.recent_menu.addAction("No activity yet").setEnabled(False)
        for entry in entries:
            when = time.strftime("%H:%M", time.localtime(entry.time))
            text = f"{when} {entry.what} {entry.item}: {entry.result}"
            action = self.recent_menu.addAction(text if len(text) < 90 else text[:88] + "…")
            action.triggered.connect(lambda _checked=False: self.actions.show_activity())
        self.recent_menu.addSeparator()
        show_all = self.recent_menu.addAction("Show all activity")
        show_all.triggered.connect(lambda _checked=False: self.actions.show_activity())

    # ---- menu actions -----------------------------------------------------------------

    def toggle_pause(self) -> None:
        if self.view.paused:
            self.ctx.agent.resume(lambda reply: self._replied("resume", reply))
        else:
            self.ctx.agent.pause(lambda reply: self._replied("pause", reply))

    def sync_now(self) -> None:
        self.ctx.agent.sync_now(lambda reply: self._replied("sync now", reply))

    def _replied(self, what: str, reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            self.ctx.activity.add("agent", what, "done", "done")
            return
        error = reply.get("error") or {}
        message = str(error.get("message") if isinstance(error, dict) else error)
        self.ctx.activity.add("agent", what, message, "error")
        self.tray.showMessage("s3vault", f"Could not {what}: {message}")


class TrayHost(QObject):
    """Waits for a system tray, then builds the real icon and its controller.

    ``tray_ready(TrayController)`` once a tray exists (at once, or when one appears);
    ``no_tray()`` once, when none appeared within ``wait_ms``.
    """

    tray_ready = Signal(object)
    no_tray = Signal()

    def __init__(
        self,
        ctx: AppContext,
        actions: TrayActions,
        *,
        wait_ms: int = WAIT_FOR_TRAY_MS,
        available: Callable[[], bool] = QSystemTrayIcon.isSystemTrayAvailable,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.actions = actions
        self.controller: TrayController | None = None
        self.icon: QSystemTrayIcon | None = None
        self._available = available
        self._waited = 0
        self._wait_ms = wait_ms
        self._gave_up = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._poll)

    def start(self) -> None:
        self._timer.start(POLL_MS)
        self._poll()

    def _poll(self) -> None:
        if self._available():
            self._timer.stop()
            self._build()
            return
        self._waited += self._timer.interval()
        if not self._gave_up and self._waited >= self._wait_ms:
            self._gave_up = True
            self._timer.setInterval(LATE_POLL_MS)
            self.no_tray.emit()

    def _build(self) -> None:
        icon = QSystemTrayIcon(load_icon("offline"), self)
        self.icon = icon
        self.controller = TrayController(self.ctx, icon, self.actions, parent=self)
        icon.activated.connect(self._activated)
        icon.show()
        self.tray_ready.emit(self.controller)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.actions.open_window()

    def stop(self) -> None:
        self._timer.stop()
        if self.icon is not None:
            self.icon.hide()
