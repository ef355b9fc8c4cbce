"""The agent and KMS through the fault proxy: offline, back-off, resume, nothing lost;
KMS unreachable is a clean exit 6 for the CLI and a reported, recovered error for the agent."""

from __future__ import annotations

import json
import os

import fault_helpers
import pytest
from agent_helpers import agent_procs, environ, wait_for
from fault_helpers import assert_clean_failure, leftovers, proxied_env, proxied_vault, record
from faultproxy import Rule

from s3vault.agent.watcher import BACKOFF_START
from s3vault.errors import ExitCode
from s3vault.keys.store import KeyStore

s3_proxy = fault_helpers.s3_proxy
kms_proxy = fault_helpers.kms_proxy
proxies = fault_helpers.proxies


def _config(path, folder, bucket, key):
    path.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: sync, key: {key}}}\n"
        "agent: {debounce_ms: 200, rescan_interval: 1h, workers: 2}\n"
    )
    return path


def _status(agents):
    r = agents.cli("status", "--json")
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def _idle(agents):
    return wait_for(lambda: (s := _status(agents))["state"] == "idle" and s["reconciles"] and s)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "folder"
    path.mkdir()
    return path


def _check_all_stored(vault, bucket, files, tmp_path):
    for name, data in files.items():
        out = tmp_path / "check.bin"
        vault.get(bucket, f"sync/{name}", out)
        assert out.read_bytes() == data, name
        out.unlink()


def test_agent_s3_faults_offline_backs_off_resumes_and_loses_nothing(
    proxies, run_cli, keyring_service, s3_client, bucket, folder, tmp_path, reliability
):
    s3p, kmsp = proxies
    assert run_cli("key", "generate", "agent-key").returncode == 0
    config = _config(tmp_path / "config.yaml", folder, bucket, "agent-key")
    gen = agent_procs(config, dict(environ(), **proxied_env(s3p, kmsp)))
    agents = next(gen)
    try:
        agents.start()
        _idle(agents)
        before = dict(s3p.counts())
        # S3 goes bad: every request answered 503 or reset, while files change.
        s3p.add(Rule("reset", method="PUT", probability=0.5, times=None))
        s3p.add(Rule("503", times=None))
        files = {f"f{i}.txt": os.urandom(1000 + i) for i in range(3)}
        for name, data in files.items():
            (folder / name).write_bytes(data)
        s = wait_for(
            lambda: (s := _status(agents))["state"] == "offline" and s, what="offline", timeout=60
        )
        assert s["folders"][0]["next_retry"] is not None
        assert s["folders"][0]["message"]
        failed_at = s3p.requests[-1].at  # the failed run's last request
        outage = len(s3p.requests)
        # The fault stops; the retry, after the back-off, finds S3 again.
        s3p.clear()
        # ... and its first PUT is stored but its answer lost: the retry must not
        # take its own object for another writer's (a conflict).
        s3p.add(Rule("reset", method="PUT", times=1))
        wait_for(
            lambda: (
                s3_client.list_objects_v2(Bucket=bucket, Prefix="sync/").get("KeyCount")
                == len(files)
            ),
            what="every file in S3 after the outage",
            timeout=60,
        )
        s = _idle(agents)
        assert s["errors"] == [] and not s.get("conflicts"), s
        resumed_at = next(r.at for r in s3p.requests if r.at > failed_at)
        # Backed off: nothing was sent between the failed run and the retry.
        assert resumed_at - failed_at >= BACKOFF_START * 0.9
        vault = proxied_vault(s3p, kmsp, KeyStore(service=keyring_service))
        _check_all_stored(vault, bucket, files, tmp_path)
        record(reliability, s3p, before, "s3 (agent)")
        reliability.data(sum(map(len, files.values())), 0)
        reliability.figure("agent: S3 requests during a failed run (3 files)", str(outage))
    finally:
        gen.close()


def test_kms_unreachable_put_and_get_exit_6_cleanly_then_work_again(
    proxies, run_cli, kms_key_id, bucket, tmp_path, reliability
):
    s3p, kmsp = proxies
    env = proxied_env(s3p, kmsp)
    r = run_cli("key", "import", "kk", "--type", "kms", "--key-id", kms_key_id)
    assert r.returncode == 0, r.stderr.decode()
    data = os.urandom(50_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()

    kmsp.down()
    r = run_cli("put", str(src), f"s3://{bucket}/k", "--key", "kk", env=env)
    err = assert_clean_failure(r, ExitCode.UNREACHABLE)
    assert "KMS" in err
    kmsp.up()
    r = run_cli("put", str(src), f"s3://{bucket}/k", "--key", "kk", env=env)
    assert r.returncode == 0, r.stderr.decode()

    before = dict(kmsp.counts())
    kmsp.add(Rule("503", times=None))  # KMS answers, badly, every time
    r = run_cli("get", f"s3://{bucket}/k", str(out / "k.bin"), env=env)
    err = assert_clean_failure(r, ExitCode.UNREACHABLE)
    assert "KMS" in err
    assert leftovers(out) == []
    kmsp.clear()
    kmsp.add(Rule("reset", times=1))  # a transient one is retried
    r = run_cli("get", f"s3://{bucket}/k", str(out / "k.bin"), env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert (out / "k.bin").read_bytes() == data
    record(reliability, kmsp, before, "kms")
    reliability.fault("kms unreachable", 1)
    reliability.data(len(data), 0)


def test_agent_reports_kms_unreachable_and_resumes_when_it_is_back(
    proxies, run_cli, keyring_service, kms_key_id, bucket, folder, tmp_path, reliability
):
    s3p, kmsp = proxies
    r = run_cli("key", "import", "kk", "--type", "kms", "--key-id", kms_key_id)
    assert r.returncode == 0, r.stderr.decode()
    config = _config(tmp_path / "config.yaml", folder, bucket, "kk")
    gen = agent_procs(config, dict(environ(), **proxied_env(s3p, kmsp)))
    agents = next(gen)
    try:
        agents.start()
        _idle(agents)
        kmsp.down()
        data = os.urandom(3000)
        (folder / "secret.txt").write_bytes(data)
        s = wait_for(
            lambda: (s := _status(agents))["state"] in ("offline", "error") and s,
            what="KMS error reported",
            timeout=60,
        )
        message = s["folders"][0]["message"] or ""
        assert "KMS" in message, s
        kmsp.up()
        wait_for(
            lambda: (
                _status(agents)["state"] == "idle"
                and _status(agents)["folders"][0]["state"] == "idle"
            ),
            what="resume after KMS is back",
            timeout=60,
        )
        vault = proxied_vault(s3p, kmsp, KeyStore(service=keyring_service))
        _check_all_stored(vault, bucket, {"secret.txt": data}, tmp_path)
        reliability.fault("kms unreachable (agent)", 1)
        reliability.data(len(data), 0)
    finally:
        gen.close()
