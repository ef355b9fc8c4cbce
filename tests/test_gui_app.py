"""The app shell: one instance per user, the agent started when none runs, and what
closing the window does with and without a tray."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import write_config
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from s3vault.gui.agent_link import AgentLink
from s3vault.gui.agent_starter import NO_FOLDERS, STARTED
from s3vault.gui.app import KEEP_SYNCING, STOP_SYNCING, TRAY_NOTICE_KEY, AppShell, run
from s3vault.gui.context import AppContext
from s3vault.gui.single_instance import SingleInstance


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short private dir for sockets (a Unix socket path is limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="s3v-app-") as tmp:
        os.chmod(tmp, 0o700)
        yield Path(tmp)


class Quits:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def make_shell(qtbot: Any) -> Iterator[Any]:
    shells: list[AppShell] = []

    def make(ctx: AppContext, **options: Any) -> tuple[AppShell, Quits]:
        quits = Quits()
        options.setdefault("tray_available", lambda: False)
        options.setdefault("tray_wait_ms", 0)
        shell = AppShell(ctx, quit_app=quits, **options)
        qtbot.addWidget(shell.window)
        shells.append(shell)
        return shell, quits

    yield make
    for shell in shells:
        shell.tray_host.stop()
        shell.notifications.close()


# ---- single instance ----------------------------------------------------------------


def test_a_second_launch_asks_the_first_to_raise_its_window(qtbot, short_dir) -> None:
    name = str(short_dir / "gui.sock")
    first = SingleInstance(name)
    assert first.listen()
    second = SingleInstance(name)
    with qtbot.waitSignal(first.raise_requested, timeout=5000):
        assert second.forward_to_running()
    first.close()
    assert not SingleInstance(name).forward_to_running(), "nobody listens any more"


def test_a_stale_socket_of_a_crashed_app_is_taken_over(qtbot, short_dir) -> None:
    name = str(short_dir / "gui.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(name)  # bound, never listening, then gone: like a crashed app's file
    stale.close()
    assert Path(name).exists()
    assert not SingleInstance(name).forward_to_running()
    first = SingleInstance(name)
    assert first.listen()
    with qtbot.waitSignal(first.raise_requested, timeout=5000):
        assert SingleInstance(name).forward_to_running()
    first.close()


def test_run_when_the_app_already_runs_raises_it_and_exits_0(qtbot, gui_config) -> None:
    first = SingleInstance()  # the user's real name, in the session's runtime dir
    assert first.listen()
    try:
        with qtbot.waitSignal(first.raise_requested, timeout=5000):
            assert run(gui_config, ["s3vault"]) == 0
    finally:
        first.close()


# ---- the agent ------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: the detached agent's parent, the CLI, is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _stop_pid(pid: int) -> None:
    """Stop a detached agent by PID (the test's own: it started it through the app)."""
    if not _gone(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), f"agent {pid} did not stop"


def test_no_agent_running_the_app_starts_one_says_so_and_can_restart_it(
    qtbot, make_shell, tmp_path, bucket, run_cli, short_dir, monkeypatch
) -> None:
    folder = tmp_path / "Documents"
    folder.mkdir()
    config = write_config(tmp_path / "config.yaml", folder, bucket)
    assert run_cli("key", "generate", "agent-key").returncode == 0
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))  # the agent it starts inherits it
    socket_path = short_dir / "s3vault" / "agent.sock"
    ctx = AppContext(config, agent=AgentLink(socket_path))
    shell, _quits = make_shell(ctx)
    pids: list[int] = []
    try:
        shell.start()
        qtbot.waitUntil(
            lambda: shell.window.agent_label.text() in ("Agent: idle", "Agent: syncing"),
            timeout=30000,
        )
        # The link may reconnect on its own before the start job reports back.
        qtbot.waitUntil(lambda: shell.window.statusBar().currentMessage() == STARTED)
        assert any(e.result == STARTED for e in ctx.activity.entries())
        assert ctx.agent.last_status is not None
        pids.append(ctx.agent.last_status["pid"])
        started = ctx.activity.rowCount()

        shell.restart_agent()
        qtbot.waitUntil(
            lambda: (ctx.agent.last_status or {}).get("pid") not in (None, pids[0]), timeout=60000
        )
        pids.append(ctx.agent.last_status["pid"])
        qtbot.waitUntil(lambda: _gone(pids[0]), timeout=10000)  # the restart stopped it
        qtbot.waitUntil(lambda: shell.window.statusBar().currentMessage() == STARTED)
        assert ctx.activity.rowCount() > started
    finally:
        ctx.agent.close()
        assert ctx.jobs.shutdown(60_000)
        if socket_path.exists():  # one the test did not get to see (it failed early)
            from s3vault.agent.client import AgentClient

            with AgentClient(socket_path, timeout=5) as client:
                pids.append(client.status()["pid"])
        for pid in pids:
            _stop_pid(pid)


def test_an_agent_that_cannot_start_is_a_clear_message_in_a_box_and_the_activity(
    qtbot, make_shell, tmp_path, short_dir, monkeypatch
) -> None:
    folder = tmp_path / "Documents"
    folder.mkdir()
    config = write_config(tmp_path / "config.yaml", folder, "some-bucket")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))
    ctx = AppContext(config, agent=AgentLink(short_dir / "s3vault" / "agent.sock"))
    config.unlink()  # the agent reads the config at start: it will not find it
    shell, _quits = make_shell(ctx)
    shell.start()
    qtbot.waitUntil(
        lambda: shell.window.statusBar().currentMessage().startswith("Could not start"),
        timeout=30000,
    )
    assert "config.yaml" in shell.window.statusBar().currentMessage()
    entry = ctx.activity.entries()[0]
    assert entry.level == "error" and "config.yaml" in entry.result
    qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), QMessageBox))
    box = QApplication.activeModalWidget()
    assert isinstance(box, QMessageBox) and "config.yaml" in box.text()
    box.close()


def test_without_folders_the_agent_is_not_started_and_the_app_says_why(
    qtbot, make_shell, ctx
) -> None:
    shell, _quits = make_shell(ctx)
    shell.start()
    qtbot.waitUntil(lambda: shell.window.statusBar().currentMessage() == NO_FOLDERS, timeout=5000)
    assert not ctx.agent.socket_path.exists()
    assert ctx.activity.entries()[0].result == "not started: no folders to sync yet"


# ---- closing the window ---------------------------------------------------------------


def _prompt_button(shell: AppShell, text: str) -> Any:
    box = shell.close_prompt
    assert box is not None
    return next(b for b in box.buttons() if b.text() == text)


def test_no_tray_closing_asks_to_keep_syncing_and_cancel_keeps_the_window(
    qtbot, make_shell, ctx
) -> None:
    shell, quits = make_shell(ctx)
    shell.start()
    qtbot.waitUntil(shell.window.isVisible, timeout=5000)
    shell.window.close()
    qtbot.waitUntil(lambda: shell.close_prompt is not None and shell.close_prompt.isVisible())
    assert shell.close_prompt is not None
    assert shell.close_prompt.text() == "Keep syncing in the background?"
    shell.close_prompt.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: not shell.close_prompt.isVisible())  # type: ignore[union-attr]
    assert shell.window.isVisible() and quits.count == 0

    shell.window.close()
    qtbot.waitUntil(shell.close_prompt.isVisible)
    _prompt_button(shell, KEEP_SYNCING).click()
    qtbot.waitUntil(lambda: quits.count == 1)
    assert not shell.window.isVisible()


def test_no_tray_stop_syncing_quits_even_without_an_agent(qtbot, make_shell, ctx) -> None:
    shell, quits = make_shell(ctx)
    shell.start()
    shell.window.close()
    qtbot.waitUntil(lambda: shell.close_prompt is not None and shell.close_prompt.isVisible())
    _prompt_button(shell, STOP_SYNCING).click()
    qtbot.waitUntil(lambda: quits.count == 1)


def test_with_a_tray_closing_hides_the_window_and_the_app_keeps_running(
    qtbot, make_shell, ctx
) -> None:
    shell, quits = make_shell(ctx, tray_available=lambda: True)
    shell.start()
    assert shell.tray is not None
    assert shell.window.isVisible()
    shell.window.close()
    assert not shell.window.isVisible()
    assert shell.close_prompt is None and quits.count == 0
    # The one-time notice that s3vault lives on in the tray was given (and remembered).
    assert QSettings().value(TRAY_NOTICE_KEY, False, type=bool)
    shell.tray.open_action.trigger()
    assert shell.window.isVisible()
    shell.tray.quit_action.trigger()
    assert quits.count == 1


def test_a_minimized_start_shows_only_the_tray_or_the_window_when_there_is_none(
    qtbot, make_shell, ctx
) -> None:
    with_tray, _ = make_shell(ctx, minimized=True, tray_available=lambda: True)
    with_tray.start()
    assert with_tray.tray is not None and not with_tray.window.isVisible()
    without, _ = make_shell(ctx, minimized=True, tray_wait_ms=300)
    without.start()
    assert not without.window.isVisible()
    qtbot.waitUntil(without.window.isVisible, timeout=5000)


# ---- desktop integration ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_the_desktop_entry_and_icon_install_for_the_user_with_an_autostart_option(
    tmp_path: Path,
) -> None:
    import configparser
    import subprocess

    env = dict(
        os.environ, XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config")
    )
    done = subprocess.run(
        ["sh", str(ROOT / "installer" / "install-desktop.sh"), "--autostart"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(tmp_path / "data" / "applications" / "s3vault.desktop")
    desktop = entry["Desktop Entry"]
    assert (desktop["Name"], desktop["Exec"], desktop["Icon"]) == (
        "s3vault",
        "s3vault gui",
        "s3vault",
    )
    assert desktop["Categories"] == "Utility;Network;FileTransfer;"
    icon = tmp_path / "data" / "icons" / "hicolor" / "scalable" / "apps" / "s3vault.svg"
    # The package's window icon is the same picture as the installed one.
    assert icon.read_bytes() == (ROOT / "s3vault" / "gui" / "icons" / "app.svg").read_bytes()
    autostart = configparser.ConfigParser(interpolation=None)
    autostart.read(tmp_path / "config" / "autostart" / "s3vault.desktop")
    assert autostart["Desktop Entry"]["Exec"] == "s3vault gui --minimized"


def test_an_invalid_config_is_a_clear_message_and_an_exit_code_not_a_traceback(
    qtbot, tmp_path: Path
) -> None:
    from PySide6.QtWidgets import QApplication

    bad = tmp_path / "config.yaml"
    bad.write_text("version: 1\nbuckets: 3\n")
    seen: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        box.accept()

    QTimer.singleShot(20, answer)
    assert run(bad, ["s3vault"]) == 2
    assert seen and "buckets" in seen[0]


def test_the_first_start_without_a_config_opens_the_setup_and_cancel_writes_nothing(
    qtbot, tmp_path: Path, agent_socket: Path
) -> None:
    from s3vault.gui.app import first_setup
    from s3vault.gui.setup_wizard import SetupWizard

    ctx = AppContext(tmp_path / "missing.yaml", agent=AgentLink(agent_socket))
    shown: list[str] = []

    def cancel() -> None:
        wizard = QApplication.activeModalWidget()
        if not isinstance(wizard, SetupWizard):
            QTimer.singleShot(20, cancel)
            return
        shown.append(wizard.windowTitle())
        wizard.reject()

    QTimer.singleShot(20, cancel)
    assert first_setup(ctx) == "cancelled"
    assert shown and "s3vault" in shown[0]
    assert not (tmp_path / "missing.yaml").exists()


def test_the_real_app_process_raises_on_a_second_launch_and_quits_on_sigterm(
    tmp_path: Path, short_dir: Path
) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text("version: 1\nbuckets: [photos]\n")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(short_dir), QT_QPA_PLATFORM="offscreen")
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    command = [sys.executable, "-m", "s3vault", "--config", str(config), "gui"]
    first = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        gui_socket = short_dir / "s3vault" / "gui.sock"
        deadline = time.monotonic() + 30
        while not gui_socket.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)
        second = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
        assert second.returncode == 0
        assert b"already running" in second.stderr
        assert first.poll() is None, "the first app keeps running"
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0
        assert b"Traceback" not in first.communicate()[1]
        assert not gui_socket.exists(), "a clean quit removes its socket"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
