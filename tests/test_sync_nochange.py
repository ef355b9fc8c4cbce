"""A sync run with nothing to do: the listing is its only request, it writes nothing.

The pure parts (the state rows as tuples, the planner's quick pass, the ignore rules'
one-regex pre-check) must decide exactly as the slow ways they replace; the engine,
against real SeaweedFS and a real keyring, must neither write to the state database
nor read a key nor send anything but the listing when nothing changed, and must still
see every change the quick check is documented to see.
"""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pathspec import GitIgnoreSpec
from sync_helpers import make_folder_engine, write

from s3vault.config.load import load_config
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.sync.ignore import IgnoreRules
from s3vault.sync.model import LocalFile, RemoteObject, StateRows, SyncedFile
from s3vault.sync.planner import plan
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault

PREFIX = "nochange/"
KEY = "sync-key"


# ---- pure: the same decisions as before ----------------------------------------------


def row(path: str, size: int = 3, mtime: int = 10, etag: str = '"e"') -> SyncedFile:
    return SyncedFile(path, size, mtime, f"hash-{path}", etag, KEY, synced_at=1.0)


def test_state_rows_build_the_same_synced_files_they_were_given() -> None:
    rows = {"a": row("a"), "b/c": row("b/c", etag='"x"')}
    state = StateRows.of(rows)
    assert state == rows and dict(state) == rows
    assert sorted(state.etags()) == [("a", '"e"'), ("b/c", '"x"')]
    assert state.only(["b/c", "missing"]) == {"b/c": rows["b/c"]}
    state.update({"a": row("a", etag='"new"')})
    assert state["a"].etag == '"new"' and rows["a"].etag == '"e"'  # a copy, not a view


def test_state_db_rows_equal_all(tmp_path: Path) -> None:
    with StateDB(tmp_path / "state.db") as db:
        for r in (row("a"), row("d/b", size=7), row("d/e/c", etag='"q"')):
            db.record_synced("f", r)
        assert db.rows("f") == db.all("f") and db.rows("other") == {}


def test_plan_from_state_rows_is_the_plan_from_synced_files() -> None:
    """Every case of the quick pass (unchanged, other size, other mtime, other or
    unquoted ETag, no object, no row, gone locally) decides as the row-by-row way."""
    local = {
        p: LocalFile(p, s, m, 1)
        for p, s, m in [
            ("same", 3, 10),
            ("bigger", 4, 10),
            ("touched", 3, 11),
            ("rewritten", 3, 10),
            ("unquoted", 3, 10),
            ("no-object", 3, 10),
            ("new", 3, 10),
        ]
    }
    state = {p: row(p) for p in local if p != "new"} | {"gone": row("gone")}
    remote = {p: RemoteObject(p, '"e"', 3) for p in local if p not in ("no-object", "new")}
    remote["rewritten"] = RemoteObject("rewritten", '"other"', 3)
    remote["unquoted"] = RemoteObject("unquoted", "e", 3)
    remote["gone"] = RemoteObject("gone", '"e"', 3)
    for listing in (remote, None):
        plans = [
            plan(local, rows, listing, delete_policy="mirror", hash_of=lambda p: f"hash-{p}")
            for rows in (state, StateRows.of(state))
        ]
        assert plans[0] == plans[1]
        counts = plans[0].counts
        assert (counts.unchanged, counts.touched, counts.changed) == (
            (2, 1, 1) if listing is not None else (4, 1, 1)
        )


IGNORE_PATTERNS = [
    "*.log",
    "!keep.log",
    "build/",
    "/top.txt",
    "docs/**/*.md",
    "a/*/c",
    "**/tmp",
    "x?y",
    "[ab]*.z",
    "node_modules/",
    "!node_modules/keep/",
    "# a comment",
    "",
    "ü*",
]
NAMES = ["a", "keep.log", "x.log", "build", "top.txt", "docs", "g.md", "c", "tmp", "xzy"]
NAMES += ["b.z", "node_modules", "keep", "f.swp", "f~", "Thumbs.db", ".Trash-1", "über"]


def test_ignore_pre_check_agrees_with_pathspec() -> None:
    """The one-regex pre-check may only say "not ignored" where pathspec says so too."""
    rng = random.Random(12)
    for _ in range(60):
        chosen = rng.sample(IGNORE_PATTERNS, rng.randint(0, len(IGNORE_PATTERNS)))
        rules = IgnoreRules(chosen)
        spec = GitIgnoreSpec.from_lines(rules.patterns)
        for _ in range(60):
            path = "/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 4)))
            assert rules.is_ignored(path) == spec.match_file(path), (chosen, path)
            assert rules.is_ignored(path, True) == spec.match_file(path + "/"), (chosen, path)


# ---- the engine: a no-change run -----------------------------------------------------


@pytest.fixture
def keystore_reads(keyring_service: str) -> list[str]:
    KeyStore(service=keyring_service).put(generate_key(KEY))
    return []


def counted_vault(keyring_service: str, reads: list[str]) -> Any:
    """A vault whose key store, when first needed, notes that it was."""

    def keystore() -> KeyStore:
        reads.append("keystore")
        return KeyStore(service=keyring_service)

    return build_vault(load_config(), keystore_factory=keystore)


def botocore_calls(vault: Any) -> list[str]:
    calls: list[str] = []
    vault.remote.client.meta.events.register(
        "before-call.s3", lambda model, **kw: calls.append(model.name)
    )
    return calls


def test_a_no_change_run_lists_and_writes_nothing(
    tmp_path: Path, bucket: str, keyring_service: str, keystore_reads: list[str]
) -> None:
    root = tmp_path / "docs"
    for i in range(40):
        write(root, f"d{i % 3}/f{i}.txt", os.urandom(100 + i))
    db_path = tmp_path / "state.db"
    with StateDB(db_path) as state:
        first = counted_vault(keyring_service, [])
        report = make_folder_engine(root, bucket, PREFIX, first, state).reconcile()
        assert report.uploaded == 40

        vault = counted_vault(keyring_service, keystore_reads)
        calls = botocore_calls(vault)
        engine = make_folder_engine(root, bucket, PREFIX, vault, state)
        watcher = sqlite3.connect(db_path)  # data_version counts others' commits
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        report = engine.reconcile()
        after = watcher.execute("PRAGMA data_version").fetchone()[0]
        watcher.close()

    assert report.planned == {} and (report.uploaded, report.errors) == (0, [])
    assert before == after, "a run that changed nothing wrote to the state database"
    assert keystore_reads == [], "a run that uploads nothing read the keyring"
    assert set(calls) <= {"ListObjectsV2"}, calls  # the listing, if not native: nothing else


def test_a_no_change_run_still_sees_size_mtime_and_remote_changes(
    tmp_path: Path, bucket: str, keyring_service: str, keystore_reads: list[str], s3_client: Any
) -> None:
    root = tmp_path / "docs"
    for name in ("size.txt", "mtime.txt", "touch.txt", "theirs.txt", "kept.txt"):
        write(root, name, b"first")
    with StateDB(tmp_path / "state.db") as state:
        vault = counted_vault(keyring_service, keystore_reads)
        engine = make_folder_engine(root, bucket, PREFIX, vault, state)
        engine.reconcile()

        write(root, "size.txt", b"longer content")
        stat = (root / "mtime.txt").stat()
        write(root, "mtime.txt", b"FIRST")  # same size, new content
        os.utime(root / "mtime.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        stat = (root / "touch.txt").stat()
        os.utime(root / "touch.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        s3_client.put_object(Bucket=bucket, Key=PREFIX + "theirs.txt", Body=b"another writer")
        report = engine.reconcile()

    assert report.planned == {"upload": 2, "touch": 1, "conflict": 1}
    assert {c.path for c in report.conflicts} == {"theirs.txt"}
    assert report.uploaded == 2 and report.touched == 1
