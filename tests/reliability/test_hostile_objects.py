"""Every negative vector of tests/vectors against every command that reads objects.

tests/test_vectors.py (the format layer) and tests/test_vectors_s3.py (`s3vault get`)
already refuse each tampered copy; here the same objects meet `inspect`, `ls`,
`rotate` (re-wrap, re-wrap with --verify-content, re-encrypt), `restore` and the
sync engine, in process, and then the command line for a sample. Each must end in a
clean error with a documented exit code, release no plaintext, leave no file behind
and never destroy or launder the object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile_helpers import (
    AES_KEY,
    HOSTILE_CODES,
    MANIFEST,
    NEGATIVE,
    VECTOR_KEY,
    HostileKeys,
    assert_clean_failure,
    check_get,
    check_get_stream,
    check_inspect,
    make_hostile_keys,
    read_parts,
    run_cli,
    vector_object,
    vector_plaintext,
)
from reliability_report import ReliabilityReport
from rotation_helpers import rotate

from s3vault.config.sync import FolderSettings
from s3vault.errors import ExitCode
from s3vault.sync.engine import SyncEngine
from s3vault.sync.restore import restore
from s3vault.sync.state import StateDB
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "hostile/"
GOOD = {"good/a.txt": b"alpha " * 100, "good/empty": b""}
# The vectors' own genuine object the negatives were made from: it must still open.
SOURCE = next(e for e in NEGATIVE if e["derived_from"])["derived_from"]


@pytest.fixture(scope="module")
def keys(session_env: dict[str, str]) -> HostileKeys:
    return make_hostile_keys(session_env)


@pytest.fixture(scope="module")
def vault(keys: HostileKeys) -> Vault:
    return keys.vault()


@pytest.fixture
def stocked(s3_client: S3Client, bucket: str, vault: Vault, tmp_path: Path) -> Iterator[str]:
    """``bucket`` with every negative vector under PREFIX, beside genuine objects."""
    for entry in NEGATIVE:
        vector_object(entry).store(s3_client, bucket, PREFIX + entry["name"])
    source = next(e for e in MANIFEST if e["name"] == SOURCE)
    vector_object(source).store(s3_client, bucket, PREFIX + SOURCE)
    for rel, data in GOOD.items():
        local = tmp_path / "good.src"
        local.write_bytes(data)
        vault.put(local, bucket, PREFIX + rel, key_name=AES_KEY)
        local.unlink()
    yield bucket


def _negative_keys() -> list[str]:
    return [PREFIX + e["name"] for e in NEGATIVE]


def test_there_are_negative_vectors_to_try() -> None:
    # Without them every loop below would pass having tried nothing.
    assert len(NEGATIVE) >= 5
    assert all(e["key_file"] == f"keys/{VECTOR_KEY}.key" for e in NEGATIVE)


def test_get_inspect_and_ls_of_every_negative_vector_release_nothing(
    stocked: str, vault: Vault, tmp_path: Path, reliability: ReliabilityReport
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for entry in NEGATIVE:
        key = PREFIX + entry["name"]
        plaintext = vector_plaintext(entry)
        # A tampered copy never opens, to a file or to a stream, even with every opt-in.
        assert check_get(vault, stocked, key, plaintext, out_dir) == "error", key
        assert check_get_stream(vault, stocked, key, plaintext) == "error", key
        check_inspect(vault, stocked, key)
    listed = {i.key: i for i in vault.list(stocked, PREFIX, recursive=True)}
    for key in _negative_keys():
        info = listed[key]
        assert isinstance(info, ObjectInfo)
    # An ambiguous envelope is listed as invalid, not hidden and not a crash.
    confusion = listed[PREFIX + "neg-format-confusion"]
    assert isinstance(confusion, ObjectInfo) and confusion.format_label == "invalid"
    reliability.hostile_input("negative vector (get, get -, inspect, ls)", 4 * len(NEGATIVE))


def test_rotate_neither_destroys_nor_launders_a_tampered_object(
    stocked: str, vault: Vault, s3_client: S3Client, tmp_path: Path, reliability: ReliabilityReport
) -> None:
    """A re-wrap reads only the envelope: it may re-wrap a data key that opens (its
    wrap is authenticated) even though the body was tampered with, and then the object
    is exactly as broken as before: same body, and `get` still refuses it. With
    --verify-content or --reencrypt the body is authenticated and the object is left
    as it was."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    tried = 0
    for entry in NEGATIVE:
        key = PREFIX + entry["name"]
        for options in (
            {"reencrypt": True},
            {"verify_content": True},
            {},  # a plain re-wrap last: it may change the envelope
        ):
            before = read_parts(s3_client, stocked, key)
            report = rotate(vault, stocked, key, to_key=AES_KEY, allow_legacy=True, **options)
            after = read_parts(s3_client, stocked, key)
            tried += 1
            if report.failed:
                (failed,) = report.failed
                assert failed.exit_code in HOSTILE_CODES, (key, options, failed)
                assert after == before, f"{key}: a failed rotation ({options}) changed it"
                continue
            assert options == {}, f"{key}: rotated with {options} although its body is tampered"
            assert after.body == before.body, f"{key}: a re-wrap changed the body"
            # Still refused: rotation never turns a tampered object into a readable one.
            assert check_get(vault, stocked, key, vector_plaintext(entry), out_dir) == "error"
    reliability.hostile_input("negative vector (rotate)", tried)


def test_restore_reports_each_tampered_object_and_restores_the_rest(
    stocked: str, vault: Vault, tmp_path: Path, reliability: ReliabilityReport
) -> None:
    out = tmp_path / "restored"
    report = restore(vault, stocked, PREFIX, out, allow_legacy=True)
    failed = {e.path: e.exit_code for e in report.errors}
    assert set(failed) == {e["name"] for e in NEGATIVE}, report.errors
    assert set(failed.values()) <= set(HOSTILE_CODES)
    assert report.exit_code == ExitCode.INTEGRITY
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    # Every genuine object, nothing else: no tampered file, no temp file.
    assert files == {SOURCE, *GOOD}
    for rel, data in GOOD.items():
        assert (out / rel).read_bytes() == data
    assert report.restored == 1 + len(GOOD)
    reliability.hostile_input("negative vector (restore)", len(NEGATIVE))


def test_sync_uploads_beside_tampered_objects_and_never_touches_them(
    stocked: str, vault: Vault, s3_client: S3Client, tmp_path: Path, reliability: ReliabilityReport
) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    # One local file has the name of a tampered object: a conflict, never an overwrite.
    clash = NEGATIVE[0]["name"]
    (root / clash).write_bytes(b"mine")
    (root / "new.txt").write_bytes(b"new file")
    before = {key: read_parts(s3_client, stocked, key) for key in _negative_keys()}
    folder = FolderSettings(path=root, bucket=stocked, prefix=PREFIX, key=AES_KEY)
    with StateDB(tmp_path / "state.db") as state:
        for _ in range(2):  # the second run reads what the first learned
            report = SyncEngine(folder, vault, state).reconcile()
            assert report.errors == [], report.errors
            assert [c.path for c in report.conflicts] == [clash]
    assert report.exit_code == ExitCode.CONFLICT
    for key, parts in before.items():
        assert read_parts(s3_client, stocked, key) == parts, f"sync changed {key}"
    got = tmp_path / "new.txt"
    vault.get(stocked, PREFIX + "new.txt", got)
    assert got.read_bytes() == b"new file"
    reliability.hostile_input("negative vector (sync engine)", len(NEGATIVE))


def test_the_command_line_on_tampered_objects(
    stocked: str,
    keys: HostileKeys,
    s3_client: S3Client,
    tmp_path: Path,
    reliability: ReliabilityReport,
) -> None:
    """A sample through the real CLI: exit codes, no traceback, no file left."""
    env = keys.env
    out = tmp_path / "restored"
    r = run_cli(env, "restore", f"s3://{stocked}/{PREFIX}", out, "--allow-legacy", cwd=tmp_path)
    assert_clean_failure(r, {ExitCode.INTEGRITY})
    for entry in NEGATIVE:
        assert entry["name"] in r.stderr.decode(), "restore must name each object it refused"
    assert {p.name for p in out.iterdir()} == {SOURCE, "good"}

    r = run_cli(env, "inspect", f"s3://{stocked}/{PREFIX}neg-format-confusion", cwd=tmp_path)
    assert_clean_failure(r, {ExitCode.INTEGRITY})

    before = {key: read_parts(s3_client, stocked, key) for key in _negative_keys()}
    r = run_cli(
        env,
        "rotate",
        f"s3://{stocked}/{PREFIX}",
        "--recursive",
        "--reencrypt",
        "--to-key",
        AES_KEY,
        "--allow-legacy",
        cwd=tmp_path,
    )
    assert_clean_failure(r, set(HOSTILE_CODES))
    for entry in NEGATIVE:
        assert entry["name"] in r.stdout.decode(), "rotate must name each object it refused"
    for key, parts in before.items():
        assert read_parts(s3_client, stocked, key) == parts, f"rotate --reencrypt changed {key}"
    assert os.listdir(tmp_path) == ["restored"]
    reliability.hostile_input(
        "negative vector (CLI restore, inspect, rotate)", 2 * len(NEGATIVE) + 1
    )
