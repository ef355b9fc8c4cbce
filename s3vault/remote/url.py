"""`s3://bucket/key` addresses as the user types them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from s3vault.errors import UsageError


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")


def parse_s3_url(text: str) -> S3Url:
    """Parse ``s3://BUCKET[/KEY]``; UsageError with an example otherwise."""
    if not text.startswith("s3://"):
        raise UsageError(
            f"'{text}' is not an S3 address",
            hint="Write it as s3://BUCKET/KEY, e.g. s3://photos/2026/a.jpg",
        )
    bucket, _, key = text[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"'{text}' names no bucket", hint="Write it as s3://BUCKET/KEY")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise UsageError(
            f"'{bucket}' is not a valid bucket name",
            hint="Bucket names are letters, digits, '.', '-' and '_' (on AWS: 3 to 63 "
            "lowercase letters, digits, dots and hyphens).",
        )
    return S3Url(bucket, key)


# What botocore accepts (S3-compatible stores allow more than AWS's 3-63 lowercase).
_BUCKET_NAME = re.compile(r"[a-zA-Z0-9._-]{1,255}")
