"""ETag comparison: S3 quotes ETags, some servers drop the quotes on copies."""

from __future__ import annotations


def same_etag(a: str | None, b: str | None) -> bool:
    """ETags compare without their quotes (some servers drop them on copies)."""
    if a is None or b is None:
        return a is b
    return a.strip('"') == b.strip('"')
