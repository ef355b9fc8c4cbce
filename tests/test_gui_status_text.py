"""The app's status words and the reading of agent snapshots: pure functions, no Qt,
no services (the folders view, activity view and tray all show these)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3vault.config.sync import FolderSettings
from s3vault.gui.agent_activity import AgentFeed
from s3vault.gui.folder_status import (
    NOT_IN_AGENT,
    NOT_RUNNING,
    FolderStatus,
    Progress,
    folder_statuses,
    per_folder_control,
)
from s3vault.gui.status_text import (
    folder_state_text,
    overall_text,
    progress_text,
    relative_time,
    report_summary,
    size,
)

NOW = 1_800_000_000.0
A = "s3://bucket/a/"


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (2_100_000, "2.1 MB"),
        (12_000_000, "12 MB"),
        (40_400_000, "40 MB"),
        (5 * 10**12, "5.0 TB"),
    ],
)
def test_sizes_read_like_a_file_manager(count: int, text: str) -> None:
    assert size(count) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (0, "just now"),
        (4, "just now"),
        (40, "40 s ago"),
        (120, "2 min ago"),
        (3599, "59 min ago"),
        (3 * 3600, "3 h ago"),
        (86400 + 5, "yesterday"),
        (5 * 86400, "5 days ago"),
        (-30, "in 30 s"),
        (-300, "in 5 min"),
    ],
)
def test_relative_times(delta: float, text: str) -> None:
    assert relative_time(NOW - delta, NOW) == text


def test_relative_time_of_nothing_is_never() -> None:
    assert relative_time(None, NOW) == "never"


def test_progress_line_names_files_bytes_and_rate() -> None:
    progress = Progress(3, 10, 12_000_000, 40_000_000, 2_100_000.0)
    assert progress_text(progress) == "syncing 3 of 10 files, 12 MB of 40 MB, 2.1 MB/s"
    assert progress_text(Progress(0, 1, 0, 0, 0.0)) == "syncing 0 of 1 file"
    assert progress_text(Progress()) == "syncing: looking for changes"
    assert Progress(1, 4, 0, 0).fraction == 0.25
    assert Progress(1, 4, 30, 60).fraction == 0.5
    assert Progress().fraction is None


def test_folder_state_text_says_retry_time_and_problems() -> None:
    offline = FolderStatus(
        A, "/home/me/a", "offline", message="S3 unreachable", next_retry=NOW + 30
    )
    assert folder_state_text(offline, NOW) == "Offline: retry in 30 s"
    with_conflicts = FolderStatus(A, "/home/me/a", "idle", conflict_count=2, error_count=1)
    assert folder_state_text(with_conflicts, NOW) == "Idle, 2 conflicts, 1 error"
    assert folder_state_text(FolderStatus(A, "/a", NOT_RUNNING), NOW) == "Agent not running"


def test_report_summary_counts_only_what_happened() -> None:
    report = {"uploaded": 3, "copied": 1, "deleted": 0, "conflicts": [], "conflicts_count": 1}
    assert report_summary(report) == "3 uploaded, 1 renamed, 1 conflict"
    assert report_summary({"uploaded": 0, "errors": [], "errors_count": 0}) == "no changes"


def test_overall_text_of_the_agent() -> None:
    assert overall_text(None) == "Agent not running"
    assert overall_text({"state": "paused"}) == "Paused"
    syncing = {
        "state": "syncing",
        "progress": {"files_done": 1, "files_total": 2, "bytes_done": 0, "bytes_total": 0},
    }
    assert overall_text(syncing) == "Syncing 1 of 2 files"


# ---- reading snapshots -------------------------------------------------------------


def _settings(tmp: Path, name: str) -> FolderSettings:
    return FolderSettings(path=tmp / name, bucket="bucket", prefix=name, key="k")


def _folder(folder_id: str, path: str, state: str = "idle", **more: object) -> dict[str, object]:
    return {
        "folder": folder_id,
        "path": path,
        "state": state,
        "message": None,
        "last_sync": NOW,
        "last_report": None,
        "next_retry": None,
        **more,
    }


def test_without_an_agent_every_configured_folder_says_agent_not_running(tmp_path: Path) -> None:
    rows = folder_statuses([_settings(tmp_path, "a"), _settings(tmp_path, "b")], None)
    assert [(r.folder_id, r.state) for r in rows] == [
        ("s3://bucket/a/", NOT_RUNNING),
        ("s3://bucket/b/", NOT_RUNNING),
    ]
    assert rows[0].bucket == "bucket" and rows[0].prefix == "a/" and rows[0].name == "a"


def test_protocol_1_snapshot_global_pause_progress_and_conflicts_among_errors(
    tmp_path: Path,
) -> None:
    a, b = _settings(tmp_path, "a"), _settings(tmp_path, "b")
    snapshot = {
        "state": "syncing",
        "paused": True,
        "progress": {
            "folder": A,
            "files_done": 1,
            "files_total": 2,
            "bytes_done": 5,
            "bytes_total": 10,
            "rate": 5.0,
            "current": "x.txt",
        },
        "folders": [
            _folder(A, str(a.path), "syncing"),
            _folder("s3://bucket/old/", "/old", "idle"),
        ],
        "errors": [
            {"folder": A, "path": "locked.db", "message": "permission denied", "time": NOW},
            {"folder": A, "path": "doc.txt", "message": "conflict: both changed", "time": NOW},
        ],
    }
    rows = folder_statuses([a, b], snapshot)
    assert [(r.folder_id, r.state, r.configured) for r in rows] == [
        (A, "syncing", True),  # a reconcile in progress finishes before the pause
        ("s3://bucket/b/", NOT_IN_AGENT, True),
        ("s3://bucket/old/", "paused", False),
    ]
    first = rows[0]
    assert first.progress == Progress(1, 2, 5, 10, 5.0, "x.txt")
    assert (first.error_count, first.conflict_count) == (1, 1)
    assert [(p.path, p.kind, p.message) for p in first.problems] == [
        ("locked.db", "error", "permission denied"),
        ("doc.txt", "conflict", "both changed"),
    ]
    assert not per_folder_control(snapshot)


def test_protocol_2_snapshot_per_folder_pause_and_conflict_list(tmp_path: Path) -> None:
    a = _settings(tmp_path, "a")
    snapshot = {
        "protocol": 2,
        "state": "idle",
        "paused": False,
        "folders": [_folder(A, str(a.path), "paused", paused=True, conflicts=3)],
        "conflicts": [{"folder": A, "path": "doc.txt", "reason": "both changed", "time": NOW}],
        "errors": [
            {"folder": A, "path": "doc.txt", "message": "conflict: both changed", "time": NOW}
        ],
    }
    (row,) = folder_statuses([a], snapshot)
    assert row.state == "paused"
    assert row.conflict_count == 3  # the count covers more than the bounded list
    assert [(p.path, p.kind) for p in row.problems] == [("doc.txt", "conflict")]
    assert per_folder_control(snapshot)


# ---- the agent's entries for the activity list ----------------------------------------


def test_agent_feed_passes_each_entry_on_once_and_skips_quiet_rescans() -> None:
    feed = AgentFeed()
    snapshot: dict[str, object] = {
        "folders": [_folder(A, "/home/me/a")],
        "recent": [
            {"time": NOW, "event": "sync started", "folder": A},
            {
                "time": NOW + 1,
                "event": "sync finished",
                "folder": A,
                "report": {"uploaded": 0, "errors_count": 0},
            },
            {
                "time": NOW + 2,
                "event": "sync finished",
                "folder": A,
                "report": {"uploaded": 2, "errors_count": 1},
            },
        ],
        "errors": [
            {"folder": A, "path": "x/locked.db", "message": "permission denied", "time": NOW + 2},
            {"folder": A, "path": "y.db", "message": "permission denied", "time": NOW + 2},
        ],
    }
    first = feed.entries(snapshot)
    assert [(e.what, e.item, e.result, e.level) for e in first] == [
        ("sync", "/home/me/a/x/locked.db", "permission denied", "error"),
        ("sync", "/home/me/a/y.db", "permission denied", "error"),
        ("sync", "/home/me/a", "2 uploaded, 1 error", "warning"),
    ]
    assert feed.entries(snapshot) == []  # the same snapshot again: nothing new
    snapshot["files"] = [
        {"time": NOW + 3, "folder": A, "path": "new.txt", "action": "upload", "message": None},
        {
            "time": NOW + 3,
            "folder": A,
            "path": "y.db",
            "action": "error",
            "message": "permission denied",
        },
    ]
    snapshot["errors"] = [
        {"folder": A, "path": "y.db", "message": "permission denied", "time": NOW + 3},
    ]
    later = feed.entries(snapshot)
    assert [(e.what, e.item, e.result, e.level) for e in later] == [
        ("upload", "/home/me/a/new.txt", "encrypted and uploaded", "done"),
        ("error", "/home/me/a/y.db", "permission denied", "error"),  # once, not twice
    ]


def test_home_relative_writes_the_home_folder_as_a_tilde_only_at_a_path_start() -> None:
    from s3vault.gui.status_text import home_relative

    home = "/home/ana"
    assert home_relative("/home/ana/Documents → s3://b/p/", home) == "~/Documents → s3://b/p/"
    assert home_relative("delete 3 of 4 files of /home/ana/Photos", home) == (
        "delete 3 of 4 files of ~/Photos"
    )
    assert home_relative("/home/anathema/x", home) == "/home/anathema/x"  # not her home
    assert home_relative("/home/ana/x", "/") == "/home/ana/x"  # root's home: left alone
