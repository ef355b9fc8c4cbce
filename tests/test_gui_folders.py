"""The Folders view: each synced folder with its live state, pushed by a real agent;
pause / resume; adding and removing a folder (config edits only).

Snapshot-update logic is also driven with hand-made snapshots through the agent
link's real ``status`` signal (fields of protocol 2 that no agent sends yet, and
exact dataChanged counts); everything the agent does is checked against a real
`s3vault agent --foreground` process and SeaweedFS.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import AgentProcs, agent_procs, environ
from gui_helpers import write_gui_config
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from s3vault.config.load import load_config
from s3vault.gui.activity_view import ActivityView
from s3vault.gui.agent_link import AgentLink
from s3vault.gui.context import AppContext
from s3vault.gui.folder_status import NOT_RUNNING
from s3vault.gui.folders_model import LAST_SYNC, PROGRESS_ROLE, STATE
from s3vault.gui.folders_view import FoldersView

NOW = 1_800_000_000.0
SYNC_TIMEOUT = 30_000  # ms; generous: 2 cores shared with parallel runs


def _config(
    path: Path, bucket: str, folders: list[Path], *, key: str = "gui-key", extra: str = ""
) -> Path:
    lines = "".join(
        f"  # folder {p.name}\n  - {{path: {p}, bucket: {bucket}, prefix: {p.name}, key: {key}}}\n"
        for p in folders
    )
    agent = "agent: {debounce_ms: 200, rescan_interval: 1h, workers: 2}\n"
    return write_gui_config(path, bucket, extra=f"folders:\n{lines}{agent}{extra}")


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="s3v-fold-") as tmp:
        yield Path(tmp)


def _context(config: Path, socket: Path) -> AppContext:
    return AppContext(config, agent=AgentLink(socket))


@pytest.fixture
def offline_ctx(qtbot: Any, tmp_path: Path, socket_dir: Path) -> Iterator[AppContext]:
    """Two configured folders (a bucket name only: nothing here touches S3) and no agent."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    ctx = _context(_config(tmp_path / "config.yaml", "bucket", folders), socket_dir / "agent.sock")
    yield ctx
    ctx.agent.close()
    assert ctx.jobs.shutdown(30_000)


def _snapshot(ctx: AppContext, **folder_fields: dict[str, Any]) -> dict[str, Any]:
    """A protocol-1 snapshot of the configured folders, idle unless told otherwise."""
    folders = []
    for f in ctx.config.folders:
        entry = {
            "folder": f.folder_id,
            "path": str(f.path),
            "state": "idle",
            "message": None,
            "last_sync": NOW,
            "last_report": None,
            "next_retry": None,
        }
        entry.update(folder_fields.get(f.path.name, {}))
        folders.append(entry)
    return {
        "state": "idle",
        "paused": False,
        "progress": None,
        "folders": folders,
        "recent": [],
        "errors": [],
        "version": 1,
    }


def _view(qtbot: Any, ctx: AppContext, **kwargs: Any) -> FoldersView:
    view = FoldersView(ctx, **kwargs)
    qtbot.addWidget(view)
    view.show()
    return view


def _state_text(view: FoldersView, row: int) -> str:
    return str(view.model.index(row, STATE).data())


# ---- without an agent, and the update logic ----------------------------------------


def test_configured_folders_show_agent_not_running_without_an_agent(
    qtbot: Any, offline_ctx: AppContext, qtmodeltester: Any
) -> None:
    view = _view(qtbot, offline_ctx)
    with qtbot.waitSignal(offline_ctx.agent.connected_changed, timeout=5000) as blocker:
        offline_ctx.agent.connect_now()
    assert blocker.args == [False]
    assert view.model.rowCount() == 2
    assert [view.model.status(r).state for r in range(2)] == [NOT_RUNNING, NOT_RUNNING]
    assert _state_text(view, 0) == "Agent not running"
    assert view.model.index(0, 0).data() == "a"
    assert view.model.index(0, 1).data() == "s3://bucket/a/"
    assert not view.pause_button.isEnabled() and not view.sync_button.isEnabled()
    assert not view.pause_all_button.isEnabled()
    assert view.add_button.isEnabled() and view.remove_button.isEnabled()
    assert "not running" in view.pause_button.toolTip()
    qtmodeltester.check(view.model)


def test_a_snapshot_changes_only_the_rows_that_changed(qtbot: Any, offline_ctx: AppContext) -> None:
    view = _view(qtbot, offline_ctx, clock=lambda: NOW + 120)
    changed: list[tuple[int, int]] = []
    resets: list[bool] = []
    view.model.dataChanged.connect(lambda tl, br, _roles=(): changed.append((tl.row(), br.row())))
    view.model.modelReset.connect(lambda: resets.append(True))

    offline_ctx.agent.status.emit(_snapshot(offline_ctx))
    assert sorted(changed) == [(0, 0), (1, 1)] and not resets  # not running -> idle
    assert view.model.index(1, LAST_SYNC).data() == "2 min ago"

    changed.clear()
    syncing = _snapshot(offline_ctx, b={"state": "syncing"})
    b_id = offline_ctx.config.folders[1].folder_id
    syncing["progress"] = {
        "folder": b_id,
        "files_done": 3,
        "files_total": 10,
        "bytes_done": 12_000_000,
        "bytes_total": 40_000_000,
        "rate": 2_100_000.0,
        "current": "big.bin",
    }
    offline_ctx.agent.status.emit(syncing)
    assert changed == [(1, 1)] and not resets
    assert _state_text(view, 1) == "Syncing 3 of 10 files, 12 MB of 40 MB, 2.1 MB/s"
    assert view.model.index(1, STATE).data(PROGRESS_ROLE) == pytest.approx(0.3)
    assert not view.table.viewport().grab().isNull()  # the progress bar cell paints

    changed.clear()
    offline_ctx.agent.status.emit(syncing)  # the same snapshot again: nothing to redraw
    assert changed == [] and not resets

    offline_ctx.agent.connected_changed.emit(False)
    assert [view.model.status(r).state for r in range(2)] == [NOT_RUNNING, NOT_RUNNING]


def test_details_pane_shows_the_reason_retry_time_and_problem_files(
    qtbot: Any, offline_ctx: AppContext
) -> None:
    view = _view(qtbot, offline_ctx, clock=lambda: NOW)
    a_id = offline_ctx.config.folders[0].folder_id
    snapshot = _snapshot(
        offline_ctx, a={"state": "offline", "message": "S3 is unreachable", "next_retry": NOW + 30}
    )
    snapshot["errors"] = [
        {"folder": a_id, "path": "locked.db", "message": "permission denied", "time": NOW},
        {
            "folder": a_id,
            "path": "doc.txt",
            "message": "conflict: changed on both sides",
            "time": NOW,
        },
    ]
    offline_ctx.agent.status.emit(snapshot)
    view.select(a_id)
    summary = view.details.summary.text()
    assert "S3 is unreachable" in summary and "Next try in 30 s" in summary
    assert _state_text(view, 0) == "Offline: retry in 30 s, 1 conflict, 1 error"
    tree = view.details.problems
    rows = [
        (tree.topLevelItem(i).text(0), tree.topLevelItem(i).text(1))
        for i in range(tree.topLevelItemCount())
    ]
    assert rows == [
        ("locked.db", "permission denied"),
        ("doc.txt", "Conflict: changed on both sides"),
    ]
    assert view.model.index(0, 4).data() == "1 conflict, 1 error"


def test_per_folder_pause_needs_a_protocol_2_agent(qtbot: Any, offline_ctx: AppContext) -> None:
    view = _view(qtbot, offline_ctx)
    offline_ctx.agent.status.emit(_snapshot(offline_ctx))
    view.table.selectRow(0)
    assert not view.pause_button.isEnabled()
    assert "too old" in view.pause_button.toolTip()
    assert view.pause_all_button.isEnabled() and not view.resume_all_button.isEnabled()

    newer = _snapshot(offline_ctx, a={"paused": True, "state": "paused"})
    newer["protocol"] = 2
    offline_ctx.agent.status.emit(newer)
    assert view.pause_button.isEnabled() and view.pause_button.text() == "Resume"
    assert view.resume_all_button.isEnabled()
    view.table.selectRow(1)
    assert view.pause_button.text() == "Pause"


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_open_folder_and_show_in_browser(qtbot: Any, offline_ctx: AppContext) -> None:
    view = _view(qtbot, offline_ctx)
    view.table.selectRow(1)
    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        view.open_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in catcher.urls] == [str(offline_ctx.config.folders[1].path)]
    with qtbot.waitSignal(view.browse_requested) as blocker:
        view.browse_button.click()
    assert blocker.args == ["bucket", "b/"]


def test_a_managed_config_disables_add_and_remove(
    qtbot: Any, tmp_path: Path, socket_dir: Path
) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    config = _config(tmp_path / "config.yaml", "bucket", [folder], extra="managed_by: ansible\n")
    ctx = _context(config, socket_dir / "agent.sock")
    view = _view(qtbot, ctx)
    assert not view.add_button.isEnabled() and not view.remove_button.isEnabled()
    assert "managed by ansible" in view.add_button.toolTip()
    ctx.agent.close()


# ---- adding and removing a folder (the config file only) ------------------------------


@pytest.fixture
def keyed_ctx(qtbot: Any, tmp_path: Path, socket_dir: Path, gui_key: str) -> Iterator[AppContext]:
    """One configured folder; a real key store (the dialog lists its master keys)."""
    folder = tmp_path / "a"
    folder.mkdir()
    ctx = _context(
        _config(tmp_path / "config.yaml", "bucket", [folder], key=gui_key), socket_dir / "s"
    )
    yield ctx
    ctx.agent.close()
    assert ctx.jobs.shutdown(30_000)


def test_add_folder_validates_then_writes_the_config_keeping_comments(
    qtbot: Any, keyed_ctx: AppContext, tmp_path: Path
) -> None:
    view = _view(qtbot, keyed_ctx)
    view.add_button.click()
    dialog = view.dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.key_edit.findText("gui-key") >= 0)

    def refused(path: Path, bucket: str, expected: str) -> None:
        dialog.path_edit.setText(str(path))
        dialog.bucket_edit.setCurrentText(bucket)
        dialog.ok_button.click()
        qtbot.waitUntil(
            lambda: expected in dialog.error_label.text() and dialog.ok_button.isEnabled()
        )
        assert dialog.isVisible()

    refused(tmp_path / "new", "my bucket", "not a bucket name")
    refused(tmp_path / "missing", "bucket", "is not a folder")
    inside = tmp_path / "a" / "inner"
    inside.mkdir()
    refused(inside, "bucket", "overlap")

    new = tmp_path / "new"
    new.mkdir()
    dialog.path_edit.setText(str(new))
    dialog.prefix_edit.setText("laptop/new")
    dialog.key_edit.setCurrentText("gui-key")
    assert "s3://bucket/laptop/new/" in dialog.preview.text()
    with qtbot.waitSignal(view.agent_restart_needed, timeout=10_000):
        dialog.ok_button.click()
    text = keyed_ctx.config_path.read_text()
    assert text.startswith("# s3vault config of a GUI test\n") and "# folder a" in text
    folders = load_config(keyed_ctx.config_path).folders
    assert [(f.path, f.folder_id, f.key) for f in folders][1] == (
        new,
        "s3://bucket/laptop/new/",
        "gui-key",
    )
    assert view.model.rowCount() == 2  # the view follows the reloaded config
    assert view.selected() is not None and view.selected().folder_id == "s3://bucket/laptop/new/"
    assert keyed_ctx.activity.entries()[0].what == "add folder"


def test_remove_folder_asks_and_removes_only_the_config_entry(
    qtbot: Any, keyed_ctx: AppContext, tmp_path: Path
) -> None:
    kept = tmp_path / "a" / "notes.txt"
    kept.write_text("stays")
    view = _view(qtbot, keyed_ctx)
    view.table.selectRow(0)
    before = keyed_ctx.config_path.read_text()

    view.remove_button.click()
    box = view.confirm_box
    assert box is not None and "Nothing is deleted" in box.informativeText()
    box.reject()  # Cancel: nothing changes
    qtbot.waitUntil(lambda: view.confirm_box is None)
    assert keyed_ctx.config_path.read_text() == before

    view.remove_button.click()
    box = view.confirm_box
    assert box is not None
    remove = next(b for b in box.buttons() if b.text() == "Remove from config")
    with qtbot.waitSignal(view.agent_restart_needed, timeout=10_000):
        remove.click()
    assert load_config(keyed_ctx.config_path).folders == []
    assert keyed_ctx.config_path.read_text().startswith("# s3vault config of a GUI test\n")
    assert kept.read_text() == "stays"
    assert view.model.rowCount() == 0


# ---- with a real agent ---------------------------------------------------------------


@pytest.fixture
def live(
    qtbot: Any, tmp_path: Path, bucket: str, gui_key: str
) -> Iterator[tuple[AppContext, AgentProcs, Path]]:
    folder = tmp_path / "docs"
    folder.mkdir()
    config = _config(tmp_path / "config.yaml", bucket, [folder], key=gui_key)
    for agents in agent_procs(config, environ()):
        agents.start()
        ctx = _context(config, agents.socket)
        try:
            yield ctx, agents, folder
        finally:
            ctx.agent.close()
            assert ctx.jobs.shutdown(30_000)


def test_live_agent_idle_then_a_new_file_syncs_and_shows_in_activity(qtbot: Any, live: Any) -> None:
    ctx, _agents, folder = live
    view = _view(qtbot, ctx)
    activity = ActivityView(ctx)
    qtbot.addWidget(activity)
    states: list[str] = []
    ctx.agent.status.connect(lambda _s: states.append(view.model.status(0).state))
    ctx.agent.connect_now()

    # The first reconcile of an empty folder: idle, with a last-sync time.
    qtbot.waitUntil(
        lambda: view.model.status(0).state == "idle" and view.model.status(0).last_sync is not None,
        timeout=SYNC_TIMEOUT,
    )
    assert re.fullmatch(r"just now|\d+ s ago", view.model.index(0, LAST_SYNC).data())
    assert view.pause_all_button.isEnabled()

    states.clear()
    (folder / "report.txt").write_text("quarterly numbers")
    qtbot.waitUntil(lambda: "syncing" in states and states[-1] == "idle", timeout=SYNC_TIMEOUT)
    item = str(folder)
    qtbot.waitUntil(
        lambda: any(e.item == item and e.result == "1 uploaded" for e in ctx.activity.entries()),
        timeout=5000,
    )
    # A protocol-2 agent also reports the file itself.
    if ctx.agent.last_status is not None and "files" in ctx.agent.last_status:
        file_item = str(folder / "report.txt")
        assert any(e.item == file_item for e in ctx.activity.entries())
    assert activity.proxy.rowCount() == len(ctx.activity.entries())


def test_live_pause_all_resume_all_and_sync_now_from_the_view(qtbot: Any, live: Any) -> None:
    ctx, _agents, _folder = live
    view = _view(qtbot, ctx)
    ctx.agent.connect_now()
    qtbot.waitUntil(lambda: view.model.status(0).state == "idle", timeout=SYNC_TIMEOUT)
    view.pause_all_button.click()
    qtbot.waitUntil(lambda: view.model.status(0).state == "paused", timeout=SYNC_TIMEOUT)
    assert _state_text(view, 0) == "Paused"
    assert view.resume_all_button.isEnabled() and not view.pause_all_button.isEnabled()
    view.resume_all_button.click()
    qtbot.waitUntil(lambda: view.model.status(0).state == "idle", timeout=SYNC_TIMEOUT)
    assert view.pause_all_button.isEnabled()

    reconciles = ctx.agent.last_status["reconciles"]
    view.sync_button.click()
    qtbot.waitUntil(
        lambda: (
            ctx.agent.last_status["reconciles"] > reconciles
            and view.model.status(0).state == "idle"
        ),
        timeout=SYNC_TIMEOUT,
    )
