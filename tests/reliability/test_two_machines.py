"""Two machines on one bucket and prefix, each with its own state database: a running
agent (machine A) and `s3vault sync` runs of other folders (machines B and C, each with
its own XDG_STATE_HOME).

What docs/sync.md promises ("Several machines, one bucket"): every write and delete is
conditional on what that machine last saw, so an object the other machine wrote or
changed is reported as a conflict (exit 8, `conflicts` in the agent's snapshot) and
never overwritten; objects a machine never wrote and has no file for are left alone
(no mirror delete of the other's files). A machine that restored the prefix (same
bytes, same mtimes) takes the objects as its files', without uploading them again.
Nothing is lost: every version either machine had is in S3 or still on its disk.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from agent_helpers import agent_procs, environ, wait_for
from local_helpers import clean_exit, json_out, objects
from sync_helpers import SYNC_KEY, decrypted, sync_vault, write

from s3vault.agent.client import AgentClient


def snapshot(socket: Path) -> dict:
    with AgentClient(socket, timeout=10) as client:
        return client.status()


def test_two_machines_on_one_prefix_report_conflicts_and_lose_nothing(
    run_cli, keyring_service, bucket, tmp_path, s3_client, reliability
):
    vault = sync_vault(keyring_service)
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    write(a, "shared.txt", b"A's first version")
    write(a, "only-a.txt", b"a file only A has")
    write(b, "shared.txt", b"B's own version, never synced")
    write(b, "only-b.txt", b"a file only B has")
    url = f"s3://{bucket}/shared"

    def sync(machine: Path):
        env = {"XDG_STATE_HOME": str(tmp_path / f"state-{machine.name}")}
        return run_cli("sync", machine, url, "--key", SYNC_KEY, "--json", env=env)

    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {a}, bucket: {bucket}, prefix: shared, key: {SYNC_KEY}}}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 2}\n"
    )
    with contextmanager(agent_procs)(config, environ()) as agent_a:
        agent_a.start()
        socket = agent_a.socket
        wait_for(
            lambda: (
                len(objects(s3_client, bucket, "shared/")) == 2
                and snapshot(socket)["state"] == "idle"
            ),
            "A's first sync",
        )
        # B syncs its folder into the same prefix: its shared.txt meets A's object.
        report = json_out(r := sync(b))
        clean_exit(r, 8)
        assert [x["path"] for x in report["conflicts"]] == ["shared.txt"]
        assert (report["uploaded"], report["deleted"]) == (1, 0)  # only-b.txt; only-a.txt kept
        assert decrypted(vault, bucket, "shared/shared.txt") == b"A's first version"
        assert (b / "shared.txt").read_bytes() == b"B's own version, never synced"
        # C restores the prefix, then syncs it: the objects are its files already.
        clean_exit(run_cli("restore", f"{url}/", c), 0)
        report = json_out(r := sync(c))
        clean_exit(r, 0)
        assert (report["uploaded"], report["conflicts"], report["relearned"]) == (0, [], 3)
        # C edits shared.txt and syncs it (conditional on the ETag it took over)...
        write(c, "shared.txt", b"C's edit of A's version")
        clean_exit(sync(c), 0)
        # ...then A edits it too: A's write is refused (412), a conflict, not an overwrite.
        with AgentClient(socket, timeout=10) as client:
            client.pause()
            write(a, "shared.txt", b"A's second version, written after C's")
            client.resume()
            client.sync_now()
        snap = wait_for(lambda: (s := snapshot(socket))["conflicts"] and s, "A's conflict")
        assert [x["path"] for x in snap["conflicts"]] == ["shared.txt"]
        assert snap["folders"][0]["conflicts"] == 1
        assert decrypted(vault, bucket, "shared/shared.txt") == b"C's edit of A's version"
        # B re-runs after the others changed the object: still a conflict, not written.
        clean_exit(sync(b), 8)
    # Nothing lost: every version either machine holds is in S3 or on its disk (A's
    # first version was superseded by C, who had it and edited it: a successor).
    where = {
        b"A's second version, written after C's": (a / "shared.txt").read_bytes(),
        b"B's own version, never synced": (b / "shared.txt").read_bytes(),
        b"C's edit of A's version": decrypted(vault, bucket, "shared/shared.txt"),
    }
    for version, found in where.items():
        assert found == version
    for rel, machine in (("only-a.txt", a), ("only-b.txt", b)):
        assert decrypted(vault, bucket, f"shared/{rel}") == (machine / rel).read_bytes()
    reliability.fault("two machines, one prefix (conflicts)", 3)
    reliability.data(sum(map(len, where)), 0)


def agent_config(path: Path, folder: Path, bucket: str) -> Path:
    path.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: shared, key: {SYNC_KEY}}}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 2}\n"
    )
    return path


def test_two_agents_on_one_prefix_report_conflicts_and_never_overwrite(
    run_cli, keyring_service, bucket, tmp_path, s3_client, reliability
):
    # Two machines, each an agent with its own state and runtime dir, each syncing its
    # own folder into the same prefix: B meets A's object, then re-runs after A
    # changed it. Each time a conflict, never an overwrite; each machine's own files
    # go up, neither deletes the other's.
    vault = sync_vault(keyring_service)
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "shared.txt", b"A's version")
    write(a, "only-a.txt", b"only A has this")
    write(b, "shared.txt", b"B's version")
    write(b, "only-b.txt", b"only B has this")

    def idle_after(socket: Path, runs: int) -> dict:
        def done() -> dict | None:
            s = snapshot(socket)
            return s if s["state"] == "idle" and s["reconciles"] > runs else None

        return wait_for(done, "a finished run")

    def stored(rel: str) -> bytes | None:
        return (
            decrypted(vault, bucket, f"shared/{rel}")
            if f"shared/{rel}" in objects(s3_client, bucket, "shared/")
            else None
        )

    machine_a = contextmanager(agent_procs)(agent_config(tmp_path / "a.yaml", a, bucket), environ())
    machine_b = contextmanager(agent_procs)(agent_config(tmp_path / "b.yaml", b, bucket), environ())
    with machine_a as agent_a, machine_b as agent_b:
        agent_a.start()
        idle_after(agent_a.socket, 0)
        agent_b.start()
        snap = idle_after(agent_b.socket, 0)
        assert [x["path"] for x in snap["conflicts"]] == ["shared.txt"]
        assert stored("shared.txt") == b"A's version"
        assert (stored("only-a.txt"), stored("only-b.txt")) == (
            b"only A has this",
            b"only B has this",
        )

        # A changes the object B saw; B runs again: still a conflict, still not written.
        write(a, "shared.txt", b"A's second version")
        wait_for(lambda: stored("shared.txt") == b"A's second version", "A's edit in S3")
        runs = snapshot(agent_b.socket)["reconciles"]
        with AgentClient(agent_b.socket, timeout=10) as client:
            client.sync_now()
        snap = idle_after(agent_b.socket, runs)
        assert [x["path"] for x in snap["conflicts"]] == ["shared.txt"]
        assert stored("shared.txt") == b"A's second version"
    # Nothing lost: A's version in S3 and on A's disk, B's on B's disk, each one's own
    # file in S3 beside the other's.
    assert (a / "shared.txt").read_bytes() == b"A's second version"
    assert (b / "shared.txt").read_bytes() == b"B's version"
    assert (stored("only-a.txt"), stored("only-b.txt")) == (b"only A has this", b"only B has this")
    reliability.fault("two agents, one prefix (conflicts)", 2)
    reliability.data(len(b"A's second version") + len(b"B's version") + 30, 0)
