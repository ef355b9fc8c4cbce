"""The process-wide upload memory budget: unit rules, then concurrent uploads on SeaweedFS."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from s3vault.config.model import S3Settings, TransferSettings
from s3vault.errors import S3VaultError
from s3vault.remote.memory import UploadMemory
from s3vault.remote.s3 import S3Remote

MiB = 1024 * 1024


def test_take_waits_until_the_bytes_fit() -> None:
    memory = UploadMemory(10, 5)
    memory.take(6)
    taken = threading.Event()
    thread = threading.Thread(target=lambda: (memory.take(5), taken.set()))
    thread.start()
    assert not taken.wait(0.2)  # 6 + 5 > 10
    memory.give(6)
    assert taken.wait(5)
    thread.join()
    assert memory.used == 5 and memory.peak == 6


def test_a_request_larger_than_the_budget_runs_alone() -> None:
    memory = UploadMemory(10, 5)
    memory.take(25)  # nothing else held: it goes
    assert memory.used == 25
    done = threading.Event()
    thread = threading.Thread(target=lambda: (memory.take(1), done.set()))
    thread.start()
    assert not done.wait(0.2)
    memory.give(25)
    assert done.wait(5)
    thread.join()


def test_buffers_are_reused_up_to_the_budget() -> None:
    memory = UploadMemory(10, 5)
    first, second, third = memory.buffer(), memory.buffer(), memory.buffer()
    for b in (first, second, third):
        memory.recycle(b)
    kept = [memory.buffer() for _ in range(3)]
    assert kept[0] is second or kept[0] is first
    assert sum(1 for b in kept if b is third) == 0  # a third buffer was not kept
    memory.recycle(bytearray(3))  # a buffer of another size is dropped, not pooled
    assert len(memory.buffer()) == 5


def remote(concurrency: int) -> S3Remote:
    transfer = TransferSettings(
        multipart_threshold=5 * MiB, part_size=5 * MiB, concurrency=concurrency
    )
    return S3Remote(settings=S3Settings(addressing_style="path"), transfer=transfer)


def test_concurrent_uploads_share_one_budget(bucket: str, s3_client) -> None:
    client = remote(concurrency=2)
    files = {f"big-{n}": os.urandom(18 * MiB) for n in range(4)}

    def upload(name: str) -> None:
        data = files[name]
        offset = 0

        def read(n: int) -> bytes:
            nonlocal offset
            chunk = data[offset : offset + n]
            offset += n
            time.sleep(0.01)  # a slow source keeps the uploads overlapping
            return chunk

        client.put_stream(bucket, name, read, len(data), {})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, files))
    # Four uploads at once held at most `concurrency` parts in all, not 4 x 2.
    assert client.memory.peak <= 2 * 5 * MiB
    assert client.memory.used == 0
    for name, data in files.items():
        body = s3_client.get_object(Bucket=bucket, Key=name)["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_a_failed_upload_gives_its_budget_back(bucket: str, s3_client) -> None:
    client = remote(concurrency=2)
    data = os.urandom(30 * MiB)
    served = 0

    def short_read(n: int) -> bytes:
        nonlocal served
        served += 1
        return data[:n] if served < 3 else b"short"  # the source ends early

    with pytest.raises(S3VaultError):
        client.put_stream(bucket, "broken", short_read, len(data), {})
    assert client.memory.used == 0
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # And the budget still serves the next upload.
    client.put_stream(bucket, "next", io.BytesIO(data[: 6 * MiB]), 6 * MiB, {})
    assert s3_client.head_object(Bucket=bucket, Key="next")["ContentLength"] == 6 * MiB


def test_upload_bodies_are_checksummed_not_hashed_for_the_signature(bucket: str) -> None:
    client = remote(concurrency=2)
    sent: list[dict[str, str]] = []

    def record(request: Any, **kwargs: Any) -> None:
        sent.append({k.lower(): _text(v) for k, v in request.headers.items()})

    for operation in ("PutObject", "UploadPart"):
        client.client.meta.events.register(f"before-send.s3.{operation}", record)
    client.put_stream(bucket, "small", io.BytesIO(b"x" * 1000), 1000, {})
    client.put_stream(bucket, "parts", io.BytesIO(os.urandom(6 * MiB)), 6 * MiB, {})
    assert len(sent) == 3  # one PutObject, two UploadPart
    for headers in sent:
        assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        assert headers["x-amz-checksum-crc32"]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
