"""S3 through boto3: streaming put (single or multipart), streaming get, head, list, delete.

This layer knows nothing about encryption: it moves opaque bytes and user metadata.
Memory stays bounded whatever the object size: at most ``concurrency`` parts of
``part_size`` bytes are in flight in either direction.
"""

from __future__ import annotations

import contextlib
import math
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from s3vault.config.model import KmsSettings, S3Settings, TransferSettings
from s3vault.errors import ConfigError, ConflictError, NotFoundError, RefusedError
from s3vault.etag import same_etag
from s3vault.remote.errors import error_code, http_status, s3_errors, translate
from s3vault.remote.memory import UploadMemory
from s3vault.remote.throttle import Throttle

MAX_PARTS = 10_000
MiB = 1024 * 1024
RANGE_SIZE = 4 * MiB
"""Bytes per ranged GET of a large object; `concurrency` of them are in memory at most."""
_UNSUPPORTED = {"NotImplemented", "InvalidArgument", "InvalidRequest", "UnsupportedHeader"}
"""Error codes of stores that reject a conditional header instead of honouring it."""
_COPY_SIZE_MARGIN = 1 * MiB
"""How close to `copy_threshold` a size given to `copy_object` must be to be checked."""


class BodySource(Protocol):
    """A body produced in order: `read` for small bodies, `readinto` for parts."""

    def read(self, n: int) -> bytes: ...

    def readinto(self, out: memoryview) -> int: ...


Progress = Callable[[int], None]
"""Called with the number of bytes just transferred (from worker threads too)."""


def s3_url(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


@dataclass(frozen=True)
class ObjectHead:
    """What HEAD tells about an object, in s3vault's words."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    metadata: dict[str, str]
    content_type: str | None = None
    version_id: str | None = None


@dataclass(frozen=True)
class ObjectSummary:
    """One entry of a listing (no metadata: S3 listings do not carry it)."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None


@dataclass(frozen=True)
class Written:
    etag: str
    version_id: str | None = None


# Standard headers that a rewrite of an object (CopyObject with MetadataDirective=REPLACE,
# a new multipart upload, a re-encrypting PUT) would otherwise reset to defaults.
KEPT_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "Expires",
    "WebsiteRedirectLocation",
    "StorageClass",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BucketKeyEnabled",
)


@dataclass(frozen=True)
class StoredObject:
    """HEAD of an object plus what a rewrite of it must carry over.

    ``headers`` holds the `KEPT_HEADERS` the object has, as boto3 keyword arguments;
    ``tag_count`` says whether its tags must be read to be carried over.
    """

    head: ObjectHead
    headers: dict[str, Any]
    tag_count: int = 0


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a versions listing (a delete marker has no size or ETag)."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    etag: str = ""
    size: int = 0


@dataclass
class S3Remote:
    """A bucket-agnostic S3 client with s3vault's transfer policy."""

    settings: S3Settings = field(default_factory=S3Settings)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    kms_settings: KmsSettings = field(default_factory=KmsSettings)
    _client: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    throttle: Throttle | None = None
    """The upload bandwidth limit (`agent.bandwidth_limit`); None: no limit."""
    _memory: UploadMemory | None = field(default=None, init=False, repr=False)
    # Cleared when the store turns out not to support a conditional DeleteObject.
    _conditional_delete: bool = field(default=True, init=False, repr=False)

    # ---- clients -------------------------------------------------------------------

    def _session(self) -> boto3.session.Session:
        try:
            return boto3.session.Session(
                profile_name=self.settings.profile, region_name=self.settings.region
            )
        except BotoCoreError as exc:
            raise translate(exc, "the AWS profile") from None

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe; built once)."""
        with self._lock:
            if self._client is None:
                pool = max(10, self.transfer.concurrency * 2)
                config = BotoConfig(
                    max_pool_connections=pool,
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=120,
                    s3={
                        "addressing_style": self.settings.addressing_style,
                        # UNSIGNED-PAYLOAD, as over https: on http:// endpoints botocore
                        # would SHA-256 every body for the signature (about 1 s of CPU
                        # per GiB). The CRC32 checksum still protects each body in
                        # transit, and the content is AES-GCM authenticated end to end.
                        "payload_signing_enabled": False,
                    },
                )
                self._client = self._session().client(
                    "s3", endpoint_url=self.settings.endpoint_url, config=config
                )
            return self._client

    def kms_client(self) -> Any:
        """A boto3 KMS client from the same credentials (endpoint from config or env)."""
        session = self._session()
        region = self.kms_settings.region or self.settings.region or session.region_name
        try:
            return session.client(
                "kms",
                endpoint_url=self.kms_settings.endpoint_url,
                region_name=region or "us-east-1",
                config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
            )
        except NoRegionError:
            raise ConfigError("no AWS region set for KMS", hint="Set kms.region") from None

    # ---- small objects -------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectHead:
        with s3_errors(s3_url(bucket, key)):
            r = self.client.head_object(Bucket=bucket, Key=key)
        return _head_from_response(bucket, key, r)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) == 404:
                return False
            raise translate(exc, s3_url(bucket, key)) from None
        except BotoCoreError as exc:
            raise translate(exc, s3_url(bucket, key)) from None
        return True

    def get_bytes(self, bucket: str, key: str, *, max_bytes: int = 1 * MiB) -> bytes:
        """A whole small object (an instruction file); refuses anything bigger."""
        with s3_errors(s3_url(bucket, key)):
            r = self.client.get_object(Bucket=bucket, Key=key)
            if int(r["ContentLength"]) > max_bytes:
                r["Body"].close()
                raise ConfigError(f"{s3_url(bucket, key)} is too large to be an envelope")
            return bytes(r["Body"].read())

    def put_bytes(
        self,
        bucket: str,
        key: str,
        body: bytes,
        metadata: dict[str, str],
        *,
        content_type: str = "application/octet-stream",
    ) -> Written:
        self._take(len(body))
        with s3_errors(s3_url(bucket, key)):
            r = self.client.put_object(
                Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType=content_type
            )
        return Written(etag=r["ETag"], version_id=r.get("VersionId"))

    def _take(self, nbytes: int) -> None:
        if self.throttle is not None:
            self.throttle.take(nbytes)

    def delete(self, bucket: str, key: str) -> None:
        with s3_errors(s3_url(bucket, key)):
            self.client.delete_object(Bucket=bucket, Key=key)

    def delete_if_match(self, bucket: str, key: str, etag: str) -> bool:
        """Delete ``key`` only while its ETag is ``etag``; False if it was already gone.

        A changed object raises ConflictError and stays. Stores that do not support a
        conditional DeleteObject (it is recent in S3) get a HEAD and a compare first;
        a write landing between those two is the remaining window there.
        """
        what = s3_url(bucket, key)
        if self._conditional_delete:
            try:
                self.client.delete_object(Bucket=bucket, Key=key, IfMatch=_quoted(etag))
                return True
            except ClientError as exc:
                if not _unsupported(exc):
                    error = translate(exc, what)
                    # A missing object fails the condition on some stores (SeaweedFS).
                    if isinstance(error, NotFoundError) or (
                        isinstance(error, ConflictError) and not self.exists(bucket, key)
                    ):
                        return False
                    raise error from None
                self._conditional_delete = False
            except BotoCoreError as exc:
                raise translate(exc, what) from None
        try:
            head = self.head(bucket, key)
        except NotFoundError:
            return False
        if not same_etag(head.etag, etag):
            raise ConflictError(f"{what} changed since it was synced (ETag {head.etag})")
        self.delete(bucket, key)
        return True

    # ---- streaming upload ----------------------------------------------------------

    @property
    def memory(self) -> UploadMemory:
        """The upload memory budget of this client: `concurrency` parts, all uploads."""
        with self._lock:
            if self._memory is None:
                part = self.transfer.part_size
                self._memory = UploadMemory(self.transfer.concurrency * part, part)
            return self._memory

    def part_size_for(self, total: int) -> int:
        """The configured part size, grown (in whole MiB) so no upload needs > 10,000 parts."""
        needed = math.ceil(total / MAX_PARTS)
        return max(self.transfer.part_size, math.ceil(needed / MiB) * MiB)

    def put_stream(
        self,
        bucket: str,
        key: str,
        read: BodySource | Callable[[int], bytes],
        total: int,
        metadata: dict[str, str],
        *,
        content_type: str | None = "application/octet-stream",
        progress: Progress | None = None,
        before_commit: Callable[[], None] | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> Written:
        """Upload ``total`` bytes produced by ``read(n)`` (called sequentially).

        Small bodies go in one PutObject. Larger ones use a multipart upload whose
        parts are read (and so encrypted) in order on this thread and uploaded by a
        bounded pool; a failure aborts the upload so no orphan parts are billed.
        ``before_commit`` runs after the last byte was read and before the object
        becomes visible; raising there stores nothing.

        The write is conditional with ``if_match`` (replace only the object with this
        ETag) or ``if_none_match`` (only if there is no object yet): a failed
        precondition raises ConflictError and stores nothing. ``headers`` are extra
        PutObject / CreateMultipartUpload arguments (kept headers, ``Tagging``).
        """
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
        if total < self.transfer.multipart_threshold:
            with self.memory.held(total):
                body = read(total) if callable(read) else read.read(total)
                if before_commit:
                    before_commit()
                self._take(len(body))
                with s3_errors(s3_url(bucket, key)):
                    r = self.client.put_object(
                        Bucket=bucket, Key=key, Body=body, Metadata=metadata, **extra, **condition
                    )
                sent = len(body)
                del body  # before the budget is given back
            if progress:
                progress(sent)
            return Written(etag=r["ETag"], version_id=r.get("VersionId"))
        return self._multipart_upload(
            bucket, key, read, total, metadata, extra, condition, progress, before_commit
        )

    def _multipart_upload(
        self,
        bucket: str,
        key: str,
        read: BodySource | Callable[[int], bytes],
        total: int,
        metadata: dict[str, str],
        extra: dict[str, Any],
        condition: dict[str, str],
        progress: Progress | None,
        before_commit: Callable[[], None] | None,
    ) -> Written:
        what = s3_url(bucket, key)
        part_size = self.part_size_for(total)
        with s3_errors(what):
            upload_id = self.client.create_multipart_upload(
                Bucket=bucket, Key=key, Metadata=metadata, **extra
            )["UploadId"]
        try:
            parts = self._upload_parts(bucket, key, upload_id, read, total, part_size, progress)
            if before_commit:
                before_commit()
            with s3_errors(what):
                r = self.client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    # The condition is checked when the object would become visible.
                    **condition,
                )
        except BaseException:
            self._abort_quietly(bucket, key, upload_id)
            raise
        return Written(etag=r["ETag"], version_id=r.get("VersionId"))

    def _upload_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        read: BodySource | Callable[[int], bytes],
        total: int,
        part_size: int,
        progress: Progress | None,
    ) -> list[dict[str, Any]]:
        what = s3_url(bucket, key)
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
                self._take(len(body))
                with s3_errors(what):
                    r = self.client.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                    )
                if progress:
                    progress(len(body))
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

    def _abort_quietly(self, bucket: str, key: str, upload_id: str) -> None:
        # The original error matters more; a bucket lifecycle rule or the next
        # `s3vault` run cleans up an upload we could not abort.
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    # ---- streaming download --------------------------------------------------------

    def iter_object(
        self,
        head: ObjectHead,
        *,
        progress: Progress | None = None,
    ) -> Iterator[bytes]:
        """The object's bytes in order, in chunks, pinned to the ETag seen by HEAD.

        Large objects are fetched as parallel ranged GETs (``concurrency`` in flight)
        and yielded in order, so a sequential consumer (the GCM decryptor) is fed
        at the speed of parallel transfer while memory stays bounded.
        """
        if head.size < self.transfer.multipart_threshold:
            yield from self._iter_single(head, progress)
        else:
            yield from self._iter_ranges(head, progress)

    def _iter_single(self, head: ObjectHead, progress: Progress | None) -> Iterator[bytes]:
        what = s3_url(head.bucket, head.key)
        with s3_errors(what):
            body = self.client.get_object(Bucket=head.bucket, Key=head.key, IfMatch=head.etag)[
                "Body"
            ]
            try:
                for chunk in body.iter_chunks(MiB):
                    if progress:
                        progress(len(chunk))
                    yield chunk
            finally:
                body.close()

    def _iter_ranges(self, head: ObjectHead, progress: Progress | None) -> Iterator[bytes]:
        what = s3_url(head.bucket, head.key)
        part = RANGE_SIZE

        def fetch(start: int) -> bytes:
            end = min(start + part, head.size) - 1
            with s3_errors(what):
                r = self.client.get_object(
                    Bucket=head.bucket,
                    Key=head.key,
                    Range=f"bytes={start}-{end}",
                    IfMatch=head.etag,
                )
                data = bytes(r["Body"].read())
            if len(data) != end - start + 1:
                raise ConfigError(f"short read from {what} at byte {start}")
            if progress:
                progress(len(data))
            return data

        starts = iter(range(0, head.size, part))
        window: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(
            max_workers=self.transfer.concurrency, thread_name_prefix="s3-get"
        ) as pool:
            try:
                for start in starts:
                    window.append(pool.submit(fetch, start))
                    if len(window) >= self.transfer.concurrency:
                        break
                while window:
                    data = window.popleft().result()
                    # Keep `concurrency` ranges in flight while this one is decrypted
                    # and written: memory is (concurrency + 1) x RANGE_SIZE.
                    nxt = next(starts, None)
                    if nxt is not None:
                        window.append(pool.submit(fetch, nxt))
                    yield data
                    del data
            finally:
                for f in window:
                    f.cancel()

    # ---- listing -------------------------------------------------------------------

    def list(
        self, bucket: str, prefix: str = "", *, recursive: bool = True
    ) -> Iterator[ObjectSummary | str]:
        """Objects under ``prefix``; without ``recursive``, sub-"folders" come as str."""
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if not recursive:
            kwargs["Delimiter"] = "/"
        with s3_errors(s3_url(bucket, prefix)):
            for page in paginator.paginate(**kwargs):
                for common in page.get("CommonPrefixes", []):
                    yield common["Prefix"]
                for obj in page.get("Contents", []):
                    yield ObjectSummary(
                        key=obj["Key"],
                        size=int(obj["Size"]),
                        etag=obj.get("ETag", ""),
                        last_modified=obj.get("LastModified"),
                    )

    # ---- rewriting in place (key rotation) -----------------------------------------
    #
    # Every write here is conditional on the ETag the caller read, so a concurrent
    # change of the object makes the rewrite fail (ConflictError) instead of being lost.

    def head_stored(self, bucket: str, key: str, *, version_id: str | None = None) -> StoredObject:
        """HEAD with the headers and tag count a rewrite must keep.

        Refuses an object whose metadata S3 cannot return (``MissingMeta``): rewriting
        it with MetadataDirective=REPLACE would silently drop those entries.
        """
        what = s3_url(bucket, key)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        with s3_errors(what):
            r = self.client.head_object(**kwargs)
        if int(r.get("MissingMeta") or 0):
            raise RefusedError(
                f"{what} has user metadata that S3 cannot return through its API; "
                "rewriting it would lose those entries"
            )
        return StoredObject(
            head=_head_from_response(bucket, key, r),
            headers=_kept_headers(r),
            tag_count=int(r.get("TagCount") or 0),
        )

    def get_small(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        max_bytes: int = 1 * MiB,
    ) -> tuple[bytes, StoredObject]:
        """A whole small object (an instruction file) with its ETag, metadata and headers."""
        what = s3_url(bucket, key)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        with s3_errors(what):
            r = self.client.get_object(**kwargs)
            if int(r["ContentLength"]) > max_bytes:
                r["Body"].close()
                raise ConfigError(f"{what} is too large to be an envelope")
            body = bytes(r["Body"].read())
        return body, StoredObject(_head_from_response(bucket, key, r), _kept_headers(r))

    def put_bytes_if_match(
        self,
        bucket: str,
        key: str,
        body: bytes,
        metadata: dict[str, str],
        *,
        if_match: str,
        headers: dict[str, Any] | None = None,
    ) -> Written:
        """Replace a small object only if it still has ETag ``if_match``."""
        with s3_errors(s3_url(bucket, key)):
            r = self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                Metadata=metadata,
                IfMatch=if_match,
                **(headers or {}),
            )
        return Written(etag=r["ETag"], version_id=r.get("VersionId"))

    def copy_replace_metadata(
        self, stored: StoredObject, metadata: dict[str, str], *, if_match: str
    ) -> Written:
        """Give the object new user metadata without moving its bytes through this client.

        A server-side copy of the object onto itself (MetadataDirective=REPLACE),
        conditional on ``if_match``; the kept headers and the tags stay. Objects larger
        than ``transfer.copy_threshold`` go through a multipart copy (UploadPartCopy),
        as S3 copies at most 5 GiB in one request.
        """
        head = stored.head
        if head.size > self.transfer.copy_threshold:
            return self._multipart_copy(stored, metadata, if_match)
        with s3_errors(s3_url(head.bucket, head.key)):
            r = self.client.copy_object(
                Bucket=head.bucket,
                Key=head.key,
                CopySource={"Bucket": head.bucket, "Key": head.key},
                CopySourceIfMatch=if_match,
                MetadataDirective="REPLACE",
                Metadata=metadata,
                TaggingDirective="COPY",
                **stored.headers,
            )
        return Written(etag=_quoted(r["CopyObjectResult"]["ETag"]), version_id=r.get("VersionId"))

    def _multipart_copy(
        self,
        stored: StoredObject,
        metadata: dict[str, str],
        if_match: str,
        *,
        dst: str | None = None,
    ) -> Written:
        """Copy ``stored`` (to ``dst``, default onto itself) in parts, with ``metadata``.

        Every part is pinned to the source ETag ``if_match``; a copy onto itself also
        completes only if the object still has that ETag.
        """
        head = stored.head
        target = dst if dst is not None else head.key
        what = s3_url(head.bucket, target)
        extra = dict(stored.headers)
        tagging = self.tagging_header(head.bucket, head.key) if stored.tag_count else None
        if tagging:
            extra["Tagging"] = tagging  # a new upload starts without the object's tags
        with s3_errors(what):
            upload_id = self.client.create_multipart_upload(
                Bucket=head.bucket, Key=target, Metadata=metadata, **extra
            )["UploadId"]
        part = self.part_size_for(head.size)

        def copy_part(number: int, start: int) -> dict[str, Any]:
            end = min(start + part, head.size) - 1
            with s3_errors(s3_url(head.bucket, head.key)):
                r = self.client.upload_part_copy(
                    Bucket=head.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": head.bucket, "Key": head.key},
                    CopySourceRange=f"bytes={start}-{end}",
                    CopySourceIfMatch=if_match,
                )
            return {"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]}

        # Onto itself: the object must not have changed while the parts were copied.
        condition = {"IfMatch": if_match} if target == head.key else {}
        try:
            with ThreadPoolExecutor(
                max_workers=self.transfer.concurrency, thread_name_prefix="s3-copy"
            ) as pool:
                futures = [
                    pool.submit(copy_part, number, start)
                    for number, start in enumerate(range(0, head.size, part), start=1)
                ]
                parts = [f.result() for f in futures]
            with s3_errors(what):
                r = self.client.complete_multipart_upload(
                    Bucket=head.bucket,
                    Key=target,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **condition,
                )
        except BaseException:
            self._abort_quietly(head.bucket, target, upload_id)
            raise
        return Written(etag=_quoted(r["ETag"]), version_id=r.get("VersionId"))

    def copy_object(
        self, bucket: str, src: str, dst: str, *, if_match: str, size: int | None = None
    ) -> Written:
        """Server-side copy of ``src`` to ``dst`` (bytes, metadata, tags), pinned to ``if_match``.

        S3 copies at most 5 GiB in one request: a source larger than
        ``transfer.copy_threshold`` is copied in parts. ``size`` is the source's size
        if the caller knows it (within a few bytes); unknown, or close to the
        threshold, the source is HEADed to decide.
        """
        if size is None or size > self.transfer.copy_threshold - _COPY_SIZE_MARGIN:
            stored = self.head_stored(bucket, src)
            if not same_etag(stored.head.etag, if_match):
                raise ConflictError(f"{s3_url(bucket, src)} changed since it was read")
            if stored.head.size > self.transfer.copy_threshold:
                return self._multipart_copy(stored, dict(stored.head.metadata), if_match, dst=dst)
        with s3_errors(s3_url(bucket, src)):
            r = self.client.copy_object(
                Bucket=bucket,
                Key=dst,
                CopySource={"Bucket": bucket, "Key": src},
                CopySourceIfMatch=if_match,
                MetadataDirective="COPY",
                TaggingDirective="COPY",
            )
        return Written(etag=_quoted(r["CopyObjectResult"]["ETag"]), version_id=r.get("VersionId"))

    def multipart_uploads(self, bucket: str, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        """In-progress multipart uploads under ``prefix``: (key, upload id, initiated)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        with s3_errors(s3_url(bucket, prefix)):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    yield upload["Key"], upload["UploadId"], upload["Initiated"]

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with s3_errors(s3_url(bucket, key)):
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    def tagging_header(self, bucket: str, key: str) -> str | None:
        """The object's tags as a ``Tagging`` argument (URL-encoded), None if it has none."""
        with s3_errors(s3_url(bucket, key)):
            tags = self.client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        if not tags:
            return None
        return urllib.parse.urlencode([(t["Key"], t["Value"]) for t in tags])

    def bucket_versioning(self, bucket: str) -> str | None:
        """``Enabled`` or ``Suspended`` for a bucket that has (had) versioning, else None."""
        with s3_errors(s3_url(bucket)):
            status = self.client.get_bucket_versioning(Bucket=bucket).get("Status")
        return str(status) if status else None

    def list_versions(self, bucket: str, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker under ``prefix``, page by page."""
        paginator = self.client.get_paginator("list_object_versions")
        with s3_errors(s3_url(bucket, prefix)):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for v in page.get("Versions", []):
                    yield ObjectVersion(
                        key=v["Key"],
                        version_id=v["VersionId"],
                        is_latest=bool(v.get("IsLatest")),
                        is_delete_marker=False,
                        etag=v.get("ETag", ""),
                        size=int(v.get("Size", 0)),
                    )
                for m in page.get("DeleteMarkers", []):
                    yield ObjectVersion(
                        key=m["Key"],
                        version_id=m["VersionId"],
                        is_latest=bool(m.get("IsLatest")),
                        is_delete_marker=True,
                    )


def _head_from_response(bucket: str, key: str, r: dict[str, Any]) -> ObjectHead:
    return ObjectHead(
        bucket=bucket,
        key=key,
        size=int(r["ContentLength"]),
        etag=r["ETag"],
        last_modified=r.get("LastModified"),
        metadata={k.lower(): v for k, v in r.get("Metadata", {}).items()},
        content_type=r.get("ContentType"),
        version_id=r.get("VersionId"),
    )


def _kept_headers(r: dict[str, Any]) -> dict[str, Any]:
    kept = {name: r[name] for name in KEPT_HEADERS if r.get(name) not in (None, "")}
    # botocore gives Expires as a datetime, or None (with ExpiresString) when the
    # stored value is not a date; only a date can be sent back.
    if not isinstance(kept.get("Expires"), datetime):
        kept.pop("Expires", None)
    return kept


def _unsupported(exc: ClientError) -> bool:
    """Whether S3 refused a request for a header it does not implement."""
    return error_code(exc) in _UNSUPPORTED or http_status(exc) == 501


def _quoted(etag: str) -> str:
    # Some servers (SeaweedFS) return a copy's ETag without the quotes HEAD shows.
    return etag if etag.startswith('"') else f'"{etag}"'
