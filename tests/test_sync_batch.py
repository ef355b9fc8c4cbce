"""The sync engine's batch path for small files (s3vault/sync/batch.py), end to end.

Real SeaweedFS, real keyring: a folder of small files is synced through the native
S3 client, and the objects must be exactly what `Vault.put` writes (they decrypt
with `Vault.get` and `s3vault get`), with the engine's rules: conditional writes,
rows only after S3 confirmed, torn files deferred, conflicts reported.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3vault.config.load import load_config
from s3vault.config.sync import FolderSettings
from s3vault.crypto.envelope import Location, Version
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.sync import batch
from s3vault.sync.engine import (
    MTIME_METADATA,
    UPLOAD_TOKEN_METADATA,
    SyncEngine,
    SyncProgress,
)
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

PREFIX = "batch/docs/"


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    KeyStore(service=keyring_service).put(generate_key("sync-key"))
    return build_vault(load_config(), keystore_factory=lambda: KeyStore(service=keyring_service))


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
def every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send even a handful of small files through the batch path."""
    monkeypatch.setattr(batch, "MIN_BATCH", 1)


def make_engine(
    root: Path, bucket: str, vault: Vault, state: StateDB, **settings: Any
) -> SyncEngine:
    folder = FolderSettings(path=root, bucket=bucket, prefix=PREFIX, key="sync-key", **settings)
    return SyncEngine(folder, vault, state, workers=4, attempts=2, backoff=0.05)


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def decrypted(vault: Vault, bucket: str, rel: str) -> bytes:
    out = io.BytesIO()
    vault.get(bucket, PREFIX + rel, out)
    return out.getvalue()


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
    monkeypatch.setattr(batch, "SMALL_FILE_LIMIT", 64 * 1024)
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
    root, bucket, vault, state, s3_client, every_batch, run_cli, tmp_path, fmt, envelope
):
    engine = make_engine(root, bucket, vault, state, format=fmt, envelope=envelope)
    write(root, "a.txt", b"through the batch path")
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
    assert ours["Metadata"]["x-amz-unencrypted-content-length"] == "22"
    assert ours["ContentLength"] == theirs["ContentLength"] == 22 + 16
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
    assert decrypted(vault, bucket, "a.txt") == b"through the batch path"
    assert decrypted(vault, bucket, "b.txt") == b""
    out = tmp_path / "out.txt"
    r = run_cli("get", f"s3://{bucket}/{PREFIX}a.txt", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"through the batch path"
