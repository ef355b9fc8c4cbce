"""What the S3 layer takes and gives back: objects as values, in s3vault's words.

HEAD answers (`ObjectHead`, `StoredObject`), listing entries (`ObjectSummary`,
`ObjectVersion`), the result of a write (`Written`), and the shapes of a body source
and of a progress callback. No I/O here: the modules that make requests build these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


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


def head_from_response(bucket: str, key: str, r: dict[str, Any]) -> ObjectHead:
    """The `ObjectHead` of a HeadObject or GetObject response."""
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


def kept_headers(r: dict[str, Any]) -> dict[str, Any]:
    """The `KEPT_HEADERS` a HeadObject or GetObject response has, as boto3 arguments."""
    kept = {name: r[name] for name in KEPT_HEADERS if r.get(name) not in (None, "")}
    # botocore gives Expires as a datetime, or None (with ExpiresString) when the
    # stored value is not a date; only a date can be sent back.
    if not isinstance(kept.get("Expires"), datetime):
        kept.pop("Expires", None)
    return kept


def quoted(etag: str) -> str:
    """The ETag in the quotes HEAD shows; some servers (SeaweedFS) return a copy's
    ETag, and obstore every ETag, without them."""
    return etag if etag.startswith('"') else f'"{etag}"'
