"""Streaming upload: one PutObject below the multipart threshold, a multipart upload above.

Parts are read (and so encrypted) in order on the caller's thread and sent by a
bounded pool. Every part, and every single-request body, first takes its size from
the process's `UploadMemory` and, with a bandwidth limit, from the `Throttle`: memory
and rate stay bounded however many and however large the uploads.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from s3vault.config.model import TransferSettings
from s3vault.errors import ConfigError
from s3vault.remote.errors import s3_errors
from s3vault.remote.memory import UploadMemory
from s3vault.remote.objects import BodySource, Progress, Written, s3_url
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

MAX_PARTS = 10_000
MiB = 1024 * 1024

Read = BodySource | Callable[[int], bytes]
"""Where an upload's body comes from: a `BodySource`, or a plain ``read(n)``."""


def part_size_for(transfer: TransferSettings, total: int) -> int:
    """The configured part size, grown (in whole MiB) so no upload needs > 10,000 parts."""
    needed = math.ceil(total / MAX_PARTS)
    return max(transfer.part_size, math.ceil(needed / MiB) * MiB)


def put_stream(
    session: AwsSession,
    bucket: str,
    key: str,
    read: Read,
    total: int,
    metadata: dict[str, str],
    *,
    transfer: TransferSettings,
    memory: UploadMemory,
    throttle: Throttle | None,
    content_type: str | None,
    progress: Progress | None,
    before_commit: Callable[[], None] | None,
    if_match: str | None,
    if_none_match: bool,
    headers: dict[str, Any] | None,
) -> Written:
    """Upload ``total`` bytes from ``read`` (the contract: `S3Remote.put_stream`)."""
    if if_match is not None and if_none_match:
        raise ValueError("if_match and if_none_match exclude each other")
    extra = dict(headers or {})
    if content_type is not None:
        extra.setdefault("ContentType", content_type)
    condition: dict[str, str] = {}
    if if_match is not None:
        condition["IfMatch"] = if_match
    elif if_none_match:
        condition["IfNoneMatch"] = "*"
    if total < transfer.multipart_threshold:
        with memory.held(total):
            body = read(total) if callable(read) else read.read(total)
            if before_commit:
                before_commit()
            if throttle is not None:
                throttle.take(len(body))
            with s3_errors(s3_url(bucket, key)):
                r = session.s3_client.put_object(
                    Bucket=bucket, Key=key, Body=body, Metadata=metadata, **extra, **condition
                )
            sent = len(body)
            del body  # before the budget is given back
        if progress:
            progress(sent)
        return Written(etag=r["ETag"], version_id=r.get("VersionId"))
    upload = _Multipart(session, bucket, key, transfer, memory, throttle, progress)
    return upload.run(read, total, metadata, extra, condition, before_commit)


def abort_quietly(session: AwsSession, bucket: str, key: str, upload_id: str) -> None:
    """Abort a multipart upload after a failure, keeping the failure's own error."""
    # The original error matters more; a bucket lifecycle rule or the next
    # `s3vault` run cleans up an upload we could not abort.
    with contextlib.suppress(ClientError, BotoCoreError):
        session.s3_client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


class _Multipart:
    """One multipart upload: create, parts through a bounded pool, complete or abort."""

    def __init__(
        self,
        session: AwsSession,
        bucket: str,
        key: str,
        transfer: TransferSettings,
        memory: UploadMemory,
        throttle: Throttle | None,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.bucket = bucket
        self.key = key
        self.what = s3_url(bucket, key)
        self.transfer = transfer
        self.memory = memory
        self.throttle = throttle
        self.progress = progress

    def run(
        self,
        read: Read,
        total: int,
        metadata: dict[str, str],
        extra: dict[str, Any],
        condition: dict[str, str],
        before_commit: Callable[[], None] | None,
    ) -> Written:
        bucket, key = self.bucket, self.key
        part_size = part_size_for(self.transfer, total)
        with s3_errors(self.what):
            upload_id = self.session.s3_client.create_multipart_upload(
                Bucket=bucket, Key=key, Metadata=metadata, **extra
            )["UploadId"]
        try:
            parts = self._upload_parts(upload_id, read, total, part_size)
            if before_commit:
                before_commit()
            with s3_errors(self.what):
                r = self.session.s3_client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    # The condition is checked when the object would become visible.
                    **condition,
                )
        except BaseException:
            abort_quietly(self.session, bucket, key, upload_id)
            raise
        return Written(etag=r["ETag"], version_id=r.get("VersionId"))

    def _upload_parts(
        self, upload_id: str, read: Read, total: int, part_size: int
    ) -> list[dict[str, Any]]:
        what = self.what
        workers = self.transfer.concurrency
        memory = self.memory
        # A slot (this upload's parallelism) and the part's bytes (the process-wide
        # budget shared by concurrent uploads) are taken *before* a part is read, so
        # memory stays bounded however many files upload at once. Full-size parts are
        # read into pooled buffers (a source with `readinto` encrypts straight into
        # them): nothing is allocated per part, whatever the file size.
        slots = threading.Semaphore(workers)
        pooled = part_size == memory.buffer_size
        readinto = None if callable(read) else read.readinto
        read_bytes = read if callable(read) else read.read
        pending: list[Future[dict[str, Any]]] = []
        buffers: dict[Future[dict[str, Any]], bytearray | None] = {}

        def send(number: int, body: bytes | bytearray, buffer: bytearray | None) -> dict[str, Any]:
            try:
                if self.throttle is not None:
                    self.throttle.take(len(body))
                with s3_errors(what):
                    r = self.session.s3_client.upload_part(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=body,
                    )
                if self.progress:
                    self.progress(len(body))
                return {"PartNumber": number, "ETag": r["ETag"]}
            finally:
                if buffer is not None:
                    memory.recycle(buffer)
                memory.give(part_size)
                slots.release()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-put") as executor:
            offset, number = 0, 1
            try:
                while offset < total:
                    want = min(part_size, total - offset)
                    slots.acquire()
                    memory.take(part_size)
                    buffer: bytearray | None = None
                    try:
                        if readinto is not None and want == part_size and pooled:
                            buffer = memory.buffer()
                            body: bytes | bytearray = buffer
                            got = readinto(memoryview(buffer))
                        else:
                            body = read_bytes(want)
                            got = len(body)
                        if got != want:
                            raise ConfigError(f"source for {what} ended early at byte {offset}")
                        # Stop reading as soon as one part failed.
                        for done in (f for f in pending if f.done()):
                            done.result()
                    except BaseException:
                        if buffer is not None:
                            memory.recycle(buffer)
                        memory.give(part_size)
                        slots.release()
                        raise
                    future = executor.submit(send, number, body, buffer)
                    pending.append(future)
                    buffers[future] = buffer
                    offset += want
                    number += 1
            except BaseException:
                for f in pending:
                    if f.cancel():
                        # Never sent: its share of the process-wide budget comes back here.
                        if (cancelled := buffers[f]) is not None:
                            memory.recycle(cancelled)
                        memory.give(part_size)
                        slots.release()
                raise
            return [f.result() for f in pending]
