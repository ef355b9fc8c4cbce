"""Listings through obstore (Rust's object_store), page by page, boto3 where it cannot.

botocore spends ~0.6 ms of Python per listed object parsing ListObjectsV2's XML;
object_store parses in Rust, so a listing of many keys costs a fraction of that. The
entries are the ones `remote/listing.py:list_objects` yields (`ObjectSummary`, and
common prefixes as str), in the order S3 sends them, with the same errors.

object_store sees keys as paths, which differ from S3 keys in a few places; each is
handled so the listing stays what S3 holds:

- a prefix is a folder ("a/b" lists "a/b/..."): a prefix that does not end at a "/"
  ("photos/2024") is listed from its folder ("photos/"), starting just before it
  (``offset``, S3's StartAfter) and stopping at the first key past it;
- a key ending in "/" (a folder placeholder) comes back without it: a zero-size entry
  is checked with one small boto3 listing (s3vault's own objects are never empty);
- a key object_store refuses to parse ("a//b", control characters) fails its whole
  page: that page is listed through boto3 from the last key yielded, then the listing
  goes on natively after it.

A non-empty object whose key ends in "/", or whose key starts with one, would be listed
without that "/" (object_store drops it and nothing in the entry tells).

Without ``recursive`` (delimiter "/"), object_store collects every page of the folder
before answering: memory holds that folder's direct entries (not its sub-folders'),
and its sub-folders come first, then its objects.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import InvalidPathError

from s3vault.remote import listing
from s3vault.remote.errors import s3_errors
from s3vault.remote.native import native_error, supports_key
from s3vault.remote.objects import ObjectSummary, quoted, s3_url

if TYPE_CHECKING:
    from obstore import ObjectMeta

    from s3vault.remote.native import NativeS3

PAGE = 1000  # S3's page: one Python list per response
_LAST_CHAR = "\U0010ffff"  # the greatest code point (F4 8F BF BF in UTF-8)


def list_objects(
    native: NativeS3, bucket: str, prefix: str = "", *, recursive: bool = True
) -> Iterator[ObjectSummary | str]:
    """Objects under ``prefix``; without ``recursive``, sub-"folders" come as str first."""
    folder = prefix[: prefix.rfind("/") + 1]
    if not _is_folder(folder) or (not recursive and folder != prefix):
        # object_store cannot name that folder, or group keys under a partial name.
        return listing.list_objects(native.session, bucket, prefix, recursive=recursive)
    if not recursive:
        return _delimited(native, bucket, prefix)
    return _recursive(native, bucket, prefix, folder)


def _is_folder(folder: str) -> bool:
    return not folder or supports_key(folder[:-1])


def _recursive(
    native: NativeS3, bucket: str, prefix: str, folder: str
) -> Iterator[ObjectSummary | str]:
    what = s3_url(bucket, prefix)
    store = native.store(bucket)
    partial = prefix != folder  # "photos/2024": keys of "photos/" that start with it
    after: str | None = _start_after(prefix) if partial else None
    plain: set[str] = set()  # zero-size keys found to be without a trailing "/"
    while True:
        try:
            stream = obstore.list(store, folder or None, offset=after, chunk_size=PAGE)
            for page in stream:
                for meta in page:
                    path = meta["path"]
                    if partial and not path.startswith(prefix):
                        if path > prefix:
                            return  # past every key that starts with the prefix
                        continue
                    key = path
                    if not meta["size"]:
                        key = _zero_size_key(native, bucket, path, folder, plain)
                    yield _summary(meta, key)
                    after = key
            return
        except InvalidPathError:
            # A key object_store cannot parse is in this page: boto3 lists on from the
            # last key yielded until a key object_store can start after.
            ended, after = yield from _boto3_pages(native, bucket, prefix, after)
            if ended:
                return
        except Exception as exc:
            raise native_error(exc, what) from None


def _boto3_pages(
    native: NativeS3, bucket: str, prefix: str, after: str | None
) -> Generator[ObjectSummary, None, tuple[bool, str | None]]:
    """Entries after ``after`` through boto3, page by page, until a page ends on a key
    object_store can start after. Returns (the listing ended, the last key)."""
    client = native.session.s3_client
    with s3_errors(s3_url(bucket, prefix)):
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE}
            if after is not None:
                kwargs["StartAfter"] = after
            page = client.list_objects_v2(**kwargs)
            contents = page.get("Contents", [])
            for obj in contents:
                yield listing.summary_of(obj)
                after = obj["Key"]
            if not page.get("IsTruncated") or not contents:
                return True, after
            if after is not None and supports_key(after):
                return False, after


def _zero_size_key(native: NativeS3, bucket: str, path: str, folder: str, plain: set[str]) -> str:
    """The S3 key of a zero-size entry object_store named ``path``: ``path`` or ``path/``.

    One boto3 listing of ``path``: it is the key when its first key is ``path`` itself,
    empty and not yet taken (S3 lists "a" before "a/", so when both are empty the
    first entry is "a").
    """
    if folder and path == folder[:-1]:
        return folder  # every key listed starts with the folder
    with s3_errors(s3_url(bucket, path)):
        page = native.session.s3_client.list_objects_v2(Bucket=bucket, Prefix=path, MaxKeys=1)
    first = (page.get("Contents") or [{}])[0]
    if first.get("Key") == path and int(first.get("Size", -1)) == 0 and path not in plain:
        plain.add(path)
        return path
    return path + "/"


def _delimited(native: NativeS3, bucket: str, prefix: str) -> Iterator[ObjectSummary | str]:
    what = s3_url(bucket, prefix)
    try:
        result = obstore.list_with_delimiter(native.store(bucket), prefix or None)
    except InvalidPathError:
        yield from listing.list_objects(native.session, bucket, prefix, recursive=False)
        return
    except Exception as exc:
        raise native_error(exc, what) from None
    for common in result["common_prefixes"]:
        yield common + "/"  # object_store's paths drop the trailing "/"
    for meta in result["objects"]:
        path = meta["path"]
        # The only key of a folder that can end in "/" is the folder's own placeholder.
        yield _summary(meta, prefix if prefix and path == prefix[:-1] else path)


def _start_after(prefix: str) -> str | None:
    """A key just below ``prefix``, for S3's StartAfter; None: start at the folder's top.

    The prefix's last character one lower, followed by the greatest code point: only
    keys that also start with that would fall in between (and are skipped).
    """
    lower = ord(prefix[-1]) - 1
    if lower < 0x20 or lower == 0x7F or 0xD800 <= lower <= 0xDFFF:
        return None  # not a character object_store accepts in a path
    offset = prefix[:-1] + chr(lower) + _LAST_CHAR
    return offset if supports_key(offset) else None


def _summary(meta: ObjectMeta, key: str) -> ObjectSummary:
    etag = meta.get("e_tag")
    return ObjectSummary(
        key=key,
        size=int(meta["size"]),
        etag=quoted(etag) if etag else "",
        last_modified=meta["last_modified"],
    )
