"""Interoperability with the official AWS S3 Encryption Client for Python (4.0.0), live.

Both sides talk to the same real services: SeaweedFS for S3 and moto's KMS. The
official client writes objects that `s3vault get` must open, and reads objects that
`s3vault put` wrote, byte for byte, with the same KMS encryption context on both
sides. The official client wraps with KMS only (`kms+context`), so this is where
s3vault's KMS envelope (V2 and V3, metadata and instruction file) meets a reference
implementation.

The official client hooks the events of the boto3 client it is given: every official
client here gets its own S3 and KMS clients, never the session fixtures'.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from cli_checks import ok
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
from s3_encryption.exceptions import S3EncryptionClientError
from s3_encryption.materials import AlgorithmSuite, CommitmentPolicy, KmsKeyring
from services import MotoKMS

from s3vault.embedded.seaweed import LocalS3
from s3vault.errors import ExitCode

if TYPE_CHECKING:
    from cli_run import RunCli
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
CONTEXT = {"project": "alpha", "team": "data-eng"}
CEK_ALG = "aws:x-amz-cek-alg"
CONTENT_CIPHER = {"v2": "AES/GCM/NoPadding", "v3": "115"}
# Context options that differ from CONTEXT: changed value, subset, superset.
WRONG_CONTEXTS = [
    pytest.param({"project": "beta", "team": "data-eng"}, id="other-value"),
    pytest.param({"project": "alpha"}, id="subset"),
    pytest.param({**CONTEXT, "extra": "1"}, id="superset"),
]


# --- helpers ----------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def context_args(context: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for name, value in context.items():
        args += ["--context", f"{name}={value}"]
    return args


def official_client(
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    *,
    write: str = "v3",
    read_v2: bool = False,
) -> S3EncryptionClient:
    """An official client on fresh boto3 clients (it rewires the S3 client it gets).

    ``write`` picks the format it writes: V3 (its default) or V2 (non-committing suite,
    FORBID_ENCRYPT_ALLOW_DECRYPT). ``read_v2`` relaxes a V3 writer's policy to
    REQUIRE_ENCRYPT_ALLOW_DECRYPT, without which it refuses to read V2 objects.
    """
    keyring = KmsKeyring(
        kms_client=boto3.client("kms", endpoint_url=kms.endpoint_url, region_name=kms.region),
        kms_key_id=kms_key_id,
    )
    if write == "v2":
        config = S3EncryptionClientConfig(
            keyring=keyring,
            encryption_algorithm=AlgorithmSuite.ALG_AES_256_GCM_IV12_TAG16_NO_KDF,
            commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
        )
    elif read_v2:
        config = S3EncryptionClientConfig(
            keyring=keyring, commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
        )
    else:
        config = S3EncryptionClientConfig(keyring=keyring)
    return S3EncryptionClient(wrapped_s3_client=s3.client(), config=config)


def official_read(
    client: S3EncryptionClient, bucket: str, key: str, context: Mapping[str, str]
) -> bytes:
    # A copy: the official client adds its reserved key to the dict it is given.
    response: dict[str, Any] = client.get_object(
        Bucket=bucket, Key=key, EncryptionContext=dict(context)
    )
    data: bytes = response["Body"].read()
    return data


def assert_refused_and_nothing_written(
    result: subprocess.CompletedProcess[bytes], code: ExitCode, out_dir: Path
) -> None:
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    assert b"Traceback" not in result.stderr
    assert list(out_dir.iterdir()) == [], "no output and no temp file may be left"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def kms_key(run_cli: RunCli, kms_key_id: str) -> str:
    """The moto KMS key imported into this test's keyring as `kms-key`."""
    ok(run_cli("key", "import", "kms-key", "--type", "kms", "--key-id", kms_key_id))
    return "kms-key"


# --- written by the official client, read by s3vault -----------------------------------


@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_official_object_opens_with_s3vault_and_its_context(
    run_cli: RunCli,
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    bucket: str,
    s3_client: S3Client,
    out_dir: Path,
    fmt: str,
) -> None:
    data = os.urandom(200_003)
    writer = official_client(s3, kms, kms_key_id, write=fmt)
    writer.put_object(
        Bucket=bucket, Key="from-official.bin", Body=data, EncryptionContext=dict(CONTEXT)
    )
    # The official client wrote what we think it did (so this test proves interop).
    meta = s3_client.head_object(Bucket=bucket, Key="from-official.bin")["Metadata"]
    if fmt == "v3":
        assert {"x-amz-3", "x-amz-c", "x-amz-d", "x-amz-i", "x-amz-t", "x-amz-w"} <= set(meta)
        assert (meta["x-amz-c"], meta["x-amz-w"]) == ("115", "12")
    else:
        assert meta["x-amz-wrap-alg"] == "kms+context" and "x-amz-key-v2" in meta
    url = f"s3://{bucket}/from-official.bin"

    # No --context: s3vault reads with the stored context (KMS checks it); no key named,
    # and none is needed in the keyring.
    plain = out_dir / "plain.bin"
    ok(run_cli("get", url, str(plain)))
    assert plain.read_bytes() == data
    plain.unlink()

    # The exact context, and the KMS key named explicitly: same plaintext.
    ok(run_cli("key", "import", "kms-key", "--type", "kms", "--key-id", kms_key_id))
    ok(run_cli("get", url, str(plain), "--key", "kms-key", *context_args(CONTEXT)))
    assert plain.read_bytes() == data
    streamed = ok(run_cli("get", url, "-", *context_args(CONTEXT)))
    assert sha(streamed.stdout) == sha(data)


@pytest.mark.parametrize("wrong", WRONG_CONTEXTS)
@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_official_object_with_other_context_is_refused(
    run_cli: RunCli,
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    bucket: str,
    out_dir: Path,
    fmt: str,
    wrong: dict[str, str],
) -> None:
    writer = official_client(s3, kms, kms_key_id, write=fmt)
    writer.put_object(
        Bucket=bucket, Key="ctx.bin", Body=b"secret" * 1000, EncryptionContext=dict(CONTEXT)
    )
    url = f"s3://{bucket}/ctx.bin"
    r = run_cli("get", url, str(out_dir / "plain.bin"), *context_args(wrong))
    assert_refused_and_nothing_written(r, ExitCode.INTEGRITY, out_dir)
    assert b"context" in r.stderr.lower()
    r = run_cli("get", url, "-", *context_args(wrong))
    assert r.returncode == ExitCode.INTEGRITY and r.stdout == b""


def test_official_object_without_context(
    run_cli: RunCli, s3: LocalS3, kms: MotoKMS, kms_key_id: str, bucket: str, out_dir: Path
) -> None:
    data = b"no context at all\n"
    official_client(s3, kms, kms_key_id).put_object(Bucket=bucket, Key="plain-ctx", Body=data)
    url = f"s3://{bucket}/plain-ctx"
    ok(run_cli("get", url, str(out_dir / "a")))
    assert (out_dir / "a").read_bytes() == data
    (out_dir / "a").unlink()
    r = run_cli("get", url, str(out_dir / "b"), "--context", "project=alpha")
    assert_refused_and_nothing_written(r, ExitCode.INTEGRITY, out_dir)
    info = json.loads(ok(run_cli("inspect", url, "--json")).stdout)
    assert info["encryption_context"] == {CEK_ALG: "115"}


@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_inspect_shows_official_envelope(
    run_cli: RunCli, s3: LocalS3, kms: MotoKMS, kms_key_id: str, bucket: str, fmt: str
) -> None:
    data = os.urandom(4097)
    writer = official_client(s3, kms, kms_key_id, write=fmt)
    writer.put_object(Bucket=bucket, Key="dir/x.bin", Body=data, EncryptionContext=dict(CONTEXT))
    info = json.loads(ok(run_cli("inspect", f"s3://{bucket}/dir/x.bin", "--json")).stdout)
    assert info["encrypted"] is True
    assert info["format"] == fmt
    assert info["location"] == "metadata"
    assert info["instruction_file"] is None
    assert info["wrap_algorithm"] == "kms+context"
    assert info["content_cipher"] == CONTENT_CIPHER[fmt]
    assert info["encryption_context"] == {**CONTEXT, CEK_ALG: CONTENT_CIPHER[fmt]}
    assert info["description"] is None
    assert info["key_name"] is None
    assert info["legacy"] is False
    assert info["plaintext_size"] == len(data)
    assert info["ciphertext_size"] == len(data) + 16
    assert info["encrypted_data_key_size"] == len(base64.b64decode(info["encrypted_data_key"]))
    if fmt == "v3":
        assert len(base64.b64decode(info["message_id"])) == 28
        assert len(base64.b64decode(info["commitment"])) == 28
        assert info["iv"] is None
    else:
        assert len(base64.b64decode(info["iv"])) == 12
        assert info["tag_length"] == 128
        assert info["message_id"] is None and info["commitment"] is None


def test_official_multipart_object_opens_with_s3vault(
    run_cli: RunCli,
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    bucket: str,
    s3_client: S3Client,
    tmp_path: Path,
    out_dir: Path,
) -> None:
    data = os.urandom(11 * MiB + 7)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    official_client(s3, kms, kms_key_id).upload_file(
        str(src),
        bucket,
        "big.bin",
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        EncryptionContext=dict(CONTEXT),
    )
    etag = s3_client.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), etag
    plain = out_dir / "big.bin"
    ok(run_cli("get", f"s3://{bucket}/big.bin", str(plain), *context_args(CONTEXT)))
    assert sha(plain.read_bytes()) == sha(data)


# --- written by s3vault, read by the official client -----------------------------------


@pytest.mark.parametrize("envelope", ["metadata", "instruction-file"])
@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_s3vault_object_opens_with_official_client(
    run_cli: RunCli,
    kms_key: str,
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    bucket: str,
    s3_client: S3Client,
    tmp_path: Path,
    fmt: str,
    envelope: str,
) -> None:
    data = os.urandom(300_007)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    put = ok(
        run_cli(
            "put",
            str(src),
            f"s3://{bucket}/to-official.bin",
            "--key",
            kms_key,
            "--format",
            fmt,
            "--envelope",
            envelope,
            *context_args(CONTEXT),
            "--json",
        )
    )
    info = json.loads(put.stdout)
    assert (info["format"], info["location"], info["wrap_algorithm"]) == (
        fmt,
        envelope,
        "kms+context",
    )
    if envelope == "instruction-file":
        s3_client.head_object(Bucket=bucket, Key="to-official.bin.instruction")

    reader = official_client(s3, kms, kms_key_id, read_v2=fmt == "v2")
    assert official_read(reader, bucket, "to-official.bin", CONTEXT) == data
    # The context is bound: the official client refuses another one.
    with pytest.raises(S3EncryptionClientError):
        official_read(reader, bucket, "to-official.bin", {"project": "beta", "team": "data-eng"})
    if fmt == "v2":
        # Without the relaxed policy the official client refuses V2: s3vault really wrote V2.
        strict = official_client(s3, kms, kms_key_id)
        with pytest.raises(S3EncryptionClientError):
            official_read(strict, bucket, "to-official.bin", CONTEXT)


@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_s3vault_empty_object_opens_with_official_client(
    run_cli: RunCli,
    kms_key: str,
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    bucket: str,
    tmp_path: Path,
    fmt: str,
) -> None:
    src = tmp_path / "empty"
    src.write_bytes(b"")
    ok(run_cli("put", str(src), f"s3://{bucket}/empty", "--key", kms_key, "--format", fmt))
    reader = official_client(s3, kms, kms_key_id, read_v2=fmt == "v2")
    assert official_read(reader, bucket, "empty", {}) == b""


@pytest.mark.parametrize(
    ("fmt", "envelope"), [("v3", "metadata"), ("v2", "instruction-file")], ids=["v3", "v2"]
)
def test_s3vault_multipart_object_opens_with_official_client(
    run_cli: RunCli,
    kms_key: str,
    s3: LocalS3,
    kms: MotoKMS,
    kms_key_id: str,
    bucket: str,
    s3_client: S3Client,
    tmp_path: Path,
    fmt: str,
    envelope: str,
) -> None:
    data = os.urandom(11 * MiB + 3)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    ok(
        run_cli(
            "put",
            str(src),
            f"s3://{bucket}/big.bin",
            "--key",
            kms_key,
            "--format",
            fmt,
            "--envelope",
            envelope,
            *context_args(CONTEXT),
            env={
                "S3VAULT_TRANSFER_MULTIPART_THRESHOLD": str(5 * MiB),
                "S3VAULT_TRANSFER_PART_SIZE": str(5 * MiB),
            },
        )
    )
    etag = s3_client.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), etag  # 5 + 5 + 1 MiB: really multipart
    reader = official_client(s3, kms, kms_key_id, read_v2=fmt == "v2")
    assert sha(official_read(reader, bucket, "big.bin", CONTEXT)) == sha(data)
