"""The agent's S3 listings and memory, on the real services.

- A targeted run (watcher events) after a recent full run with the listing sends no
  LIST and still uploads; the periodic rescan lists and finds what changed in S3; a
  conflict ends the trust in the listing.
- A big reconcile runs in a child process (agent/child_run.py): the agent holds no
  per-file Python structures after it.

The loop runs in this process with a fake clock (no waiting); the listings are counted
at the vault, the door every sync request goes through, and still reach SeaweedFS.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import SYNC_KEY, decrypted, make_folder_engine, sync_vault, write

from s3vault.agent.child_run import ChildRuns
from s3vault.agent.status import AgentStatus
from s3vault.agent.watcher import FolderRun, Schedule, SyncLoop
from s3vault.config.load import load_config
from s3vault.config.model import Config
from s3vault.sync import model
from s3vault.sync.events import Debouncer, FsEvent
from s3vault.sync.state import StateDB
from s3vault.vault.vault import Vault

RESCAN = 600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_listings(vault: Vault) -> list[str]:
    """Record every `list_objects` of ``vault`` (the request still goes to S3)."""
    calls: list[str] = []
    real = vault.list_objects

    def counted(bucket: str, prefix: str) -> Iterator[Any]:
        calls.append(prefix)
        return real(bucket, prefix)

    vault.list_objects = counted  # type: ignore[method-assign]
    return calls


@pytest.fixture
def agent_loop(tmp_path, bucket, keyring_service):
    """A SyncLoop over one real folder engine; yields (loop, debouncer, clock, ...)."""
    vault = sync_vault(keyring_service)
    listings = count_listings(vault)
    root = tmp_path / "folder"
    root.mkdir()
    with StateDB(tmp_path / "state.db") as state:
        engine = make_folder_engine(root, bucket, "agent", vault, state)
        clock = Clock()
        debouncer = Debouncer(0.5, clock=clock)
        schedule = Schedule(debouncer, rescan_interval=RESCAN, now=clock())
        fid = engine.fid
        status = AgentStatus([(fid, str(root))])
        runs = [FolderRun(fid, engine, schedule)]
        loop = SyncLoop(runs, status, lock=threading.Lock(), clock=clock)
        yield loop, debouncer, clock, root, vault, listings


def changed(debouncer: Debouncer, clock: Clock, loop: SyncLoop, rel: str) -> None:
    """The watcher's event for ``rel``, then the loop once the debounce is over."""
    debouncer.add(FsEvent("modified", rel))
    clock.now += 1
    loop.run_once()


def test_a_targeted_run_after_a_recent_listing_sends_no_list_and_uploads(agent_loop, bucket):
    loop, debouncer, clock, root, vault, listings = agent_loop
    write(root, "a.txt", b"one")
    loop.run_once()  # start-up: the full run, with the listing
    assert listings == ["agent/"]
    write(root, "a.txt", b"two, longer")
    changed(debouncer, clock, loop, "a.txt")
    assert listings == ["agent/"]  # no LIST for the targeted run
    assert decrypted(vault, bucket, "agent/a.txt") == b"two, longer"
    assert loop.status.snapshot()["folders"][0]["last_report"]["uploaded"] == 1


def test_the_periodic_rescan_lists_and_finds_a_change_in_s3(agent_loop, bucket, s3_client):
    loop, _, clock, root, vault, listings = agent_loop
    write(root, "a.txt", b"kept")
    loop.run_once()
    s3_client.delete_object(Bucket=bucket, Key="agent/a.txt")  # behind the agent's back
    clock.now += RESCAN
    loop.run_once()
    assert listings == ["agent/", "agent/"]
    # Only the listing tells that the object is gone: the rescan put it back.
    assert decrypted(vault, bucket, "agent/a.txt") == b"kept"


def test_a_conflict_ends_the_trust_and_the_next_targeted_run_lists(agent_loop, bucket, s3_client):
    loop, debouncer, clock, root, vault, listings = agent_loop
    write(root, "a.txt", b"mine")
    write(root, "b.txt", b"b")
    loop.run_once()
    # Another writer replaces a.txt's object; this machine changes a.txt too.
    s3_client.put_object(Bucket=bucket, Key="agent/a.txt", Body=b"theirs")
    write(root, "a.txt", b"mine, changed")
    changed(debouncer, clock, loop, "a.txt")
    assert listings == ["agent/"]  # still trusted: the conditional write finds it out
    snap = loop.status.snapshot()
    assert [c["path"] for c in snap["conflicts"]] == ["a.txt"]
    write(root, "b.txt", b"b, changed")
    changed(debouncer, clock, loop, "b.txt")
    assert listings == ["agent/", "agent/"]  # the targeted run listed for itself
    assert decrypted(vault, bucket, "agent/b.txt") == b"b, changed"


# ---- memory --------------------------------------------------------------------------

FILES = 300
PER_FILE_TYPES = (model.LocalFile, model.SyncedFile, model.RemoteObject, model.Upload)


def per_file_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, PER_FILE_TYPES))


def folder_config(root: Path, bucket: str, keyring_service: str) -> Config:
    data = load_config().model_dump(mode="json")
    data["folders"] = [{"path": str(root), "bucket": bucket, "prefix": "mem", "key": SYNC_KEY}]
    data["keyring"] = {"service": keyring_service}
    return Config.model_validate(data)


def test_after_a_full_reconcile_the_agent_holds_no_per_file_structures(
    tmp_path, bucket, keyring_service
):
    vault = sync_vault(keyring_service)
    root = tmp_path / "folder"
    for i in range(FILES):
        write(root, f"d{i // 100}/f{i:04}.txt", b"x" * (i % 7))
    config = folder_config(root, bucket, keyring_service)
    before = per_file_objects()
    progress: list[Any] = []
    with StateDB(tmp_path / "state.db") as state:
        engine = make_folder_engine(root, bucket, "mem", vault, state)
        runs = ChildRuns(engine, config, engine.fid, state, min_files=FILES)
        assert runs.is_big(None)  # a folder never synced: its first run is a child's
        report = runs.reconcile(progress=progress.append)
        assert report.uploaded == FILES and not report.errors
        assert progress and progress[-1].files_done == FILES  # streamed from the child
        assert len(state.all(engine.fid)) == FILES  # the child wrote the shared state
        # What the agent keeps: the report's counts and its newest files, no scan, no
        # state rows, no listing, no plan.
        assert per_file_objects() == before
        # A batch of fewer paths, or a folder of fewer rows, stays in the agent, on its
        # engine, and lets go of its files too.
        assert runs.is_big(None) and runs.is_big(set(map(str, range(FILES))))
        assert not runs.is_big({"d0/f0000.txt"})
        small = ChildRuns(engine, config, engine.fid, state, min_files=FILES + 1)
        assert not small.is_big(None)
        write(root, "d0/f0000.txt", b"changed")
        targeted = runs.reconcile(paths={"d0/f0000.txt"}, with_remote_listing=False)
        assert targeted.uploaded == 1
        assert per_file_objects() == before
        # A big batch goes to a child with its paths (and only those are looked at).
        for rel in ("d1/f0100.txt", "d2/f0200.txt", "d2/f0201.txt"):
            write(root, rel, b"changed too")
        batch = ChildRuns(engine, config, engine.fid, state, min_files=2)
        done = batch.reconcile(paths={"d1/f0100.txt", "d2/f0200.txt"}, with_remote_listing=False)
        assert done.uploaded == 2 and sorted(d.path for d in done.done) == [
            "d1/f0100.txt",
            "d2/f0200.txt",
        ]
        assert per_file_objects() == before


# ---- what crosses the pipe from the child ---------------------------------------------


def test_a_child_report_and_its_errors_come_back_as_the_loop_knows_them():
    from dataclasses import asdict

    from s3vault.agent.child_run import error_from_json, error_to_json, report_from_json
    from s3vault.errors import KeyMissingError, UnreachableError
    from s3vault.sync.engine import SyncRefused
    from s3vault.sync.report import FileDone, PathError, PathIssue, SyncReport

    report = SyncReport(folder="s3://b/p/", uploaded=2, bytes=10, deferred=["d"])
    report.conflicts.append(PathIssue("c", "another machine wrote it"))
    report.errors.append(PathError("e", "unreachable", 6))
    report.done.extend([FileDone("uploaded", "a"), FileDone("renamed", "b", src="a0")])
    again = report_from_json(report.to_json(), [asdict(d) for d in report.done])
    assert again == report and again.went_offline and list(again.done) == list(report.done)

    refused = error_from_json(error_to_json(SyncRefused("no", hint="h", kind="mass-delete")))
    assert isinstance(refused, SyncRefused) and (refused.kind, refused.hint) == ("mass-delete", "h")
    assert type(error_from_json(error_to_json(UnreachableError("down")))) is UnreachableError
    assert type(error_from_json(error_to_json(KeyMissingError("k")))) is KeyMissingError
