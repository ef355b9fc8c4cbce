"""kill -9 of a real agent at random moments of a large sync, then a restart.

Whatever the moment of death (mid-scan, mid-upload, mid-multipart, between S3's
answer and the state row), the restarted agent converges: every object decrypts to
the file's content, the state database agrees with S3, and no multipart upload is
left open. The seed is in every assertion message, so a failure can be replayed
(S3VAULT_CRASH_SEED=...).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
from agent_helpers import agent_procs, environ
from test_agent_socket import idle

from s3vault.config.load import load_config
from s3vault.config.sync import FolderSettings
from s3vault.keys.store import KeyStore
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault

MiB = 1024 * 1024
SMALL_FILES = 300
LARGE_FILES = 3  # 12 MiB each: multipart with the 5 MiB parts below
KILLS = 4


def write_tree(folder: Path, rng: random.Random) -> None:
    for n in range(SMALL_FILES):
        path = folder / f"dir-{n % 10}" / f"small-{n}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(0, 16 * 1024)))
    for n in range(LARGE_FILES):
        (folder / f"large-{n}.bin").write_bytes(rng.randbytes(12 * MiB))


def edit_some(folder: Path, rng: random.Random, round_: int) -> None:
    """What a user does between crashes: edits, new files, deletes, a rename."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in rng.sample(files, 5):
        path.write_bytes(rng.randbytes(rng.randint(1, 8192)))
    (folder / f"new-{round_}.txt").write_bytes(rng.randbytes(100))
    victim = rng.choice([p for p in files if p.name.startswith("small-")])
    if victim.exists():
        victim.unlink()
    moved = rng.choice([p for p in files if p.exists() and p.name.startswith("small-")])
    moved.rename(moved.with_name(f"renamed-{round_}-{moved.name}"))


@pytest.fixture
def crash_setup(run_cli, keyring_service, bucket, tmp_path):
    assert run_cli("key", "generate", "agent-key").returncode == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "transfer: {multipart_threshold: 5MiB, part_size: 5MiB, concurrency: 2}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: crash, key: agent-key}}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 4}\n"
    )
    for agents in agent_procs(config, environ()):
        yield agents, folder, config


def test_kill_9_at_random_moments_then_restart_converges(
    crash_setup, s3_client, bucket, keyring_service
):
    agents, folder, config = crash_setup
    seed = int(os.environ.get("S3VAULT_CRASH_SEED") or random.SystemRandom().getrandbits(32))
    rng = random.Random(seed)
    why = f"(S3VAULT_CRASH_SEED={seed})"
    write_tree(folder, rng)

    for round_ in range(KILLS):
        proc = agents.start()
        # Somewhere in the reconcile at start: the scan, the uploads, the state writes.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=rng.uniform(0.05, 2.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the agent ended by itself {why}"
        edit_some(folder, rng, round_)

    agents.start()
    status = idle(agents)
    assert status["errors"] == [], f"{status['errors']} {why}"

    # S3 holds exactly the files, each decrypting to the file's bytes.
    local = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    listing = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="crash/")
    stored = {
        o["Key"].removeprefix("crash/"): o["ETag"]
        for page in listing
        for o in page.get("Contents", [])
    }
    assert set(stored) == set(local), f"S3 and the folder differ {why}"
    vault = build_vault(load_config(config), keystore_factory=lambda: KeyStore(keyring_service))
    for rel, digest in local.items():
        out = io.BytesIO()
        vault.get(bucket, "crash/" + rel, out)
        assert hashlib.sha256(out.getvalue()).hexdigest() == digest, f"{rel} {why}"

    # The state database agrees with S3, row by row, and has nothing in flight.
    settings = FolderSettings(path=folder, bucket=bucket, prefix="crash", key="agent-key")
    state_path = Path(agents.env["XDG_STATE_HOME"]) / "s3vault" / "state.db"
    with StateDB(state_path) as state:
        rows = state.all(settings.folder_id)
        assert set(rows) == set(local), f"state and the folder differ {why}"
        for rel, row in rows.items():
            assert row.etag.strip('"') == stored[rel].strip('"'), f"{rel} {why}"
            assert row.content_hash == local[rel], f"{rel} {why}"
        assert state.uploads(settings.folder_id) == [], why
    uploads = s3_client.list_multipart_uploads(Bucket=bucket, Prefix="crash/")
    assert uploads.get("Uploads", []) == [], f"multipart uploads left open {why}"
