"""kill -9 of the sync agent at random moments of a mixed tree's sync, then restarts.

The kills come in chains: the tree changes (edits, new files, a delete, renames, a
multipart-sized file written, rewritten or renamed), then the agent is started and
killed again and again, at a random moment each time — during its start-up, its scan,
its uploads (multipart ones too, 5 MiB parts), its state writes — sometimes while the
test edits a file under it. After every restart the agent came up and answered, its
state database is sound and no file the test left alone was touched. At the end of a
chain the agent runs to idle and everything converged: S3 holds exactly the folder's
files and each object decrypts to its file's bytes, the state agrees with S3 row by row
with no write left announced, no multipart upload is open, and the untouched files
still have their bytes and mtimes. Only then are the chain's kills counted.

CI: 25 kills; --soak: 1,000. The seed is printed; S3VAULT_CRASH_SEED replays it.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest
from agent_helpers import agent_procs, environ, wait_for
from crash_helpers import Convergence, MixedTree, kill_9, start_agent
from rotation_helpers import CachingKeyStore

from s3vault.agent.client import AgentClient
from s3vault.config.load import load_config
from s3vault.config.sync import FolderSettings
from s3vault.errors import UnreachableError
from s3vault.sync.ownership import LATE_WRITE_GRACE
from s3vault.vault.factory import build_vault

PREFIX = "crash/"
WINDOW = 0.6  # seconds after the agent is ready: its reconcile at start is under way


@pytest.fixture
def agent_setup(run_cli, keyring_service, bucket, tmp_path):
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
        "agent: {debounce_ms: 50, rescan_interval: 1h, workers: 4}\n"
    )
    for agents in agent_procs(config, environ()):
        yield agents, folder, config


def status(agents) -> dict | None:
    try:
        with AgentClient(agents.socket, timeout=10) as client:
            return client.status()
    except UnreachableError:
        return None


def idle_after_reconcile(agents) -> dict:
    """The agent's status once it ran and settled: idle, and nothing deferred (a write
    a killed run left that S3 may still commit is looked at again for a few seconds,
    until S3 has it or `LATE_WRITE_GRACE` passed)."""

    def done():
        s = status(agents)
        if not (s and s["state"] == "idle" and s["reconciles"]):
            return None
        deferred = [(f.get("last_report") or {}).get("deferred") for f in s["folders"]]
        return s if not any(deferred) else None

    return wait_for(done, "the agent to finish its sync", timeout=LATE_WRITE_GRACE + 60)


def state_is_sound(path: Path, why: str) -> None:
    if not path.exists():
        return  # killed before it made one
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        (result,) = db.execute("PRAGMA quick_check").fetchone()
    assert result == "ok", f"state database damaged: {result} {why}"


def test_agent_killed_9_at_random_moments_converges_after_each_chain(
    agent_setup, s3_client, bucket, keyring_service, crash_seed, soak, reliability
):
    agents, folder, config = agent_setup
    rng = random.Random(crash_seed)
    why = f"(S3VAULT_CRASH_SEED={crash_seed})"
    kills, per_chain = (1000, 10) if soak else (25, 9)
    tree = MixedTree(folder, rng)
    tree.write()
    store = CachingKeyStore(keyring_service)
    vault = build_vault(load_config(config), keystore_factory=lambda: store)
    settings = FolderSettings(path=folder, bucket=bucket, prefix="crash", key="agent-key")
    state_path = Path(agents.env["XDG_STATE_HOME"]) / "s3vault" / "state.db"
    log = folder.parent / "agent.log"
    convergence = Convergence(
        tree, vault, s3_client, bucket, PREFIX, state_path, settings.folder_id
    )

    survived = 0
    while survived < kills:
        chain = min(per_chain, kills - survived)
        for _ in range(chain):
            tree.change()  # so that every start has work to do when it is killed
            # One in five dies during its start-up; the others once ready, mid-sync.
            during_start = rng.random() < 0.2
            proc = start_agent(agents, log, wait=not during_start)
            if not during_start:
                # This start is also the restart after the last kill: it came up.
                state_is_sound(state_path, why)
                tree.check_untouched(hashes=False)
            delay = rng.uniform(0.0, WINDOW)
            if rng.random() < 0.4:  # a file edited while the agent syncs
                time.sleep(delay / 2)
                tree.edit_one()
                delay /= 2
            time.sleep(delay)
            assert kill_9(proc), f"the agent ended by itself: {proc.returncode} {why}"
        start_agent(agents, log)
        s = idle_after_reconcile(agents)
        assert s["errors"] == [], f"{s['errors']} {why}"
        for f in s["folders"]:
            report = f.get("last_report") or {}
            assert not report.get("conflicts"), f"{report['conflicts']} {why}"
        checked = convergence.check(why)
        kill_9(agents.procs[-1])  # quicker than a clean stop; not counted
        survived += chain
        reliability.kill("agent", chain)
        reliability.data(checked, 0)
