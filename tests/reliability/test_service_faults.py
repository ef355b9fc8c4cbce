"""put, get and rotate through a proxy that breaks S3's answers (tests/reliability/faultproxy.py).

A transient fault (one bad answer) is retried and the command succeeds with the
right bytes; a fault that persists ends in a clean error with exit code 6 (service
unreachable), no traceback and, for get, no file (partial or plaintext) left behind.
Most cases run in-process against the real services through the proxy; a sample
runs through the real CLI for its exit code and stderr.
"""

from __future__ import annotations

import os

import fault_helpers
import pytest
from fault_helpers import (
    MiB,
    assert_clean_failure,
    leftovers,
    proxied_env,
    proxied_vault,
    record,
    sha,
)
from faultproxy import KINDS, Rule

from s3vault.errors import ExitCode, S3VaultError, UnreachableError
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore

# Faults in an answer's body: a PUT's answer has none, so these are for GETs.
BODY_KINDS = ("reset mid-body", "truncate", "length more", "length fewer")
# Persistent faults that withhold bytes, so end in "unreachable" ("length more"
# delivers every byte: it succeeds; "slowdown" makes botocore back off for seconds
# between tries and "stall" answers late: both are covered as transient faults).
PERSISTENT = ("reset", "503", "truncate")

# The proxies' fixtures (fault_helpers), used by this module's tests.
s3_proxy = fault_helpers.s3_proxy
kms_proxy = fault_helpers.kms_proxy
proxies = fault_helpers.proxies


@pytest.fixture(scope="module")
def store(session_env: dict[str, str]) -> KeyStore:
    store = KeyStore(service=f"s3vault-faults-{os.getpid()}")
    store.put(generate_key("k1", "aes256"))
    store.put(generate_key("k2", "aes256"))
    return store


def _rule(kind: str, method: str, *, times: int | None = 1) -> Rule:
    # A stall shorter than any client timeout: the answer comes, late.
    return Rule(kind, method=method, times=times, seconds=0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_transient_fault_on_put_or_get_is_retried_and_the_bytes_are_right(
    kind, proxies, store, bucket, tmp_path, reliability
):
    s3p, kmsp = proxies
    vault = proxied_vault(s3p, kmsp, store)
    data = os.urandom(200_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    before = dict(s3p.counts())
    if kind not in BODY_KINDS:  # a PUT's answer has no body to cut
        s3p.add(_rule(kind, "PUT", times=1))
    vault.put(src, bucket, "obj", key_name="k1")
    s3p.clear()
    s3p.add(_rule(kind, "GET", times=1))
    out = tmp_path / "out" / "obj.bin"
    out.parent.mkdir()
    vault.get(bucket, "obj", out)
    assert out.read_bytes() == data
    assert leftovers(out.parent, "obj.bin") == []
    injected = s3p.counts()[kind] - before.get(kind, 0)
    assert injected >= 1
    record(reliability, s3p, before, "s3")
    reliability.data(len(data), 0)


@pytest.mark.parametrize("kind", PERSISTENT)
def test_a_persistent_fault_on_get_is_unreachable_and_leaves_no_file(
    kind, proxies, store, bucket, tmp_path, reliability
):
    s3p, kmsp = proxies
    vault = proxied_vault(s3p, kmsp, store)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(150_000))
    vault.put(src, bucket, "obj", key_name="k1")
    before = dict(s3p.counts())
    s3p.add(_rule(kind, "GET", times=None))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnreachableError) as failed:
        vault.get(bucket, "obj", out / "obj.bin")
    assert failed.value.exit_code == ExitCode.UNREACHABLE
    assert leftovers(out) == []  # neither the file nor a temp file
    assert s3p.counts()[kind] > before.get(kind, 0)
    record(reliability, s3p, before, "s3")


@pytest.mark.parametrize("kind", ("reset", "503"))
def test_a_persistent_fault_on_put_is_unreachable_and_stores_nothing(
    kind, proxies, store, bucket, s3_client, tmp_path, reliability
):
    s3p, kmsp = proxies
    vault = proxied_vault(s3p, kmsp, store)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    before = dict(s3p.counts())
    s3p.add(_rule(kind, "PUT", times=None))
    with pytest.raises(UnreachableError):
        vault.put(src, bucket, "obj", key_name="k1", if_none_match=True)
    s3p.clear()
    if kind == "reset":
        # The proxy forwarded each PUT before resetting: the object may be there, and
        # then it is whole and decrypts (a reset loses the answer, not the write).
        listed = s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
        if listed:
            vault.get(bucket, "obj", tmp_path / "back.bin")
            assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    else:
        assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    record(reliability, s3p, before, "s3")


@pytest.mark.parametrize("kind", ("reset", "truncate"))
def test_large_objects_multipart_put_and_ranged_get_retry_a_fault(
    kind, proxies, store, bucket, s3_client, tmp_path, reliability
):
    """Above the multipart threshold: UploadPart (boto3) and ranged GETs (obstore)."""
    s3p, kmsp = proxies
    vault = proxied_vault(
        s3p, kmsp, store, multipart_threshold=5 * MiB, part_size=5 * MiB, concurrency=2
    )
    data = os.urandom(11 * MiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    before = dict(s3p.counts())
    if kind not in BODY_KINDS:
        s3p.add(Rule(kind, method="PUT", path=r"partNumber=2", times=1))
    vault.put(src, bucket, "big", key_name="k1")
    assert not s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    s3p.clear()
    s3p.add(Rule(kind, method="GET", after=1, times=1))  # the second range
    out = tmp_path / "out.bin"
    vault.get(bucket, "big", out)
    assert sha(out.read_bytes()) == sha(data)
    assert s3p.counts()[kind] > before.get(kind, 0)
    record(reliability, s3p, before, "s3")
    reliability.data(len(data), 0)


def test_cli_put_and_get_retry_or_exit_6_without_a_traceback(
    proxies, run_cli, bucket, tmp_path, reliability
):
    """Through the real CLI: transient faults retried (exit 0, bit-identical file),
    persistent ones exit 6 with an error line, no traceback, no file."""
    s3p, kmsp = proxies
    env = proxied_env(s3p, kmsp)
    assert run_cli("key", "generate", "k1").returncode == 0
    data = os.urandom(300_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    before = dict(s3p.counts())

    s3p.add(Rule("503", method="PUT", times=1))
    s3p.add(Rule("reset", method="PUT", times=1))
    r = run_cli("put", str(src), f"s3://{bucket}/o", "--key", "k1", env=env)
    assert r.returncode == 0, r.stderr.decode()

    out = tmp_path / "got"
    out.mkdir()
    s3p.clear()
    s3p.add(Rule("reset mid-body", method="GET", times=1))
    s3p.add(Rule("length fewer", method="GET", times=1))
    r = run_cli("get", f"s3://{bucket}/o", str(out / "o.bin"), env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert (out / "o.bin").read_bytes() == data
    (out / "o.bin").unlink()

    s3p.clear()
    s3p.add(Rule("truncate", method="GET", times=None))
    r = run_cli("get", f"s3://{bucket}/o", str(out / "o.bin"), env=env)
    err = assert_clean_failure(r, ExitCode.UNREACHABLE)
    assert "cut short" in err or "S3" in err
    assert leftovers(out) == []

    s3p.clear()
    s3p.add(Rule("503", method="PUT", times=None))
    r = run_cli("put", str(src), f"s3://{bucket}/o2", "--key", "k1", env=env)
    assert_clean_failure(r, ExitCode.UNREACHABLE)
    record(reliability, s3p, before, "s3")
    reliability.data(len(data), 0)


def test_rotate_through_faults_leaves_every_object_readable_and_a_rerun_finishes(
    proxies, store, run_cli, keyring_service, bucket, tmp_path, reliability, crash_seed
):
    s3p, kmsp = proxies
    env = proxied_env(s3p, kmsp)
    for name in ("old", "new"):
        assert run_cli("key", "generate", name).returncode == 0
    keys = KeyStore(service=keyring_service)
    vault = proxied_vault(s3p, kmsp, keys)
    files = {}
    for i in range(6):
        data = os.urandom(20_000 + i)
        (tmp_path / f"f{i}").write_bytes(data)
        files[f"r/f{i}"] = data
        vault.put(tmp_path / f"f{i}", bucket, f"r/f{i}", key_name="old")
    before = dict(s3p.counts())
    s3p.seed_rng(crash_seed)
    # The copies onto themselves (PUT) and the reads: some fail, some for good.
    s3p.add(Rule("503", method="PUT", probability=0.4, times=None))
    s3p.add(Rule("reset", method="PUT", probability=0.2, times=None))
    s3p.add(Rule("reset", method="HEAD", probability=0.1, times=None))
    r = run_cli("rotate", f"s3://{bucket}/r/", "-r", "--to-key", "new", env=env)
    err = r.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert r.returncode in (0, ExitCode.UNREACHABLE), (r.returncode, err)
    s3p.clear()
    record(reliability, s3p, before, "s3 (rotate)")

    def all_readable() -> None:
        for key, data in files.items():
            out = tmp_path / "out.bin"
            vault.get(bucket, key, out)
            assert out.read_bytes() == data, key
            out.unlink()

    all_readable()  # rotated or not, every object opens (old or new key) to its bytes
    again = run_cli("rotate", f"s3://{bucket}/r/", "-r", "--to-key", "new", env=env)
    assert again.returncode == 0, again.stderr.decode()
    # Refused (exit 8) if any object still needed the old key.
    r = run_cli("key", "delete", "old", "--yes", "--check", f"s3://{bucket}/r/")
    assert r.returncode == 0, r.stderr.decode()
    all_readable()
    reliability.data(2 * sum(map(len, files.values())), 0)


def test_in_process_errors_are_s3vault_errors_with_exit_6(proxies, store, bucket, tmp_path):
    """A fault on HEAD (the first request of get): UnreachableError, no other class."""
    s3p, kmsp = proxies
    vault = proxied_vault(s3p, kmsp, store)
    (tmp_path / "a").write_bytes(b"a" * 1000)
    vault.put(tmp_path / "a", bucket, "a", key_name="k1")
    s3p.add(Rule("reset", method="HEAD", times=None))
    with pytest.raises(S3VaultError) as failed:
        vault.get(bucket, "a", tmp_path / "b")
    assert failed.value.exit_code == ExitCode.UNREACHABLE
    assert not (tmp_path / "b").exists()
