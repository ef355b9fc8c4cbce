"""Local faults on the way down and on unreadable files: a full disk during `get` and
`restore` (a small tmpfs, RLIMIT_FSIZE), permission denied on a synced folder and on a
restore destination.

Each ends in a clean error (exit 2, a message that names the file and the reason, no
traceback), leaves no partial file under a final name nor a temp file, never touches a
file already at the destination, and a restore lists what it could not write. Tests run
as root: the permission cases run the CLI under `UNPRIVILEGED` (``unprivileged=True``).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from local_helpers import MiB, clean_exit, json_out, leftovers, objects, tmpfs
from sync_helpers import SYNC_KEY, sync_vault, write

from s3vault.vault.vault import Vault

PREFIX = "disk/"
BIG = 3 * MiB  # does not fit the 2 MiB tmpfs below


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    return sync_vault(keyring_service)


@pytest.fixture
def stored(vault: Vault, bucket: str, tmp_path: Path) -> dict[str, bytes]:
    """Objects under PREFIX: two small files around one too big for the small disk."""
    files = {"a.txt": b"alpha" * 100, "b-big.bin": os.urandom(BIG), "c.txt": b"gamma" * 100}
    src = tmp_path / "src"
    for rel, data in files.items():
        vault.put(write(src, rel, data), bucket, PREFIX + rel, key_name=SYNC_KEY)
    return files


def test_get_onto_a_full_disk_fails_cleanly_and_keeps_the_old_file(
    run_cli, bucket, stored, tmp_path, reliability
):
    with tmpfs(tmp_path / "small", "2m") as disk:
        (disk / "b-big.bin").write_bytes(b"the old version")
        r = run_cli("get", f"s3://{bucket}/{PREFIX}b-big.bin", disk / "b-big.bin")
        err = clean_exit(r, 2)
        assert "no space left on the device" in err and "b-big.bin" in err
        assert (disk / "b-big.bin").read_bytes() == b"the old version"
        assert leftovers(disk) == [] and sorted(os.listdir(disk)) == ["b-big.bin"]
        # With room again, the same command works.
        (disk / "b-big.bin").unlink()
    with tmpfs(tmp_path / "small", "8m") as disk:
        clean_exit(run_cli("get", f"s3://{bucket}/{PREFIX}b-big.bin", disk / "b-big.bin"), 0)
        assert (disk / "b-big.bin").read_bytes() == stored["b-big.bin"]
    reliability.fault("disk full (get)")
    reliability.data(BIG, 0)


def test_get_past_the_file_size_limit_fails_cleanly(run_cli, bucket, stored, tmp_path, reliability):
    # RLIMIT_FSIZE: a write past it fails with EFBIG (Python ignores SIGXFSZ, which would
    # otherwise kill the process). Not run_cli: the limit is set in the child only.
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))

    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "s3vault", "get", f"s3://{bucket}/{PREFIX}b-big.bin", str(out)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit,
        timeout=120,
        check=False,
    )
    err = clean_exit(r, 2)
    assert "b-big.bin" in err and "file size limit" in err, err
    assert os.listdir(out) == []
    reliability.fault("file size limit (get)")


def test_restore_onto_a_full_disk_restores_what_fits_and_lists_the_rest(
    run_cli, bucket, stored, tmp_path, reliability
):
    with tmpfs(tmp_path / "small", "2m") as disk:
        target = disk / "restored"
        r = run_cli("restore", f"s3://{bucket}/{PREFIX}", target, "--json")
        clean_exit(r, 2)
        report = json_out(r)
        assert report["restored"] == 2 and report["exit_code"] == 2
        assert [(e["path"], e["exit_code"]) for e in report["errors"]] == [("b-big.bin", 2)]
        assert "no space left on the device" in report["errors"][0]["message"]
        assert sorted(os.listdir(target)) == ["a.txt", "c.txt"], "no partial b-big.bin"
        for rel in ("a.txt", "c.txt"):
            assert (target / rel).read_bytes() == stored[rel]
        assert leftovers(disk) == []
        # The human-readable form says the same, on stderr.
        (target / "a.txt").unlink()
        err = clean_exit(run_cli("restore", f"s3://{bucket}/{PREFIX}", target), 2)
        assert "b-big.bin" in err and "no space left on the device" in err
    reliability.fault("disk full (restore)", 2)
    reliability.data(sum(len(stored[r]) for r in ("a.txt", "c.txt")), 0)


def test_unreadable_files_are_reported_and_their_objects_kept(
    run_cli, bucket, vault, tmp_path, s3_client, reliability
):
    root = tmp_path / "folder"
    for rel in ("open.txt", "secret.txt", "stale.txt", "locked/in.txt", "locked/deep/x.txt"):
        write(root, rel, rel.encode() * 10)
    state_dir = {"XDG_STATE_HOME": str(tmp_path / "state")}
    args = ("sync", root, f"s3://{bucket}/perm", "--key", SYNC_KEY, "--json")
    assert json_out(run_cli(*args, env=state_dir))["uploaded"] == 5
    before = objects(s3_client, bucket, "perm/")
    # secret.txt is edited (it must be read again), stale.txt is not (its quick check
    # says unchanged: it is not read and no error).
    write(root, "secret.txt", b"edited, then made unreadable")
    unreadable = [root / "secret.txt", root / "locked", write(root, "never.txt", b"never")]
    unreadable.append(root / "stale.txt")
    write(root, "new.txt", b"a new file")
    for path in unreadable:
        path.chmod(0)
    try:
        r = run_cli(*args, env=state_dir, unprivileged=True)
    finally:
        for path in unreadable:
            path.chmod(0o700)
    clean_exit(r, 2)
    report = json_out(r)
    reasons = {e["path"]: e["message"] for e in report["errors"]}
    assert set(reasons) == {"secret.txt", "locked", "never.txt"}, reasons
    for path, why in reasons.items():
        assert why == f"cannot read {root / path}: permission denied", why
    assert report["uploaded"] == 1 and report["deleted"] == 0
    after = objects(s3_client, bucket, "perm/")
    assert {k: v for k, v in after.items() if k in before} == before, "no object touched"
    assert set(after) - set(before) == {"perm/new.txt"}
    # Readable again: the next run uploads what was missing, and nothing else.
    report = json_out(run_cli(*args, env=state_dir))
    assert (report["uploaded"], report["errors"], report["exit_code"]) == (2, [], 0)
    reliability.fault("permission denied (sync)", 3)


def test_restore_into_an_unwritable_folder_fails_cleanly(
    run_cli, bucket, stored, tmp_path, reliability
):
    target = tmp_path / "readonly"
    target.mkdir()
    (target / "a.txt").write_bytes(b"kept")
    target.chmod(0o555)
    try:
        r = run_cli(
            "restore", f"s3://{bucket}/{PREFIX}", target, "--overwrite", "--json", unprivileged=True
        )
        get = run_cli("get", f"s3://{bucket}/{PREFIX}c.txt", target / "c.txt", unprivileged=True)
    finally:
        target.chmod(0o755)
    clean_exit(r, 2)
    report = json_out(r)
    assert report["restored"] == 0
    assert sorted(e["path"] for e in report["errors"]) == sorted(stored)
    assert all("permission denied" in e["message"] for e in report["errors"])
    err = clean_exit(get, 2)
    assert "permission denied" in err and str(target) in err
    assert sorted(os.listdir(target)) == ["a.txt"] and (target / "a.txt").read_bytes() == b"kept"
    reliability.fault("permission denied (restore)", 2)
