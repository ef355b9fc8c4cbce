"""The agent as a user runs it: a real `s3vault agent --foreground` process with the
real sync engine, SeaweedFS and the keyring; controlled over its real Unix socket."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys

import pytest
from agent_helpers import agent_procs, environ, wait_for, write_config

from s3vault.agent.client import AgentClient
from s3vault.errors import ExitCode


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "folder"
    path.mkdir()
    return path


@pytest.fixture
def agents(run_cli, keyring_service, bucket, folder, tmp_path):
    assert run_cli("key", "generate", "agent-key").returncode == 0
    config = write_config(tmp_path / "config.yaml", folder, bucket)
    yield from agent_procs(config, environ())


def status(agents):
    r = agents.cli("status", "--json")
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def idle(agents):
    return wait_for(lambda: (s := status(agents))["state"] == "idle" and s["reconciles"] and s)


def test_socket_permissions_status_pause_resume_stop(agents, bucket, folder):
    proc = agents.start()
    run_dir = agents.socket.parent
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(agents.socket).st_mode)
    assert stat.S_IMODE(os.stat(agents.socket).st_mode) == 0o600

    s = idle(agents)
    assert set(s) >= {"state", "paused", "progress", "folders", "recent", "errors", "version"}
    (f,) = s["folders"]
    assert f["folder"] == f"s3://{bucket}/sync/" and f["path"] == str(folder)
    assert f["last_report"]["uploaded"] == 0 and f["last_sync"]

    r = agents.cli("pause")
    assert r.returncode == 0 and b"paused" in r.stdout
    assert status(agents)["state"] == "paused"
    r = agents.cli("resume", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    assert status(agents)["state"] != "paused"
    assert agents.cli("sync-now").returncode == 0

    r = agents.cli("stop")
    assert r.returncode == 0, r.stderr.decode()
    assert proc.wait(timeout=20) == 0
    assert not agents.socket.exists()

    r = agents.cli("status")
    assert r.returncode == ExitCode.UNREACHABLE
    assert b"not running" in r.stderr and b"s3vault agent" in r.stderr


def test_second_agent_is_refused_by_the_lock(agents):
    first = agents.start()
    second = agents.start(wait=False)
    assert second.wait(timeout=30) == ExitCode.CONFLICT
    err = second.stderr.read().decode()
    assert f"an s3vault agent is already running (pid {first.pid})" in err
    assert first.poll() is None
    assert status(agents)["state"] in ("idle", "syncing")


def test_raw_socket_rejects_bad_requests_and_keeps_serving(agents):
    agents.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(agents.socket))
        reader = sock.makefile("rb")
        sock.sendall(b'{"verb": "exec", "args": {}}\n')
        reply = json.loads(reader.readline())
        assert reply["ok"] is False and "unknown verb" in reply["error"]["message"]
        sock.sendall(b"\x80\x04\x95 pickle?\n")
        assert json.loads(reader.readline())["ok"] is False
        sock.sendall(b'{"verb": "status"}\n')
        assert json.loads(reader.readline())["status"]["state"]


def test_subscribe_streams_status_changes(agents):
    agents.start()
    with AgentClient(agents.socket) as watcher, AgentClient(agents.socket) as control:
        updates = watcher.subscribe()
        assert "state" in next(updates)
        control.pause()
        wait_for(lambda: next(updates)["state"] == "paused", what="paused update")
        control.resume()


def test_sd_notify_ready_status_and_watchdog(agents, tmp_path):
    path = f"{agents.runtime}/notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(20)
        agents.start(("NOTIFY_SOCKET", path), ("WATCHDOG_USEC", "400000"))
        seen: set[str] = set()
        while not {"READY=1", "WATCHDOG=1", "STATUS=idle"} <= seen:
            seen.update(notify.recv(4096).decode().split("\n"))
        assert agents.cli("pause").returncode == 0
        while "STATUS=paused" not in seen:
            seen.update(notify.recv(4096).decode().split("\n"))


def test_no_folders_is_a_clear_error(run_cli, tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("version: 1\n")
    r = run_cli("--config", str(config), "agent", "--foreground")
    assert r.returncode == ExitCode.USAGE
    assert b"no folders to sync" in r.stderr


def test_unsafe_runtime_dir_is_refused(agents):
    (agents.runtime / "s3vault").mkdir()
    # Group-readable: another user could reach the socket; the agent must refuse.
    os.chmod(agents.runtime / "s3vault", 0o750)  # noqa: S103
    proc = agents.start(wait=False)
    assert proc.wait(timeout=30) == ExitCode.REFUSED
    assert b"chmod 700" in proc.stderr.read()


def test_a_written_file_is_uploaded_and_decrypts(agents, run_cli, s3_client, bucket, folder):
    agents.start()
    idle(agents)
    data = os.urandom(50_000)
    (folder / "docs").mkdir()
    (folder / "docs" / "a.bin").write_bytes(data)

    def uploaded():
        listing = s3_client.list_objects_v2(Bucket=bucket, Prefix="sync/")
        return [o["Key"] for o in listing.get("Contents", [])]

    assert wait_for(uploaded, what="upload") == ["sync/docs/a.bin"]
    out = folder.parent / "out.bin"
    r = run_cli("get", f"s3://{bucket}/sync/docs/a.bin", str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == data
    s = idle(agents)
    assert s["errors"] == []
    assert any(r["event"] == "sync finished" for r in s["recent"])


def test_kill_9_then_restart_converges(agents, s3_client, bucket, folder):
    first = agents.start()
    idle(agents)
    (folder / "one.txt").write_text("one")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert agents.socket.exists()  # stale: the next agent must cope
    (folder / "two.txt").write_text("two")
    agents.start()

    def keys():
        listing = s3_client.list_objects_v2(Bucket=bucket, Prefix="sync/")
        return sorted(o["Key"] for o in listing.get("Contents", []))

    wait_for(lambda: keys() == ["sync/one.txt", "sync/two.txt"], what="convergence")
    s = idle(agents)
    assert s["errors"] == [], s["errors"]


def test_s3_outage_is_offline_then_recovers(agents, s3, s3_client, bucket, folder):
    agents.start()
    idle(agents)
    s3.stop()
    try:
        (folder / "late.txt").write_text("written while S3 was down")
        s = wait_for(lambda: (s := status(agents))["state"] == "offline" and s, what="offline")
        assert s["folders"][0]["next_retry"] is not None
    finally:
        s3.start()
    wait_for(
        lambda: s3_client.list_objects_v2(Bucket=bucket, Prefix="sync/").get("KeyCount") == 1,
        timeout=40,
        what="upload after the outage",
    )
    assert idle(agents)["folders"][0]["state"] == "idle"


def test_agent_without_foreground_detaches(agents):
    r = agents.cli("agent")
    assert r.returncode == 0, r.stderr.decode()
    assert b"agent started (pid" in r.stdout
    pid = int(r.stdout.split(b"(pid ")[1].split(b")")[0])
    try:
        assert status(agents)["state"]
        assert agents.cli("stop").returncode == 0
        wait_for(lambda: not _alive(pid), what="detached agent exit")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    # The detached agent is not our child once its parent (the CLI) has exited, so
    # it cannot be waited for; a zombie would not count as alive here either.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_missing_folder_is_an_error_until_it_comes_back(agents, s3_client, bucket, folder):
    folder.rmdir()  # an unmounted drive, say
    agents.start()
    s = wait_for(lambda: (s := status(agents))["state"] == "error" and s, what="error state")
    assert "does not exist: is a drive not mounted?" in s["folders"][0]["message"]
    folder.mkdir()
    assert agents.cli("sync-now").returncode == 0
    idle(agents)
    (folder / "back.txt").write_text("the drive is back")  # watched now: no rescan needed
    wait_for(
        lambda: s3_client.list_objects_v2(Bucket=bucket, Prefix="sync/").get("KeyCount") == 1,
        what="upload from the returned folder",
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_agent_cleanly(agents, signum):
    proc = agents.start()
    idle(agents)
    proc.send_signal(signum)
    assert proc.wait(timeout=20) == 0
    assert not agents.socket.exists()
    assert b"stopping" in proc.stderr.read()


def test_status_watch_follows_changes(agents):
    agents.start()
    idle(agents)
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s3vault",
            "--config",
            str(agents.config),
            "status",
            "--watch",
            "--json",
        ],
        env=agents.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert json.loads(watch.stdout.readline())["state"] == "idle"
        assert agents.cli("pause").returncode == 0
        while json.loads(watch.stdout.readline())["state"] != "paused":
            pass
        assert agents.cli("stop").returncode == 0
        assert watch.wait(timeout=20) == 0  # the stream ends with the agent
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        watch.stdout.close()


def test_a_second_agent_start_says_one_is_running_and_exits_8(agents):
    first = agents.start()
    r = agents.cli("agent")  # what a user types, not knowing one already runs
    assert r.returncode == ExitCode.CONFLICT, (r.stdout, r.stderr)
    assert f"an s3vault agent is already running (pid {first.pid})" in r.stderr.decode()
    assert b"agent started" not in r.stdout
    assert first.poll() is None and status(agents)["pid"] == first.pid


def test_status_shows_bytes_moving_during_a_large_upload(agents, folder, bucket, tmp_path):
    # 48 MiB at 12 MiB/s: about four seconds of upload, six multipart parts.
    size = 48 * 1024 * 1024
    agents.config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: sync, key: agent-key}}\n"
        "agent: {debounce_ms: 200, rescan_interval: 1h, bandwidth_limit: 12MiB}\n"
    )
    agents.start()
    idle(agents)
    staged = tmp_path / "video.bin"
    staged.write_bytes(os.urandom(size))
    staged.rename(folder / "video.bin")  # whole at once: no upload of a half-written file

    def moving():
        p = status(agents)["progress"]
        return p and p["files_done"] == 0 and p["bytes_done"] > 0 and p

    p = wait_for(moving, what="progress while the upload runs")
    assert p["files_total"] == 1 and p["bytes_total"] == size
    assert p["current"] == "video.bin" and p["rate"] > 0
    text = agents.cli("status").stdout.decode()
    assert re.search(r"syncing s3://\S+: 0/1 files, [\d.]+ MiB/48\.0 MiB, ", text), text
    s = idle(agents)
    assert s["progress"] is None and s["folders"][0]["last_report"]["uploaded"] == 1


def test_a_one_shot_sync_of_the_agents_folder_is_handed_to_the_agent(agents, bucket, folder):
    agents.start()
    idle(agents)
    target = f"s3://{bucket}/sync"
    r = agents.cli("sync", str(folder), target, "--key", "agent-key", "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout) == {
        "folder": f"s3://{bucket}/sync/",
        "handed_to_agent": True,
        "exit_code": 0,
    }
    # The agent ran the sync the command asked for: a full one, with the listing.
    wait_for(
        lambda: any(e.get("reason") == "sync-now" for e in status(agents)["recent"]),
        what="the agent's sync-now run",
    )
    # --force cannot be handed over: refused, saying what to do instead.
    r = agents.cli("sync", str(folder), target, "--key", "agent-key", "--force")
    assert r.returncode == ExitCode.CONFLICT
    assert "agent syncs" in r.stderr.decode() and "s3vault stop" in r.stderr.decode()
    # A dry run changes nothing: it runs here, while the agent owns the folder.
    r = agents.cli("sync", str(folder), target, "--key", "agent-key", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["dry_run"] is True
