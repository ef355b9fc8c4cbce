"""`s3vault rotate`, `key use` and the `key delete` guard through the real command line,
on real SeaweedFS, moto's KMS and a real Secret Service keyring.

Objects are put in-process (fast); every command under test runs as a subprocess.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cli_checks import fails, ok
from rotation_helpers import make_vault, sha

from s3vault.crypto.envelope import Location, Version
from s3vault.errors import ExitCode
from s3vault.keys.material import KmsKey, generate_key
from s3vault.keys.store import KeyStore
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from cli_run import RunCli
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def store(keyring_service: str, kms_client: Any) -> KeyStore:
    """This test's keyring namespace (the one `run_cli` uses): aes-old (current), aes-new,
    rsa-new, kms-old, kms-new."""
    store = KeyStore(service=keyring_service)
    for name, kind in (("aes-old", "aes256"), ("aes-new", "aes256"), ("rsa-new", "rsa2048")):
        store.put(generate_key(name, kind))  # type: ignore[arg-type]
    for name in ("kms-old", "kms-new"):
        key_id = kms_client.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
        store.put(KmsKey(name, key_id))
    return store


@pytest.fixture
def vault(store: KeyStore) -> Vault:
    return make_vault(store)


def put(vault: Vault, tmp_path: Path, bucket: str, key: str, data: bytes, **kwargs: Any) -> None:
    path = tmp_path / f"src-{sha(key.encode())[:8]}"
    path.write_bytes(data)
    vault.put(path, bucket, key, **kwargs)


@pytest.mark.parametrize(
    ("source", "target", "fmt", "location"),
    [
        ("kms-old", "aes-new", "v3", "metadata"),
        ("aes-old", "rsa-new", "v2", "instruction-file"),
        ("aes-old", "kms-new", "v3", "instruction-file"),
    ],
)
def test_rotated_object_decrypts_through_get(
    run_cli: RunCli,
    vault: Vault,
    bucket: str,
    tmp_path: Path,
    source: str,
    target: str,
    fmt: str,
    location: str,
) -> None:
    data = os.urandom(300_001)
    put(
        vault,
        tmp_path,
        bucket,
        "docs/a.bin",
        data,
        key_name=source,
        version=Version(fmt),
        location=Location(location),
    )

    result = ok(run_cli("rotate", f"s3://{bucket}/docs/a.bin", "--to-key", target, "--json"))

    report = json.loads(result.stdout)
    assert report["exit_code"] == 0 and not report["failed"] and not report["skipped"]
    [rotated] = report["rotated"]
    assert (rotated["key"], rotated["action"], rotated["to_key"]) == (
        "docs/a.bin",
        "rewrap",
        target,
    )
    assert (rotated["format"], rotated["envelope"]) == (fmt, location)
    out = tmp_path / "out.bin"
    ok(run_cli("get", f"s3://{bucket}/docs/a.bin", str(out)))
    assert out.read_bytes() == data
    info = json.loads(ok(run_cli("inspect", f"s3://{bucket}/docs/a.bin", "--json")).stdout)
    assert (
        info["wrap_algorithm"]
        == {"aes": "AES/GCM", "rsa": "RSA-OAEP-SHA1", "kms": "kms+context"}[target.split("-")[0]]
    )


def test_bulk_rotation_report_rerun_and_versions(
    run_cli: RunCli, vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = {f"p/{i}": "aes-old" if i % 3 else "kms-old" for i in range(9)}
    for i, (key, key_name) in enumerate(keys.items()):
        put(
            vault,
            tmp_path,
            bucket,
            key,
            os.urandom(100 + i),
            key_name=key_name,
            location=Location.INSTRUCTION_FILE if i % 2 else Location.METADATA,
        )
    url = f"s3://{bucket}/p/"

    dry = ok(
        run_cli("rotate", url, "-r", "--from-key", "aes-old", "--to-key", "rsa-new", "--dry-run")
    )
    assert dry.stdout.decode().count("would re-wrap") == 6
    assert "would rotate 6, skipped 3 (not wrapped by aes-old: 3), failed 0" in dry.stdout.decode()

    first = ok(
        run_cli(
            "rotate",
            url,
            "-r",
            "--from-key",
            "aes-old",
            "--to-key",
            "rsa-new",
            "--workers",
            "3",
            "--json",
        )
    )
    report = json.loads(first.stdout)
    assert sorted(r["key"] for r in report["rotated"]) == sorted(
        k for k, v in keys.items() if v == "aes-old"
    )
    assert {s["code"] for s in report["skipped"]} == {"not-wrapped-by-from-key"}
    assert report["failed"] == [] and report["exit_code"] == 0
    assert report["noncurrent_versions_with_old_key"] == 6
    assert "NoncurrentVersionExpiration" in report["hint"]

    second = ok(run_cli("rotate", url, "-r", "--to-key", "rsa-new"))
    text = second.stdout.decode()
    assert "rotated 3, skipped 6 (already on rsa-new: 6), failed 0" in text
    assert "non-current object version(s)" in text
    for key in keys:
        assert vault.inspect(bucket, key).key_name == "rsa-new"


def test_failures_set_the_exit_code_and_are_listed(
    run_cli: RunCli, vault: Vault, store: KeyStore, bucket: str, tmp_path: Path
) -> None:
    store.put(generate_key("gone"))
    put(vault, tmp_path, bucket, "x/lost", b"1" * 10, key_name="gone")
    put(vault, tmp_path, bucket, "x/fine", b"2" * 10, key_name="aes-old")
    store.delete("gone")

    result = fails(
        run_cli("rotate", f"s3://{bucket}/x/", "-r", "--to-key", "aes-new", "--json"),
        ExitCode.KEY_MISSING,
    )

    report = json.loads(result.stdout)
    assert [r["key"] for r in report["rotated"]] == ["x/fine"]
    [failed] = report["failed"]
    assert failed["key"] == "x/lost" and failed["exit_code"] == ExitCode.KEY_MISSING
    assert "gone" in failed["reason"] and failed["hint"]


def test_usage_errors(run_cli: RunCli, vault: Vault, bucket: str, tmp_path: Path) -> None:
    put(vault, tmp_path, bucket, "k", b"x", key_name="aes-old", location=Location.INSTRUCTION_FILE)
    url = f"s3://{bucket}/k"
    cases: list[tuple[list[str], ExitCode, str]] = [
        ([f"s3://{bucket}/", "--to-key", "aes-new"], ExitCode.USAGE, "--recursive"),
        ([url, "--to-key", "aes-new", "--format", "v3"], ExitCode.USAGE, "--reencrypt"),
        ([url, "--to-key", "nope"], ExitCode.KEY_MISSING, "nope"),
        ([url, "--to-key", "aes-new", "--from-key", "aes-new"], ExitCode.USAGE, "re-wrap"),
        ([url + ".instruction", "--to-key", "aes-new"], ExitCode.USAGE, "instruction file"),
    ]
    for args, code, words in cases:
        result = fails(run_cli("rotate", *args), code)
        assert words in result.stderr.decode(), (args, result.stderr.decode())


def test_key_use_makes_new_objects_use_it_and_rotation_default_to_it(
    run_cli: RunCli, vault: Vault, store: KeyStore, bucket: str, tmp_path: Path
) -> None:
    assert store.current() == "aes-old"  # the first key created
    put(vault, tmp_path, bucket, "before", b"old times", key_name=None)
    assert vault.inspect(bucket, "before").key_name == "aes-old"

    ok(run_cli("key", "use", "aes-new"))

    put(vault, tmp_path, bucket, "after", b"new times", key_name=None)
    assert vault.inspect(bucket, "after").key_name == "aes-new"
    out = tmp_path / "before.out"
    ok(run_cli("get", f"s3://{bucket}/before", str(out)))  # older keys stay readable
    assert out.read_bytes() == b"old times"
    report = json.loads(ok(run_cli("rotate", f"s3://{bucket}/before", "--json")).stdout)
    assert report["to_key"] == "aes-new" and len(report["rotated"]) == 1
    assert vault.inspect(bucket, "before").key_name == "aes-new"


def test_key_delete_refuses_a_key_objects_or_folders_still_need(
    run_cli: RunCli,
    vault: Vault,
    store: KeyStore,
    bucket: str,
    s3: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    other = bucket[:-4] + "oth2"
    s3.create_bucket(other)
    request.addfinalizer(lambda: s3.client().delete_bucket(Bucket=other))
    put(vault, tmp_path, bucket, "keep/a", b"a", key_name="aes-old")
    put(vault, tmp_path, other, "deep/b", b"b", key_name="rsa-new")
    put(vault, tmp_path, other, "deep/c", b"c", key_name="kms-old")
    put(vault, tmp_path, other, "elsewhere/e", b"e", key_name="aes-new")
    (tmp_path / "synced").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"version: 1\nbuckets: [{bucket}]\nfolders:\n"
        f"  - {{path: {tmp_path / 'synced'}, bucket: {other}, prefix: deep, key: kms-new}}\n"
    )
    env = {"S3VAULT_CONFIG": str(config)}

    def refused(*args: str) -> str:
        result = fails(run_cli("key", "delete", *args, "--yes", env=env), ExitCode.CONFLICT)
        return result.stderr.decode()

    message = refused("aes-old")
    assert f"s3://{bucket}/keep/a" in message and "s3vault rotate" in message  # `buckets:`
    assert f"s3://{other}/deep/b" in refused("rsa-new")  # a synced folder's prefix
    assert f"s3://{other}/elsewhere/e" in refused("aes-new", "--check", f"s3://{other}/elsewhere")
    assert str(tmp_path / "synced") in refused("kms-new")  # a folder encrypts with it

    # Rotated away, the key may go; --force overrides; KMS-wrapped objects are not looked for.
    ok(run_cli("rotate", f"s3://{bucket}/", "-r", "--from-key", "aes-old", "--to-key", "aes-new"))
    ok(run_cli("key", "delete", "aes-old", "--yes", env=env))
    ok(run_cli("key", "delete", "rsa-new", "--yes", "--force", env=env))
    ok(run_cli("key", "delete", "kms-old", "--yes", env=env))
    assert sorted(store.names()) == ["aes-new", "kms-new"]


def test_ctrl_c_prints_the_partial_report_and_exits_130(
    vault: Vault,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process (a signal's timing is not reproducible): Ctrl-C after two objects."""
    from s3vault.cli.main import main
    from s3vault.vault.rotation import Rotator

    for i in range(6):
        put(vault, tmp_path, bucket, f"i/{i}", b"z" * i, key_name="aes-old")
    original = Rotator.rotate_prefix

    def interrupted(self: Rotator, *args: Any, on_done: Any = None, **kwargs: Any) -> None:
        seen: list[object] = []

        def done(outcome: object) -> None:
            on_done(outcome)
            seen.append(outcome)
            if len(seen) == 2:
                raise KeyboardInterrupt

        original(self, *args, on_done=done, **kwargs)

    monkeypatch.setattr(Rotator, "rotate_prefix", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["rotate", f"s3://{bucket}/i/", "-r", "--to-key", "aes-new", "--workers", "1", "--json"]
        )

    assert exit_info.value.code == ExitCode.INTERRUPTED
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["interrupted"] is True
    # Rotations under way at Ctrl-C finish and are reported: the report is the truth.
    rotated = {r["key"] for r in report["rotated"]}
    assert 2 <= len(rotated) < 6
    assert rotated == {
        f"i/{i}" for i in range(6) if vault.inspect(bucket, f"i/{i}").key_name == "aes-new"
    }
    assert "run the same command again" in captured.err
