"""Protocol 2 of the agent's status, pure: per-folder pause, per-file results,
standing conflicts, the attention summary and the guard's refusal kinds (a fake clock
and a recording stand-in engine; the real agent is in test_agent_folders.py)."""

from __future__ import annotations

import threading

from s3vault.agent.protocol import PROTOCOL, encode, ok_reply
from s3vault.agent.status import MAX_FILES, AgentStatus
from s3vault.agent.watcher import FolderRun, Schedule, SyncLoop
from s3vault.sync.engine import SyncRefused
from s3vault.sync.events import Debouncer, FsEvent
from s3vault.sync.report import FileDone, PathError, PathIssue, SyncReport

A, B = "s3://b/a/", "s3://b/b/"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Engine:
    """Answers each reconcile with the next outcome (a report or an exception)."""

    def __init__(self, folder: str, *outcomes: object) -> None:
        self.folder = folder
        self.outcomes = list(outcomes)
        self.calls: list[frozenset[str] | None] = []

    def reconcile(self, *, paths=None, **_options):
        self.calls.append(None if paths is None else frozenset(paths))
        outcome = self.outcomes.pop(0) if self.outcomes else SyncReport(folder=self.folder)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def two_folders(a: Engine, b: Engine, clock: Clock):
    status = AgentStatus([(A, "/data/a"), (B, "/data/b")], clock=clock)
    debouncers = {fid: Debouncer(0.1, clock=clock) for fid in (A, B)}
    runs = [
        FolderRun(fid, engine, Schedule(debouncers[fid], rescan_interval=0, now=clock()))
        for fid, engine in ((A, a), (B, b))
    ]
    loop = SyncLoop(runs, status, lock=threading.Lock(), clock=clock)
    loop.run_once()  # the start-up full reconcile of both
    return loop, status, debouncers


def folder(snap: dict, fid: str) -> dict:
    (found,) = [f for f in snap["folders"] if f["folder"] == fid]
    return found


def test_a_paused_folder_keeps_its_events_and_is_rescanned_in_full_on_resume():
    clock = Clock()
    a, b = Engine(A), Engine(B)
    loop, status, debouncers = two_folders(a, b, clock)
    loop.pause(A)
    for fid in (A, B):
        debouncers[fid].add(FsEvent("modified", "x.txt"))
    clock.now += 1
    loop.run_once()
    assert (a.calls, b.calls) == ([None], [None, frozenset({"x.txt"})])
    snap = status.snapshot()
    assert folder(snap, A)["paused"] is True and folder(snap, A)["state"] == "paused"
    assert folder(snap, B)["paused"] is False and snap["state"] == "idle"
    assert loop._sleep_time() > 60  # a paused folder's due events do not spin the loop

    loop.resume(A)
    loop.run_once()
    assert a.calls == [None, None]  # a full reconcile: it also covers the kept event
    assert folder(status.snapshot(), A)["state"] == "idle"

    loop.pause(A)
    loop.pause(B)
    assert status.snapshot()["state"] == "paused"  # every folder paused is paused


def test_conflicts_stand_until_a_run_covering_them_no_longer_reports_them():
    clock = Clock()
    conflicted = SyncReport(folder=A, conflicts=[PathIssue("docs/x.txt", "changed in S3 too")])
    a = Engine(A, conflicted)
    loop, status, debouncers = two_folders(a, Engine(B), clock)
    snap = status.snapshot()
    assert snap["conflicts"] == [
        {"folder": A, "path": "docs/x.txt", "reason": "changed in S3 too", "time": 1000.0}
    ]
    assert folder(snap, A)["conflicts"] == 1 and folder(snap, B)["conflicts"] == 0
    assert snap["attention"]["conflicts"] == 1 and snap["attention"]["level"] == "warning"
    assert snap["attention"]["errors"] == 0 and snap["state"] == "idle"

    # A batch of other paths says nothing of docs/x.txt: the conflict stands.
    debouncers[A].add(FsEvent("modified", "other.txt"))
    clock.now += 1
    loop.run_once()
    assert [c["path"] for c in status.snapshot()["conflicts"]] == ["docs/x.txt"]

    # A batch of its folder covers it; not reported again: gone.
    debouncers[A].add(FsEvent("deleted", "docs", is_dir=True))
    clock.now += 1
    loop.run_once()
    snap = status.snapshot()
    assert snap["conflicts"] == [] and snap["attention"]["level"] == "ok"


def test_files_lists_each_file_of_the_runs_newest_first_and_bounded():
    clock = Clock()
    first = SyncReport(folder=A, uploaded=2, deleted=1, copied=1)
    first.done.extend(
        [
            FileDone("uploaded", "a.txt"),
            FileDone("renamed", "new.txt", "old.txt"),
            FileDone("deleted", "gone.txt"),
        ]
    )
    first.errors.append(PathError("locked.db", "permission denied", 7))
    many = SyncReport(folder=A, uploaded=MAX_FILES + 50)
    many.done.extend(FileDone("uploaded", f"bulk/{i}") for i in range(MAX_FILES + 50))
    loop, status, _ = two_folders(Engine(A, first), Engine(B), clock)
    files = status.snapshot()["files"]
    assert [(f["action"], f["path"], f["message"]) for f in files] == [
        ("error", "locked.db", "permission denied"),
        ("deleted", "gone.txt", None),
        ("renamed", "new.txt", "from old.txt"),
        ("uploaded", "a.txt", None),
    ]
    assert files[0]["folder"] == A and files[0]["time"] == 1000.0
    snap = status.snapshot()
    assert snap["attention"]["errors"] == 1 and snap["attention"]["level"] == "error"

    loop.folders[0].engine = Engine(A, many)
    loop.sync_now(A)
    loop.run_once()
    files = status.snapshot()["files"]
    assert len(files) == MAX_FILES and files[0]["path"] == f"bulk/{MAX_FILES + 49}"


def test_a_refused_mass_delete_is_carried_with_its_kind_until_a_run_succeeds():
    clock = Clock()
    refusal = SyncRefused(
        "this run would delete 9 of 10 synced files",
        hint="run `s3vault sync --force`",
        kind="mass-delete",
    )
    loop, status, _ = two_folders(Engine(A, refusal), Engine(B), clock)
    snap = status.snapshot()
    a = folder(snap, A)
    assert a["state"] == "error"
    assert a["refused"] == {
        "kind": "mass-delete",
        "message": "this run would delete 9 of 10 synced files",
        "hint": "run `s3vault sync --force`",
        "time": 1000.0,
    }
    assert snap["attention"]["refused"] == 1 and snap["attention"]["level"] == "error"
    assert folder(snap, B)["refused"] is None

    loop.sync_now(A)
    loop.run_once()
    snap = status.snapshot()
    assert folder(snap, A)["refused"] is None and snap["attention"]["level"] == "ok"


def test_snapshot_carries_the_protocol_and_stays_small():
    clock = Clock()
    report = SyncReport(folder=A, uploaded=5000)
    report.done.extend(FileDone("uploaded", "d/" + "n" * 200 + str(i)) for i in range(5000))
    report.conflicts.extend(PathIssue(f"c/{i}" + "n" * 200, "x" * 400) for i in range(600))
    _, status, _ = two_folders(Engine(A, report), Engine(B), clock)
    snap = status.snapshot()
    assert snap["protocol"] == PROTOCOL == 2
    assert len(snap["files"]) == MAX_FILES
    assert all(len(f["message"] or "") <= 300 for f in snap["files"])
    assert len(encode(ok_reply(status=snap))) < 1024 * 1024


def test_after_a_refusal_events_bring_whole_folder_runs_until_one_succeeds():
    # Deletes that arrive in several event batches must not pass the guard one batch
    # at a time once a run of the whole folder was refused.
    clock = Clock()
    refusal = SyncRefused("would delete 3 of 4", kind="mass-delete")
    a = Engine(A, refusal, refusal)
    loop, status, debouncers = two_folders(a, Engine(B), clock)
    debouncers[A].add(FsEvent("deleted", "late.txt"))
    clock.now += 1
    loop.run_once()
    assert a.calls == [None, None]
    assert folder(status.snapshot(), A)["refused"]["kind"] == "mass-delete"
    debouncers[A].add(FsEvent("modified", "x.txt"))
    clock.now += 1
    loop.run_once()  # the third run succeeds: batches are batches again
    debouncers[A].add(FsEvent("modified", "y.txt"))
    clock.now += 1
    loop.run_once()
    assert a.calls == [None, None, None, frozenset({"y.txt"})]
    assert folder(status.snapshot(), A)["refused"] is None
