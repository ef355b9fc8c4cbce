"""The native S3 path (s3vault/remote/native.py) against real SeaweedFS.

Conditional writes, user metadata, the follow-up (instruction file) PUT, the
in-flight bound, and the mapping of failures to the s3vault errors botocore's
failures map to (remote/errors.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from obstore.exceptions import GenericError

from s3vault.config.model import S3Settings
from s3vault.errors import (
    AccessDeniedError,
    ConflictError,
    ExitCode,
    UnreachableError,
    UsageError,
)
from s3vault.remote.native import NativeS3, PutOutcome, PutRequest, native_error, supports_key
from s3vault.remote.s3 import S3Remote
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle


@pytest.fixture
def native() -> NativeS3:
    return NativeS3.for_remote(S3Remote())


def test_conditional_create_and_if_match(native, bucket, s3_client):
    created = native.put(
        PutRequest(bucket, "dir/a.txt", b"first", {"s3vault-mtime": "12"}, if_none_match=True)
    )
    head = s3_client.head_object(Bucket=bucket, Key="dir/a.txt")
    assert created.etag == head["ETag"]
    assert head["Metadata"] == {"s3vault-mtime": "12"}
    assert s3_client.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"first"

    with pytest.raises(ConflictError) as exists:
        native.put(PutRequest(bucket, "dir/a.txt", b"second", if_none_match=True))
    assert exists.value.exit_code == ExitCode.CONFLICT
    with pytest.raises(ConflictError):
        native.put(PutRequest(bucket, "dir/a.txt", b"second", if_match='"0123456789abcdef"'))
    assert s3_client.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"first"

    replaced = native.put(PutRequest(bucket, "dir/a.txt", b"second", if_match=created.etag))
    assert replaced.etag != created.etag
    assert s3_client.head_object(Bucket=bucket, Key="dir/a.txt")["ETag"] == replaced.etag
    # Unconditional: overwrites.
    native.put(PutRequest(bucket, "dir/a.txt", b"third"))
    assert s3_client.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"third"


def test_follow_up_is_written_after_its_object_only(native, bucket, s3_client):
    instruction = PutRequest(bucket, "x.bin.instruction", b"{}")
    native.put(PutRequest(bucket, "x.bin", b"body", if_none_match=True, then=instruction))
    assert s3_client.get_object(Bucket=bucket, Key="x.bin.instruction")["Body"].read() == b"{}"

    s3_client.delete_object(Bucket=bucket, Key="x.bin.instruction")
    with pytest.raises(ConflictError):
        native.put(PutRequest(bucket, "x.bin", b"other", if_none_match=True, then=instruction))
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listing] == ["x.bin"]  # no envelope without its object


def test_keys_with_unusual_characters_round_trip(native, bucket, s3_client):
    names = ["a b.txt", "ü/ß.txt", "100%.txt", "x#y?.txt", "a+b=c&d", "semi;colon", "(1)[2]{3}"]
    for name in names:
        assert supports_key(name)
        native.put(PutRequest(bucket, f"k/{name}", name.encode()))
    for name in names:
        body = s3_client.get_object(Bucket=bucket, Key=f"k/{name}")["Body"].read()
        assert body == name.encode()


@pytest.mark.parametrize(
    "key", ["", "/a", "a/", "a//b", "a/./b", "a/../b", "..", "tab\there", "nul\x00", "del\x7f"]
)
def test_keys_object_store_cannot_address_are_refused(key):
    assert not supports_key(key)


def test_put_many_keeps_the_in_flight_bound(native, bucket, s3_client):
    pulled = 0
    done: list[PutOutcome] = []
    most_outstanding = 0

    def requests() -> Iterator[PutRequest]:
        nonlocal pulled, most_outstanding
        for i in range(60):
            pulled += 1
            most_outstanding = max(most_outstanding, pulled - len(done))
            yield PutRequest(bucket, f"many/{i:02}", bytes([i]) * 100, if_none_match=True)

    native.put_many(requests(), done.append, in_flight=5)
    assert len(done) == 60 and all(o.error is None and o.written for o in done)
    assert most_outstanding <= 5
    assert {o.request.key for o in done} == {f"many/{i:02}" for i in range(60)}
    listing = s3_client.list_objects_v2(Bucket=bucket, Prefix="many/")
    assert listing["KeyCount"] == 60


def test_put_many_reports_failures_per_request(native, bucket, s3_client):
    s3_client.put_object(Bucket=bucket, Key="taken", Body=b"theirs")
    done: list[PutOutcome] = []
    native.put_many(
        [
            PutRequest(bucket, "taken", b"mine", if_none_match=True),
            PutRequest(bucket, "free", b"mine", if_none_match=True),
        ],
        done.append,
    )
    by_key = {o.request.key: o for o in done}
    assert isinstance(by_key["taken"].error, ConflictError) and by_key["taken"].written is None
    assert by_key["free"].error is None and by_key["free"].written is not None


def test_an_exception_in_on_done_stops_after_the_requests_in_flight(native, bucket):
    seen: list[str] = []

    def on_done(outcome: PutOutcome) -> None:
        seen.append(outcome.request.key)
        raise RuntimeError("the caller failed")

    pulled: list[int] = []

    def requests() -> Iterator[PutRequest]:
        for i in range(100):
            pulled.append(i)
            yield PutRequest(bucket, f"stop/{i}", b"x")

    with pytest.raises(RuntimeError, match="the caller failed"):
        native.put_many(requests(), on_done, in_flight=4)
    assert len(pulled) < 100  # it stopped taking new requests
    assert len(seen) == len(pulled)  # and every request sent was reported


def test_a_failure_that_is_no_s3_error_is_raised_after_the_requests_in_flight(
    native, bucket, s3_client, monkeypatch
):
    real = NativeS3._put_once

    async def broken(self: NativeS3, request: PutRequest) -> Any:
        if request.key == "bug/3":
            raise RuntimeError("a bug, not an S3 answer")
        return await real(self, request)

    monkeypatch.setattr(NativeS3, "_put_once", broken)
    seen: list[PutOutcome] = []
    requests = (PutRequest(bucket, f"bug/{i}", b"x") for i in range(50))
    with pytest.raises(RuntimeError, match="a bug"):
        native.put_many(requests, seen.append, in_flight=4)
    assert "bug/3" not in {o.request.key for o in seen}  # never reported as stored
    assert len(seen) < 49 and all(o.error is None and o.written for o in seen)
    stored = s3_client.list_objects_v2(Bucket=bucket, Prefix="bug/").get("Contents", [])
    assert {o["Key"] for o in stored} == {o.request.key for o in seen}


@pytest.mark.services  # the session's AWS credentials
def test_unreachable_endpoint_is_unreachable_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = S3Settings(endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
    native = NativeS3(AwsSession(settings))
    started = time.monotonic()
    with pytest.raises(UnreachableError) as caught:
        native.put(PutRequest("some-bucket", "k", b"x"))
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert "cannot reach S3 for s3://some-bucket/k" in caught.value.message
    assert "AWS_ENDPOINT_URL_S3" in (caught.value.hint or "")
    assert time.monotonic() - started < 30


def test_stopped_server_is_unreachable_and_retried(native, bucket, s3, s3_client):
    s3.stop()
    done: list[PutOutcome] = []
    restarted = threading.Timer(0.1, s3.start)  # back while the first attempt backs off
    with pytest.raises(UnreachableError):
        native.put(PutRequest(bucket, "later", b"x"))
    restarted.start()
    try:
        native.put_many([PutRequest(bucket, "later", b"x")], done.append, attempts=8, backoff=0.5)
    finally:
        restarted.join()
    assert done[0].error is None
    assert s3_client.get_object(Bucket=bucket, Key="later")["Body"].read() == b"x"


def test_wrong_secret_is_access_denied(bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key-at-all-0123456789")
    native = NativeS3.for_remote(S3Remote())
    with pytest.raises(AccessDeniedError) as caught:
        native.put(PutRequest(bucket, "k", b"x"))
    assert caught.value.exit_code == ExitCode.ACCESS_DENIED
    assert "SignatureDoesNotMatch" in caught.value.message


def test_no_credentials_is_access_denied(bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AccessDeniedError, match="no AWS credentials"):
        NativeS3.for_remote(S3Remote()).put(PutRequest(bucket, "k", b"x"))


def test_credentials_come_from_the_boto3_profile(bucket, s3, s3_client, monkeypatch, tmp_path):
    """A profile named in the config wins over the environment, as with boto3."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[vault]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = {s3.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret-wrong-secret-00")
    native = NativeS3.for_remote(S3Remote(settings=S3Settings(profile="vault")))
    native.put(PutRequest(bucket, "by-profile", b"x"))
    assert s3_client.get_object(Bucket=bucket, Key="by-profile")["Body"].read() == b"x"


def test_the_bandwidth_limit_applies(bucket):
    waits: list[float] = []
    throttle = Throttle(100_000, burst=10_000, sleep=waits.append)
    native = NativeS3.for_remote(S3Remote(throttle=throttle))
    done: list[PutOutcome] = []
    native.put_many([PutRequest(bucket, f"t/{i}", b"x" * 10_000) for i in range(5)], done.append)
    assert [o.error for o in done] == [None] * 5
    assert len([w for w in waits if w > 0]) >= 4  # 50 kB at 100 kB/s after a 10 kB burst


@pytest.mark.parametrize(
    ("text", "expected", "fragment"),
    [
        (
            "Generic S3 error: Error performing PUT http://h/b/k in 2ms - Server returned "
            "non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code>"
            "<Message>Reduce your request rate</Message></Error>",
            UnreachableError,
            "SlowDown: Reduce your request rate",
        ),
        (
            "Generic S3 error: Error performing PUT http://h/b/k in 2ms - Server returned "
            "non-2xx status code: 400 Bad Request: <Error><Code>KeyTooLongError</Code>"
            "<Message>Your key is too long</Message></Error>",
            UsageError,
            "KeyTooLongError",
        ),
    ],
)
def test_status_codes_in_generic_errors_map_like_botocore(text, expected, fragment):
    error = native_error(GenericError(text), "s3://b/k")
    assert isinstance(error, expected)
    assert fragment in error.message
