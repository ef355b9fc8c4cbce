"""The sync root unmounted, swapped for an empty folder or gone, under `s3vault sync` and
under a running agent; and files that grow, shrink or are replaced while they are read
for their upload.

The delete guard holds: not one object is deleted, the run is refused with a message
that says what to check (exit 9; the agent's snapshot shows the refusal). A file that
changes while it is read is never stored torn: whatever S3 holds decrypts to one whole
version of the file, consistent with its state row, and the next run stores the final
bytes.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from agent_helpers import agent_procs, environ, wait_for
from local_helpers import MiB, clean_exit, json_out, objects, tmpfs, unmount
from sync_helpers import SYNC_KEY, decrypted, make_folder_engine, sync_vault, write

from s3vault.agent.client import AgentClient
from s3vault.sync.model import UNKNOWN_HASH
from s3vault.sync.report import SyncProgress, Tally
from s3vault.sync.state import StateDB
from s3vault.vault.vault import Vault

FILES = {f"f{n}.txt": f"file {n}\n".encode() * 50 for n in range(6)}


@pytest.fixture
def vault(keyring_service: str) -> Vault:
    return sync_vault(keyring_service)


def _fill(root: Path) -> None:
    for rel, data in FILES.items():
        write(root, rel, data)


def test_sync_root_unmounted_swapped_or_gone_deletes_nothing(
    run_cli, vault, bucket, tmp_path, s3_client, reliability
):
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}

    def sync(root: Path, prefix: str, *extra: str):
        url = f"s3://{bucket}/{prefix}"
        return run_cli("sync", root, url, "--key", SYNC_KEY, "--json", *extra, env=env)

    # Unmounted: the empty mount point is another directory, and empty.
    mnt = tmp_path / "mnt"
    with tmpfs(mnt, "4m"):
        _fill(mnt)
        clean_exit(sync(mnt, "mnt"), 0)
        mounted = objects(s3_client, bucket, "mnt/")
    clean_exit(r := sync(mnt, "mnt"), 9)
    assert "unmounted" in r.stderr.decode(), r.stderr.decode()
    assert objects(s3_client, bucket, "mnt/") == mounted
    reliability.fault("sync root unmounted (sync)")
    # Swapped: the folder renamed away, an empty one made in its place.
    root = tmp_path / "folder"
    _fill(root)
    clean_exit(sync(root, "folder"), 0)
    synced = objects(s3_client, bucket, "folder/")
    root.rename(tmp_path / "moved-away")
    root.mkdir()
    err = clean_exit(sync(root, "folder"), 9).lower()
    assert "replaced" in err and "nothing was changed" in err and "--force" in err, err
    assert objects(s3_client, bucket, "folder/") == synced
    reliability.fault("sync root swapped for an empty folder (sync)")
    # Gone: refused even with --force. Back in place: in sync, nothing to do.
    root.rmdir()
    err = clean_exit(sync(root, "folder", "--force"), 9)
    assert str(root) in err, err
    (tmp_path / "moved-away").rename(root)
    report = json_out(r := sync(root, "folder"))
    clean_exit(r, 0)
    assert (report["uploaded"], report["deleted"]) == (0, 0)
    assert objects(s3_client, bucket, "folder/") == synced
    reliability.fault("sync root gone (sync)")


def snapshot(socket: Path) -> dict:
    with AgentClient(socket, timeout=10) as client:
        return client.status()


def test_agent_whose_root_is_unmounted_deletes_nothing(
    run_cli, vault, bucket, tmp_path, s3_client, reliability
):
    root = tmp_path / "mnt"
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {root}, bucket: {bucket}, prefix: agent, key: {SYNC_KEY}}}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 2}\n"
    )
    fid = f"s3://{bucket}/agent/"
    with tmpfs(root, "4m"):
        _fill(root)
        with contextmanager(agent_procs)(config, environ()) as agents:
            agents.start()

            wait_for(
                lambda: len(objects(s3_client, bucket, "agent/")) == len(FILES)
                and snapshot(agents.socket)["state"] == "idle",
                "the first sync",
            )
            before = objects(s3_client, bucket, "agent/")
            unmount(root)
            with AgentClient(agents.socket, timeout=10) as client:
                client.sync_now(folder=fid)
            snap = wait_for(
                lambda: (s := snapshot(agents.socket))["folders"][0]["refused"] and s, "the refusal"
            )
            refused = snap["folders"][0]["refused"]
            assert refused["kind"] in ("root-changed", "folder-emptied"), refused
            assert objects(s3_client, bucket, "agent/") == before
    reliability.fault("sync root unmounted (agent)")


@pytest.mark.parametrize("change", ["grows", "shrinks", "is replaced"])
def test_a_file_changing_while_read_is_never_stored_torn(
    change, vault, bucket, tmp_path, reliability, monkeypatch
):
    # Every progress step, not one per 0.25 s: a fast machine sent the whole file
    # within one interval, and the change below never happened mid-read (flaky).
    monkeypatch.setattr(Tally, "NOTIFY_EVERY", 0.0)
    root = tmp_path / "folder"
    old = os.urandom(20 * MiB)  # multipart (8 MiB parts): read part by part
    path = write(root, "big.bin", old)
    new = {"grows": old + os.urandom(MiB), "shrinks": old[: 3 * MiB]}.get(change, b"x" * len(old))
    changed: list[int] = []

    def change_mid_read(p: SyncProgress) -> None:
        # Called as the upload's bytes go out: the first part is on its way.
        if not changed and 0 < p.bytes_done < len(old):
            changed.append(p.bytes_done)
            if change == "grows":
                with path.open("ab") as f:
                    f.write(new[len(old) :])
            elif change == "shrinks":
                os.truncate(path, len(new))
            else:
                write(root, "big.bin.new", new).replace(path)

    with StateDB(tmp_path / "state.db") as state:
        engine = make_folder_engine(root, bucket, "torn", vault, state)
        report = engine.reconcile(progress=change_mid_read)
        assert changed, "the file was changed while it was read"
        row = state.get(engine.fid, "big.bin")
        stored = _stored(vault, bucket)
        assert stored in (None, old, new), "a whole version or nothing"
        if row is not None and row.content_hash != UNKNOWN_HASH:  # the row vouches for S3
            assert stored is not None and hashlib.sha256(stored).hexdigest() == row.content_hash
        assert report.deferred == ["big.bin"] or stored is not None, report
        # Settled: the next run stores the final bytes, and the row says so.
        report = engine.reconcile()
        assert report.exit_code == 0, report
        assert _stored(vault, bucket) == new
        assert state.get(engine.fid, "big.bin").content_hash == hashlib.sha256(new).hexdigest()
    reliability.fault(f"file {change} while read")
    reliability.data(len(new), 0)


def _stored(vault: Vault, bucket: str) -> bytes | None:
    from s3vault.errors import NotFoundError

    try:
        return decrypted(vault, bucket, "torn/big.bin")
    except NotFoundError:
        return None
