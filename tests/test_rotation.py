"""Key rotation through the engine (in-process), on real SeaweedFS, moto's KMS and a real
Secret Service keyring: every envelope location x format x source key type x target key
type, what a re-wrap keeps, how little it transfers, the multipart-copy path,
re-encryption, concurrent writers and versioned buckets.

The command line itself is tested in test_rotation_cli.py; here the engine is called
directly so that the large matrix costs no interpreter start-ups.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rotation_helpers import (
    CONTEXT,
    DATA_KEY_PART,
    KINDS,
    MiB,
    TrafficMeter,
    make_store,
    make_vault,
    official_read,
    rotate,
    rotate_prefix,
    sha,
)

from s3vault.crypto.envelope import Location, Version
from s3vault.crypto.kdf import derive_v3_keys
from s3vault.errors import ExitCode
from s3vault.keys.material import KmsKey
from s3vault.keys.store import KeyStore
from s3vault.remote.s3 import S3Remote
from s3vault.vault.rotation import Action, RotationOptions, RotationReport, Rotator, SkipReason
from s3vault.vault.rotation.reencrypt import Reencryptor
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

INSTRUCTION = ".instruction"
CIPHER = {"v2": "AES/GCM/NoPadding", "v3": "115"}
WRAP = {"aes": "AES/GCM", "rsa": "RSA-OAEP-SHA1", "kms": "kms+context"}


@pytest.fixture(scope="module")
def store(session_env: dict[str, str], kms_client: Any) -> KeyStore:
    return make_store(kms_client)


@pytest.fixture
def vault(store: KeyStore) -> Vault:
    return make_vault(store)


def put(
    vault: Vault,
    tmp_path: Path,
    bucket: str,
    key: str,
    data: bytes,
    *,
    key_name: str,
    fmt: str = "v3",
    location: str = "metadata",
    context: dict[str, str] | None = None,
) -> None:
    path = tmp_path / f"src-{sha(key.encode())[:8]}"
    path.write_bytes(data)
    vault.put(
        path,
        bucket,
        key,
        key_name=key_name,
        version=Version(fmt),
        location=Location(location),
        context=context,
    )


def read_back(vault: Vault, tmp_path: Path, bucket: str, key: str, **kwargs: Any) -> bytes:
    out = tmp_path / "out.bin"
    vault.get(bucket, key, out, **kwargs)
    data = out.read_bytes()
    out.unlink()
    return data


def instruction_of(s3_client: S3Client, bucket: str, key: str) -> dict[str, str]:
    body = s3_client.get_object(Bucket=bucket, Key=key + INSTRUCTION)["Body"].read()
    parsed: dict[str, str] = json.loads(body)
    return parsed


def without(fields: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k not in names}


def one_rotated(report: RotationReport) -> Any:
    assert not report.failed, report.failed
    assert len(report.rotated) == 1, report.to_json()
    return report.rotated[0]


# ---- the matrix ------------------------------------------------------------------------


@pytest.mark.parametrize("target", KINDS)
@pytest.mark.parametrize("source", KINDS)
@pytest.mark.parametrize("fmt", ["v2", "v3"])
@pytest.mark.parametrize("location", ["metadata", "instruction-file"])
def test_rewrap_every_combination(
    vault: Vault,
    store: KeyStore,
    bucket: str,
    s3_client: S3Client,
    s3: Any,
    kms: Any,
    tmp_path: Path,
    location: str,
    fmt: str,
    source: str,
    target: str,
) -> None:
    data = os.urandom(70_001)
    put(
        vault,
        tmp_path,
        bucket,
        "d/obj",
        data,
        key_name=f"{source}-old",
        fmt=fmt,
        location=location,
        context=CONTEXT,
    )
    before = s3_client.get_object(Bucket=bucket, Key="d/obj")
    before_body = before["Body"].read()
    old_envelope = vault.inspect(bucket, "d/obj").envelope
    assert old_envelope is not None

    report = rotate(vault, bucket, "d/obj", to_key=f"{target}-new", verify_content=True)

    rotated = one_rotated(report)
    assert rotated.action is Action.REWRAP and rotated.content_verified
    if source == "kms":
        assert rotated.from_key.startswith("kms:arn:")  # no --from-key: named by its ARN
    else:
        assert rotated.from_key == f"{source}-old"
    # The body did not change; every metadata entry but the data-key part stayed.
    after = s3_client.get_object(Bucket=bucket, Key="d/obj")
    assert after["Body"].read() == before_body
    part = DATA_KEY_PART[fmt]
    if location == "metadata":
        assert without(after["Metadata"], part) == without(before["Metadata"], part)
    else:
        assert after["Metadata"] == before["Metadata"]  # only the instruction file changed
        assert not set(part) & set(after["Metadata"])
        instruction = instruction_of(s3_client, bucket, "d/obj")
        assert not {"x-amz-c", "x-amz-d", "x-amz-i"} & set(instruction)
    # The new wrap is the target's, with the same data key, context carried over.
    envelope = vault.inspect(bucket, "d/obj").envelope
    assert envelope is not None
    assert envelope.wrap_algorithm == WRAP[target]
    assert envelope.encrypted_data_key != old_envelope.encrypted_data_key
    if target == "kms":
        assert envelope.description == {**CONTEXT, "aws:x-amz-cek-alg": CIPHER[fmt]}
    else:
        assert envelope.description == {"s3vault-key": f"{target}-new", **CONTEXT}
    if fmt == "v3":
        assert (envelope.message_id, envelope.commitment) == (
            old_envelope.message_id,
            old_envelope.commitment,
        )
    # It opens with the new key, byte for byte; the old key no longer opens it.
    assert read_back(vault, tmp_path, bucket, "d/obj") == data
    data_key, _ = vault.keys.decrypt_data_key(envelope, key_name=f"{target}-new")
    if fmt == "v3":
        assert envelope.message_id is not None
        assert derive_v3_keys(data_key, envelope.message_id)[1] == envelope.commitment
    old_key = store.get(f"{source}-old")
    if source == "kms":
        assert isinstance(old_key, KmsKey)
        if target == "kms":
            _, arn = vault.keys.decrypt_kms_data_key(envelope)
            assert arn.endswith(store.get("kms-new").key_id)  # type: ignore[union-attr]
    else:
        assert vault.keys.unwrap_with(old_key, envelope) is None
    # The official client reads what s3vault rotated to KMS.
    if target == "kms":
        new_key = store.get("kms-new")
        assert isinstance(new_key, KmsKey)
        assert official_read(s3, kms, new_key.key_id, bucket, "d/obj", CONTEXT) == data


# ---- what a re-wrap keeps and what it moves ---------------------------------------------


@pytest.mark.parametrize("location", ["metadata", "instruction-file"])
def test_rewrap_moves_no_body_bytes(
    vault: Vault, bucket: str, tmp_path: Path, location: str
) -> None:
    size = 8 * MiB
    data = os.urandom(size)
    put(vault, tmp_path, bucket, "big.bin", data, key_name="aes-old", location=location)
    meter = TrafficMeter(vault.remote.client)

    report = rotate(vault, bucket, "big.bin", to_key="rsa-new")

    assert one_rotated(report).content_verified is False
    # HEADs, an instruction file, one copy or PUT, the version check: a few KiB.
    assert meter.total < 64 * 1024, (meter.sent, meter.received, meter.requests)
    print(f"\n{location}: sent {meter.sent} B, received {meter.received} B for an {size} B object")
    assert read_back(vault, tmp_path, bucket, "big.bin") == data


def test_rewrap_keeps_headers_user_metadata_and_tags(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    data = os.urandom(5000)
    put(vault, tmp_path, bucket, "doc.txt", data, key_name="rsa-old", fmt="v2")
    metadata = s3_client.head_object(Bucket=bucket, Key="doc.txt")["Metadata"]
    expires = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    s3_client.copy_object(
        Bucket=bucket,
        Key="doc.txt",
        CopySource={"Bucket": bucket, "Key": "doc.txt"},
        MetadataDirective="REPLACE",
        Metadata={**metadata, "owner": "alice", "note": "keep me"},
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="doc.txt"',
        ContentLanguage="de",
        CacheControl="max-age=60",
        Expires=expires,
    )
    s3_client.put_object_tagging(
        Bucket=bucket,
        Key="doc.txt",
        Tagging={"TagSet": [{"Key": "team", "Value": "data"}, {"Key": "tier", "Value": "1"}]},
    )

    one_rotated(rotate(vault, bucket, "doc.txt", to_key="aes-new"))

    head = s3_client.head_object(Bucket=bucket, Key="doc.txt")
    assert head["Metadata"]["owner"] == "alice" and head["Metadata"]["note"] == "keep me"
    assert head["Metadata"]["x-amz-unencrypted-content-length"] == "5000"
    assert head["Metadata"]["x-amz-wrap-alg"] == "AES/GCM"
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert head["ContentEncoding"] == "identity"
    assert head["ContentDisposition"] == 'attachment; filename="doc.txt"'
    assert head["ContentLanguage"] == "de"
    assert head["CacheControl"] == "max-age=60"
    assert head["Expires"] == expires
    tags = s3_client.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "data"), ("tier", "1")]
    assert read_back(vault, tmp_path, bucket, "doc.txt") == data


def test_large_object_goes_through_multipart_copy(
    store: KeyStore, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    vault = make_vault(store, copy_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(12 * MiB + 3)
    put(vault, tmp_path, bucket, "large.bin", data, key_name="kms-old", fmt="v3")
    s3_client.put_object_tagging(
        Bucket=bucket, Key="large.bin", Tagging={"TagSet": [{"Key": "k", "Value": "v w"}]}
    )
    before = s3_client.head_object(Bucket=bucket, Key="large.bin")
    meter = TrafficMeter(vault.remote.client)

    one_rotated(rotate(vault, bucket, "large.bin", to_key="aes-new"))

    after = s3_client.head_object(Bucket=bucket, Key="large.bin")
    assert after["ETag"].endswith('-3"'), after["ETag"]  # 3 copied parts: 5 + 5 + 2 MiB
    assert after["ContentLength"] == before["ContentLength"]
    for name in ("x-amz-c", "x-amz-d", "x-amz-i", "x-amz-unencrypted-content-length"):
        assert after["Metadata"][name] == before["Metadata"][name]
    assert after["Metadata"]["x-amz-w"] == "02" and "x-amz-t" not in after["Metadata"]
    assert meter.total < 64 * 1024, (meter.sent, meter.received)
    tags = s3_client.get_object_tagging(Bucket=bucket, Key="large.bin")["TagSet"]
    assert tags == [{"Key": "k", "Value": "v w"}]
    assert read_back(vault, tmp_path, bucket, "large.bin") == data


def test_objects_written_by_the_official_ruby_client_rotate(
    vault: Vault,
    store: KeyStore,
    bucket: str,
    s3_client: S3Client,
    tmp_path: Path,
    vectors_dir: Path,
) -> None:
    """Ruby's V2 objects (description {}, instruction files without a marker) re-wrap,
    and its V1 objects re-encrypt into V3 behind --allow-legacy."""
    from s3vault.keys.material import parse_aes

    store.put(parse_aes("aes256-a", (vectors_dir / "keys" / "aes256-a.key").read_bytes())[0])
    names = {
        "v2-aesgcm-aes256a-instr--utf8-1000": "v2",
        "v2-aesgcm-aes256a-meta--random-1mib7": "v2",
        "v1-aesecb-aes256a-meta--p17": "v1",
    }
    manifest = {e["name"]: e for e in json.loads((vectors_dir / "manifest.json").read_text())}
    for name in names:
        folder = vectors_dir / "objects" / name
        metadata = json.loads((folder / "metadata.json").read_text())
        s3_client.put_object(
            Bucket=bucket, Key=name, Body=(folder / "body.bin").read_bytes(), Metadata=metadata
        )
        if (folder / "instruction.json").exists():
            s3_client.put_object(
                Bucket=bucket,
                Key=name + INSTRUCTION,
                Body=(folder / "instruction.json").read_bytes(),
            )

    report = rotate_prefix(vault, bucket, "", to_key="aes-new", from_key="aes256-a")
    assert [f.key for f in report.failed] == ["v1-aesecb-aes256a-meta--p17"]
    assert report.failed[0].exit_code == ExitCode.REFUSED  # V1 content needs --reencrypt
    assert len(report.rotated) == 2

    report = rotate(
        vault,
        bucket,
        "v1-aesecb-aes256a-meta--p17",
        to_key="aes-new",
        from_key="aes256-a",
        reencrypt=True,
        allow_legacy=True,
    )
    rotated = one_rotated(report)
    assert rotated.action is Action.REENCRYPT and rotated.format == "v3"
    for name in names:
        plaintext = read_back(vault, tmp_path, bucket, name)
        assert sha(plaintext) == manifest[name]["plaintext_sha256"], name
        info = vault.inspect(bucket, name)
        assert info.key_name == "aes-new"


# ---- re-encryption --------------------------------------------------------------------


@pytest.mark.parametrize("location", ["metadata", "instruction-file"])
def test_reencrypt_v2_to_v3_with_a_new_data_key(
    store: KeyStore,
    bucket: str,
    s3_client: S3Client,
    s3: Any,
    kms: Any,
    tmp_path: Path,
    location: str,
) -> None:
    # Lowered thresholds: the body streams through a multipart upload.
    vault = make_vault(store, multipart_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(11 * MiB + 5)
    put(
        vault,
        tmp_path,
        bucket,
        "r.bin",
        data,
        key_name="rsa-old",
        fmt="v2",
        location=location,
        context=CONTEXT,
    )
    s3_client.put_object_tagging(
        Bucket=bucket, Key="r.bin", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
    )
    old = vault.inspect(bucket, "r.bin").envelope
    assert old is not None
    old_data_key, _ = vault.keys.decrypt_data_key(old)

    report = rotate(vault, bucket, "r.bin", to_key="kms-new", reencrypt=True, version=Version.V3)

    rotated = one_rotated(report)
    assert (rotated.action, rotated.format, rotated.envelope) == (Action.REENCRYPT, "v3", location)
    assert rotated.content_verified  # the default for a re-encryption
    new = vault.inspect(bucket, "r.bin").envelope
    assert new is not None and new.version is Version.V3
    assert new.location is Location(location)
    assert new.description == {**CONTEXT, "aws:x-amz-cek-alg": "115"}
    new_data_key, _ = vault.keys.decrypt_data_key(new)
    assert new_data_key != old_data_key
    head = s3_client.head_object(Bucket=bucket, Key="r.bin")
    assert head["Metadata"]["x-amz-unencrypted-content-length"] == str(len(data))
    if location == "instruction-file":
        # The transitional envelope in metadata is gone again: only x-amz-c/d/i stay.
        assert not {"x-amz-3", "x-amz-w", "x-amz-t", "x-amz-key-v2"} & set(head["Metadata"])
        assert set(instruction_of(s3_client, bucket, "r.bin")) == {"x-amz-3", "x-amz-w", "x-amz-t"}
    tags = s3_client.get_object_tagging(Bucket=bucket, Key="r.bin")["TagSet"]
    assert tags == [{"Key": "a", "Value": "b"}]
    assert read_back(vault, tmp_path, bucket, "r.bin") == data
    kms_key = store.get("kms-new")
    assert isinstance(kms_key, KmsKey)
    assert official_read(s3, kms, kms_key.key_id, bucket, "r.bin", CONTEXT) == data


def test_reencrypt_of_an_instruction_file_object_interrupted_leaves_it_readable(
    vault: Vault,
    store: KeyStore,
    bucket: str,
    s3: Any,
    kms: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after the first of its three writes, the object opens everywhere: its whole
    new envelope is in metadata, which readers use instead of the stale instruction file."""
    data = os.urandom(4321)
    put(
        vault,
        tmp_path,
        bucket,
        "i.bin",
        data,
        key_name="aes-old",
        fmt="v2",
        location="instruction-file",
        context=CONTEXT,
    )

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Reencryptor, "move_to_instruction_file", crash)
    with pytest.raises(KeyboardInterrupt):
        rotate(vault, bucket, "i.bin", to_key="kms-new", reencrypt=True, version=Version.V3)
    monkeypatch.undo()

    info = vault.inspect(bucket, "i.bin")
    assert info.envelope is not None and info.envelope.location is Location.METADATA
    assert info.envelope.version is Version.V3 and info.envelope.is_kms
    assert read_back(vault, tmp_path, bucket, "i.bin") == data
    kms_key = store.get("kms-new")
    assert isinstance(kms_key, KmsKey)
    assert official_read(s3, kms, kms_key.key_id, bucket, "i.bin", CONTEXT) == data
    # Running it again finds it done.
    again = rotate(vault, bucket, "i.bin", to_key="kms-new", reencrypt=True, version=Version.V3)
    assert [s.code for s in again.skipped] == [SkipReason.ALREADY_ON_TARGET]


def test_reencrypt_in_place_gives_a_new_data_key_under_the_same_key(
    vault: Vault, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(1000)
    put(vault, tmp_path, bucket, "leak.bin", data, key_name="aes-new")
    old = vault.inspect(bucket, "leak.bin").envelope
    assert old is not None

    # Without --from-key, an object already on the key is left alone ...
    report = rotate(vault, bucket, "leak.bin", to_key="aes-new", reencrypt=True)
    assert [s.code for s in report.skipped] == [SkipReason.ALREADY_ON_TARGET]
    # ... --from-key == --to-key asks for new data keys under it.
    rotated = one_rotated(
        rotate(vault, bucket, "leak.bin", to_key="aes-new", from_key="aes-new", reencrypt=True)
    )
    assert rotated.action is Action.REENCRYPT
    new = vault.inspect(bucket, "leak.bin").envelope
    assert new is not None and new.message_id != old.message_id
    assert vault.keys.decrypt_data_key(new)[0] != vault.keys.decrypt_data_key(old)[0]
    assert read_back(vault, tmp_path, bucket, "leak.bin") == data


def test_reencrypt_refuses_content_that_does_not_authenticate(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    put(vault, tmp_path, bucket, "bad.bin", os.urandom(3000), key_name="aes-old", fmt="v2")
    stored = s3_client.get_object(Bucket=bucket, Key="bad.bin")
    body = bytearray(stored["Body"].read())
    body[100] ^= 1
    s3_client.put_object(
        Bucket=bucket, Key="bad.bin", Body=bytes(body), Metadata=stored["Metadata"]
    )
    etag = s3_client.head_object(Bucket=bucket, Key="bad.bin")["ETag"]

    report = rotate(vault, bucket, "bad.bin", to_key="aes-new", reencrypt=True)

    assert [f.exit_code for f in report.failed] == [ExitCode.INTEGRITY]
    after = s3_client.head_object(Bucket=bucket, Key="bad.bin")
    assert after["ETag"] == etag and after["Metadata"] == stored["Metadata"]


# ---- concurrent writers -----------------------------------------------------------------


def _overwrite_before(
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    vault: Vault,
    tmp_path: Path,
    bucket: str,
    key: str,
    new_data: bytes,
    **put_args: Any,
) -> None:
    """Make another writer replace ``key`` just before the rotation's write ``method``."""
    original = getattr(S3Remote, method)
    done: list[bool] = []

    def racing(self: S3Remote, *args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            put(vault, tmp_path, bucket, key, new_data, **put_args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Remote, method, racing)


@pytest.mark.parametrize(
    ("location", "method", "writer_location", "reencrypt"),
    [
        ("metadata", "copy_replace_metadata", "metadata", False),
        ("instruction-file", "put_bytes_if_match", "instruction-file", False),
        # The object changed (the other writer keeps its envelope in metadata), its
        # instruction file did not: the HEAD before the instruction file is written sees it.
        ("instruction-file", "head", "metadata", False),
        ("metadata", "put_stream", "metadata", True),
        ("instruction-file", "put_stream", "instruction-file", True),
    ],
)
def test_a_concurrent_change_fails_cleanly_and_is_kept(
    vault: Vault,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    location: str,
    method: str,
    writer_location: str,
    reencrypt: bool,
) -> None:
    first = b"first version" * 100
    put(vault, tmp_path, bucket, "c.bin", first, key_name="aes-old", location=location)
    newer = os.urandom(2000)
    # Another writer, with its own key, replaces the object between read and write.
    racing = {"key_name": "rsa-old", "location": writer_location}
    _overwrite_before(monkeypatch, method, vault, tmp_path, bucket, "c.bin", newer, **racing)

    report = rotate(vault, bucket, "c.bin", to_key="kms-new", reencrypt=reencrypt)

    assert not report.rotated
    [failed] = report.failed
    assert failed.exit_code == ExitCode.CONFLICT
    assert "changed after it was read" in failed.reason
    assert report.exit_code == ExitCode.CONFLICT
    monkeypatch.undo()
    assert read_back(vault, tmp_path, bucket, "c.bin") == newer
    assert vault.inspect(bucket, "c.bin").key_name == "rsa-old"


# ---- bulk -------------------------------------------------------------------------------


def test_bulk_rotation_selects_by_from_key_and_is_idempotent(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    plan = {
        "a/1": ("aes-old", "v3", "metadata"),
        "a/2": ("aes-old", "v2", "instruction-file"),
        "a/b/3": ("aes-old", "v3", "instruction-file"),
        "a/4": ("rsa-old", "v3", "metadata"),
        "a/5": ("kms-old", "v2", "metadata"),
        "a/6": ("kms-new", "v3", "metadata"),
        "other/7": ("aes-old", "v3", "metadata"),
    }
    data = {key: os.urandom(500 + i) for i, key in enumerate(plan)}
    for key, (key_name, fmt, location) in plan.items():
        put(vault, tmp_path, bucket, key, data[key], key_name=key_name, fmt=fmt, location=location)
    s3_client.put_object(Bucket=bucket, Key="a/plain.txt", Body=b"not encrypted")

    first = rotate_prefix(vault, bucket, "a/", to_key="kms-new", from_key="aes-old")

    assert sorted(r.key for r in first.rotated) == ["a/1", "a/2", "a/b/3"]
    reasons = {s.key: s.code for s in first.skipped}
    assert reasons == {
        "a/4": SkipReason.NOT_SELECTED,
        "a/5": SkipReason.NOT_SELECTED,
        "a/6": SkipReason.ALREADY_ON_TARGET,
        "a/plain.txt": SkipReason.NOT_ENCRYPTED,
    }
    assert first.exit_code == 0 and first.noncurrent_versions_with_old_key is None

    # Run again: nothing left to do (an interrupted run is simply repeated).
    second = rotate_prefix(vault, bucket, "a/", to_key="kms-new")
    assert sorted(r.key for r in second.rotated) == ["a/4", "a/5"]
    assert {s.key for s in second.skipped if s.code is SkipReason.ALREADY_ON_TARGET} == {
        "a/1",
        "a/2",
        "a/b/3",
        "a/6",
    }
    third = rotate_prefix(vault, bucket, "a/", to_key="kms-new")
    assert not third.rotated and not third.failed
    for key in data:
        assert read_back(vault, tmp_path, bucket, key) == data[key]
    assert vault.inspect(bucket, "other/7").key_name == "aes-old"  # outside the prefix


def test_dry_run_writes_nothing(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    for i in range(3):
        put(
            vault,
            tmp_path,
            bucket,
            f"k{i}",
            b"x" * i,
            key_name="aes-old",
            location="instruction-file" if i else "metadata",
        )

    def state() -> list[Any]:
        listing = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
        return [(o["Key"], o["ETag"], o["LastModified"]) for o in listing]

    before = state()
    report = rotate_prefix(vault, bucket, "", to_key="rsa-new", dry_run=True)
    assert report.dry_run and len(report.rotated) == 3
    assert state() == before


def test_versioned_bucket_reports_old_noncurrent_versions(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put(vault, tmp_path, bucket, "v/meta", b"1" * 100, key_name="aes-old")
    put(
        vault,
        tmp_path,
        bucket,
        "v/instr",
        b"2" * 100,
        key_name="aes-old",
        location="instruction-file",
    )

    report = rotate_prefix(vault, bucket, "v/", to_key="aes-new", from_key="aes-old")

    assert len(report.rotated) == 2
    # The replaced object version (metadata envelope) and the replaced instruction file.
    assert report.noncurrent_versions_with_old_key == 2
    assert report.hint is not None and "NoncurrentVersionExpiration" in report.hint
    assert "delete-object" in report.hint and "aes-old" in report.hint

    # After deleting those versions, nothing old is left.
    versions = s3_client.list_object_versions(Bucket=bucket, Prefix="v/")["Versions"]
    for v in versions:
        if not v["IsLatest"]:
            s3_client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    again = rotate_prefix(vault, bucket, "v/", to_key="aes-new", dry_run=True)
    assert again.noncurrent_versions_with_old_key == 0 and again.hint is None
    unchecked = rotate_prefix(vault, bucket, "v/", to_key="aes-new", count_versions=False)
    assert unchecked.noncurrent_versions_with_old_key is None


# ---- the report ---------------------------------------------------------------------------


def test_report_exit_code_is_the_most_common_failure() -> None:
    from s3vault.vault.rotation import Failed

    report = RotationReport("s3://b/", "new", None, Action.REWRAP, dry_run=False)
    assert report.exit_code == 0
    report.add(Failed("a", "changed", None, 8))
    report.add(Failed("b", "no key", None, 5))
    report.add(Failed("c", "changed", None, 8))
    assert report.exit_code == 8
    assert report.to_json()["failed"][1] == {
        "key": "b",
        "reason": "no key",
        "hint": None,
        "exit_code": 5,
    }


def test_base64_of_unchanged_v3_fields_is_kept_verbatim(
    vault: Vault, bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    """x-amz-c/d/i are never re-encoded: the strings another client wrote stay as they were."""
    put(vault, tmp_path, bucket, "v3", b"abc", key_name="aes-old")
    head = s3_client.head_object(Bucket=bucket, Key="v3")
    message_id = base64.b64decode(head["Metadata"]["x-amz-i"])
    one_rotated(rotate(vault, bucket, "v3", to_key="rsa-new"))
    after = s3_client.head_object(Bucket=bucket, Key="v3")["Metadata"]
    assert base64.b64decode(after["x-amz-i"]) == message_id
    assert {k: after[k] for k in ("x-amz-c", "x-amz-d", "x-amz-i")} == {
        k: head["Metadata"][k] for k in ("x-amz-c", "x-amz-d", "x-amz-i")
    }


def test_a_cancelled_run_is_finished_by_running_it_again(
    vault: Vault, bucket: str, tmp_path: Path
) -> None:
    for i in range(12):
        put(vault, tmp_path, bucket, f"n/{i:02}", bytes([i]) * 10, key_name="aes-old")
    rotator = Rotator(vault, RotationOptions(to_key="aes-new"))
    report = rotator.new_report(bucket, "n/")
    cancel = threading.Event()

    def stop_after_three(outcome: object) -> None:
        if len(report.rotated) >= 3:
            cancel.set()

    rotator.rotate_prefix(bucket, "n/", report, workers=2, on_done=stop_after_three, cancel=cancel)

    assert report.interrupted and 3 <= len(report.rotated) < 12
    assert report.noncurrent_versions_with_old_key is None  # not counted for a partial run
    again = rotate_prefix(vault, bucket, "n/", to_key="aes-new")
    assert len(again.rotated) == 12 - len(report.rotated)
    assert len(again.skipped) == len(report.rotated)
