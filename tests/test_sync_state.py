"""The state database: schema, rows, transactions, threads, and surviving kill -9."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from s3vault.sync.model import RootIdentity, SyncedFile
from s3vault.sync.state import SCHEMA_VERSION, InFlightUpload, StateDB, StateError

REPO = Path(__file__).resolve().parents[1]
DOCS = "s3://vault/laptop/docs/"
PICS = "s3://vault/laptop/pics/"


def synced(path: str, *, content: str = "c", etag: str = '"e1"', mtime: int = 1) -> SyncedFile:
    return SyncedFile(
        path=path,
        size=len(content),
        mtime_ns=mtime,
        content_hash=f"sha-{content}",
        etag=etag,
        key_name="laptop-2026",
        version_id=None,
        synced_at=1700000000.0,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(tmp_path / "state" / "state.db") as opened:
        yield opened


def test_wal_mode_and_schema_version(db: StateDB) -> None:
    assert db.journal_mode == "wal"
    raw = sqlite3.connect(db.path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"files", "folders", "uploads", "meta"}
    finally:
        raw.close()
    assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_record_is_an_upsert(db: StateDB) -> None:
    assert db.get(DOCS, "a.txt") is None
    db.record_synced(DOCS, synced("a.txt"))
    assert db.get(DOCS, "a.txt") == synced("a.txt")
    db.record_synced(DOCS, synced("a.txt", content="longer", etag='"e2"', mtime=2))
    assert db.all(DOCS) == {"a.txt": synced("a.txt", content="longer", etag='"e2"', mtime=2)}
    assert db.count(DOCS) == 1


def test_folders_are_separate(db: StateDB) -> None:
    db.record_synced(DOCS, synced("a"))
    db.record_synced(PICS, synced("a", etag='"pics"'))
    db.record_synced(PICS, synced("b"))
    assert set(db.all(DOCS)) == {"a"}
    assert set(db.all(PICS)) == {"a", "b"}
    assert db.get(PICS, "a").etag == '"pics"'  # type: ignore[union-attr]
    db.drop_folder(PICS)
    assert db.all(PICS) == {}
    assert db.count(DOCS) == 1


def test_forget(db: StateDB) -> None:
    db.record_synced(DOCS, synced("a"))
    assert db.forget(DOCS, "a") is True
    assert db.forget(DOCS, "a") is False
    assert db.get(DOCS, "a") is None


def test_touch(db: StateDB) -> None:
    db.record_synced(DOCS, synced("a", mtime=1))
    assert db.touch(DOCS, "a", 5)
    assert db.get(DOCS, "a") == synced("a", mtime=5)
    assert not db.touch(DOCS, "missing", 5)


def test_rename(db: StateDB) -> None:
    db.record_synced(DOCS, synced("old", content="x"))
    db.record_synced(DOCS, synced("taken", content="y"))
    assert db.rename(DOCS, "old", "new")
    assert set(db.all(DOCS)) == {"new", "taken"}
    assert db.get(DOCS, "new") == synced("new", content="x")
    # Onto an existing row, with the copy's new ETag and version.
    assert db.rename(DOCS, "new", "taken", etag='"copied"', version_id="v9")
    row = db.get(DOCS, "taken")
    assert row is not None
    assert (row.content_hash, row.etag, row.version_id) == ("sha-x", '"copied"', "v9")
    assert set(db.all(DOCS)) == {"taken"}
    assert not db.rename(DOCS, "missing", "other")
    assert set(db.all(DOCS)) == {"taken"}


def test_by_hash(db: StateDB) -> None:
    db.record_synced(DOCS, synced("b", content="same"))
    db.record_synced(DOCS, synced("a", content="same"))
    db.record_synced(DOCS, synced("c", content="other"))
    db.record_synced(PICS, synced("d", content="same"))
    assert [r.path for r in db.by_hash(DOCS, "sha-same")] == ["a", "b"]
    assert db.by_hash(DOCS, "sha-none") == []


def test_a_failed_transaction_writes_nothing(db: StateDB) -> None:
    db.record_synced(DOCS, synced("kept"))
    with pytest.raises(RuntimeError), db.transaction():
        db.record_synced(DOCS, synced("new"))
        with db.transaction():  # nested: part of the outer one
            db.forget(DOCS, "kept")
        raise RuntimeError("crash before commit")
    assert set(db.all(DOCS)) == {"kept"}
    with db.transaction():
        db.record_synced(DOCS, synced("new"))
        db.forget(DOCS, "kept")
    assert set(db.all(DOCS)) == {"new"}


def test_in_flight_uploads(db: StateDB) -> None:
    db.begin_upload(DOCS, InFlightUpload("a", "docs/a", size=3, mtime_ns=1, token="t-a"))
    db.begin_upload(DOCS, InFlightUpload("big", "docs/big", 10**9, 2, started_at=1.0))
    db.set_upload_id(DOCS, "big", "mpu-1")
    pending = {u.path: u for u in db.uploads(DOCS)}
    assert pending["big"] == InFlightUpload("big", "docs/big", 10**9, 2, None, "mpu-1", 1.0)
    assert pending["a"].token == "t-a"
    assert pending["a"].started_at > 1.0
    # Recording the file ends its upload in the same transaction; failure ends it too.
    db.record_synced(DOCS, synced("a"))
    db.end_upload(DOCS, "big")
    assert db.uploads(DOCS) == []


def test_many_announcements_and_rows_are_written_like_single_ones(db: StateDB) -> None:
    db.begin_uploads(DOCS, [InFlightUpload(p, f"docs/{p}", 1, 1, token=f"t-{p}") for p in "abc"])
    assert {u.path: u.token for u in db.uploads(DOCS)} == {"a": "t-a", "b": "t-b", "c": "t-c"}
    db.record_synced_many(DOCS, [synced("a"), synced("b", etag='"e2"')])
    db.end_uploads(DOCS, ["c"])
    assert db.uploads(DOCS) == []  # recorded or ended, every announcement is gone
    assert {p: f.etag for p, f in db.all(DOCS).items()} == {"a": '"e1"', "b": '"e2"'}


def test_many_rows_in_a_failed_transaction_are_all_left_out(db: StateDB) -> None:
    db.begin_uploads(DOCS, [InFlightUpload(p, f"docs/{p}", 1, 1) for p in "ab"])
    with pytest.raises(RuntimeError), db.transaction():
        db.record_synced_many(DOCS, [synced("a"), synced("b")])
        raise RuntimeError("crash before commit")
    assert db.all(DOCS) == {}
    assert {u.path for u in db.uploads(DOCS)} == {"a", "b"}  # still announced


def test_folder_record(db: StateDB, tmp_path: Path) -> None:
    assert db.folder(DOCS) is None
    db.remember_folder(DOCS, tmp_path, "vault", "laptop/docs/", RootIdentity(64769, 1234))
    record = db.folder(DOCS)
    assert record is not None
    assert (record.root, record.bucket, record.prefix) == (tmp_path, "vault", "laptop/docs/")
    assert record.identity == RootIdentity(64769, 1234)
    db.remember_folder(DOCS, tmp_path, "vault", "laptop/docs/", None)
    assert db.folder(DOCS).identity is None  # type: ignore[union-attr]


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateDB(path) as db:
        db.record_synced(DOCS, synced("a"))
    with StateDB(path) as db:
        assert db.all(DOCS) == {"a": synced("a")}


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StateError, match="newer s3vault"):
        StateDB(path)


def test_a_damaged_file_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot open the state database") as caught:
        StateDB(path)
    assert "move it away" in str(caught.value)


def test_threads_share_one_database(db: StateDB) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(100):
                db.record_synced(DOCS, synced(f"t{n}/f{i}"))
                db.get(DOCS, f"t{n}/f{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.count(DOCS) == 800


# ---- kill -9 ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from s3vault.sync.model import SyncedFile
    from s3vault.sync.state import StateDB

    db = StateDB(Path(sys.argv[1]))
    mode = sys.argv[2]

    def row(i):
        return SyncedFile(f"f{i:05}", i, i, f"sha-{i}", f'"e{i}"', "k", None, 1.0)

    if mode == "mid-transaction":
        for i in range(50):
            db.record_synced("F", row(i))          # 50 committed transactions
        with db.transaction():
            for i in range(50, 5000):              # a big uncommitted one
                db.record_synced("F", row(i))
            db.forget("F", "f00000")
            print("in transaction", flush=True)
            time.sleep(60)                         # killed here
    else:
        i = 0
        while True:                                # killed at a random point
            db.record_synced("F", row(i))
            print(i, flush=True)
            i += 1
    """
)


def run_and_kill(path: Path, mode: str, wait_for_lines: int) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        while len(lines) < wait_for_lines:
            line = child.stdout.readline()
            assert line, "the child ended early"
            lines.append(line.strip())
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return lines


def integrity(path: Path) -> str:
    raw = sqlite3.connect(path)
    try:
        return str(raw.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        raw.close()


def test_kill_9_mid_transaction_keeps_only_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    run_and_kill(path, "mid-transaction", wait_for_lines=1)
    assert (path.parent / "state.db-wal").exists()  # the crash left the WAL behind
    assert integrity(path) == "ok"
    with StateDB(path) as db:
        rows = db.all("F")
    assert sorted(rows) == [f"f{i:05}" for i in range(50)]  # f00000 not forgotten either
    assert rows["f00049"] == SyncedFile("f00049", 49, 49, "sha-49", '"e49"', "k", None, 1.0)


def test_kill_9_during_commits_loses_no_acknowledged_row(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    lines = run_and_kill(path, "commit-loop", wait_for_lines=300)
    acknowledged = int(lines[-1])
    assert integrity(path) == "ok"
    with StateDB(path) as db:
        rows = db.all("F")
        db.record_synced("F", synced("after-restart"))  # writable again
    # Every row reported committed is there; at most the ones in flight beyond it.
    assert all(f"f{i:05}" in rows for i in range(acknowledged + 1))
    assert all(r.content_hash == f"sha-{r.size}" for r in rows.values())


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    from s3vault.sync.state import _SCHEMA_V1

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    for statement in _SCHEMA_V1:
        raw.execute(statement)
    raw.execute("INSERT INTO files VALUES ('f', 'a.txt', 1, 2, 'sha', '\"e\"', NULL, 'k', 3.0)")
    raw.execute("PRAGMA user_version=1")
    raw.commit()
    raw.close()
    with StateDB(path) as state:
        assert state.get("f", "a.txt") == SyncedFile("a.txt", 1, 2, "sha", '"e"', "k", None, 3.0)
        state.record_synced("f", replace(state.get("f", "a.txt"), token="t0k"))
        assert state.get("f", "a.txt").token == "t0k"
        writer = state.writer
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    raw.close()
    with StateDB(path) as state:
        assert state.writer == writer  # made once, kept


def test_every_database_has_its_own_writer_id(tmp_path: Path) -> None:
    with StateDB(tmp_path / "a.db") as a, StateDB(tmp_path / "b.db") as b:
        assert re.fullmatch("[0-9a-f]{16}", a.writer) and a.writer != b.writer
