"""Large downloads through the native ranged path (remote/native_get.py) on real SeaweedFS.

`Vault.get` of an object above the multipart threshold: byte-for-byte, no file (nor
temp file) when a middle range was tampered with or the object was replaced between
ranges, the fallback to boto3 for keys obstore cannot address; and `RangeReader`
itself: its window of ranges in flight, a body shorter than asked for, an unreachable
endpoint, and the bandwidth limit taken for every range.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from rotation_helpers import make_store, make_vault

from s3vault.config.model import S3Settings
from s3vault.errors import (
    ConflictError,
    ExitCode,
    IntegrityError,
    S3VaultError,
    UnreachableError,
)
from s3vault.keys.store import KeyStore
from s3vault.remote import native_get
from s3vault.remote.native import NativeS3
from s3vault.remote.native_get import RangeReader, native_for
from s3vault.remote.objects import ObjectHead
from s3vault.remote.s3 import S3Remote
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle
from s3vault.vault import streams
from s3vault.vault.vault import Vault

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest multipart threshold: objects above it are read in ranges
RANGE_SIZE = 4 * MiB  # the native ranges of these tests (8 MiB normally: less data here)
SIZE = 2 * RANGE_SIZE + 123_457  # three ranges, the last one partial


@pytest.fixture(scope="module")
def store(session_env: dict[str, str], kms_client: Any) -> KeyStore:
    return make_store(kms_client, kinds=("aes",))


def ranged_vault(store: KeyStore, concurrency: int = 2) -> Vault:
    return make_vault(store, multipart_threshold=PART, part_size=PART, concurrency=concurrency)


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_get, "RANGE_SIZE", RANGE_SIZE)


def put(vault: Vault, tmp_path: Path, bucket: str, key: str, data: bytes) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    vault.put(source, bucket, key, key_name="aes-new")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".s3vault-part"))


def helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("s3-get", "writeback")]


def test_multi_range_object_decrypts_byte_for_byte(
    store, bucket, tmp_path, plaintext, monkeypatch
):
    monkeypatch.setattr(streams, "WRITEBACK_EVERY", MiB)  # early writebacks during the get
    vault = ranged_vault(store)
    put(vault, tmp_path, bucket, "big.bin", plaintext)
    out = tmp_path / "out"
    out.mkdir()
    arrived: list[int] = []
    result = vault.get(bucket, "big.bin", out / "big.bin", progress=arrived.append)
    assert (out / "big.bin").read_bytes() == plaintext
    assert result.plaintext_size == SIZE
    # One progress call per range: three ranges of the ciphertext (plaintext + tag).
    assert arrived == [RANGE_SIZE, RANGE_SIZE, SIZE + 16 - 2 * RANGE_SIZE]
    assert leftovers(out) == []
    assert helper_threads() == []  # the download's and the writeback's threads ended
    stream = io.BytesIO()
    vault.get(bucket, "big.bin", stream)  # `get ... -`: verified first, then streamed
    assert stream.getvalue() == plaintext


def test_tampered_middle_range_is_integrity_error_and_writes_nothing(
    store, bucket, tmp_path, plaintext, s3_client, monkeypatch
):
    monkeypatch.setattr(streams, "WRITEBACK_EVERY", MiB)
    vault = ranged_vault(store)
    put(vault, tmp_path, bucket, "big.bin", plaintext)
    stored = s3_client.get_object(Bucket=bucket, Key="big.bin")
    body = bytearray(stored["Body"].read())
    body[RANGE_SIZE + 1000] ^= 0x01  # one bit in the middle range
    s3_client.put_object(
        Bucket=bucket, Key="big.bin", Body=bytes(body), Metadata=stored["Metadata"]
    )
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError) as caught:
        vault.get(bucket, "big.bin", out / "big.bin")
    assert caught.value.exit_code == ExitCode.INTEGRITY
    assert list(out.iterdir()) == []  # neither the file nor its temp file
    assert helper_threads() == []


def test_object_replaced_between_ranges_is_conflict_and_writes_nothing(
    store, bucket, tmp_path, plaintext, s3_client
):
    vault = ranged_vault(store, concurrency=1)
    put(vault, tmp_path, bucket, "big.bin", plaintext)
    replaced: list[str] = []

    def replace_once(_: int) -> None:
        if not replaced:  # after the first range arrived, before the last is asked for
            replaced.append(s3_client.put_object(Bucket=bucket, Key="big.bin", Body=b"x")["ETag"])

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConflictError) as caught:
        vault.get(bucket, "big.bin", out / "big.bin", progress=replace_once)
    assert caught.value.exit_code == ExitCode.CONFLICT
    assert "s3://" in caught.value.message and "changed" in caught.value.message
    assert replaced and list(out.iterdir()) == []
    assert helper_threads() == []  # the ranges in flight were dropped, the loop ended


def test_key_obstore_cannot_address_falls_back_to_boto3(store, bucket, tmp_path, plaintext):
    vault = ranged_vault(store)
    put(vault, tmp_path, bucket, "odd//big.bin", plaintext)  # an empty path segment
    target = tmp_path / "odd.bin"
    vault.get(bucket, "odd//big.bin", target)
    assert target.read_bytes() == plaintext


@pytest.fixture
def stored(bucket: str, s3_client: Any) -> ObjectHead:
    """A 6 MiB plain object (the reader moves opaque bytes)."""
    s3_client.put_object(Bucket=bucket, Key="plain.bin", Body=os.urandom(6 * MiB))
    return S3Remote().head(bucket, "plain.bin")


def read_all(reader: RangeReader) -> bytes:
    return b"".join(bytes(chunk) for chunk in reader)


def test_ranges_in_flight_never_exceed_the_window(stored, s3_client):
    native = native_for(S3Remote().session)
    reader = RangeReader(native, stored, range_size=MiB // 2, in_flight=3)
    seen = read_all(reader)
    body = s3_client.get_object(Bucket=stored.bucket, Key=stored.key)["Body"].read()
    assert seen == body
    assert reader.requests == 12  # 6 MiB in ranges of 512 KiB, each asked for once
    assert reader.peak_window == 3  # memory: at most 3 ranges waiting, whatever the size


def test_body_shorter_than_the_range_is_unreachable_error(stored):
    longer = dataclasses.replace(stored, size=stored.size + 1000)  # HEAD promised more
    reader = RangeReader(
        native_for(S3Remote().session), longer, range_size=4 * MiB, in_flight=2, backoff=0.01
    )
    with pytest.raises(UnreachableError) as caught:
        read_all(reader)
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert "cut short" in caught.value.message
    assert reader.requests == 1 + 3  # the short second range was asked for three times


def test_changed_object_fails_the_remaining_ranges_with_conflict(stored, s3_client):
    reader = RangeReader(native_for(S3Remote().session), stored, range_size=MiB, in_flight=1)
    chunks = iter(reader)
    next(chunks)
    s3_client.put_object(Bucket=stored.bucket, Key=stored.key, Body=os.urandom(6 * MiB))
    with pytest.raises(ConflictError):
        for _ in chunks:
            pass


@pytest.mark.services  # the session's AWS credentials
def test_unreachable_endpoint_is_unreachable_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = S3Settings(endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
    native = NativeS3(AwsSession(settings), retries=0)
    head = ObjectHead("some-bucket", "big.bin", 3 * MiB, '"0123"', None, {})
    reader = RangeReader(native, head, range_size=MiB, in_flight=2, attempts=2, backoff=0.01)
    with pytest.raises(UnreachableError) as caught:
        read_all(reader)
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert "cannot reach S3 for s3://some-bucket/big.bin" in caught.value.message


def test_cli_get_from_unreachable_endpoint_exits_6(run_cli, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_cli(
        "get",
        "s3://some-bucket/big.bin",
        str(tmp_path / "out.bin"),
        env={"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1"},
    )
    assert done.returncode == ExitCode.UNREACHABLE, done.stderr
    assert b"Traceback" not in done.stderr
    assert not (tmp_path / "out.bin").exists()


def test_bandwidth_limit_is_taken_for_every_range(stored):
    waits: list[float] = []
    # A clock that never moves: no token comes back, so each range's wait is its debt.
    throttle = Throttle(MiB, burst=MiB, clock=lambda: 0.0, sleep=waits.append)
    reader = RangeReader(
        native_for(S3Remote().session), stored, range_size=2 * MiB, in_flight=2, throttle=throttle
    )
    read_all(reader)
    assert len(waits) == 3  # every range waited for the limit
    assert max(waits) == pytest.approx((stored.size - MiB) / MiB)  # 5 s at 1 MiB/s


def test_bandwidth_limit_of_the_remote_applies_to_gets(store, bucket, tmp_path, plaintext):
    waits: list[float] = []
    vault = ranged_vault(store)
    put(vault, tmp_path, bucket, "big.bin", plaintext)
    vault.remote.throttle = Throttle(MiB, burst=MiB, clock=lambda: 0.0, sleep=waits.append)
    vault.get(bucket, "big.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == plaintext
    assert len(waits) == 3  # the three ranges of the get


def test_transfer_started_before_a_missing_key_is_stopped(store, bucket, tmp_path, plaintext):
    vault = ranged_vault(store)
    put(vault, tmp_path, bucket, "big.bin", plaintext)
    empty = KeyStore(service=f"s3vault-empty-{uuid.uuid4().hex[:12]}")  # no aes-new here
    without_key = make_vault(empty, multipart_threshold=PART)
    with pytest.raises(S3VaultError) as caught:
        without_key.get(bucket, "big.bin", tmp_path / "out.bin")
    assert caught.value.exit_code == ExitCode.KEY_MISSING
    assert not (tmp_path / "out.bin").exists()
    assert helper_threads() == []  # the ranges sent early were dropped with their thread
