"""`S3Remote`: the one door to S3 the vault uses; each job is done by its own module.

This layer knows nothing about encryption: it moves opaque bytes and user metadata.
Memory stays bounded whatever the object size: at most ``concurrency`` parts of
``part_size`` bytes are in flight in either direction.

    session.py   the boto3 session and S3 client, built once, shared (NativeS3, KMS)
    objects.py   ObjectHead, ObjectSummary, Written, StoredObject, ObjectVersion, s3_url
    small.py     one-request calls: head, small get/put, delete, tags, versioning
    listing.py   objects, versions, multipart uploads, page by page (boto3)
    native_list.py  objects listed through obstore, boto3 where it cannot
    native_head.py  many HEADs in flight through obstore
    upload.py    put_stream: single or multipart, memory budget, bandwidth limit
    download.py  iter_object: single or parallel ranged GETs
    copy.py      server-side copies, multipart above the copy threshold

The value types are imported from `s3vault.remote.objects`; importing them from here
keeps working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from s3vault.config.model import S3Settings, TransferSettings
from s3vault.remote import copy, download, listing, small, upload
from s3vault.remote.memory import UploadMemory
from s3vault.remote.objects import (
    BodySource,
    ObjectHead,
    ObjectSummary,
    ObjectVersion,
    Progress,
    StoredObject,
    Written,
    s3_url,
)
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

if TYPE_CHECKING:
    from s3vault.remote.native import NativeS3
    from s3vault.remote.native_head import HeadResult

__all__ = [
    "BodySource",
    "ObjectHead",
    "ObjectSummary",
    "ObjectVersion",
    "Progress",
    "S3Remote",
    "StoredObject",
    "Written",
    "s3_url",
]

MiB = 1024 * 1024


class S3Remote:
    """A bucket-agnostic S3 client with s3vault's transfer policy.

    Built from ``settings`` (its own `AwsSession`), or over a ``session`` shared with
    the native path and KMS (`vault.factory.build_vault`). ``throttle`` is the upload
    bandwidth limit (`agent.bandwidth_limit`, ``--bwlimit``); None: no limit.
    """

    def __init__(
        self,
        settings: S3Settings | None = None,
        transfer: TransferSettings | None = None,
        *,
        throttle: Throttle | None = None,
        session: AwsSession | None = None,
    ) -> None:
        if session is not None and settings is not None and settings != session.settings:
            raise ValueError("give S3Remote its settings or a session, not both")
        self.transfer = transfer if transfer is not None else TransferSettings()
        self.session = session if session is not None else AwsSession(settings, self.transfer)
        self.settings = self.session.settings
        self.throttle = throttle
        self._lock = threading.Lock()
        self._memory: UploadMemory | None = None
        # Cleared when the store turns out not to support a conditional DeleteObject.
        self._conditional_delete = True
        self._native: NativeS3 | None = None

    def __repr__(self) -> str:
        return f"S3Remote({self.session!r}, throttle={self.throttle!r})"

    @property
    def client(self) -> Any:
        """The boto3 S3 client of the session (thread-safe; built once)."""
        return self.session.s3_client

    @property
    def native(self) -> NativeS3:
        """The obstore path over this session (listings, many HEADs); built once."""
        with self._lock:
            if self._native is None:
                # Imported here: obstore is not needed by commands that list nothing.
                from s3vault.remote.native import NativeS3

                self._native = NativeS3(self.session, throttle=self.throttle)
            return self._native

    # ---- small objects -------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectHead:
        return small.head(self.session, bucket, key)

    def heads(
        self, bucket: str, keys: Iterable[str], *, in_flight: int | None = None
    ) -> Iterator[tuple[str, HeadResult]]:
        """HEAD many keys, ``in_flight`` (default 64) at once through obstore.

        Yields (key, `ObjectHead` or the s3vault error of that HEAD) in the order of
        ``keys``, which are read lazily (a window of a few hundred ahead); see
        `native_head.heads`.
        """
        from s3vault.remote import native_head

        if in_flight is None:
            return native_head.heads(self.native, bucket, keys)
        return native_head.heads(self.native, bucket, keys, in_flight=in_flight)

    def exists(self, bucket: str, key: str) -> bool:
        return small.exists(self.session, bucket, key)

    def get_bytes(self, bucket: str, key: str, *, max_bytes: int = 1 * MiB) -> bytes:
        """A whole small object (an instruction file); refuses anything bigger."""
        return small.get_bytes(self.session, bucket, key, max_bytes=max_bytes)

    def put_bytes(
        self,
        bucket: str,
        key: str,
        body: bytes,
        metadata: dict[str, str],
        *,
        content_type: str = "application/octet-stream",
    ) -> Written:
        return small.put_bytes(
            self.session,
            bucket,
            key,
            body,
            metadata,
            content_type=content_type,
            throttle=self.throttle,
        )

    def delete(self, bucket: str, key: str) -> None:
        small.delete(self.session, bucket, key)

    def delete_if_match(self, bucket: str, key: str, etag: str) -> bool:
        """Delete ``key`` only while its ETag is ``etag``; False if it was already gone.

        A changed object raises ConflictError and stays. Stores that do not support a
        conditional DeleteObject (it is recent in S3) get a HEAD and a compare first;
        a write landing between those two is the remaining window there.
        """
        if self._conditional_delete:
            try:
                return small.delete_if_match(self.session, bucket, key, etag)
            except small.UnsupportedCondition:
                self._conditional_delete = False
        return small.delete_if_unchanged(self.session, bucket, key, etag)

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
        return upload.part_size_for(self.transfer, total)

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
        return upload.put_stream(
            self.session,
            bucket,
            key,
            read,
            total,
            metadata,
            transfer=self.transfer,
            memory=self.memory,
            throttle=self.throttle,
            content_type=content_type,
            progress=progress,
            before_commit=before_commit,
            if_match=if_match,
            if_none_match=if_none_match,
            headers=headers,
        )

    # ---- streaming download --------------------------------------------------------

    def iter_object(self, head: ObjectHead, *, progress: Progress | None = None) -> download.Chunks:
        """The object's bytes in order, in chunks, pinned to the ETag seen by HEAD.

        Large objects are fetched as parallel ranged GETs (``concurrency`` in flight)
        and yielded in order, so a sequential consumer (the GCM decryptor) is fed
        at the speed of parallel transfer while memory stays bounded. The bandwidth
        limit applies. `Chunks.start` sets the transfer going early, `close` (or
        ``with``) stops it.
        """
        return download.iter_object(
            self.session, head, transfer=self.transfer, progress=progress, throttle=self.throttle
        )

    # ---- listing -------------------------------------------------------------------

    def list(
        self, bucket: str, prefix: str = "", *, recursive: bool = True
    ) -> Iterator[ObjectSummary | str]:
        """Objects under ``prefix``, page by page through obstore (`native_list`);
        without ``recursive``, sub-"folders" come as str, before the objects."""
        from s3vault.remote import native_list

        return native_list.list_objects(self.native, bucket, prefix, recursive=recursive)

    def list_versions(self, bucket: str, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker under ``prefix``, page by page."""
        return listing.list_versions(self.session, bucket, prefix)

    def multipart_uploads(self, bucket: str, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        """In-progress multipart uploads under ``prefix``: (key, upload id, initiated)."""
        return listing.multipart_uploads(self.session, bucket, prefix)

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        small.abort_upload(self.session, bucket, key, upload_id)

    def bucket_versioning(self, bucket: str) -> str | None:
        """``Enabled`` or ``Suspended`` for a bucket that has (had) versioning, else None."""
        return small.bucket_versioning(self.session, bucket)

    # ---- rewriting in place (key rotation) and copies ------------------------------
    #
    # Every write here is conditional on the ETag the caller read, so a concurrent
    # change of the object makes the rewrite fail (ConflictError) instead of being lost.

    def head_stored(self, bucket: str, key: str, *, version_id: str | None = None) -> StoredObject:
        """HEAD with the headers and tag count a rewrite must keep.

        Refuses an object whose metadata S3 cannot return (``MissingMeta``): rewriting
        it with MetadataDirective=REPLACE would silently drop those entries.
        """
        return small.head_stored(self.session, bucket, key, version_id=version_id)

    def get_small(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        max_bytes: int = 1 * MiB,
    ) -> tuple[bytes, StoredObject]:
        """A whole small object (an instruction file) with its ETag, metadata and headers."""
        return small.get_small(
            self.session, bucket, key, version_id=version_id, max_bytes=max_bytes
        )

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
        return small.put_bytes_if_match(
            self.session, bucket, key, body, metadata, if_match=if_match, headers=headers
        )

    def tagging_header(self, bucket: str, key: str) -> str | None:
        """The object's tags as a ``Tagging`` argument (URL-encoded), None if it has none."""
        return small.tagging_header(self.session, bucket, key)

    def copy_replace_metadata(
        self, stored: StoredObject, metadata: dict[str, str], *, if_match: str
    ) -> Written:
        """Give the object new user metadata without moving its bytes through this client.

        A server-side copy of the object onto itself (MetadataDirective=REPLACE),
        conditional on ``if_match``; the kept headers and the tags stay. Objects larger
        than ``transfer.copy_threshold`` go through a multipart copy (UploadPartCopy),
        as S3 copies at most 5 GiB in one request.
        """
        return copy.copy_replace_metadata(
            self.session, stored, metadata, if_match=if_match, transfer=self.transfer
        )

    def copy_object(
        self, bucket: str, src: str, dst: str, *, if_match: str, size: int | None = None
    ) -> Written:
        """Server-side copy of ``src`` to ``dst`` (bytes, metadata, tags), pinned to ``if_match``.

        S3 copies at most 5 GiB in one request: a source larger than
        ``transfer.copy_threshold`` is copied in parts. ``size`` is the source's size
        if the caller knows it (within a few bytes); unknown, or close to the
        threshold, the source is HEADed to decide.
        """
        return copy.copy_object(
            self.session, bucket, src, dst, if_match=if_match, size=size, transfer=self.transfer
        )
