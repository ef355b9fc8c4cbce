"""One full s3vault workflow at debug log level, run once for the secrets and private-files tests.

Keys of every kind (AES generated and imported, RSA, KMS in the keyring, AES in the file
keystore), then put, get, rotate (re-wrap and re-encrypt), a one-shot sync, the
detached agent syncing a folder (its first run in a child process), restore and key
export to files: all through the real CLI, with ``S3VAULT_LOG_LEVEL=debug`` and umask
022, in a home and XDG dirs of its own (so what s3vault leaves there is all its own).
Every s3vault process is sampled from ``/proc`` while it runs (argv, environment, core
limit). Afterwards the master keys are read from the exports and the data key of every
object from its envelope, so the tests can search for them.

The workflow runs once per session (`run_workflow` caches it): it is the expensive part.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_EVERY = 0.01
MARKER_VAR = "S3VAULT_KEYRING_SERVICE"


@dataclass
class Sample:
    """The last look at one s3vault process in /proc."""

    pid: int
    cmdline: bytes
    environ: bytes
    limits: str


@dataclass
class Workflow:
    home: Path  # HOME; the XDG dirs are inside
    xdg: dict[str, Path]
    runtime: Path
    tmpdir: Path  # TMPDIR of every s3vault process
    work: Path  # the test's own files: sources, outputs, config
    config: Path
    exports: dict[str, Path]
    outputs: list[subprocess.CompletedProcess[bytes]] = field(default_factory=list)
    samples: dict[int, Sample] = field(default_factory=dict)
    master_keys: dict[str, bytes] = field(default_factory=dict)  # name -> secret (raw/DER)
    pem_keys: dict[str, str] = field(default_factory=dict)  # name -> PEM text
    data_keys: dict[str, bytes] = field(default_factory=dict)  # object key -> data key
    passphrase: bytes = b""
    env: dict[str, str] = field(default_factory=dict)

    def s3vault_dirs(self) -> list[Path]:
        """Every folder s3vault uses for itself in this home."""
        found = [p / "s3vault" for p in self.xdg.values()] + [self.runtime / "s3vault"]
        return [p for p in found if p.exists()]


_CACHE: dict[str, Workflow] = {}
_LOCK = threading.Lock()


def shared_workflow(tmp_path_factory: Any, s3: Any, kms_client: Any) -> Workflow:
    """The session's workflow, run on first use (in its own bucket and KMS key)."""
    with _LOCK:
        if "w" not in _CACHE:
            bucket = f"secrets-{uuid.uuid4().hex[:20]}"
            s3.create_bucket(bucket)
            key_id = kms_client.create_key(Description="s3vault secrets scan")["KeyMetadata"]
            base = tmp_path_factory.mktemp("secrets")
            _CACHE["w"] = _run(base, bucket, key_id["KeyId"], kms_client)
        return _CACHE["w"]


def _run(base: Path, bucket: str, kms_key_id: str, kms_client: Any) -> Workflow:
    home = base / "home"
    xdg = {
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_CACHE_HOME": home / ".cache",
    }
    runtime = Path(tempfile.mkdtemp(prefix="s3vs-", dir="/tmp"))  # short: a socket path
    work, tmpdir = base / "work", base / "tmp"
    for path in (home, work, tmpdir):
        path.mkdir(parents=True)
    marker = f"s3vault-secrets-{uuid.uuid4().hex[:12]}"
    passphrase = secrets.token_urlsafe(24)
    env = dict(os.environ)
    env.update({k: str(v) for k, v in xdg.items()})
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
        TMPDIR=str(tmpdir),
        S3VAULT_LOG_LEVEL="debug",
        **{MARKER_VAR: marker},
    )
    file_env = dict(
        S3VAULT_KEYSTORE_TYPE="file",
        S3VAULT_KEYSTORE_PASSPHRASE_ENV="S3VAULT_PASSPHRASE",
        S3VAULT_PASSPHRASE=passphrase,
    )
    sync_dir = work / "folder"
    sync_dir.mkdir()
    for i in range(5):
        (sync_dir / f"doc-{i}.txt").write_bytes(os.urandom(200 + i))
    config = work / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {sync_dir}, bucket: {bucket}, prefix: sync, key: aes-k}}\n"
        "agent: {debounce_ms: 200, rescan_interval: 1h, workers: 2}\n"
    )
    flow = Workflow(home, xdg, runtime, tmpdir, work, config, {}, env=env)
    flow.passphrase = passphrase.encode()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(marker, flow.samples, stop), daemon=True)
    sampler.start()
    try:
        _steps(flow, bucket, kms_key_id, file_env, sync_dir)
    finally:
        stop.set()
        sampler.join()
        _stop_agent(runtime / "s3vault" / "agent.lock")
    _read_keys(flow, bucket, kms_client)
    return flow


def _cli(flow: Workflow, *args: str, extra: dict[str, str] | None = None) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "s3vault", *args],
        env={**flow.env, **(extra or {})},
        cwd=flow.work,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
        umask=0o022,
        preexec_fn=_allow_core_dumps,  # so that a process's limit 0 is its own doing
    )
    flow.outputs.append(done)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert b"Traceback" not in done.stderr, done.stderr
    return done.stdout


def _allow_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _steps(
    flow: Workflow, bucket: str, kms_key_id: str, file_env: dict[str, str], sync_dir: Path
) -> None:
    cli, w = _cli, flow.work
    imported = os.urandom(32)
    (w / "imp.bin").write_bytes(imported)
    flow.master_keys["imp-k"] = imported
    cli(flow, "key", "generate", "aes-k")
    cli(flow, "key", "generate", "rsa-k", "--type", "rsa2048")
    cli(flow, "key", "import", "imp-k", "--type", "aes", "--file", str(w / "imp.bin"))
    cli(flow, "key", "import", "kms-k", "--type", "kms", "--key-id", kms_key_id)
    cli(flow, "key", "generate", "file-k", extra=file_env)
    cli(flow, "key", "list", "--json")
    for name in ("aes-k", "rsa-k", "imp-k", "kms-k", "file-k"):
        source = w / f"{name}.txt"
        source.write_bytes(os.urandom(3000))
        extra = file_env if name == "file-k" else None
        target = f"s3://{bucket}/obj/{name}.txt"
        cli(flow, "put", str(source), target, "--key", name, extra=extra)
        cli(flow, "get", target, str(w / f"{name}.out"), extra=extra)
        assert (w / f"{name}.out").read_bytes() == source.read_bytes()
    cli(flow, "rotate", f"s3://{bucket}/obj/aes-k.txt", "--to-key", "imp-k")
    cli(flow, "rotate", f"s3://{bucket}/obj/rsa-k.txt", "--to-key", "aes-k", "--reencrypt")
    cli(flow, "rotate", f"s3://{bucket}/obj/imp-k.txt", "--to-key", "kms-k", "--reencrypt")
    cli(flow, "--config", str(flow.config), "sync", str(sync_dir), f"s3://{bucket}/once")
    # The detached agent: its first run of the never-synced folder is a child run.
    cli(flow, "--config", str(flow.config), "agent")
    _wait_objects(flow, bucket, "sync/", 5)
    (sync_dir / "late.txt").write_bytes(os.urandom(100))
    _wait_objects(flow, bucket, "sync/", 6)
    cli(flow, "--config", str(flow.config), "status", "--json")
    cli(flow, "--config", str(flow.config), "stop")
    cli(flow, "restore", f"s3://{bucket}/sync/", str(w / "restored"))
    for name in ("aes-k", "rsa-k", "imp-k", "kms-k"):
        flow.exports[name] = w / "exports" / f"{name}.key"
    (w / "exports").mkdir()
    for name, path in flow.exports.items():
        cli(flow, "key", "export", name, "--file", str(path), "--yes")
    flow.exports["file-k"] = w / "exports" / "file-k.key"
    export = str(flow.exports["file-k"])
    cli(flow, "key", "export", "file-k", "--file", export, "--yes", extra=file_env)


def _stop_agent(lock: Path) -> None:
    """Kill the agent this workflow started if a failed step left it running (by pid)."""
    import fcntl
    import signal

    if not lock.exists():
        return
    with open(lock, "rb+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return  # nobody holds it: no agent
        except BlockingIOError:
            pid = int(f.read().strip() or 0)
    if pid:
        os.kill(pid, signal.SIGKILL)


def _wait_objects(flow: Workflow, bucket: str, prefix: str, count: int) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=flow.env["AWS_ENDPOINT_URL_S3"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if len(listed) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the agent did not sync {count} objects under {prefix}")


def _sample(marker: str, samples: dict[int, Sample], stop: threading.Event) -> None:
    needle = f"{MARKER_VAR}={marker}".encode()
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if b"s3vault" not in cmdline:
                    continue
                environ = (entry / "environ").read_bytes()
                if needle not in environ.split(b"\0"):
                    continue
                limits = (entry / "limits").read_text()
            except OSError:  # it ended meanwhile
                continue
            samples[int(entry.name)] = Sample(int(entry.name), cmdline, environ, limits)
        stop.wait(SAMPLE_EVERY)


def core_limit(limits: str) -> tuple[str, str]:
    """(soft, hard) of "Max core file size" in a /proc/PID/limits text."""
    match = re.search(r"^Max core file size\s+(\S+)\s+(\S+)", limits, re.MULTILINE)
    assert match, limits
    return match.group(1), match.group(2)


def _read_keys(flow: Workflow, bucket: str, kms_client: Any) -> None:
    """The master keys from the exports; the data key of every object from its envelope."""
    import base64

    import boto3
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from s3vault.crypto.envelope import parse_envelope
    from s3vault.crypto.wrap import aes_gcm_unwrap, rsa_oaep_unwrap

    for name in ("aes-k", "file-k"):
        flow.master_keys[name] = base64.b64decode(flow.exports[name].read_text().strip())
    assert base64.b64decode(flow.exports["imp-k"].read_text().strip()) == flow.master_keys["imp-k"]
    pem = flow.exports["rsa-k"].read_text()
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, RSAPrivateKey)
    flow.pem_keys["rsa-k"] = pem
    der = serialization.Encoding.DER
    none = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    flow.master_keys["rsa-k pkcs8"] = private.private_bytes(der, pkcs8, none)
    flow.master_keys["rsa-k pkcs1"] = private.private_bytes(
        der, serialization.PrivateFormat.TraditionalOpenSSL, none
    )
    numbers = private.private_numbers()
    for part in ("d", "p", "q"):
        value: int = getattr(numbers, part)
        flow.master_keys[f"rsa-k {part}"] = value.to_bytes((value.bit_length() + 7) // 8, "big")
    s3 = boto3.client("s3", endpoint_url=flow.env["AWS_ENDPOINT_URL_S3"])
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        metadata = s3.head_object(Bucket=bucket, Key=obj["Key"])["Metadata"]
        env = parse_envelope(metadata)
        edk, cipher = env.encrypted_data_key, env.content_cipher
        if env.is_kms:
            data_key = kms_client.decrypt(CiphertextBlob=edk, EncryptionContext=env.description)[
                "Plaintext"
            ]
        elif env.wrap_algorithm == "RSA-OAEP-SHA1":
            data_key = rsa_oaep_unwrap(private, edk, cipher)
        else:
            data_key = _first_aes(flow, edk, cipher, aes_gcm_unwrap)
        flow.data_keys[obj["Key"]] = data_key


def _first_aes(flow: Workflow, edk: bytes, cipher: str, unwrap: Any) -> bytes:
    for name in ("aes-k", "imp-k", "file-k"):
        try:
            return bytes(unwrap(flow.master_keys[name], edk, cipher))
        except Exception:  # noqa: S112 - not this key: the next
            continue
    raise AssertionError("no AES master key opens a data key")


def cleanup(flow: Workflow) -> None:
    shutil.rmtree(flow.runtime, ignore_errors=True)
