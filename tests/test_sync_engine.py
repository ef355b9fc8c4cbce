"""The sync engine against real SeaweedFS and a real keyring, in process.

Each test builds a folder, a vault and a state database, runs `SyncEngine.reconcile`
and checks S3, the state rows and the local files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import decrypted as decrypted_object
from sync_helpers import make_folder_engine, sync_vault, write

from s3vault.config.load import load_config
from s3vault.config.model import TransferSettings
from s3vault.errors import ConflictError, ExitCode, UnreachableError
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.sync.engine import SyncEngine, SyncRefused
from s3vault.sync.metadata import MTIME_METADATA
from s3vault.sync.ownership import LATE_WRITE_GRACE
from s3vault.sync.report import SyncProgress
from s3vault.sync.state import FolderBusyError, InFlightUpload, StateDB
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

PREFIX = "laptop/docs/"
MiB = 1024 * 1024


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    return sync_vault(keyring_service)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


@pytest.fixture
def state(tmp_path: Path):
    with StateDB(tmp_path / "state.db") as db:
        yield db


def make_engine(
    root: Path, bucket: str, vault: Vault, state: StateDB, **settings: Any
) -> SyncEngine:
    return make_folder_engine(root, bucket, PREFIX, vault, state, **settings)


def keys(s3_client: Any, bucket: str) -> set[str]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"] for o in listing}


def decrypted(vault: Vault, bucket: str, rel: str) -> bytes:
    return decrypted_object(vault, bucket, PREFIX + rel)


def count_calls(s3_client_of_vault: Any, operation: str) -> Callable[[], int]:
    """Count the vault's calls of one S3 operation (a botocore event hook)."""
    calls: list[str] = []
    s3_client_of_vault.meta.events.register(
        f"before-call.s3.{operation}", lambda **kw: calls.append(operation)
    )
    return lambda: len(calls)


def test_create_modify_rename_delete(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"alpha")
    write(root, "sub/b.bin", os.urandom(5000))
    write(root, "c.txt", b"gamma")
    write(root, "notes.swp", b"editor swap file: ignored by default")
    seen: list[SyncProgress] = []

    report = engine.reconcile(progress=seen.append)
    assert (report.uploaded, report.exit_code, report.errors) == (3, 0, [])
    assert keys(s3_client, bucket) == {PREFIX + "a.txt", PREFIX + "sub/b.bin", PREFIX + "c.txt"}
    assert decrypted(vault, bucket, "a.txt") == b"alpha"
    assert seen[-1].files_done == seen[-1].files_total == 3
    row = state.get(engine.fid, "a.txt")
    assert row is not None and row.content_hash == hashlib.sha256(b"alpha").hexdigest()
    head = s3_client.head_object(Bucket=bucket, Key=PREFIX + "a.txt")
    assert head["ETag"].strip('"') == row.etag.strip('"')
    assert head["Metadata"][MTIME_METADATA] == str((root / "a.txt").stat().st_mtime_ns)

    # Nothing changed: nothing uploaded.
    again = engine.reconcile()
    assert (again.uploaded, again.copied, again.deleted) == (0, 0, 0)

    # Modify one, rename another: the rename is a server-side copy, no PutObject.
    write(root, "a.txt", b"alpha, edited")
    (root / "sub/b.bin").rename(root / "moved.bin")
    original_b = decrypted(vault, bucket, "sub/b.bin")
    puts = count_calls(vault.remote.client, "PutObject")
    report = engine.reconcile()
    assert (report.uploaded, report.copied, report.deleted) == (1, 1, 0), report
    assert puts() == 1  # the edit only
    assert decrypted(vault, bucket, "a.txt") == b"alpha, edited"
    assert decrypted(vault, bucket, "moved.bin") == original_b
    assert PREFIX + "sub/b.bin" not in keys(s3_client, bucket)
    assert set(state.all(engine.fid)) == {"a.txt", "moved.bin", "c.txt"}

    # Delete under "mirror".
    (root / "c.txt").unlink()
    report = engine.reconcile()
    assert report.deleted == 1
    assert PREFIX + "c.txt" not in keys(s3_client, bucket)
    assert state.get(engine.fid, "c.txt") is None


def test_delete_policy_keep_leaves_the_object(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state, delete="keep")
    write(root, "a.txt", b"a")
    write(root, "b.txt", b"b")
    engine.reconcile()
    (root / "a.txt").unlink()
    report = engine.reconcile()
    assert report.deleted == 0
    assert PREFIX + "a.txt" in keys(s3_client, bucket)
    assert state.get(engine.fid, "a.txt") is not None


def test_instruction_file_rename_copies_the_envelope(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state, envelope="instruction-file", format="v2")
    write(root, "x.txt", b"enveloped")
    engine.reconcile()
    assert PREFIX + "x.txt.instruction" in keys(s3_client, bucket)
    (root / "x.txt").rename(root / "y.txt")
    report = engine.reconcile()
    assert (report.copied, report.deleted, report.uploaded) == (1, 0, 0)
    assert keys(s3_client, bucket) == {PREFIX + "y.txt", PREFIX + "y.txt.instruction"}
    assert decrypted(vault, bucket, "y.txt") == b"enveloped"


def test_guard_refuses_mass_delete_and_empty_root(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    for i in range(9):
        write(root, f"f{i}.txt", f"file {i}".encode())
    engine.reconcile()
    for i in range(5):
        (root / f"f{i}.txt").unlink()
    with pytest.raises(SyncRefused) as refused:
        engine.reconcile()
    assert refused.value.exit_code == ExitCode.REFUSED
    assert "s3vault sync --force" in (refused.value.hint or "")
    assert len(keys(s3_client, bucket)) == 9  # nothing deleted

    report = engine.reconcile(force=True)
    assert report.deleted == 5 and report.forced
    assert len(keys(s3_client, bucket)) == 4

    for i in range(5, 9):
        (root / f"f{i}.txt").unlink()
    with pytest.raises(SyncRefused, match="suddenly empty"):
        engine.reconcile()
    assert len(keys(s3_client, bucket)) == 4


def test_dry_run_changes_nothing(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"a")
    report = engine.reconcile(dry_run=True)
    assert report.planned == {"upload": 1} and report.uploaded == 0
    assert keys(s3_client, bucket) == set() and state.all(engine.fid) == {}


def test_another_writer_is_a_conflict_never_overwritten(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    write(root, "shared.txt", b"mine")
    write(root, "theirs-first.txt", b"mine too")
    engine.reconcile()
    # Another machine rewrites one object, and writes one where we have a new file.
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "shared.txt", Body=b"theirs")
    write(root, "shared.txt", b"mine, edited")
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "new.txt", Body=b"theirs")
    write(root, "new.txt", b"mine, new")

    report = engine.reconcile()
    assert {c.path for c in report.conflicts} == {"shared.txt", "new.txt"}
    assert report.exit_code == ExitCode.CONFLICT
    for rel in ("shared.txt", "new.txt"):
        body = s3_client.get_object(Bucket=bucket, Key=PREFIX + rel)["Body"].read()
        assert body == b"theirs"

    # Without the listing (an event batch) the conditional write catches it: HTTP 412.
    report = engine.reconcile(with_remote_listing=False)
    assert {c.path for c in report.conflicts} == {"shared.txt", "new.txt"}
    for rel in ("shared.txt", "new.txt"):
        body = s3_client.get_object(Bucket=bucket, Key=PREFIX + rel)["Body"].read()
        assert body == b"theirs"


def test_local_files_are_never_modified(root, bucket, vault, state):
    engine = make_engine(root, bucket, vault, state)
    for i in range(5):
        write(root, f"d{i % 2}/f{i}", os.urandom(1000 + i))

    def snapshot() -> dict[str, tuple[int, int, int, bytes]]:
        return {
            str(p.relative_to(root)): (
                p.stat().st_size,
                p.stat().st_mtime_ns,
                p.stat().st_mode,
                p.read_bytes() if p.is_file() else b"",
            )
            for p in sorted(root.rglob("*"))
        }

    before = snapshot()
    engine.reconcile()
    assert snapshot() == before
    (root / "d0/f0").rename(root / "d1/renamed")
    before = snapshot()
    engine.reconcile()
    assert snapshot() == before


def test_outage_then_convergence(root, bucket, vault, state, s3, s3_client):
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
    with pytest.raises(UnreachableError):
        engine.reconcile()  # the start-up listing cannot be had: the run cannot start
    s3.start()

    report = engine.reconcile()
    assert (report.uploaded, report.errors, report.conflicts) == (2, [], [])
    rows = state.all(engine.fid)
    for rel in ("kept.txt", "new.txt"):
        assert decrypted(vault, bucket, rel) == (root / rel).read_bytes()
        head = s3_client.head_object(Bucket=bucket, Key=PREFIX + rel)
        assert head["ETag"].strip('"') == rows[rel].etag.strip('"')
    assert state.uploads(engine.fid) == []
    assert engine.reconcile().planned == {}


def test_ignore_file_and_config_patterns(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state, ignore=["*.log"])
    write(root, ".s3vaultignore", b"build/\n")
    write(root, "app.log", b"log")
    write(root, "build/out.o", b"object")
    write(root, "keep.txt", b"kept")
    engine.reconcile()
    assert keys(s3_client, bucket) == {PREFIX + ".s3vaultignore", PREFIX + "keep.txt"}


def test_file_changing_while_read_is_deferred(root, bucket, vault, state, s3_client, monkeypatch):
    engine = make_engine(root, bucket, vault, state)
    path = write(root, "busy.txt", b"first version")
    original = vault.remote.put_stream

    def put_while_someone_writes(*args: Any, **kwargs: Any) -> Any:
        path.write_bytes(b"second version, longer")  # after the open, before the commit
        return original(*args, **kwargs)

    monkeypatch.setattr(vault.remote, "put_stream", put_while_someone_writes)
    report = engine.reconcile()
    assert report.deferred == ["busy.txt"] and report.uploaded == 0
    assert keys(s3_client, bucket) == set() and state.all(engine.fid) == {}
    monkeypatch.undo()

    report = engine.reconcile()
    assert report.uploaded == 1
    assert decrypted(vault, bucket, "busy.txt") == b"second version, longer"


def test_transient_error_is_retried(root, bucket, vault, state, monkeypatch):
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"a")
    original = vault.put
    failures = [UnreachableError("S3 failed (503)")]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return original(*args, **kwargs)

    monkeypatch.setattr(vault, "put", flaky)
    report = engine.reconcile()
    assert (report.uploaded, report.errors) == (1, [])


def test_interrupted_multipart_upload_is_aborted(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    write(root, "big.bin", b"x")
    key = PREFIX + "big.bin"
    # What a crash mid-upload leaves: the announcement and an open multipart upload.
    state.begin_upload(engine.fid, InFlightUpload("big.bin", key, 1, 1))
    s3_client.create_multipart_upload(Bucket=bucket, Key=key)
    s3_client.create_multipart_upload(Bucket=bucket, Key=PREFIX + "someone-else.bin")

    engine.reconcile()
    open_uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in open_uploads] == [PREFIX + "someone-else.bin"]
    assert state.uploads(engine.fid) == []


def test_event_batch_touches_only_its_paths(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    for name in ("a.txt", "b.txt", "c.txt"):
        write(root, name, name.encode())
    engine.reconcile()
    write(root, "a.txt", b"a, edited")
    write(root, "b.txt", b"b, edited but not in the batch")
    (root / "c.txt").unlink()
    report = engine.reconcile(paths=["a.txt", "c.txt"], with_remote_listing=False)
    assert (report.uploaded, report.deleted) == (1, 1)
    assert decrypted(vault, bucket, "a.txt") == b"a, edited"
    assert decrypted(vault, bucket, "b.txt") == b"b.txt"
    assert set(state.all(engine.fid)) == {"a.txt", "b.txt"}


def test_multipart_uploads_are_conditional_too(root, bucket, keyring_service, state, s3_client):
    KeyStore(service=keyring_service).put(generate_key("sync-key"))
    small_parts = TransferSettings(multipart_threshold=5 * MiB, part_size=5 * MiB)
    config = load_config().model_copy(update={"transfer": small_parts})
    vault = build_vault(config, keystore_factory=lambda: KeyStore(service=keyring_service))
    engine = make_engine(root, bucket, vault, state)
    write(root, "big.bin", os.urandom(11 * MiB))
    assert engine.reconcile().uploaded == 1
    assert "-" in state.get(engine.fid, "big.bin").etag  # a multipart ETag

    # Another machine replaces the object, and writes one where we have a new file.
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "big.bin", Body=b"theirs")
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "new.bin", Body=b"theirs")
    write(root, "big.bin", os.urandom(11 * MiB))
    write(root, "new.bin", os.urandom(11 * MiB))
    report = engine.reconcile(with_remote_listing=False)  # the writes' conditions decide
    assert {c.path for c in report.conflicts} == {"big.bin", "new.bin"}
    for rel in ("big.bin", "new.bin"):
        assert s3_client.get_object(Bucket=bucket, Key=PREFIX + rel)["Body"].read() == b"theirs"
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_rename_above_the_copy_threshold_is_a_multipart_copy(
    root, bucket, keyring_service, state, s3_client
):
    KeyStore(service=keyring_service).put(generate_key("sync-key"))
    small = TransferSettings(multipart_threshold=5 * MiB, part_size=5 * MiB, copy_threshold=5 * MiB)
    config = load_config().model_copy(update={"transfer": small})
    vault = build_vault(config, keystore_factory=lambda: KeyStore(service=keyring_service))
    engine = make_engine(root, bucket, vault, state)
    data = os.urandom(12 * MiB)
    write(root, "big.bin", data)
    assert engine.reconcile().uploaded == 1
    s3_client.put_object_tagging(
        Bucket=bucket, Key=PREFIX + "big.bin", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    part_copies = count_calls(vault.remote.client, "UploadPartCopy")
    single_copies = count_calls(vault.remote.client, "CopyObject")
    uploads = count_calls(vault.remote.client, "PutObject")

    (root / "big.bin").rename(root / "moved.bin")
    report = engine.reconcile()
    assert (report.copied, report.deleted, report.uploaded) == (1, 0, 0)
    assert part_copies() == 3 and single_copies() == 0 and uploads() == 0
    assert keys(s3_client, bucket) == {PREFIX + "moved.bin"}
    assert decrypted(vault, bucket, "moved.bin") == data
    tags = s3_client.get_object_tagging(Bucket=bucket, Key=PREFIX + "moved.bin")["TagSet"]
    assert tags == [{"Key": "k", "Value": "v"}]
    row = state.get(engine.fid, "moved.bin")
    head = s3_client.head_object(Bucket=bucket, Key=PREFIX + "moved.bin")
    assert row is not None and row.etag.strip('"') == head["ETag"].strip('"')
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_delete_is_conditional_on_the_synced_etag(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    write(root, "gone.txt", b"mine")
    write(root, "kept.txt", b"mine")
    for n in range(3):
        write(root, f"other-{n}.txt", b"stays")
    engine.reconcile()
    (root / "gone.txt").unlink()
    (root / "kept.txt").unlink()
    # Another machine rewrites kept.txt after our listing, just before our delete.
    real = vault.remote.delete_if_match

    def racing_delete(b: str, key: str, etag: str) -> bool:
        if key.endswith("kept.txt"):
            s3_client.put_object(Bucket=bucket, Key=key, Body=b"theirs")
        return real(b, key, etag)

    vault.remote.delete_if_match = racing_delete  # type: ignore[method-assign]
    report = engine.reconcile()
    assert report.deleted == 1
    assert [c.path for c in report.conflicts] == ["kept.txt"]
    others = {PREFIX + f"other-{n}.txt" for n in range(3)}
    assert keys(s3_client, bucket) == {PREFIX + "kept.txt"} | others
    body = s3_client.get_object(Bucket=bucket, Key=PREFIX + "kept.txt")["Body"].read()
    assert body == b"theirs"


@pytest.mark.parametrize("conditional", [True, False], ids=["if-match", "head-compare"])
def test_delete_if_match(vault, bucket, s3_client, conditional):
    remote = vault.remote
    remote._conditional_delete = conditional  # False: a store without conditional deletes
    etag = s3_client.put_object(Bucket=bucket, Key="d/obj", Body=b"one")["ETag"]
    s3_client.put_object(Bucket=bucket, Key="d/obj", Body=b"two")
    with pytest.raises(ConflictError):
        remote.delete_if_match(bucket, "d/obj", etag)
    assert s3_client.get_object(Bucket=bucket, Key="d/obj")["Body"].read() == b"two"
    current = s3_client.head_object(Bucket=bucket, Key="d/obj")["ETag"]
    assert remote.delete_if_match(bucket, "d/obj", current) is True
    assert keys(s3_client, bucket) == set()
    assert remote.delete_if_match(bucket, "d/obj", current) is False


class Crash(BaseException):
    """What a kill between S3's answer and the state row looks like to the engine."""


def crash_before_recording(engine: SyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash

    monkeypatch.setattr(engine.state, "record_synced", crash)
    with pytest.raises(Crash):
        engine.reconcile()
    monkeypatch.undo()


@pytest.mark.parametrize("edited_meanwhile", [False, True], ids=["unchanged", "edited"])
def test_an_upload_finished_before_a_crash_is_adopted(
    root, bucket, vault, state, s3_client, monkeypatch, edited_meanwhile
):
    engine = make_engine(root, bucket, vault, state)
    write(root, "doc.txt", b"written, then the agent died")
    crash_before_recording(engine, monkeypatch)
    assert state.get(engine.fid, "doc.txt") is None
    assert [u.path for u in state.uploads(engine.fid)] == ["doc.txt"]
    stored_etag = s3_client.head_object(Bucket=bucket, Key=PREFIX + "doc.txt")["ETag"]
    if edited_meanwhile:
        write(root, "doc.txt", b"edited while the agent was down")

    puts = count_calls(vault.remote.client, "PutObject")
    report = engine.reconcile()
    assert report.conflicts == [] and report.errors == []
    assert state.uploads(engine.fid) == []
    row = state.get(engine.fid, "doc.txt")
    head = s3_client.head_object(Bucket=bucket, Key=PREFIX + "doc.txt")
    assert row is not None and row.etag.strip('"') == head["ETag"].strip('"')
    if edited_meanwhile:
        # Adopted, then compared, then uploaded conditional on the adopted ETag.
        assert (report.uploaded, puts()) == (1, 1)
        assert decrypted(vault, bucket, "doc.txt") == b"edited while the agent was down"
    else:
        assert (report.uploaded, puts()) == (0, 0)
        assert head["ETag"] == stored_etag
        assert engine.reconcile().uploaded == 0


def test_an_object_of_another_writer_is_not_adopted(
    root, bucket, vault, state, s3_client, monkeypatch
):
    engine = make_engine(root, bucket, vault, state)
    write(root, "doc.txt", b"mine")
    crash_before_recording(engine, monkeypatch)
    # Before the restart, another machine replaces the object.
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "doc.txt", Body=b"theirs")
    report = engine.reconcile()
    assert [c.path for c in report.conflicts] == ["doc.txt"]
    assert state.get(engine.fid, "doc.txt") is None and state.uploads(engine.fid) == []
    assert s3_client.get_object(Bucket=bucket, Key=PREFIX + "doc.txt")["Body"].read() == b"theirs"


@pytest.mark.parametrize("mode", ["rewrap", "reencrypt"])
def test_a_rotated_object_is_relearned_not_a_conflict(
    root, bucket, vault, state, s3_client, run_cli, keyring_service, mode
):
    engine = make_engine(root, bucket, vault, state)
    for n in range(3):
        write(root, f"f{n}.txt", f"file {n}".encode())
    assert engine.reconcile().uploaded == 3
    assert run_cli("key", "generate", "rotated-key").returncode == 0
    extra = ["--reencrypt"] if mode == "reencrypt" else []
    r = run_cli(
        "rotate", f"s3://{bucket}/{PREFIX}", "--recursive", "--to-key", "rotated-key", *extra
    )
    assert r.returncode == 0, r.stderr.decode()
    changed = {
        f"f{n}.txt"
        for n in range(3)
        if s3_client.head_object(Bucket=bucket, Key=f"{PREFIX}f{n}.txt")["ETag"].strip('"')
        != state.get(engine.fid, f"f{n}.txt").etag.strip('"')
    }
    if mode == "reencrypt":
        assert len(changed) == 3  # new ciphertext, new ETags

    # A run with the listing learns the new ETags; nothing is a conflict or re-uploaded.
    report = engine.reconcile()
    assert (report.conflicts, report.uploaded, report.relearned) == ([], 0, len(changed))
    for n in range(3):
        head = s3_client.head_object(Bucket=bucket, Key=f"{PREFIX}f{n}.txt")
        row = state.get(engine.fid, f"f{n}.txt")
        assert row.etag.strip('"') == head["ETag"].strip('"')
        # S3 keeps the ETag of a re-wrap copy (same bytes); a relearned row learns the key.
        assert row.key_name == ("rotated-key" if f"f{n}.txt" in changed else "sync-key")

    # An event batch (no listing) after another rotation: the conditional write fails
    # with 412, the row is relearned, and the write goes through on the new ETag.
    r = run_cli(
        "rotate", f"s3://{bucket}/{PREFIX}", "--recursive", "--to-key", "sync-key", "--reencrypt"
    )
    assert r.returncode == 0, r.stderr.decode()
    write(root, "f0.txt", b"edited after the rotation")
    report = engine.reconcile(paths=["f0.txt"], with_remote_listing=False)
    assert (report.conflicts, report.uploaded) == ([], 1)
    assert decrypted(vault, bucket, "f0.txt") == b"edited after the rotation"


def test_another_writers_object_is_still_a_conflict_after_relearning(
    root, bucket, vault, state, s3_client
):
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"mine")
    engine.reconcile()
    # Another machine writes the path, copying our metadata but not our token.
    head = s3_client.head_object(Bucket=bucket, Key=PREFIX + "a.txt")
    metadata = dict(head["Metadata"], **{"s3vault-upload": "someone-else"})
    s3_client.put_object(Bucket=bucket, Key=PREFIX + "a.txt", Body=b"theirs", Metadata=metadata)
    report = engine.reconcile()
    assert [c.path for c in report.conflicts] == ["a.txt"] and report.relearned == 0


def late_write(engine: SyncEngine, vault: Vault, bucket: str, rel: str, *, token: str) -> str:
    """What a killed agent's last request does: its object lands in S3 after the restart
    looked for it (its announcement is settled, no row). Returns the ETag."""
    full = engine.folder.path / rel
    result = vault.put(
        full,
        bucket,
        PREFIX + rel,
        key_name=engine.folder.key,
        extra_metadata={
            MTIME_METADATA: str(full.stat().st_mtime_ns),
            "s3vault-upload": token,
        },
    )
    return result.etag


@pytest.mark.parametrize("listing", [True, False], ids=["full-run", "event-batch"])
@pytest.mark.parametrize("edited_meanwhile", [False, True], ids=["unchanged", "edited"])
def test_a_write_that_landed_after_the_restart_is_ours_not_a_conflict(
    root, bucket, vault, state, s3_client, listing, edited_meanwhile
):
    engine = make_engine(root, bucket, vault, state)
    write(root, "late.txt", b"sent just before kill -9")
    etag = late_write(engine, vault, bucket, "late.txt", token=engine.new_token())
    assert state.get(engine.fid, "late.txt") is None and state.uploads(engine.fid) == []
    if edited_meanwhile:
        write(root, "late.txt", b"edited while the agent was down")

    report = engine.reconcile(paths=None if listing else ["late.txt"], with_remote_listing=listing)
    assert report.conflicts == [] and report.errors == []
    row = state.get(engine.fid, "late.txt")
    head = s3_client.head_object(Bucket=bucket, Key=PREFIX + "late.txt")
    assert row is not None and row.etag.strip('"') == head["ETag"].strip('"')
    if edited_meanwhile:
        # Relearned, then uploaded conditional on the late object's ETag.
        assert report.uploaded == 1 and head["ETag"] != etag
        assert decrypted(vault, bucket, "late.txt") == b"edited while the agent was down"
    else:
        assert (report.uploaded, report.relearned) == (0, 1) and head["ETag"] == etag
    assert engine.reconcile().planned == {}


def test_a_write_landing_after_the_restart_looked_for_it_is_adopted_then_its_deleted_file_deleted(
    root, bucket, vault, state, s3_client, tmp_path
):
    # kill -9 with a PUT in S3's hands: the restart's HEAD finds nothing, S3 commits
    # the write just after, and its file was deleted meanwhile. Found by
    # tests/reliability/test_crash_agent.py: forgotten at once, the announcement left
    # such an object in S3 for good, owned by no row (a deleted file come back).
    engine = make_engine(root, bucket, vault, state)
    write(root, "kept.txt", b"stays")
    token = engine.new_token()
    key = PREFIX + "gone.txt"
    state.begin_upload(engine.fid, InFlightUpload("gone.txt", key, 5, 1, token=token))

    report = engine.reconcile()
    assert report.deferred == ["gone.txt"] and report.errors == []
    assert [u.path for u in state.uploads(engine.fid)] == ["gone.txt"]

    sent = write(tmp_path, "sent.txt", b"sent just before kill -9")
    metadata = {MTIME_METADATA: "1", "s3vault-upload": token}
    vault.put(sent, bucket, key, key_name=engine.folder.key, extra_metadata=metadata)
    report = engine.reconcile()
    assert (report.deleted, report.deferred, report.errors) == (1, [], [])
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix=key)
    assert state.get(engine.fid, "gone.txt") is None and state.uploads(engine.fid) == []


def test_a_rename_copied_before_a_crash_then_renamed_again_leaves_no_object_behind(
    root, bucket, vault, state, s3_client, monkeypatch
):
    # kill -9 between S3's answer to a rename's copy and its row, then the file renamed
    # again: the copy's object must not stay in S3 with no row (found by the soak of
    # tests/reliability/test_crash_agent.py; copies were not announced).
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"renamed twice")
    engine.reconcile()
    (root / "a.txt").rename(root / "b.txt")
    crash_before_recording(engine, monkeypatch)
    assert PREFIX + "b.txt" in keys(s3_client, bucket)  # copied, no row
    (root / "b.txt").rename(root / "c.txt")

    report = engine.reconcile()
    assert (report.errors, report.conflicts) == ([], [])
    assert keys(s3_client, bucket) == {PREFIX + "c.txt"}
    assert decrypted(vault, bucket, "c.txt") == b"renamed twice"
    assert set(state.all(engine.fid)) == {"c.txt"} and state.uploads(engine.fid) == []


def test_an_interrupted_write_s3_never_commits_is_forgotten_after_the_grace(
    root, bucket, vault, state
):
    engine = make_engine(root, bucket, vault, state)
    long_ago = time.time() - LATE_WRITE_GRACE - 1
    upload = InFlightUpload("lost.txt", PREFIX + "lost.txt", 5, 1, token=engine.new_token())
    state.begin_upload(engine.fid, dataclasses.replace(upload, started_at=long_ago))
    report = engine.reconcile()
    assert report.deferred == [] and state.uploads(engine.fid) == []


def test_a_late_write_from_another_state_is_still_a_conflict(
    root, bucket, vault, state, s3_client, tmp_path
):
    engine = make_engine(root, bucket, vault, state)
    write(root, "late.txt", b"mine")
    with StateDB(tmp_path / "other-machine.db") as other_state:
        other = make_engine(root, bucket, vault, other_state)
        etag = late_write(other, vault, bucket, "late.txt", token=other.new_token())
    # Other bytes than the object's (an object holding this very file would be taken
    # as its object: the state-rebuild rule, tests/reliability/test_local_faults_state.py).
    write(root, "late.txt", b"mine, edited")
    report = engine.reconcile()
    assert [c.path for c in report.conflicts] == ["late.txt"] and report.relearned == 0
    assert state.get(engine.fid, "late.txt") is None
    assert s3_client.head_object(Bucket=bucket, Key=PREFIX + "late.txt")["ETag"] == etag


def test_one_run_per_folder_and_state_database_at_a_time(root, bucket, vault, state, s3_client):
    engine = make_engine(root, bucket, vault, state)
    write(root, "a.txt", b"alpha")
    # Another process (a one-shot `sync` or the agent) holds the folder: its flock is
    # per open file, so a second one here stands for it.
    with StateDB(state.path) as other, other.folder_lock(engine.fid):
        with pytest.raises(FolderBusyError, match="another s3vault process"):
            engine.reconcile()
        assert keys(s3_client, bucket) == set()
        # A dry run writes nothing and may look meanwhile.
        assert engine.reconcile(dry_run=True).planned == {"upload": 1}
    assert engine.reconcile().uploaded == 1
