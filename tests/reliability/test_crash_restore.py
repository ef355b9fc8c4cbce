"""kill -9 of `s3vault restore` at random moments, then the restore again.

After every kill, each file that appeared under its own name is whole and
bit-identical to its object (a file appears only once it verified). Then the same
command is run to its end: it exits 0, reports every object as restored or kept (the
files the killed runs completed), and the folder holds exactly the prefix's files,
bit-identical, with no temp file of the killed runs left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_helpers import MiB, file_sha, kill_9, sha
from rotation_helpers import CachingKeyStore

from s3vault.config.load import load_config
from s3vault.keys.material import generate_key
from s3vault.sync.metadata import MTIME_METADATA
from s3vault.vault.factory import build_vault
from s3vault.vault.streams import remove_leftover_parts

PREFIX = "backup/"


@pytest.fixture
def backup_prefix(keyring_service, bucket, tmp_path):
    """Objects under PREFIX as the agent writes them (with their mtimes); (config,
    {relative path: sha256 of the plaintext})."""
    store = CachingKeyStore(keyring_service)
    store.put(generate_key("restore-key", "aes256"))
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "transfer: {multipart_threshold: 5MiB, part_size: 5MiB}\n"
        "defaults: {key: restore-key}\n"
    )
    vault = build_vault(load_config(config), keystore_factory=lambda: store)
    rng = random.Random(13)  # the data; the kill moments come from the crash seed
    expected: dict[str, str] = {}
    source = tmp_path / "source"
    for n in range(42):
        rel = f"dir-{n % 5}/sub-{n % 2}/file-{n}.bin"
        data = rng.randbytes(6 * MiB if n < 2 else rng.randint(0, 8192))
        source.write_bytes(data)
        mtime = 1_600_000_000_000_000_000 + n * 1_000_000_000
        vault.put(source, bucket, PREFIX + rel, extra_metadata={MTIME_METADATA: str(mtime)})
        expected[rel] = sha(data)
    return config, expected


def files_under(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def run_then_kill_9_after(
    argv: list[str], env: dict[str, str], target: Path, n: int, rng: random.Random
) -> bool:
    """Start ``argv``; SIGKILL it a random moment after ``n`` files appeared in
    ``target``; whether the kill landed (it was still running)."""
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while proc.poll() is None and (not target.exists() or len(files_under(target)) < n):
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.02))
    return kill_9(proc)


def test_restore_killed_9_at_random_moments_then_run_again_is_complete_and_bit_identical(
    backup_prefix,
    bucket,
    tmp_path,
    session_env,
    keyring_service,
    crash_seed,
    soak,
    reliability,
):
    config, expected = backup_prefix
    rng = random.Random(crash_seed)
    why = f"(S3VAULT_CRASH_SEED={crash_seed})"
    env = dict(session_env, S3VAULT_KEYRING_SERVICE=keyring_service)
    kills, per_chain = (200, 4) if soak else (6, 3)

    survived = chain_no = 0
    while survived < kills:
        chain_no += 1
        target = tmp_path / f"restored-{chain_no}"
        argv = [
            sys.executable, "-m", "s3vault", "--config", str(config), "restore",
            f"s3://{bucket}/{PREFIX}", str(target), "--json",
        ]  # fmt: skip
        landed = 0
        while landed < min(per_chain, kills - survived):
            # At a random point of its progress: once n files (or temp files) are there.
            killed = run_then_kill_9_after(argv, env, target, rng.randrange(len(expected)), rng)
            if not killed:
                break
            landed += 1
            # Whatever appeared under its own name is whole: verified before it appeared.
            for rel in files_under(target) if target.exists() else []:
                if rel in expected:
                    assert file_sha(target / rel) == expected[rel], f"partial {rel} {why}"
        done = subprocess.run(argv, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, f"{done.stderr.decode()} {why}"
        assert b"Traceback" not in done.stderr, why
        report = json.loads(done.stdout)
        assert report["errors"] == [], f"{report['errors']} {why}"
        assert report["restored"] + len(report["skipped"]) == len(expected), why
        assert files_under(target) == sorted(expected), f"missing or extra files {why}"
        for rel, digest in expected.items():
            assert file_sha(target / rel) == digest, f"{rel} {why}"
        survived += landed
        reliability.kill("restore", landed)
        reliability.data(sum((target / rel).stat().st_size for rel in expected), 0)


def test_leftover_temp_files_are_removed_but_not_one_a_live_process_writes(tmp_path):
    """What the next restore removes: the unverified temp files of a killed one, never
    the one a running download holds (locked)."""
    (tmp_path / "a").mkdir()
    abandoned = tmp_path / "a" / ".x.bin.k2j3h4g5.s3vault-part"
    abandoned.write_bytes(b"unverified plaintext")
    live = tmp_path / ".y.bin.q9w8e7r6.s3vault-part"
    live.write_bytes(b"being written")
    kept = tmp_path / "z.s3vault-part"  # not hidden: not one of ours
    kept.write_bytes(b"a user's file")
    with live.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert remove_leftover_parts(tmp_path) == 1
    assert not abandoned.exists() and live.exists() and kept.exists()
