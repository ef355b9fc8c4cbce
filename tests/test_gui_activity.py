"""The Activity view and its model: newest first and bounded, the agent's entries merged
once, text and level filters, copy and clear, level icons from the style.

No services: the activity list is the app's own memory. The agent's snapshots go
through the agent link's real ``status`` signal (its end-to-end path is tested with a
real agent in test_gui_folders.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QStyle

from s3vault.gui import activity
from s3vault.gui.activity import LEVEL_ROLE, ActivityLog
from s3vault.gui.activity_view import PROBLEMS, ActivityView
from s3vault.gui.agent_link import AgentLink
from s3vault.gui.context import AppContext

NOW = 1_800_000_000.0
A = "s3://bucket/docs/"


@pytest.fixture
def ctx(qtbot: Any, tmp_path: Path) -> Iterator[AppContext]:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    with tempfile.TemporaryDirectory(prefix="s3v-act-") as tmp:
        context = AppContext(config, agent=AgentLink(Path(tmp) / "agent.sock"))
        yield context
        context.agent.close()


@pytest.fixture
def view(qtbot: Any, ctx: AppContext) -> ActivityView:
    widget = ActivityView(ctx)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _rows(view: ActivityView) -> list[tuple[str, str, str]]:
    proxy = view.proxy
    return [
        tuple(str(proxy.index(r, c).data()) for c in (1, 2, 3))  # type: ignore[misc]
        for r in range(proxy.rowCount())
    ]


def test_entries_are_newest_first_by_their_own_time_and_bounded(
    qtbot: Any, qtmodeltester: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ActivityLog()
    log.add("upload", "b.txt", "encrypted and uploaded", "done", at=NOW + 2)
    log.add("upload", "a.txt", "encrypted and uploaded", "done", at=NOW)
    log.add("sync", "c.txt", "permission denied", "error", at=NOW + 1)  # arrived late
    assert [e.item for e in log.entries()] == ["b.txt", "c.txt", "a.txt"]
    qtmodeltester.check(log)

    monkeypatch.setattr(activity, "MAX_ENTRIES", 3)
    log.add("upload", "older.txt", "x", at=NOW - 10)  # older than everything kept
    log.add("upload", "newest.txt", "x", at=NOW + 3)
    assert [e.item for e in log.entries()] == ["newest.txt", "b.txt", "c.txt"]
    assert log.index(2, 0).data(LEVEL_ROLE) == "error"
    qtmodeltester.check(log)


def test_levels_show_the_style_icons_and_say_their_name(qtbot: Any) -> None:
    log = ActivityLog()
    log.add("sync", "x", "permission denied", "error")
    log.add("upload", "y", "encrypted and uploaded", "done")
    style = QApplication.style()
    done_icon = log.index(0, 0).data(Qt.ItemDataRole.DecorationRole)
    error_icon = log.index(1, 0).data(Qt.ItemDataRole.DecorationRole)
    critical = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical)
    info = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
    assert error_icon.pixmap(16).toImage() == critical.pixmap(16).toImage()
    assert done_icon.pixmap(16).toImage() == info.pixmap(16).toImage()
    assert error_icon.pixmap(16).toImage() != done_icon.pixmap(16).toImage()
    assert log.index(1, 0).data(Qt.ItemDataRole.AccessibleTextRole).startswith("Error, ")
    assert log.index(1, 3).data(Qt.ItemDataRole.ToolTipRole) == "Error: permission denied"


def _snapshot(**more: Any) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "state": "idle",
        "folders": [{"folder": A, "path": "/home/me/docs", "state": "idle"}],
        "recent": [
            {"time": NOW, "event": "sync finished", "folder": A, "report": {"uploaded": 1}},
        ],
        "errors": [
            {"folder": A, "path": "locked.db", "message": "permission denied", "time": NOW},
        ],
    }
    snapshot.update(more)
    return snapshot


def test_agent_results_merge_in_once_as_snapshots_arrive(
    qtbot: Any, ctx: AppContext, view: ActivityView
) -> None:
    ctx.activity.add("upload", "/home/me/photo.jpg", "encrypted and uploaded", "done", at=NOW + 5)
    ctx.agent.status.emit(_snapshot())
    ctx.agent.status.emit(_snapshot())  # repeated: nothing new
    assert _rows(view) == [
        ("upload", "/home/me/photo.jpg", "encrypted and uploaded"),
        ("sync", "/home/me/docs/locked.db", "permission denied"),
        ("sync", "/home/me/docs", "1 uploaded"),
    ]
    files = [
        {"time": NOW + 6, "folder": A, "path": "new.txt", "action": "upload", "message": None},
        {"time": NOW + 7, "folder": A, "path": "both.txt", "action": "conflict",
         "message": "changed on both sides; kept both.conflict.txt"},
    ]  # fmt: skip
    ctx.agent.status.emit(_snapshot(protocol=2, files=files))
    assert _rows(view)[:2] == [
        ("conflict", "/home/me/docs/both.txt", "changed on both sides; kept both.conflict.txt"),
        ("upload", "/home/me/docs/new.txt", "encrypted and uploaded"),
    ]
    assert len(ctx.activity.entries()) == 5
    ActivityView(ctx).deleteLater()  # a second view does not merge the agent twice
    ctx.agent.status.emit(_snapshot(protocol=2, files=files, errors=[]))
    assert len(ctx.activity.entries()) == 5


def test_text_and_problem_filters(qtbot: Any, ctx: AppContext, view: ActivityView) -> None:
    ctx.activity.add("upload", "/home/me/Report.pdf", "encrypted and uploaded", "done")
    ctx.activity.add("download", "s3://bucket/x.bin", "access denied", "error")
    ctx.activity.add("sync", "/home/me/doc.txt", "conflict: changed on both sides", "warning")
    assert view.proxy.rowCount() == 3
    view.filter_edit.setText("REPORT")
    assert [r[1] for r in _rows(view)] == ["/home/me/Report.pdf"]
    view.filter_edit.setText("")
    view.level_box.setCurrentText(PROBLEMS)
    assert [r[0] for r in _rows(view)] == ["sync", "download"]
    view.filter_edit.setText("denied")
    assert [r[0] for r in _rows(view)] == ["download"]
    ctx.activity.add("sync", "/home/me/z", "permission denied", "error")  # live while filtered
    assert [r[0] for r in _rows(view)] == ["sync", "download"]


def test_copy_puts_selected_rows_on_the_clipboard_and_clear_empties(
    qtbot: Any, ctx: AppContext, view: ActivityView
) -> None:
    ctx.activity.add("upload", "/home/me/a.txt", "encrypted and uploaded", "done", at=NOW)
    ctx.activity.add("sync", "/home/me/b.db", "permission denied", "error", at=NOW + 1)
    ctx.activity.add("key", "laptop", "generated", "info", at=NOW + 2)
    view.table.selectRow(1)
    view.table.selectionModel().select(
        view.proxy.index(2, 0),
        view.table.selectionModel().SelectionFlag.Select
        | view.table.selectionModel().SelectionFlag.Rows,
    )
    view.copy_button.click()
    lines = QGuiApplication.clipboard().text().splitlines()
    assert [line.split("\t")[1:] for line in lines] == [
        ["Error", "sync", "/home/me/b.db", "permission denied"],
        ["Done", "upload", "/home/me/a.txt", "encrypted and uploaded"],
    ]
    view.clear_button.click()
    assert view.proxy.rowCount() == 0 and ctx.activity.entries() == []
