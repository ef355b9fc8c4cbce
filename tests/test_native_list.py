"""Listings and many HEADs through obstore (remote/native_list.py, native_head.py),
against real SeaweedFS: the same entries, order and errors as the boto3 listing and
HEAD, and boto3 used only where object_store cannot express the request.

One bucket, filled once for the module: ``plain/`` (more than a page of keys),
``odd/`` (spaces, percent signs, unicode, a folder placeholder ``dir/``, a key with a
tab that object_store refuses) and ``mixed/`` (two pages, with a refused key on the
first).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from s3vault.errors import AccessDeniedError, NotFoundError
from s3vault.remote import listing
from s3vault.remote.native import PutRequest
from s3vault.remote.objects import ObjectHead, ObjectSummary
from s3vault.remote.s3 import S3Remote

PLAIN = 1100  # more than one page of 1000
MIXED = 2100
ODD = [
    "odd/a b/é x%20y",
    "odd/a%41",
    "odd/a",
    "odd/ab",
    "odd/dir/",
    "odd/dir/x",
    "odd/dir-1",
    "odd/q?x#h",
    "odd/t\tb",  # object_store refuses control characters
    "odd/中文/ü",
    "odd/zz/deep/er/key",
]


@pytest.fixture(scope="module")
def filled(s3: Any, s3_client: Any) -> Iterator[str]:
    name = f"test-list-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(name)
    remote = S3Remote()
    keys = [f"plain/{i:05d}" for i in range(PLAIN)] + [f"mixed/{i:05d}" for i in range(MIXED)]
    remote.native.put_many((PutRequest(name, k, k.encode()) for k in keys), lambda _: None)
    for key in [*ODD, "mixed/00010\t"]:  # boto3: object_store cannot write these
        s3_client.put_object(Bucket=name, Key=key, Body=b"" if key.endswith("/") else b"x")
    yield name
    s3_client.delete_bucket(Bucket=name)


class ListCalls:
    """Counts the ListObjectsV2 calls boto3 makes (botocore's own event hook)."""

    def __init__(self, remote: S3Remote) -> None:
        self.count = 0
        remote.client.meta.events.register("before-call.s3.ListObjectsV2", self._seen)

    def _seen(self, **_: Any) -> None:
        self.count += 1


def boto3_listing(remote: S3Remote, bucket: str, prefix: str, recursive: bool) -> list[Any]:
    entries = list(listing.list_objects(remote.session, bucket, prefix, recursive=recursive))
    if recursive:
        return entries
    # The native listing gives a folder's sub-folders first, then its objects.
    return [e for e in entries if isinstance(e, str)] + [
        e for e in entries if isinstance(e, ObjectSummary)
    ]


@pytest.mark.parametrize("recursive", [True, False], ids=["recursive", "delimiter"])
@pytest.mark.parametrize(
    "prefix",
    ["", "plain/", "plain", "plain/0", "plain/0109", "odd/", "odd/a", "odd/dir", "odd/dir/",
     "odd/中", "odd/a b/", "odd/zz/", "mixed/", "mixed/0001", "nothing/", "nothing"],
)  # fmt: skip
def test_native_listing_equals_the_boto3_listing(filled, prefix, recursive):
    remote = S3Remote()
    expected = boto3_listing(remote, filled, prefix, recursive)
    assert list(remote.list(filled, prefix, recursive=recursive)) == expected
    if prefix.startswith("plain"):
        assert expected  # not vacuous


def test_more_than_a_page_is_listed_natively_in_order(filled):
    remote = S3Remote()
    calls = ListCalls(remote)
    keys = [e.key for e in remote.list(filled, "plain/") if isinstance(e, ObjectSummary)]
    assert keys == [f"plain/{i:05d}" for i in range(PLAIN)]
    assert calls.count == 0


def test_a_prefix_inside_a_name_is_listed_natively(filled):
    remote = S3Remote()
    calls = ListCalls(remote)
    keys = [e.key for e in remote.list(filled, "plain/0108")]  # type: ignore[union-attr]
    assert keys == [f"plain/0108{i}" for i in range(10)]
    assert calls.count == 0


def test_a_folder_placeholder_keeps_its_trailing_slash(filled):
    remote = S3Remote()
    for recursive in (True, False):
        listed = list(remote.list(filled, "odd/dir/", recursive=recursive))
        keys = [e.key for e in listed if isinstance(e, ObjectSummary)]
        assert keys == ["odd/dir/", "odd/dir/x"]
    assert "odd/dir/" in [e for e in remote.list(filled, "odd/", recursive=False)]


def test_a_key_object_store_refuses_costs_one_boto3_page_then_native_again(filled):
    remote = S3Remote()
    calls = ListCalls(remote)
    keys = [e.key for e in remote.list(filled, "mixed/")]  # type: ignore[union-attr]
    expected = sorted([f"mixed/{i:05d}" for i in range(MIXED)] + ["mixed/00010\t"])
    assert keys == expected
    # The first page (with the refused key) through boto3, the rest natively after it.
    assert calls.count == 1


@pytest.mark.parametrize("recursive", [True, False])
def test_a_missing_bucket_is_not_found_like_boto3(recursive):
    remote = S3Remote()
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(NotFoundError) as native:
        list(remote.list(bucket, "a/", recursive=recursive))
    with pytest.raises(NotFoundError) as boto3:
        list(listing.list_objects(remote.session, bucket, "a/", recursive=recursive))
    assert native.value.message == boto3.value.message
    assert native.value.hint == boto3.value.hint


@pytest.mark.parametrize("recursive", [True, False])
def test_wrong_credentials_are_access_denied(filled, monkeypatch, recursive):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key-at-all-0123456789")
    with pytest.raises(AccessDeniedError, match="SignatureDoesNotMatch"):
        list(S3Remote().list(filled, "plain/", recursive=recursive))


# ---- many HEADs ---------------------------------------------------------------------


def test_heads_equal_boto3_heads_in_the_order_asked(filled, s3_client):
    s3_client.put_object(
        Bucket=filled,
        Key="head/typed",
        Body=b"abc",
        Metadata={"MixedCase": "v", "x-s3vault-mtime": "123"},
        ContentType="text/plain; charset=utf-8",
        CacheControl="no-cache",
    )
    remote = S3Remote()
    keys = ["head/typed", *ODD, "plain/00001"]
    answers = list(remote.heads(filled, keys))
    assert [key for key, _ in answers] == keys
    for key, head in answers:
        assert head == remote.head(filled, key)
    typed = answers[0][1]
    assert isinstance(typed, ObjectHead)
    assert typed.metadata == {"mixedcase": "v", "x-s3vault-mtime": "123"}
    assert typed.content_type == "text/plain; charset=utf-8"
    assert typed.etag.startswith('"') and typed.etag.endswith('"')


def test_heads_give_the_version_id_of_a_versioned_bucket(bucket, s3_client):
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3_client.put_object(Bucket=bucket, Key="v", Body=b"1")
    remote = S3Remote()
    [(_, head)] = remote.heads(bucket, ["v"])
    assert isinstance(head, ObjectHead) and head.version_id
    assert head == remote.head(bucket, "v")


def test_heads_answer_a_missing_key_with_its_error_and_go_on(filled):
    answers = dict(S3Remote().heads(filled, ["plain/00000", "plain/none", "plain/00002"]))
    assert isinstance(answers["plain/none"], NotFoundError)
    assert answers["plain/none"].message == f"s3://{filled}/plain/none does not exist"
    assert isinstance(answers["plain/00002"], ObjectHead)


def test_heads_read_keys_lazily_within_a_window(filled):
    taken = 0

    def keys() -> Iterator[str]:
        nonlocal taken
        for i in range(PLAIN):
            taken += 1
            yield f"plain/{i:05d}"

    remote = S3Remote()
    answers = remote.heads(filled, keys(), in_flight=8)
    first_key, first = next(answers)
    assert first_key == "plain/00000" and isinstance(first, ObjectHead)
    assert taken <= 4 * 8 + 1  # a window ahead, not every key
    sizes = [head.size for _, head in answers if isinstance(head, ObjectHead)]
    assert len(sizes) == PLAIN - 1 and set(sizes) == {len("plain/00000")}


def test_closing_heads_early_stops_its_loop_thread(filled):
    before = threading.active_count()
    answers = S3Remote().heads(filled, (f"plain/{i:05d}" for i in range(PLAIN)))
    next(answers)
    answers.close()
    assert threading.active_count() == before
