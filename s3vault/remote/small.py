"""S3 calls of one request each: HEAD, small GETs and PUTs, deletes, tags, versioning.

Small bodies only (envelopes, instruction files); object data goes through `upload`
and `download`. Every failure leaves here as an s3vault error (`remote/errors.py`).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from s3vault.errors import ConflictError, FormatError, NotFoundError, RefusedError
from s3vault.etag import same_etag
from s3vault.remote.errors import error_code, http_status, s3_errors, translate
from s3vault.remote.objects import (
    ObjectHead,
    StoredObject,
    Written,
    head_from_response,
    kept_headers,
    quoted,
    s3_url,
)
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

MiB = 1024 * 1024
_UNSUPPORTED = {"NotImplemented", "InvalidArgument", "InvalidRequest", "UnsupportedHeader"}
"""Error codes of stores that reject a conditional header instead of honouring it."""


class UnsupportedCondition(Exception):
    """The store rejected a conditional header instead of honouring it."""


def head(session: AwsSession, bucket: str, key: str) -> ObjectHead:
    with s3_errors(s3_url(bucket, key)):
        r = session.s3_client.head_object(Bucket=bucket, Key=key)
    return head_from_response(bucket, key, r)


def exists(session: AwsSession, bucket: str, key: str) -> bool:
    try:
        session.s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) == 404:
            return False
        raise translate(exc, s3_url(bucket, key)) from None
    except BotoCoreError as exc:
        raise translate(exc, s3_url(bucket, key)) from None
    return True


def get_bytes(session: AwsSession, bucket: str, key: str, *, max_bytes: int = 1 * MiB) -> bytes:
    """A whole small object (an instruction file); refuses anything bigger."""
    with s3_errors(s3_url(bucket, key)):
        r = session.s3_client.get_object(Bucket=bucket, Key=key)
        if int(r["ContentLength"]) > max_bytes:
            r["Body"].close()
            raise FormatError(f"{s3_url(bucket, key)} is too large to be an envelope")
        return bytes(r["Body"].read())


def put_bytes(
    session: AwsSession,
    bucket: str,
    key: str,
    body: bytes,
    metadata: dict[str, str],
    *,
    content_type: str,
    throttle: Throttle | None,
) -> Written:
    if throttle is not None:
        throttle.take(len(body))
    with s3_errors(s3_url(bucket, key)):
        r = session.s3_client.put_object(
            Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType=content_type
        )
    return Written(etag=r["ETag"], version_id=r.get("VersionId"))


def delete(session: AwsSession, bucket: str, key: str) -> None:
    with s3_errors(s3_url(bucket, key)):
        session.s3_client.delete_object(Bucket=bucket, Key=key)


def delete_if_match(session: AwsSession, bucket: str, key: str, etag: str) -> bool:
    """A conditional DeleteObject (IfMatch); False if the object was already gone.

    A changed object raises ConflictError and stays; a store that rejects the
    condition raises `UnsupportedCondition` (then see `delete_if_unchanged`).
    """
    what = s3_url(bucket, key)
    try:
        session.s3_client.delete_object(Bucket=bucket, Key=key, IfMatch=quoted(etag))
        return True
    except ClientError as exc:
        if _unsupported(exc):
            raise UnsupportedCondition(error_code(exc) or str(http_status(exc))) from None
        error = translate(exc, what)
        # A missing object fails the condition on some stores (SeaweedFS).
        if isinstance(error, NotFoundError) or (
            isinstance(error, ConflictError) and not exists(session, bucket, key)
        ):
            return False
        raise error from None
    except BotoCoreError as exc:
        raise translate(exc, what) from None


def delete_if_unchanged(session: AwsSession, bucket: str, key: str, etag: str) -> bool:
    """`delete_if_match` for stores without a conditional DeleteObject: HEAD, compare,
    delete. A write landing between the HEAD and the delete is the remaining window."""
    try:
        current = head(session, bucket, key)
    except NotFoundError:
        return False
    if not same_etag(current.etag, etag):
        raise ConflictError(
            f"{s3_url(bucket, key)} changed since it was synced (ETag {current.etag})"
        )
    delete(session, bucket, key)
    return True


def _unsupported(exc: ClientError) -> bool:
    """Whether S3 refused a request for a header it does not implement."""
    return error_code(exc) in _UNSUPPORTED or http_status(exc) == 501


# ---- for rewrites in place (key rotation) -------------------------------------------


def head_stored(
    session: AwsSession, bucket: str, key: str, *, version_id: str | None = None
) -> StoredObject:
    """HEAD with the headers and tag count a rewrite must keep.

    Refuses an object whose metadata S3 cannot return (``MissingMeta``): rewriting
    it with MetadataDirective=REPLACE would silently drop those entries.
    """
    what = s3_url(bucket, key)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    with s3_errors(what):
        r = session.s3_client.head_object(**kwargs)
    if int(r.get("MissingMeta") or 0):
        raise RefusedError(
            f"{what} has user metadata that S3 cannot return through its API; "
            "rewriting it would lose those entries"
        )
    return StoredObject(
        head=head_from_response(bucket, key, r),
        headers=kept_headers(r),
        tag_count=int(r.get("TagCount") or 0),
    )


def get_small(
    session: AwsSession,
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
        r = session.s3_client.get_object(**kwargs)
        if int(r["ContentLength"]) > max_bytes:
            r["Body"].close()
            # An instruction file of megabytes is a hostile or foreign object, not
            # an envelope: an integrity failure, like any other malformed one.
            raise FormatError(f"{what} is too large to be an envelope")
        body = bytes(r["Body"].read())
    return body, StoredObject(head_from_response(bucket, key, r), kept_headers(r))


def put_bytes_if_match(
    session: AwsSession,
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
        r = session.s3_client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            Metadata=metadata,
            IfMatch=if_match,
            **(headers or {}),
        )
    return Written(etag=r["ETag"], version_id=r.get("VersionId"))


def tagging_header(session: AwsSession, bucket: str, key: str) -> str | None:
    """The object's tags as a ``Tagging`` argument (URL-encoded), None if it has none."""
    with s3_errors(s3_url(bucket, key)):
        tags = session.s3_client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    if not tags:
        return None
    return urllib.parse.urlencode([(t["Key"], t["Value"]) for t in tags])


def abort_upload(session: AwsSession, bucket: str, key: str, upload_id: str) -> None:
    with s3_errors(s3_url(bucket, key)):
        session.s3_client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def bucket_versioning(session: AwsSession, bucket: str) -> str | None:
    """``Enabled`` or ``Suspended`` for a bucket that has (had) versioning, else None."""
    with s3_errors(s3_url(bucket)):
        status = session.s3_client.get_bucket_versioning(Bucket=bucket).get("Status")
    return str(status) if status else None
