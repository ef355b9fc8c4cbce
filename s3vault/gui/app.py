"""`s3vault gui` / `s3vault-gui`: start the desktop app.

One app per user (a second launch raises the first's window); with no config file a
short setup comes first; then the main window and the tray icon; the sync agent is
started when none runs. The agent is a process of its own: quitting the app leaves
it syncing, unless the user chose "Stop the agent and quit".

Where there is no tray (GNOME without an extension), the window opens at start and
closing it asks whether to keep syncing in the background.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from s3vault.errors import S3VaultError
from s3vault.gui.agent_starter import AgentStarter
from s3vault.gui.context import AppContext
from s3vault.gui.gc_policy import IdleCollector
from s3vault.gui.main_window import MainWindow
from s3vault.gui.messages import show_problem
from s3vault.gui.notifications import DesktopNotifications
from s3vault.gui.setup_wizard import SetupWizard
from s3vault.gui.single_instance import SingleInstance
from s3vault.gui.tray import TrayActions, TrayController, TrayHost, load_icon
from s3vault.gui.unix_signals import QuitOnSignals

log = logging.getLogger(__name__)

APP_NAME = "s3vault"
MINIMIZED = "--minimized"
NEWS_MS = 15_000  # how long "Started the sync agent" and the like stay in the status bar
KEEP_SYNCING = "Keep syncing"
STOP_SYNCING = "Stop syncing"
TRAY_NOTICE_KEY = "tray/close_notice_shown"


class AppShell(QObject):
    """The app around the main window: tray, notifications, agent start, close policy.

    ``quit_app`` ends the app's event loop (tests pass their own).
    """

    def __init__(
        self,
        ctx: AppContext,
        *,
        minimized: bool = False,
        quit_app: Callable[[], None] | None = None,
        tray_wait_ms: int | None = None,
        tray_available: Callable[[], bool] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.minimized = minimized
        # exit(), not quit(): Qt 6's quit() first asks every window to close, and the
        # main window refuses (it hides to the tray or asks), which cancels the quit.
        self._quit = quit_app if quit_app is not None else (lambda: QApplication.exit(0))
        self.window = MainWindow(ctx)
        self.window.setWindowIcon(load_icon("app"))
        self.window.close_handler = self.close_requested
        self.starter = AgentStarter(ctx, say=self.say, parent=self)
        self.starter.failed.connect(lambda problem: show_problem(self.window, problem))
        self.notifications = DesktopNotifications(ctx.agent, parent=self)
        self.notifications.fallback.connect(self._fallback_message)
        actions = TrayActions(
            open_window=self.show_window,
            show_activity=self.show_activity,
            quit_app=self.quit,
            stop_agent_and_quit=self.stop_agent_and_quit,
        )
        options: dict[str, object] = {}
        if tray_wait_ms is not None:
            options["wait_ms"] = tray_wait_ms
        if tray_available is not None:
            options["available"] = tray_available
        self.tray_host = TrayHost(ctx, actions, parent=self, **options)  # type: ignore[arg-type]
        self.tray_host.tray_ready.connect(self._tray_ready)
        self.tray_host.no_tray.connect(self._no_tray)
        self.close_prompt: QMessageBox | None = None
        self._quitting = False
        # The config's folders changed (Folders view, a dropped folder kept in sync):
        # the agent reads them at start.
        self.window.agent_restart_needed.connect(self.restart_agent)

    @property
    def tray(self) -> TrayController | None:
        return self.tray_host.controller

    def start(self) -> None:
        """Show what should show, look for a tray, connect to (or start) the agent."""
        if not self.minimized:
            self.show_window()
        self.tray_host.start()
        self.starter.ensure_running()
        self.ctx.jobs.start("prepare the S3 client", lambda job: self.ctx.warm_up())

    def restart_agent(self) -> None:
        """Stop the agent and start it again (after folders were added or removed)."""
        self.starter.restart_agent()

    def say(self, text: str, *, lasting: bool = False) -> None:
        """A line in the status bar; news fades after a while, a problem stays."""
        self.window.statusBar().showMessage(text, 0 if lasting else NEWS_MS)

    # ---- window -------------------------------------------------------------------

    def show_window(self) -> None:
        if self.window.isMinimized():
            self.window.showNormal()
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    def show_activity(self) -> None:
        self.show_window()
        self.window.show_view(self.window.activity)

    def close_requested(self, event: QCloseEvent) -> bool:
        """MainWindow's close handler: hide to the tray, or ask (no tray)."""
        if self._quitting:
            return True
        event.ignore()
        if self.tray is not None:
            self.window.hide()
            self._tray_notice_once()
            return False
        self.ask_keep_syncing()
        return False

    def ask_keep_syncing(self) -> None:
        """No tray: keep the agent syncing and quit, stop it and quit, or cancel."""
        if self.close_prompt is not None and self.close_prompt.isVisible():
            return
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Quit s3vault")
        box.setText("Keep syncing in the background?")
        box.setInformativeText(
            "The sync agent can keep your folders in sync after this window closes. "
            "There is no tray icon on this desktop: open s3vault again to see it."
        )
        box.setAccessibleName("Keep syncing in the background?")
        keep = box.addButton(KEEP_SYNCING, QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton(STOP_SYNCING, QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)

        def answered() -> None:
            clicked = box.clickedButton()
            if clicked is keep:
                self.quit()
            elif clicked is stop:
                self.stop_agent_and_quit()

        box.finished.connect(lambda _result: answered())
        self.close_prompt = box
        box.open()  # never blocks the event loop

    def _tray_notice_once(self) -> None:
        settings = QSettings()
        if settings.value(TRAY_NOTICE_KEY, False, type=bool):
            return
        settings.setValue(TRAY_NOTICE_KEY, True)
        icon = self.tray_host.icon
        if icon is not None:
            icon.showMessage(
                "s3vault is still running",
                "It keeps syncing; open it again from its icon in the tray.",
                load_icon("app"),
            )

    # ---- tray ---------------------------------------------------------------------

    def _tray_ready(self, _controller: TrayController) -> None:
        log.info("tray icon shown")

    def _no_tray(self) -> None:
        # Nowhere to live but the window: show it (a --minimized start too).
        log.info("no system tray: the window stays the app's only face")
        self.show_window()

    def _fallback_message(self, summary: str, body: str) -> None:
        icon = self.tray_host.icon
        if icon is not None and QSystemTrayIcon.supportsMessages():
            icon.showMessage(summary, body)

    # ---- quitting -----------------------------------------------------------------

    def quit(self) -> None:
        """Quit the app; the agent keeps syncing."""
        self._quitting = True
        self.window.close()
        self._quit()

    def stop_agent_and_quit(self) -> None:
        self._quitting = True
        if not self.ctx.agent.connected:
            self.quit()
            return
        self.say("Stopping the sync agent…")
        self.ctx.agent.stop_agent(lambda _reply: self.quit())

    def shutdown(self) -> None:
        """After the event loop ended: stop the tray, the jobs and the link."""
        self.tray_host.stop()
        self.notifications.close()
        self.ctx.jobs.shutdown()
        self.ctx.agent.close()


def setup_application(argv: list[str]) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName(APP_NAME)  # matches resources/s3vault.desktop (Wayland icon)
    app.setWindowIcon(load_icon("app"))
    # The window closing is not the app ending: the tray (or the close prompt) decides.
    app.setQuitOnLastWindowClosed(False)
    return app


def first_setup(ctx: AppContext) -> str:
    """No config file yet: run the setup; "configured", "try-locally" or "cancelled"."""
    wizard = SetupWizard(
        ctx.config_path, keyring_service=ctx.config.keyring.service, keystore=ctx.keystore()
    )
    wizard.setWindowIcon(load_icon("app"))
    wizard.exec()
    choice = str(getattr(wizard, "choice", "cancelled"))
    if choice == "configured":
        ctx.reload_config()
    return choice


def run(config_path: Path | None = None, argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv)
    app = setup_application(argv)
    try:
        instance = SingleInstance()
        ctx = AppContext(config_path)
    except S3VaultError as exc:  # an unsafe runtime dir, an invalid config: say so
        log.error("%s", exc.message)
        text = exc.message + (f"\n\n{exc.hint}" if exc.hint else "")
        QMessageBox.critical(None, "s3vault cannot start", text)
        return int(exc.exit_code)
    if instance.forward_to_running():
        print("s3vault is already running: raised its window", file=sys.stderr)
        return 0
    instance.listen()
    if not ctx.config_path.exists():
        choice = first_setup(ctx)
        if choice == "cancelled":
            instance.close()
            return 0
        if choice == "try-locally":
            instance.close()  # the demo opens an app of its own
            subprocess.Popen(
                [sys.executable, "-m", "s3vault", "demo", "--gui"], start_new_session=True
            )
            return 0
    shell = AppShell(ctx, minimized=MINIMIZED in argv[1:])
    instance.raise_requested.connect(shell.show_window)
    shell.start()
    signals = QuitOnSignals(shell.quit)  # SIGTERM/SIGINT/SIGHUP: a clean quit
    collector = IdleCollector(ctx.jobs)  # full garbage collections only when idle
    try:
        return int(app.exec())
    finally:
        collector.stop()
        signals.restore()
        shell.shutdown()
        instance.close()


def main() -> None:
    """`s3vault-gui [--config PATH] [--minimized]` (the app launcher's command)."""
    parser = argparse.ArgumentParser(prog="s3vault-gui", description="The s3vault desktop app.")
    parser.add_argument("--config", type=Path, help="config file (default: the user's)")
    parser.add_argument(MINIMIZED, action="store_true", help="start in the tray only")
    args, qt_args = parser.parse_known_args()
    sys.exit(run(args.config, [sys.argv[0], *qt_args, *([MINIMIZED] if args.minimized else [])]))
