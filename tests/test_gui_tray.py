"""The tray: the state → icon/tooltip rule (pure), the controller driven offscreen
against a real agent, and the real QSystemTrayIcon under Xvfb with `trayer`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import AgentProcs, agent_procs, environ, write_config
from xdisplay import virtual_display

from s3vault.gui.activity import ActivityLog
from s3vault.gui.tray import TrayActions, TrayController, load_icon
from s3vault.gui.tray_state import ICONS, attention, tray_view

ROOT = Path(__file__).resolve().parent.parent


def status(state: str, **extra: Any) -> dict[str, Any]:
    return {"state": state, "folders": [], "errors": [], "progress": None, **extra}


CONFLICT = {"folder": "f", "path": "a.txt", "message": "conflict: both changed"}
FAILED = {"folder": "f", "path": "b.txt", "message": "permission denied"}


@pytest.mark.parametrize(
    ("snapshot", "icon", "tooltip"),
    [
        (status("idle"), "idle", "s3vault: up to date"),
        (
            status(
                "syncing",
                progress={"files_done": 3, "files_total": 10, "rate": 2_100_000.0},
            ),
            "syncing",
            "s3vault: syncing 3 of 10 files, 2.1 MB/s",
        ),
        (status("paused", paused=True), "paused", "s3vault: paused"),
        (
            status("offline", folders=[{"path": "/d", "state": "offline", "message": "S3 down"}]),
            "offline",
            "s3vault: offline: S3 down",
        ),
        (
            status("error", folders=[{"path": "/d", "state": "error", "message": "gone"}]),
            "error",
            "s3vault: error: gone",
        ),
    ],
)
def test_each_agent_state_has_its_icon_and_a_one_line_tooltip(snapshot, icon, tooltip) -> None:
    view = tray_view(snapshot, connected=True)
    assert (view.icon, view.tooltip) == (icon, tooltip)


def test_no_agent_is_the_offline_icon_saying_the_agent_is_not_running() -> None:
    view = tray_view(None, connected=False)
    assert view.icon == "offline" and view.tooltip == "s3vault: agent not running"
    assert not view.can_control


@pytest.mark.parametrize("state", ["idle", "syncing", "paused"])
def test_a_conflict_or_file_error_never_shows_a_calm_icon(state: str) -> None:
    with_conflict = tray_view(status(state, errors=[CONFLICT]), connected=True)
    assert with_conflict.icon == "attention"
    assert "1 conflict" in with_conflict.tooltip
    with_error = tray_view(status(state, errors=[FAILED, FAILED]), connected=True)
    assert with_error.icon == "attention" and "2 file errors" in with_error.tooltip


def test_protocol_2_attention_counts_and_a_refused_mass_delete_are_read() -> None:
    snapshot = status(
        "idle",
        attention={"errors": 0, "conflicts": 4},
        conflicts=[{"path": f"c{i}"} for i in range(4)],
        folders=[{"path": "/d", "state": "idle", "refused": {"message": "would delete 9"}}],
    )
    need = attention(snapshot)
    assert (need.errors, need.conflicts, need.refusals) == (0, 4, ("would delete 9",))
    assert tray_view(snapshot, connected=True).icon == "attention"


def test_every_icon_loads_from_the_package_and_the_icons_differ(qtbot) -> None:
    images = {}
    for name in (*ICONS, "app"):
        icon = load_icon(name)
        assert not icon.isNull()
        images[name] = icon.pixmap(22, 22).toImage()
    for a in ICONS:
        for b in ICONS:
            if a < b:
                assert images[a] != images[b], f"{a} and {b} look the same at 22 px"


class StandInTray:
    """What TrayController needs of a QSystemTrayIcon (there is none offscreen)."""

    def __init__(self) -> None:
        self.icon_key: int | None = None
        self.tooltip = ""
        self.menu: Any = None
        self.messages: list[tuple[str, str]] = []

    def setIcon(self, icon: Any) -> None:
        self.icon_key = icon.cacheKey()

    def setToolTip(self, tip: str) -> None:
        self.tooltip = tip

    def setContextMenu(self, menu: Any) -> None:
        self.menu = menu

    def show(self) -> None:
        pass

    def showMessage(self, title: str, msg: str, *args: Any) -> None:
        self.messages.append((title, msg))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "Documents"
    path.mkdir()
    return path


@pytest.fixture
def agents(tmp_path: Path, bucket: str, folder: Path, run_cli: Any) -> Iterator[AgentProcs]:
    config = write_config(tmp_path / "config.yaml", folder, bucket)
    assert run_cli("key", "generate", "agent-key").returncode == 0
    yield from agent_procs(config, environ())


def test_menu_pause_and_resume_drive_a_real_agent_and_the_icon_follows(qtbot, agents) -> None:
    from s3vault.gui.agent_link import AgentLink
    from s3vault.gui.context import AppContext

    agents.start()
    ctx = AppContext(agents.config, agent=AgentLink(agents.socket))
    opened: list[str] = []
    actions = TrayActions(
        open_window=lambda: opened.append("window"),
        show_activity=lambda: opened.append("activity"),
        quit_app=lambda: opened.append("quit"),
        stop_agent_and_quit=lambda: opened.append("stop"),
    )
    tray = StandInTray()
    controller = TrayController(ctx, tray, actions)
    try:
        assert tray.tooltip == "s3vault: agent not running"
        assert not controller.pause_action.isEnabled()
        ctx.agent.connect_now()
        qtbot.waitUntil(lambda: controller.view.icon == "idle", timeout=15000)
        assert tray.icon_key == load_icon("idle").cacheKey()
        assert controller.pause_action.text() == "Pause syncing"

        controller.pause_action.trigger()
        qtbot.waitUntil(lambda: controller.view.icon == "paused", timeout=10000)
        assert tray.tooltip == "s3vault: paused"
        assert tray.icon_key == load_icon("paused").cacheKey()
        assert controller.pause_action.text() == "Resume syncing"
        assert agents.cli("status", "--json").stdout.count(b'"paused": true') == 1

        controller.pause_action.trigger()
        qtbot.waitUntil(lambda: controller.view.icon == "idle", timeout=10000)
        assert controller.pause_action.text() == "Pause syncing"
        assert [e.what for e in ctx.activity.entries()][:2] == ["agent", "agent"]

        controller.fill_recent()
        texts = [a.text() for a in controller.recent_menu.actions()]
        assert any("resume" in t for t in texts) and texts[-1] == "Show all activity"
        controller.recent_menu.actions()[0].trigger()
        controller.open_action.trigger()
        assert opened == ["activity", "window"]
    finally:
        ctx.agent.close()
        assert ctx.jobs.shutdown(10_000)


def test_recent_activity_says_when_there_is_none(qtbot, ctx) -> None:
    assert isinstance(ctx.activity, ActivityLog)
    noop = TrayActions(lambda: None, lambda: None, lambda: None, lambda: None)
    controller = TrayController(ctx, StandInTray(), noop)
    first = controller.recent_menu.actions()[0]
    assert first.text() == "No activity yet" and not first.isEnabled()


PROBE = """
import sys
from pathlib import Path
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
from s3vault.gui.agent_link import AgentLink
from s3vault.gui.context import AppContext
from s3vault.gui.tray import TrayActions, TrayHost

app = QApplication(sys.argv)
print("available", QSystemTrayIcon.isSystemTrayAvailable(), flush=True)
ctx = AppContext(Path(sys.argv[1]), agent=AgentLink(Path(sys.argv[2])))
host = TrayHost(ctx, TrayActions(lambda: None, lambda: None, app.quit, app.quit))

def ready(controller):
    controller.menu.aboutToShow.connect(lambda: print("menu shown", flush=True))
    def report():
        g = host.icon.geometry()
        print("geometry", g.x(), g.y(), g.width(), g.height(), host.icon.isVisible(), flush=True)
    from PySide6.QtCore import QTimer
    QTimer.singleShot(500, report)

host.tray_ready.connect(ready)
host.no_tray.connect(lambda: (print("no tray", flush=True), app.exit(3)))
host.start()
from PySide6.QtCore import QSocketNotifier
notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
notifier.activated.connect(lambda *a: app.quit())  # the test closes stdin: quit
sys.exit(app.exec())
"""


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 20) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"probe ended before {prefix!r}: {proc.stderr.read()}")  # type: ignore[union-attr]
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no {prefix!r} within {timeout} s")


def test_the_real_tray_icon_shows_under_trayer_and_right_click_opens_its_menu(
    tmp_path: Path,
) -> None:
    script = tmp_path / "tray_probe.py"
    script.write_text(PROBE)
    with virtual_display(tray=True) as display:
        env = display.env()
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "none.yaml"), str(tmp_path / "a.sock")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert _read_line(proc, "available") == "available True"
            _, x, y, w, h, visible = _read_line(proc, "geometry").split()
            assert int(w) > 0 and int(h) > 0 and visible == "True"
            cx, cy = int(x) + int(w) // 2, int(y) + int(h) // 2
            # The icon sits in trayer's strip at the top right of the screen.
            assert cx > 1280 - 130 and cy < 40
            clicked = display.run("xdotool", "mousemove", str(cx), str(cy), "click", "3")
            assert clicked.returncode == 0, clicked.stderr
            assert _read_line(proc, "menu shown") == "menu shown"
            display.screenshot(tmp_path / "tray-menu.png")
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
