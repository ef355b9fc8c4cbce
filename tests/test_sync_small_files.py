"""The sync engine's small-file path (s3vault/sync/small_files.py), end to end.

Real SeaweedFS, real keyring: a folder of small files is synced through the native
S3 client, and the objects must be exactly what `Vault.put` writes (they decrypt
with `Vault.get` and `s3vault get`), with the engine's rules: conditional writes,
rows only after S3 confirmed, torn files deferred, conflicts reported.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import decrypted as decrypted_object
from sync_helpers import make_folder_engine, sync_vault, write

from s3vault.config.load import load_config
from s3vault.crypto.envelope import Location, Version
from s3vault.errors import ExitCode, UnreachableError, UsageError
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.remote.native import NativeS3
from s3vault.sync import small_files
from s3vault.sync.engine import SyncEngine
from s3vault.sync.metadata import MTIME_METADATA, UPLOAD_TOKEN_METADATA
from s3vault.sync.model import UNKNOWN_HASH
from s3vault.sync.report import SyncProgress
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

PREFIX = "small/docs/"


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    return sync_vault(keyring_service)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(tmp_path / "state.db") as db:
        yield db


@pytest.fixture
def all_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send even a handful of small files through the small-file path."""
    monkeypatch.setattr(small_files, "MIN_SMALL_FILES", 1)


def make_engine(
    root: Path, bucket: str, vault: Vault, state: StateDB, **settings: Any
) -> SyncEngine:
    return make_folder_engine(root, bucket, PREFIX, vault, state, **settings)


def decrypted(vault: Vault, bucket: str, rel: str) -> bytes:
    return decrypted_object(vault, bucket, PREFIX + rel)


def keys(s3_client: Any, bucket: str) -> set[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def boto3_puts(vault: Vault) -> list[str]:
    """Keys the vault's boto3 client PUTs from now on (the per-file path)."""
    seen: list[str] = []
    vault.remote.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **kw: seen.append(params["Key"])
    )
    return seen


def test_many_small_files_go_the_native_way(root, bucket, vault, state, s3_client, monkeypatch):
    monkeypatch.setattr(small_files, "SMALL_FILE_LIMIT", 64 * 1024)
    engine = make_engine(root, bucket, vault, state)
    files = {f"d{i % 3}/f{i:03}.txt": os.urandom(i * 37) for i in range(40)}  # one is empty
    for rel, data in files.items():
        write(root, rel, data)
    write(root, "big.bin", os.urandom(100 * 1024))  # over the limit: per-file path
    puts = boto3_puts(vault)
    seen: list[SyncProgress] = []

    report = engine.reconcile(progress=seen.append)

    assert (report.uploaded, report.errors, report.conflicts, report.deferred) == (41, [], [], [])
    assert report.bytes == sum(map(len, files.values())) + 100 * 1024
    assert puts == [PREFIX + "big.bin"]  # every small file went through obstore
    assert seen[-1].files_done == seen[-1].files_total == 41
    assert seen[-1].bytes_done == seen[-1].bytes_total == report.bytes
    assert keys(s3_client, bucket) == {PREFIX + rel for rel in [*files, "big.bin"]}
    rows = state.all(engine.fid)
    for rel, data in files.items():
        assert decrypted(vault, bucket, rel) == data
        head = s3_client.head_object(Bucket=bucket, Key=PREFIX + rel)
        row = rows[rel]
        assert row.etag == head["ETag"]
        assert row.content_hash == hashlib.sha256(data).hexdigest()
        assert (row.size, row.mtime_ns) == (len(data), (root / rel).stat().st_mtime_ns)
        assert row.key_name == "sync-key"
        assert head["Metadata"][MTIME_METADATA] == str(row.mtime_ns)
        assert head["Metadata"][UPLOAD_TOKEN_METADATA]
    assert state.uploads(engine.fid) == []
    assert engine.reconcile().planned == {}  # converged

    # Edits are conditional on the recorded ETag (If-Match) and land the same way.
    for rel in list(files)[:20]:
        files[rel] = b"edited " + files[rel]
        write(root, rel, files[rel])
    report = engine.reconcile(with_remote_listing=False)
    assert (report.uploaded, report.errors, report.conflicts) == (20, [], [])
    assert puts == [PREFIX + "big.bin"]
    for rel in list(files)[:20]:
        assert decrypted(vault, bucket, rel) == files[rel]


@pytest.mark.parametrize(
    ("fmt", "envelope"),
    [
        ("v3", "metadata"),
        ("v2", "metadata"),
        ("v3", "instruction-file"),
        ("v2", "instruction-file"),
    ],
)
def test_objects_are_those_vault_put_writes(
    root, bucket, vault, state, s3_client, all_small_files, run_cli, tmp_path, fmt, envelope
):
    engine = make_engine(root, bucket, vault, state, format=fmt, envelope=envelope)
    write(root, "a.txt", b"the small files way")
    write(root, "b.txt", b"")
    puts = boto3_puts(vault)
    assert engine.reconcile().uploaded == 2
    assert puts == []
    # The same file through Vault.put, for comparison.
    reference = "reference/a.txt"
    vault.put(
        root / "a.txt",
        bucket,
        reference,
        key_name="sync-key",
        version=Version(fmt),
        location=Location(envelope),
        extra_metadata={MTIME_METADATA: "1", UPLOAD_TOKEN_METADATA: "t"},
    )
    ours = s3_client.head_object(Bucket=bucket, Key=PREFIX + "a.txt")
    theirs = s3_client.head_object(Bucket=bucket, Key=reference)
    assert set(ours["Metadata"]) == set(theirs["Metadata"])
    assert ours["Metadata"]["x-amz-unencrypted-content-length"] == "19"
    assert ours["ContentLength"] == theirs["ContentLength"] == 19 + 16
    assert ours["ContentType"] == theirs["ContentType"]
    expected = {PREFIX + "a.txt", PREFIX + "b.txt", reference}
    if envelope == "instruction-file":
        expected |= {k + ".instruction" for k in expected}
        mine = s3_client.get_object(Bucket=bucket, Key=PREFIX + "a.txt.instruction")
        ref = s3_client.get_object(Bucket=bucket, Key=reference + ".instruction")
        assert set(json.loads(mine["Body"].read())) == set(json.loads(ref["Body"].read()))
    assert keys(s3_client, bucket) == expected
    envelope_read = vault.inspect(bucket, PREFIX + "a.txt").envelope
    assert envelope_read is not None
    assert (envelope_read.version, envelope_read.location) == (Version(fmt), Location(envelope))
    assert decrypted(vault, bucket, "a.txt") == b"the small files way"
    assert decrypted(vault, bucket, "b.txt") == b""
    out = tmp_path / "out.txt"
    r = run_cli("get", f"s3://{bucket}/{PREFIX}a.txt", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"the small files way"


def test_another_writer_is_a_conflict_never_overwritten(
    root, bucket, vault, state, s3_client, all_small_files
):
    engine = make_engine(root, bucket, vault, state)
    write(root, "shared.txt", b"mine")
    write(root, "quiet.txt", b"nobody else touches this")
    engine.reconcile()
    synced = state.get(engine.fid, "shared.txt")
    # Another machine rewrites one object, and writes one where we have a new file.
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "shared.txt", Body=b"theirs")
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "new.txt", Body=b"theirs")
    write(root, "shared.txt", b"mine, edited")
    write(root, "new.txt", b"mine, new")
    write(root, "quiet.txt", b"edited here only")

    # Without the listing (a set of watcher events) the writes' conditions decide: HTTP 412.
    report = engine.reconcile(with_remote_listing=False)
    assert {c.path for c in report.conflicts} == {"shared.txt", "new.txt"}
    assert "PreconditionFailed" in report.conflicts[0].reason
    assert (report.uploaded, report.exit_code) == (1, ExitCode.CONFLICT)
    for rel in ("shared.txt", "new.txt"):
        body = s3_client.get_object(Bucket=bucket, Key=PREFIX + rel)["Body"].read()
        assert body == b"theirs"
    assert state.get(engine.fid, "shared.txt") == synced  # the row is what we wrote
    assert state.get(engine.fid, "new.txt") is None
    assert state.uploads(engine.fid) == []
    assert decrypted(vault, bucket, "quiet.txt") == b"edited here only"


def test_a_file_changing_while_read_is_deferred(
    root, bucket, vault, state, s3_client, all_small_files, monkeypatch
):
    engine = make_engine(root, bucket, vault, state)
    busy = write(root, "busy.txt", b"first version")
    write(root, "calm.txt", b"calm")
    real_read = small_files._read_fd

    def read_fd(fd: int, want: int) -> bytes:
        """Someone appends to busy.txt between the stat and the read."""
        if os.path.samestat(os.fstat(fd), busy.stat()):
            with open(busy, "ab") as other:
                other.write(b", and more")
        return real_read(fd, want)

    monkeypatch.setattr(small_files, "_read_fd", read_fd)
    report = engine.reconcile()
    assert report.deferred == ["busy.txt"] and report.uploaded == 1 and report.errors == []
    assert keys(s3_client, bucket) == {PREFIX + "calm.txt"}
    assert set(state.all(engine.fid)) == {"calm.txt"}
    assert state.uploads(engine.fid) == []
    monkeypatch.undo()

    report = engine.reconcile()
    assert report.uploaded == 1
    assert decrypted(vault, bucket, "busy.txt") == busy.read_bytes()


def test_a_file_changed_after_it_was_read_is_compared_again(
    root, bucket, vault, state, all_small_files, monkeypatch
):
    engine = make_engine(root, bucket, vault, state)
    path = write(root, "late.txt", b"as read")
    real_seal = vault.seal

    def seal_then_edit(*args: Any, **kwargs: Any) -> Any:
        sealed = real_seal(*args, **kwargs)
        path.write_bytes(b"edited after the read, before S3 answered")
        return sealed

    monkeypatch.setattr(vault, "seal", seal_then_edit)
    report = engine.reconcile()
    assert report.uploaded == 1
    row = state.get(engine.fid, "late.txt")
    # Stored what was read, and not sure it is the file now: compare again next run.
    assert (row.mtime_ns, row.content_hash) == (-1, UNKNOWN_HASH)
    assert decrypted(vault, bucket, "late.txt") == b"as read"
    monkeypatch.undo()
    report = engine.reconcile(with_remote_listing=False)  # If-Match the recorded ETag
    assert (report.uploaded, report.conflicts) == (1, [])
    assert decrypted(vault, bucket, "late.txt") == path.read_bytes()


def test_state_rows_are_written_only_after_s3_confirmed(
    root, bucket, vault, state, s3_client, all_small_files, monkeypatch
):
    engine = make_engine(root, bucket, vault, state, envelope="instruction-file")
    for i in range(30):
        write(root, f"f{i}.txt", f"file {i}".encode())
    real_record = state.record_synced_many
    checked: list[str] = []

    def record_synced_many(folder_id: str, files: Any) -> None:
        for file in files:
            key = PREFIX + file.path
            # S3 already holds this very object, and its instruction file.
            assert s3_client.head_object(Bucket=bucket, Key=key)["ETag"] == file.etag
            s3_client.head_object(Bucket=bucket, Key=key + ".instruction")
            assert [u.path for u in state.uploads(folder_id) if u.path == file.path]  # announced
            checked.append(file.path)
        real_record(folder_id, files)

    monkeypatch.setattr(state, "record_synced_many", record_synced_many)
    report = engine.reconcile()
    assert report.uploaded == 30 and sorted(checked) == sorted(f"f{i}.txt" for i in range(30))
    assert state.uploads(engine.fid) == []


def test_a_missing_instruction_file_leaves_no_row(
    root, bucket, vault, state, s3_client, all_small_files, monkeypatch
):
    engine = make_engine(root, bucket, vault, state, envelope="instruction-file")
    write(root, "a.txt", b"a")
    real = NativeS3._put_once

    async def refuse_instruction_files(self: NativeS3, request: Any) -> Any:
        if request.key.endswith(".instruction"):
            raise UsageError("S3 refused the request (simulated)")
        return await real(self, request)

    monkeypatch.setattr(NativeS3, "_put_once", refuse_instruction_files)
    report = engine.reconcile()
    assert report.uploaded == 0
    assert [e.path for e in report.errors] == ["a.txt"]
    assert "without its instruction file" in report.errors[0].message
    assert state.all(engine.fid) == {} and state.uploads(engine.fid) == []


def test_outage_then_convergence(root, bucket, vault, state, s3, s3_client, all_small_files):
    engine = make_engine(root, bucket, vault, state)
    write(root, "kept.txt", b"synced before the outage")
    engine.reconcile()
    synced = state.all(engine.fid)

    s3.stop()
    write(root, "kept.txt", b"edited during the outage")
    write(root, "new.txt", b"created during the outage")
    report = engine.reconcile(with_remote_listing=False)
    assert {e.path for e in report.errors} == {"kept.txt", "new.txt"}
    assert all(e.exit_code == ExitCode.UNREACHABLE for e in report.errors)
    assert state.all(engine.fid) == synced  # no row for a failed file
    assert state.uploads(engine.fid) == []
    s3.start()

    report = engine.reconcile()
    assert (report.uploaded, report.errors, report.conflicts) == (2, [], [])
    rows = state.all(engine.fid)
    for rel in ("kept.txt", "new.txt"):
        assert decrypted(vault, bucket, rel) == (root / rel).read_bytes()
        head = s3_client.head_object(Bucket=bucket, Key=PREFIX + rel)
        assert head["ETag"] == rows[rel].etag
    assert engine.reconcile().planned == {}


def test_transient_errors_are_retried(root, bucket, vault, state, all_small_files, monkeypatch):
    engine = make_engine(root, bucket, vault, state)
    for i in range(10):
        write(root, f"f{i}.txt", b"x" * i)
    real = NativeS3._put_once
    failed: set[str] = set()

    async def flaky(self: NativeS3, request: Any) -> Any:
        if request.key not in failed:  # every key fails once
            failed.add(request.key)
            raise UnreachableError("S3 failed (503)")
        return await real(self, request)

    monkeypatch.setattr(NativeS3, "_put_once", flaky)
    report = engine.reconcile()
    assert (report.uploaded, report.errors) == (10, [])
    assert len(failed) == 10


def test_files_that_grew_or_odd_names_take_the_per_file_path(
    root, bucket, vault, state, s3_client, all_small_files, monkeypatch
):
    monkeypatch.setattr(small_files, "SMALL_FILE_LIMIT", 1000)
    engine = make_engine(root, bucket, vault, state)
    write(root, "grows.txt", b"small at the scan")
    write(root, "small.txt", b"small")
    write(root, "tab\there.txt", b"a name object_store cannot address")
    real_split = small_files.split_uploads

    def split_then_grow(*args: Any) -> Any:
        routed = real_split(*args)
        write(root, "grows.txt", os.urandom(5000))
        return routed

    monkeypatch.setattr(small_files, "split_uploads", split_then_grow)
    puts = boto3_puts(vault)
    report = engine.reconcile()
    assert (report.uploaded, report.errors, report.deferred) == (3, [], [])
    assert sorted(puts) == [PREFIX + "grows.txt", PREFIX + "tab\there.txt"]
    assert decrypted(vault, bucket, "grows.txt") == (root / "grows.txt").read_bytes()
    assert decrypted(vault, bucket, "tab\there.txt") == b"a name object_store cannot address"


def test_no_s3_client_is_a_per_file_error(root, bucket, keyring_service, state, all_small_files):
    KeyStore(service=keyring_service).put(generate_key("sync-key"))
    config = load_config()
    config = config.model_copy(update={"s3": config.s3.model_copy(update={"profile": "absent"})})
    vault = build_vault(config, keystore_factory=lambda: KeyStore(service=keyring_service))
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"a")
    write(root, "b.txt", b"b")
    report = engine.reconcile(with_remote_listing=False)
    assert sorted(e.path for e in report.errors) == ["a.txt", "b.txt"]
    assert all(e.exit_code == ExitCode.USAGE and "profile" in e.message for e in report.errors)
    assert state.all(engine.fid) == {} and state.uploads(engine.fid) == []


def test_a_rotated_object_is_relearned_and_written_again(
    root, bucket, vault, state, s3_client, run_cli, all_small_files
):
    engine = make_engine(root, bucket, vault, state)
    for n in range(20):
        write(root, f"f{n:02}.txt", f"file {n}".encode())
    assert engine.reconcile().uploaded == 20
    r = run_cli("key", "generate", "rotated-key")
    assert r.returncode == 0, r.stderr.decode()
    r = run_cli(
        "rotate", f"s3://{bucket}/{PREFIX}", "--recursive", "--to-key", "rotated-key", "--reencrypt"
    )
    assert r.returncode == 0, r.stderr.decode()
    for n in range(20):
        write(root, f"f{n:02}.txt", f"file {n}, edited after the rotation".encode())

    # No listing (a set of watcher events): every conditional write fails with 412 first.
    report = engine.reconcile(with_remote_listing=False)
    assert (report.conflicts, report.errors, report.uploaded) == ([], [], 20)
    for n in range(20):
        rel = f"f{n:02}.txt"
        assert decrypted(vault, bucket, rel) == f"file {n}, edited after the rotation".encode()
        head = s3_client.head_object(Bucket=bucket, Key=PREFIX + rel)
        assert state.get(engine.fid, rel).etag == head["ETag"]
    assert state.uploads(engine.fid) == []
