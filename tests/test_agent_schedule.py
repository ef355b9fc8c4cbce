"""The agent's scheduling, status and event translation, with a fake clock.

The engine here is a stand-in that records its calls (the real one is exercised by
tests/test_agent_socket.py); these tests are about *when* the agent reconciles what.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest
from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)
from watchdog.observers import Observer

from s3vault.agent.status import MAX_FILE_ERRORS, MAX_RECENT, AgentStatus
from s3vault.agent.watcher import (
    BACKOFF_MAX,
    BACKOFF_START,
    RELOOK_AFTER,
    FolderRun,
    FolderWatch,
    Job,
    Schedule,
    SyncLoop,
    WatchLimitError,
    translate_watch_error,
)
from s3vault.config.sync import FolderSettings
from s3vault.errors import RefusedError, UnreachableError
from s3vault.sync.events import Debouncer, FsEvent
from s3vault.sync.ignore import IgnoreRules
from s3vault.sync.report import PathError, SyncProgress, SyncReport


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(clock: Clock, rescan: float = 3600) -> tuple[Schedule, Debouncer]:
    debouncer = Debouncer(0.5, clock=clock)
    return Schedule(debouncer, rescan_interval=rescan, now=clock()), debouncer


# ---- Schedule ------------------------------------------------------------------------


def test_start_is_a_full_reconcile_with_the_listing_then_quiet():
    clock = Clock()
    s, _ = schedule(clock)
    job = s.next_job(clock())
    assert job == Job("start", None, with_remote_listing=True)
    s.succeeded(job, clock())
    assert s.next_job(clock()) is None
    assert s.next_wake() == clock() + 3600


def test_events_wait_for_the_debounce_then_come_as_one_batch():
    clock = Clock()
    s, debouncer = schedule(clock)
    s.succeeded(s.next_job(clock()), clock())
    debouncer.add(FsEvent("created", "a.txt"))
    debouncer.add(FsEvent("moved", "b.txt", dest="c.txt"))
    assert s.next_job(clock()) is None
    assert s.next_wake() == pytest.approx(clock() + 0.5)
    clock.now += 0.5
    assert s.next_job(clock()) == Job("changes", frozenset({"a.txt", "b.txt", "c.txt"}))
    assert s.next_job(clock()) is None


def test_periodic_rescan_lists_and_zero_means_never():
    clock = Clock()
    s, _ = schedule(clock, rescan=60)
    s.succeeded(s.next_job(clock()), clock())
    clock.now += 60
    job = s.next_job(clock())
    assert job == Job("rescan", None, with_remote_listing=True)
    s.succeeded(job, clock())
    assert s.next_wake() == clock() + 60

    s0, _ = schedule(clock, rescan=0)
    s0.succeeded(s0.next_job(clock()), clock())
    clock.now += 10**6
    assert s0.next_job(clock()) is None and s0.next_wake() is None


def test_a_full_reconcile_takes_the_held_events_with_it():
    clock = Clock()
    s, debouncer = schedule(clock)
    debouncer.add(FsEvent("modified", "a.txt"))
    assert s.next_job(clock()).paths is None
    assert len(debouncer) == 0


def test_offline_retries_in_full_with_doubling_backoff_capped():
    clock = Clock()
    s, debouncer = schedule(clock)
    job = s.next_job(clock())
    delays = []
    for _ in range(10):
        retry_at = s.failed(job, clock(), retry=True)
        delays.append(retry_at - clock())
        assert s.next_job(clock()) is None  # not before the backoff
        debouncer.add(FsEvent("modified", "x"))  # events wait too
        clock.now = retry_at
        job = s.next_job(clock())
        # Still the start-up reconcile, still with the listing it never got.
        assert job == Job("start", None, with_remote_listing=True)
    assert delays[:3] == [BACKOFF_START, 2 * BACKOFF_START, 4 * BACKOFF_START]
    assert delays[-1] == BACKOFF_MAX
    s.succeeded(job, clock())
    assert s.backoff == BACKOFF_START and s.retry_at is None


def test_a_failed_batch_becomes_a_full_reconcile():
    clock = Clock()
    s, _ = schedule(clock)
    s.succeeded(s.next_job(clock()), clock())
    retry_at = s.failed(Job("changes", frozenset({"a"})), clock(), retry=True)
    clock.now = retry_at
    # A failure ends the trust in the last listing: the retry lists again.
    assert s.next_job(clock()) == Job("retry", None, with_remote_listing=True)


def test_refused_is_not_retried_until_rescan_or_sync_now():
    clock = Clock()
    s, _ = schedule(clock, rescan=600)
    job = s.next_job(clock())
    assert s.failed(job, clock(), retry=False) is None
    assert s.next_job(clock() + 599) is None
    s.sync_now()
    assert s.next_job(clock()) == Job("sync-now", None, with_remote_listing=True)


def test_sync_now_cuts_a_backoff_short():
    clock = Clock()
    s, _ = schedule(clock)
    s.failed(s.next_job(clock()), clock(), retry=True)
    s.sync_now()
    assert s.next_job(clock()) == Job("sync-now", None, with_remote_listing=True)


def changes_job(s: Schedule, debouncer: Debouncer, clock: Clock, path: str) -> Job:
    debouncer.add(FsEvent("modified", path))
    clock.now += 0.5
    job = s.next_job(clock())
    assert job is not None and job.paths == frozenset({path})
    return job


def test_targeted_runs_go_without_listing_while_the_last_listing_is_trusted():
    clock = Clock()
    s, debouncer = schedule(clock, rescan=600)
    start = s.next_job(clock())  # the start-up run, with the listing, taking 500 s
    clock.now += 500
    s.succeeded(start, clock())
    job = changes_job(s, debouncer, clock, "a.txt")
    assert not job.with_remote_listing
    s.succeeded(job, clock())
    # The window is the rescan interval from when the listing was taken: past it (the
    # rescan not due yet), a targeted run lists for itself.
    clock.now += 100
    assert changes_job(s, debouncer, clock, "b.txt").with_remote_listing


def test_the_listing_is_trusted_at_most_an_hour_whatever_the_rescan_interval():
    clock = Clock()
    s, debouncer = schedule(clock, rescan=0)  # rescans never: at start only
    s.succeeded(s.next_job(clock()), clock())
    assert s.listing_window == 3600
    clock.now += 3000
    assert not changes_job(s, debouncer, clock, "a.txt").with_remote_listing
    clock.now += 600
    assert changes_job(s, debouncer, clock, "a.txt").with_remote_listing


def test_no_trust_before_a_listed_run_nor_after_one_that_disagreed():
    clock = Clock()
    s, debouncer = schedule(clock)
    start = s.next_job(clock())
    s.failed(start, clock(), retry=False)  # refused: nothing listed that can be trusted
    assert changes_job(s, debouncer, clock, "a.txt").with_remote_listing
    s.sync_now()
    s.succeeded(s.next_job(clock()), clock(), agreed=False)  # it found a conflict
    assert changes_job(s, debouncer, clock, "b.txt").with_remote_listing
    s.sync_now()
    s.succeeded(s.next_job(clock()), clock())
    job = changes_job(s, debouncer, clock, "c.txt")
    assert not job.with_remote_listing
    # A targeted run that meets a conflict (S3 changed behind the listing's back)
    # ends the trust too, and a full run without the listing does not restore it.
    s.succeeded(job, clock(), agreed=False)
    assert changes_job(s, debouncer, clock, "d.txt").with_remote_listing


# ---- SyncLoop with a recording stand-in engine ---------------------------------------


def a_report(errors=()):
    """A report like the engine returns after uploading one file."""
    return SyncReport(folder="s3://b/p/", uploaded=1, errors=list(errors))


class Engine:
    """Answers each reconcile with the next outcome (an exception or a report)."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def reconcile(
        self, *, paths=None, force=False, dry_run=False, with_remote_listing=True, progress=None
    ):
        self.calls.append((paths, with_remote_listing))
        outcome = self.outcomes.pop(0) if self.outcomes else a_report()
        if isinstance(outcome, Exception):
            raise outcome
        if progress is not None:
            progress(SyncProgress(files_done=1, files_total=2, bytes_done=0, bytes_total=0))
        return outcome


def loop_with(engine, clock):
    status = AgentStatus([("s3://b/p/", "/data")], clock=lambda: 5.0)
    s, debouncer = schedule(clock)
    loop = SyncLoop(
        [FolderRun("s3://b/p/", engine, s)],
        status,
        lock=threading.Lock(),
        clock=clock,
    )
    return loop, status, debouncer


def test_loop_offline_then_back():
    clock = Clock()
    engine = Engine(UnreachableError("S3 did not answer"))
    loop, status, _ = loop_with(engine, clock)
    loop.run_once()
    snap = status.snapshot()
    assert snap["state"] == "offline"
    assert snap["folders"][0]["message"] == "S3 did not answer"
    assert snap["folders"][0]["next_retry"] is not None
    loop.run_once()
    assert len(engine.calls) == 1  # backing off
    clock.now += BACKOFF_START
    loop.run_once()
    assert engine.calls == [(None, True), (None, True)]
    snap = status.snapshot()
    assert snap["state"] == "idle"
    last = snap["folders"][0]["last_report"]
    assert (last["uploaded"], last["errors"], last["errors_count"]) == (1, [], 0)
    assert [r["event"] for r in snap["recent"]] == [
        "sync started",
        "sync offline",
        "sync started",
        "sync finished",
    ]


def test_loop_guard_refusal_is_an_error_state():
    clock = Clock()
    loop, status, _ = loop_with(Engine(RefusedError("folder suddenly empty")), clock)
    loop.run_once()
    assert status.snapshot()["state"] == "error"


def test_loop_pause_holds_changes_until_resume():
    clock = Clock()
    engine = Engine()
    loop, status, debouncer = loop_with(engine, clock)
    loop.run_once()
    loop.pause()
    debouncer.add(FsEvent("modified", "a.txt"))
    clock.now += 10
    loop.run_once()
    assert status.snapshot()["state"] == "paused"
    assert len(engine.calls) == 1
    loop.resume()
    loop.run_once()
    assert engine.calls[-1] == (frozenset({"a.txt"}), False)
    assert status.snapshot()["state"] == "idle"


def test_loop_file_errors_reach_the_status_and_clear_when_fixed():
    clock = Clock()
    bad = a_report([PathError("a.txt", "permission denied", 7)])
    loop, status, _ = loop_with(Engine(bad, a_report()), clock)
    loop.run_once()
    assert [(e["path"], e["message"]) for e in status.snapshot()["errors"]] == [
        ("a.txt", "permission denied")
    ]
    loop.sync_now()
    loop.run_once()
    assert status.snapshot()["errors"] == []


def test_loop_survives_an_engine_bug():
    clock = Clock()
    loop, status, _ = loop_with(Engine(ZeroDivisionError("oops")), clock)
    loop.run_once()
    snap = status.snapshot()
    assert snap["state"] == "error" and "internal error" in snap["folders"][0]["message"]


def test_loop_stop_ends_run():
    clock = Clock()
    loop, _, _ = loop_with(Engine(), clock)
    thread = threading.Thread(target=loop.run)
    thread.start()
    loop.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


# ---- status --------------------------------------------------------------------------


def test_status_is_bounded_and_wakes_waiters():
    status = AgentStatus([("f", "/p")])
    version = status.version
    woke = []
    t = threading.Thread(target=lambda: woke.append(status.wait_changed(version, timeout=5)))
    t.start()
    status.set_paused(True)
    t.join(timeout=5)
    assert woke == [version + 1]
    for i in range(MAX_RECENT + 10):
        status.begin_sync("f", reason=str(i))
    assert len(status.snapshot()["recent"]) == MAX_RECENT
    errors = [PathError(f"p{i}", "bad", 2) for i in range(MAX_FILE_ERRORS + 5)]
    status.end_sync("f", SyncReport(folder="f", errors=errors))
    errors = status.snapshot()["errors"]
    assert len(errors) == MAX_FILE_ERRORS and errors[-1]["path"] == f"p{MAX_FILE_ERRORS + 4}"


def test_status_progress_and_rate():
    now = [100.0]
    status = AgentStatus([("f", "/p")], clock=lambda: now[0])
    status.begin_sync("f", reason="start")
    now[0] += 2
    status.progress(
        "f", files_done=1, files_total=4, bytes_done=2000, bytes_total=8000, current="big.iso"
    )
    snap = status.snapshot()
    assert snap["state"] == "syncing"
    assert snap["progress"] == {
        "folder": "f",
        "files_done": 1,
        "files_total": 4,
        "bytes_done": 2000,
        "bytes_total": 8000,
        "rate": 1000.0,
        "current": "big.iso",
    }


# ---- events ----------------------------------------------------------------------------


@pytest.fixture
def watch(tmp_path):
    folder = FolderSettings(path=tmp_path, bucket="b", key="k")
    debouncer = Debouncer(0.0, is_ignored=IgnoreRules().is_ignored)
    return FolderWatch(folder, debouncer, threading.Lock(), lambda: None, lambda: None)


def test_watchdog_events_become_relative_posix_fs_events(watch, tmp_path):
    r = str(tmp_path)
    assert watch.to_fs_event(FileCreatedEvent(f"{r}/a/b.txt")) == FsEvent("created", "a/b.txt")
    assert watch.to_fs_event(FileModifiedEvent(f"{r}/x")) == FsEvent("modified", "x")
    assert watch.to_fs_event(FileDeletedEvent(f"{r}/x")) == FsEvent("deleted", "x")
    assert watch.to_fs_event(FileMovedEvent(f"{r}/x", f"{r}/y")) == FsEvent("moved", "x", "y")
    assert watch.to_fs_event(DirCreatedEvent(f"{r}/d")) == FsEvent("created", "d", is_dir=True)
    # Moves across the root's edge, events on the root itself, and non-content events.
    assert watch.to_fs_event(FileMovedEvent("/elsewhere/x", f"{r}/x")) == FsEvent("created", "x")
    assert watch.to_fs_event(FileMovedEvent(f"{r}/x", "/elsewhere/x")) == FsEvent("deleted", "x")
    assert watch.to_fs_event(FileMovedEvent(f"{r}x", "/elsewhere/x")) is None
    assert watch.to_fs_event(DirCreatedEvent(r)) is None
    assert watch.to_fs_event(FileClosedEvent(f"{r}/x")) is None


def test_real_watchdog_feeds_the_debouncer_ignoring_swap_files(watch, tmp_path):
    observer = Observer()
    watch.start(observer)
    observer.start()
    try:
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "a.txt").write_text("hi")
        (tmp_path / ".a.txt.swp").write_text("ignored")
        deadline = time.monotonic() + 10
        changes = []
        while time.monotonic() < deadline and not any(c.path == "sub/a.txt" for c in changes):
            time.sleep(0.05)
            with watch.lock:
                changes += watch.debouncer.flush()
    finally:
        observer.stop()
        observer.join()
    paths = {c.path for c in changes}
    assert "sub/a.txt" in paths or "sub" in paths
    assert ".a.txt.swp" not in paths


def test_inotify_limits_become_actionable_errors():
    err = translate_watch_error(OSError(errno.ENOSPC, "inotify watch limit reached"), "/data")
    assert isinstance(err, WatchLimitError)
    assert "fs.inotify.max_user_watches" in err.hint
    assert isinstance(translate_watch_error(OSError(errno.EMFILE, "x"), "/d"), WatchLimitError)
    other = OSError(errno.EACCES, "denied")
    assert translate_watch_error(other, "/d") is other
    assert os.fspath("/d")


def test_loop_deferred_files_are_looked_at_again():
    clock = Clock()
    report = a_report()
    report.deferred.append("busy.log")
    engine = Engine(report)
    loop, _, _ = loop_with(engine, clock)
    loop.run_once()
    clock.now += RELOOK_AFTER / 2
    loop.run_once()
    assert len(engine.calls) == 1  # not at once: in a while
    clock.now += RELOOK_AFTER
    loop.run_once()
    assert engine.calls[-1] == (frozenset({"busy.log"}), False)


def test_loop_unreachable_file_errors_mean_offline():
    clock = Clock()
    down = a_report([PathError("a", "S3 did not answer", 6)])
    engine = Engine(down)
    loop, status, _ = loop_with(engine, clock)
    loop.run_once()
    snap = status.snapshot()
    assert snap["state"] == "offline" and snap["errors"][0]["path"] == "a"
    clock.now += BACKOFF_START
    loop.run_once()
    assert engine.calls[-1] == (None, True) and status.snapshot()["state"] == "idle"


def test_a_run_with_thousands_of_errors_keeps_the_status_under_the_cap():
    from s3vault.agent.protocol import encode, ok_reply

    clock = Clock()
    many = [
        PathError(f"dir/{i:05}/" + "n" * 100, "permission denied" * 5, 2) for i in range(20_000)
    ]
    loop, status, _ = loop_with(Engine(*[a_report(many)] * 3), clock)
    for _ in range(3):
        loop.sync_now()
        loop.run_once()
    snap = status.snapshot()
    report = snap["folders"][0]["last_report"]
    assert report["errors_count"] == 20_000 and len(report["errors"]) == 10
    assert len(encode(ok_reply(status=snap))) < 1024 * 1024
