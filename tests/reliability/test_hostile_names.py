"""Hostile names: object keys a restore must not follow, local names S3 cannot store.

Restore reads keys written by anyone. SeaweedFS refuses keys with ``..`` segments or
NUL (and rewrites ``a//b`` and a leading ``/``), but AWS S3 stores them, so these run
on moto's S3, which stores any key. Restore must write nothing outside its folder,
report every key it refused, and restore the rest (long names, control characters,
both Unicode normalisations of a name) as they are. (Keys with CR or LF, which moto
mangles, are restored in the sync test, on SeaweedFS.)
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_helpers import AES_KEY, HostileKeys, assert_clean_failure, make_hostile_keys, run_cli
from reliability_report import ReliabilityReport

from s3vault.config.sync import FolderSettings
from s3vault.errors import ExitCode
from s3vault.sync.engine import SyncEngine
from s3vault.sync.restore import restore
from s3vault.sync.state import StateDB
from s3vault.vault.vault import Vault

PREFIX = "names/"
ESCAPES = [
    "../escape",
    "a/../../escape",
    "/abs",
    "//abs2",
    "..\\escape-win",
    "a\\..\\..\\escape-win",
    "C:\\drive",
    "a/./b",
    "a\x00b",
    "x/../../../../../../../../tmp/escape",
]
LONG_OK = "l" * 240  # a valid file name (< 255 bytes); its temp file name must be too
TOO_LONG = "t" * 300  # over the 255 bytes a file name may have
NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")
FINE = [
    "ok.txt",
    "ctl\x01\x1b[31m.txt",
    "tab\tname",
    NFC,
    NFD,
    "d/File",
    "d/file",
    LONG_OK,
    "é/" + "ü" * 120,  # 240 bytes of UTF-8 in one segment
]


@pytest.fixture(scope="module")
def keys(session_env: dict[str, str]) -> HostileKeys:
    return make_hostile_keys(session_env)


@pytest.fixture
def moto_vault(
    kms: Any, keys: HostileKeys, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Vault, str, dict[str, str]]]:
    """A vault on moto's S3 (it stores any key) and a bucket there."""
    import uuid

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", kms.endpoint_url)
    vault = keys.vault()
    bucket = f"names-{uuid.uuid4().hex[:12]}"
    vault.remote.session.s3_client.create_bucket(Bucket=bucket)
    yield vault, bucket, {**keys.env, "AWS_ENDPOINT_URL_S3": kms.endpoint_url}


def _put(vault: Vault, bucket: str, key: str, data: bytes, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    vault.put(src, bucket, key, key_name=AES_KEY)
    src.unlink()


def _all_files(top: Path) -> set[Path]:
    return {p for p in top.rglob("*") if not p.is_dir()}


def test_restore_writes_nothing_outside_its_folder_and_reports_each_refused_key(
    moto_vault: tuple[Vault, str, dict[str, str]],
    tmp_path: Path,
    reliability: ReliabilityReport,
) -> None:
    vault, bucket, env = moto_vault
    work = tmp_path / "work"
    work.mkdir()
    contents = {key: f"content of {key!r}".encode() for key in [*ESCAPES, TOO_LONG, *FINE]}
    for key, data in contents.items():
        _put(vault, bucket, PREFIX + key, data, work)
    stored = {o.key[len(PREFIX) :] for o in vault.list_objects(bucket, PREFIX)}
    assert stored == set(contents), "moto must store every hostile key as given"

    # A deep destination: the longest restored paths pass PATH_MAX (4096 bytes).
    deep = tmp_path.joinpath(*["p" * 200] * 19)
    for root in (tmp_path / "out", deep / "out"):
        before = _all_files(tmp_path)
        report = restore(vault, bucket, PREFIX, root)
        refused = {e.path: e for e in report.errors}
        for key in ESCAPES:
            assert key in refused, f"{key!r} was not refused"
            assert refused[key].exit_code == ExitCode.REFUSED
        assert TOO_LONG in refused
        new = _all_files(tmp_path) - before
        # Nothing outside the folder; inside it, exactly the fine keys.
        assert all(p.is_relative_to(root) for p in new), new
        restored = {str(p.relative_to(root)): p.read_bytes() for p in new}
        if root == deep / "out":
            # Past PATH_MAX some fine names cannot be made here: reported, never partial.
            assert set(restored) | set(refused) >= set(FINE)
        else:
            assert restored == {k: contents[k] for k in FINE}, set(restored) ^ set(FINE)
            assert set(refused) == {*ESCAPES, TOO_LONG}
        assert report.restored == len(restored)
    reliability.hostile_input("hostile object key (restore)", 2 * len(contents))

    # The command line: the refused keys named (escaped), no traceback.
    out = tmp_path / "cli-out"
    r = run_cli(env, "restore", f"s3://{bucket}/{PREFIX}", out, cwd=work)
    assert_clean_failure(r, {ExitCode.REFUSED})
    stderr = r.stderr.decode()
    assert "../escape" in stderr and "a\\x00b" in stderr, stderr
    assert "\x1b" not in r.stdout.decode() + stderr, "a key's escape sequence reached the terminal"
    assert {str(p.relative_to(out)) for p in _all_files(out)} == set(FINE)
    reliability.hostile_input("hostile object key (CLI restore)", len(contents))


def test_sync_skips_local_names_s3_cannot_store_and_syncs_the_rest(
    bucket: str, keys: HostileKeys, tmp_path: Path, reliability: ReliabilityReport
) -> None:
    vault = keys.vault()
    root = tmp_path / "folder"
    root.mkdir()
    fine = {
        "ok.txt": b"ok",
        "cr\rname.txt": b"carriage return",
        "nl\nname.txt": b"newline",
        "ctl\x01.txt": b"control",
        NFC: b"composed",
        NFD: b"decomposed",
        "d/File": b"upper",
        "d/file": b"lower",
        LONG_OK: b"long name",
    }
    for rel, data in fine.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    # Not valid UTF-8: S3 keys must be.
    bad_utf8 = os.fsdecode(b"bad\xff\xfename.txt")
    (root / bad_utf8).write_bytes(b"latin-1")
    # A path of more than S3's 1,024 bytes of key.
    too_long = "/".join(["s" * 200] * 6) + "/file.txt"
    (root / too_long).parent.mkdir(parents=True)
    (root / too_long).write_bytes(b"deep")
    folder = FolderSettings(path=root, bucket=bucket, prefix=PREFIX, key=AES_KEY)
    with StateDB(tmp_path / "state.db") as state:
        report = SyncEngine(folder, vault, state).reconcile()
        assert report.uploaded == len(fine), report.errors
        problems = {e.path for e in report.errors}
        assert report.skipped + len(problems) == 2, (report.skipped, report.errors)
        assert too_long in problems or report.skipped == 2
        again = SyncEngine(folder, vault, state).reconcile()
        assert (again.uploaded, again.conflicts) == (0, []), again
    out = tmp_path / "restored"
    restore(vault, bucket, PREFIX, out)
    back = {str(p.relative_to(out)): p.read_bytes() for p in _all_files(out)}
    assert back == fine
    reliability.hostile_input("local name S3 cannot store (sync)", 2)
    reliability.hostile_input("unusual local name (sync round trip)", len(fine))
