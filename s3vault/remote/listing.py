"""Listings through boto3, page by page: objects, object versions, in-progress multipart
uploads. `S3Remote.list` lists objects through `native_list` (obstore), which comes
back here for what object_store cannot express."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from s3vault.remote.errors import s3_errors
from s3vault.remote.objects import ObjectSummary, ObjectVersion, s3_url
from s3vault.remote.session import AwsSession


def list_objects(
    session: AwsSession, bucket: str, prefix: str = "", *, recursive: bool = True
) -> Iterator[ObjectSummary | str]:
    """Objects under ``prefix``; without ``recursive``, sub-"folders" come as str."""
    paginator = session.s3_client.get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if not recursive:
        kwargs["Delimiter"] = "/"
    with s3_errors(s3_url(bucket, prefix)):
        for page in paginator.paginate(**kwargs):
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"]
            for obj in page.get("Contents", []):
                yield summary_of(obj)


def summary_of(obj: dict[str, Any]) -> ObjectSummary:
    """The `ObjectSummary` of one ``Contents`` entry of a ListObjectsV2 page."""
    return ObjectSummary(
        key=obj["Key"],
        size=int(obj["Size"]),
        etag=obj.get("ETag", ""),
        last_modified=obj.get("LastModified"),
    )


def list_versions(session: AwsSession, bucket: str, prefix: str = "") -> Iterator[ObjectVersion]:
    """Every version and delete marker under ``prefix``, page by page."""
    paginator = session.s3_client.get_paginator("list_object_versions")
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


def multipart_uploads(
    session: AwsSession, bucket: str, prefix: str
) -> Iterator[tuple[str, str, datetime]]:
    """In-progress multipart uploads under ``prefix``: (key, upload id, initiated)."""
    paginator = session.s3_client.get_paginator("list_multipart_uploads")
    with s3_errors(s3_url(bucket, prefix)):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"], upload["Initiated"]
