"""Server-side copies: new metadata in place (key rotation), an object to a new key (renames).

No byte passes through this client. Every copy is pinned to the source ETag the
caller read (``CopySourceIfMatch``), so a concurrent change fails with ConflictError
instead of being lost. S3 copies at most 5 GiB in one request: above
``transfer.copy_threshold`` the copy goes in parts (UploadPartCopy).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from s3vault.config.model import TransferSettings
from s3vault.errors import ConflictError
from s3vault.etag import same_etag
from s3vault.remote import small
from s3vault.remote.errors import s3_errors
from s3vault.remote.objects import StoredObject, Written, quoted, s3_url
from s3vault.remote.session import AwsSession
from s3vault.remote.upload import abort_quietly, part_size_for

MiB = 1024 * 1024
_COPY_SIZE_MARGIN = 1 * MiB
"""How close to `copy_threshold` a size given to `copy_object` must be to be checked."""


def copy_replace_metadata(
    session: AwsSession,
    stored: StoredObject,
    metadata: dict[str, str],
    *,
    if_match: str,
    transfer: TransferSettings,
) -> Written:
    """A self-copy with MetadataDirective=REPLACE (the contract:
    `S3Remote.copy_replace_metadata`); kept headers and tags stay."""
    head = stored.head
    if head.size > transfer.copy_threshold:
        return multipart_copy(session, stored, metadata, if_match, transfer=transfer)
    with s3_errors(s3_url(head.bucket, head.key)):
        r = session.s3_client.copy_object(
            Bucket=head.bucket,
            Key=head.key,
            CopySource={"Bucket": head.bucket, "Key": head.key},
            CopySourceIfMatch=if_match,
            MetadataDirective="REPLACE",
            Metadata=metadata,
            TaggingDirective="COPY",
            **stored.headers,
        )
    return Written(etag=quoted(r["CopyObjectResult"]["ETag"]), version_id=r.get("VersionId"))


def copy_object(
    session: AwsSession,
    bucket: str,
    src: str,
    dst: str,
    *,
    if_match: str,
    size: int | None,
    transfer: TransferSettings,
) -> Written:
    """``src`` to ``dst`` with its bytes, metadata and tags (the contract:
    `S3Remote.copy_object`)."""
    if size is None or size > transfer.copy_threshold - _COPY_SIZE_MARGIN:
        stored = small.head_stored(session, bucket, src)
        if not same_etag(stored.head.etag, if_match):
            raise ConflictError(f"{s3_url(bucket, src)} changed since it was read")
        if stored.head.size > transfer.copy_threshold:
            return multipart_copy(
                session, stored, dict(stored.head.metadata), if_match, transfer=transfer, dst=dst
            )
    with s3_errors(s3_url(bucket, src)):
        r = session.s3_client.copy_object(
            Bucket=bucket,
            Key=dst,
            CopySource={"Bucket": bucket, "Key": src},
            CopySourceIfMatch=if_match,
            MetadataDirective="COPY",
            TaggingDirective="COPY",
        )
    return Written(etag=quoted(r["CopyObjectResult"]["ETag"]), version_id=r.get("VersionId"))


def multipart_copy(
    session: AwsSession,
    stored: StoredObject,
    metadata: dict[str, str],
    if_match: str,
    *,
    transfer: TransferSettings,
    dst: str | None = None,
) -> Written:
    """Copy ``stored`` (to ``dst``, default onto itself) in parts, with ``metadata``.

    Every part is pinned to the source ETag ``if_match``; a copy onto itself also
    completes only if the object still has that ETag. The object's kept headers and
    tags go to the new upload; a failure aborts it.
    """
    head = stored.head
    target = dst if dst is not None else head.key
    what = s3_url(head.bucket, target)
    extra = dict(stored.headers)
    tagging = small.tagging_header(session, head.bucket, head.key) if stored.tag_count else None
    if tagging:
        extra["Tagging"] = tagging  # a new upload starts without the object's tags
    with s3_errors(what):
        upload_id = session.s3_client.create_multipart_upload(
            Bucket=head.bucket, Key=target, Metadata=metadata, **extra
        )["UploadId"]
    part = part_size_for(transfer, head.size)

    def copy_part(number: int, start: int) -> dict[str, Any]:
        end = min(start + part, head.size) - 1
        with s3_errors(s3_url(head.bucket, head.key)):
            r = session.s3_client.upload_part_copy(
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
            max_workers=transfer.concurrency, thread_name_prefix="s3-copy"
        ) as pool:
            futures = [
                pool.submit(copy_part, number, start)
                for number, start in enumerate(range(0, head.size, part), start=1)
            ]
            parts = [f.result() for f in futures]
        with s3_errors(what):
            r = session.s3_client.complete_multipart_upload(
                Bucket=head.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **condition,
            )
    except BaseException:
        abort_quietly(session, head.bucket, target, upload_id)
        raise
    return Written(etag=quoted(r["ETag"]), version_id=r.get("VersionId"))
