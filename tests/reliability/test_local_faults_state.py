"""The state database deleted, emptied, corrupted or stripped of its WAL, and a clock
that jumps.

A lost state is rebuilt from S3 with nothing uploaded again (every object keeps its
ETag and LastModified; the report counts no upload) and no conflict: an object whose
decrypted bytes are the local file is that file's object. A damaged state is a clean
error (exit 2, which file, what to do). A file edited with the same size and an older
or a future mtime is still uploaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from local_helpers import clean_exit, json_out, objects
from sync_helpers import SYNC_KEY, decrypted, sync_vault, write

from s3vault.vault.vault import Vault

FILES = {f"dir-{n % 3}/file-{n}.txt": f"content of file {n}\n".encode() * (n + 1) for n in range(8)}
DAY_NS = 86_400 * 10**9


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    return sync_vault(keyring_service)


@pytest.fixture
def synced(run_cli, vault, bucket, tmp_path):
    """A folder synced by the CLI with its own state dir; returns (root, sync(*extra))."""
    root = tmp_path / "folder"
    for rel, data in FILES.items():
        write(root, rel, data)
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}

    def sync(*extra: str):
        return run_cli(
            "sync", root, f"s3://{bucket}/st", "--key", SYNC_KEY, "--json", *extra, env=env
        )

    assert json_out(sync())["uploaded"] == len(FILES)
    return root, sync, tmp_path / "state" / "s3vault" / "state.db"


def _db_files(state_db: Path) -> list[Path]:
    return [p for p in state_db.parent.iterdir() if p.name.startswith("state.db")]


def _damage(state_db: Path, damage: str) -> None:
    if damage == "deleted":
        for path in _db_files(state_db):
            path.unlink()
        return
    # The WAL and shared memory go first: the main file then holds every page, so
    # the damage below hits real data.
    for path in _db_files(state_db):
        if path.name != "state.db":
            path.unlink()
    data = state_db.read_bytes()
    if damage == "emptied":
        state_db.write_bytes(b"")
    elif damage == "garbage":
        state_db.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        state_db.write_bytes(data[: len(data) // 2 + 100])


def test_a_lost_state_is_rebuilt_from_s3_with_nothing_uploaded_again(
    synced, s3_client, bucket, vault, reliability
):
    root, sync, state_db = synced
    before = objects(s3_client, bucket, "st/")
    for damage in ("wal deleted", "emptied", "deleted"):
        _damage(state_db, damage)
        report = json_out(r := sync())
        clean_exit(r, 0)
        assert (report["uploaded"], report["conflicts"], report["errors"]) == (0, [], []), damage
        assert objects(s3_client, bucket, "st/") == before, f"{damage}: an object was rewritten"
        reliability.fault(f"state database {damage}")
    # The rebuilt rows are real: an edit goes up (conditionally), the rest stays.
    write(root, "dir-0/file-0.txt", b"edited after the rebuild")
    report = json_out(r := sync())
    clean_exit(r, 0)
    assert (report["uploaded"], report["conflicts"]) == (1, [])
    assert decrypted(vault, bucket, "st/dir-0/file-0.txt") == b"edited after the rebuild"
    reliability.data(sum(map(len, FILES.values())), 0)


def test_a_corrupted_state_is_a_clean_error_then_rebuilt_once_moved_away(
    synced, s3_client, bucket, reliability
):
    _, sync, state_db = synced
    before = objects(s3_client, bucket, "st/")
    for damage in ("garbage", "truncated"):
        _damage(state_db, damage)
        err = clean_exit(sync(), 2)
        assert str(state_db) in err and "move it away" in err, err
        assert objects(s3_client, bucket, "st/") == before
        state_db.rename(state_db.with_name(f"state.db.{damage}"))
        report = json_out(r := sync())
        clean_exit(r, 0)
        assert (report["uploaded"], report["conflicts"]) == (0, []), damage
        assert objects(s3_client, bucket, "st/") == before
        reliability.fault(f"state database {damage}")


def test_same_size_edits_with_older_and_future_mtimes_are_uploaded(
    synced, vault, bucket, reliability
):
    root, sync, _ = synced
    # The clock was set back: same size, an mtime a day older than the synced one.
    older = root / "dir-1/file-1.txt"
    st = older.stat()
    older.write_bytes(bytes(b ^ 1 for b in older.read_bytes()))
    os.utime(older, ns=(st.st_atime_ns, st.st_mtime_ns - DAY_NS))
    # The clock ran ahead: a file from the year 2100, then edited "back" to now.
    future = root / "dir-2/file-2.txt"
    future.write_bytes(b"from the future!")
    os.utime(future, ns=(4_102_444_800 * 10**9, 4_102_444_800 * 10**9))
    report = json_out(r := sync())
    clean_exit(r, 0)
    assert report["uploaded"] == 2
    future.write_bytes(b"back to the past")  # same size, an mtime far older
    report = json_out(r := sync())
    clean_exit(r, 0)
    assert report["uploaded"] == 1
    assert decrypted(vault, bucket, "st/dir-1/file-1.txt") == older.read_bytes()
    assert decrypted(vault, bucket, "st/dir-2/file-2.txt") == b"back to the past"
    reliability.fault("clock jump (mtime older, same size)")
    reliability.fault("clock jump (mtime in the future)")
