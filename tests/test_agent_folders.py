"""Protocol 2 with a real agent of two folders: per-folder pause and resume, per-file
results, standing conflicts and a refused mass delete, in the snapshot the desktop app
reads (real `s3vault agent --foreground`, SeaweedFS and the keyring)."""

from __future__ import annotations

import json

import pytest
from agent_helpers import agent_procs, environ, wait_for

from s3vault.agent.client import AgentClient
from s3vault.errors import ExitCode, NotFoundError


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for name in ("one.txt", "two.txt", "three.txt"):
        (a / name).write_text(f"a {name}\n")
    for name in ("1.txt", "2.txt", "3.txt", "4.txt"):
        (b / name).write_text(f"b {name}\n")
    return a, b


@pytest.fixture
def agents(run_cli, keyring_service, bucket, folders, tmp_path):
    assert run_cli("key", "generate", "agent-key").returncode == 0
    a, b = folders
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {a}, bucket: {bucket}, prefix: a, key: agent-key}}\n"
        f"  - {{path: {b}, bucket: {bucket}, prefix: b, key: agent-key,"
        " max_delete_percent: 50}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 2}\n"
    )
    yield from agent_procs(config, environ())


def snapshot(agents):
    with AgentClient(agents.socket, timeout=10) as client:
        return client.status()


def synced(agents):
    """The first snapshot after both folders' start-up reconciles."""
    return wait_for(
        lambda: (s := snapshot(agents))["reconciles"] >= 2 and s["state"] == "idle" and s,
        "both folders synced",
    )


def folder(snap, fid):
    (found,) = [f for f in snap["folders"] if f["folder"] == fid]
    return found


def keys_in(s3_client, bucket, prefix):
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for o in listed.get("Contents", [])}


def test_pausing_one_folder_of_two_syncs_only_the_other_until_resumed(
    agents, bucket, folders, s3_client
):
    a, b = folders
    fid_a, fid_b = f"s3://{bucket}/a/", f"s3://{bucket}/b/"
    agents.start()
    snap = synced(agents)
    assert snap["protocol"] == 2
    assert {(f["path"], f["action"]) for f in snap["files"]} >= {
        ("one.txt", "uploaded"),
        ("4.txt", "uploaded"),
    }
    with AgentClient(agents.socket) as client:
        assert client.hello()["protocol"] == 2
        with pytest.raises(NotFoundError, match="no folder"):
            client.pause(folder="s3://not-synced/x/")
    r = agents.cli("pause", "--folder", "/not/a/synced/folder")
    assert r.returncode == ExitCode.NOT_FOUND and b"no folder" in r.stderr

    r = agents.cli("pause", "--folder", str(a), "--json")  # by path
    assert r.returncode == 0, r.stderr.decode()
    reply = json.loads(r.stdout)
    assert (reply["folder"], reply["folder_state"], reply["state"]) == (fid_a, "paused", "idle")
    (a / "new-a.txt").write_text("while paused\n")
    (b / "new-b.txt").write_text("not paused\n")

    wait_for(lambda: "b/new-b.txt" in keys_in(s3_client, bucket, "b/"), "b's new file in S3")
    snap = snapshot(agents)
    assert folder(snap, fid_a)["paused"] is True and folder(snap, fid_a)["state"] == "paused"
    assert folder(snap, fid_b)["paused"] is False
    assert snap["files"][0]["path"] == "new-b.txt" and snap["files"][0]["folder"] == fid_b
    assert "a/new-a.txt" not in keys_in(s3_client, bucket, "a/")
    text = agents.cli("status").stdout.decode()
    assert f"{a} -> {fid_a}: paused" in text

    assert agents.cli("resume", "--folder", fid_a).returncode == 0  # by id
    wait_for(lambda: "a/new-a.txt" in keys_in(s3_client, bucket, "a/"), "a's file after resume")
    assert folder(snapshot(agents), fid_a)["paused"] is False


def test_a_conflict_stands_in_the_snapshot_and_the_folder(agents, bucket, folders, s3_client):
    a, _ = folders
    fid_a = f"s3://{bucket}/a/"
    agents.start()
    synced(agents)
    with AgentClient(agents.socket) as client:
        client.pause(folder=fid_a)
        # Deleted here while another machine changed it in S3: kept, and a conflict.
        (a / "two.txt").unlink()
        s3_client.put_object(Bucket=bucket, Key="a/two.txt", Body=b"changed elsewhere")
        client.resume(folder=fid_a)

    snap = wait_for(lambda: (s := snapshot(agents))["conflicts"] and s, "the conflict")
    (conflict,) = snap["conflicts"]
    assert (conflict["folder"], conflict["path"]) == (fid_a, "two.txt")
    assert "changed in S3" in conflict["reason"]
    assert folder(snap, fid_a)["conflicts"] == 1
    assert snap["attention"]["conflicts"] == 1 and snap["attention"]["level"] != "ok"
    assert any(f["action"] == "conflict" and f["path"] == "two.txt" for f in snap["files"])
    assert "a/two.txt" in keys_in(s3_client, bucket, "a/")
    assert "conflicts (1)" in agents.cli("status").stdout.decode()


def test_a_refused_mass_delete_shows_in_the_snapshot(agents, bucket, folders, s3_client):
    _, b = folders
    fid_b = f"s3://{bucket}/b/"
    agents.start()
    synced(agents)
    # Paused, so that the three deletes meet the guard in one run (not event by event).
    with AgentClient(agents.socket) as client:
        client.pause(folder=fid_b)
        for name in ("1.txt", "2.txt", "3.txt"):  # 3 of 4: over the folder's 50 %
            (b / name).unlink()
        client.resume(folder=fid_b)

    # The refusal stands while a later run of the folder (its late delete events) is
    # under way; the folder is in error whenever none is.
    snap = wait_for(
        lambda: (s := snapshot(agents))["state"] == "error" and folder(s, fid_b)["refused"] and s,
        "the refusal",
    )
    refused = folder(snap, fid_b)["refused"]
    assert refused["kind"] == "mass-delete"
    assert "would delete 3 of 4" in refused["message"] and "--force" in refused["hint"]
    assert folder(snap, fid_b)["state"] == "error" and snap["state"] == "error"
    assert snap["attention"]["refused"] == 1 and snap["attention"]["level"] == "error"
    assert len(keys_in(s3_client, bucket, "b/")) == 4  # nothing was deleted
