"""Many small PUTs at once through obstore (Rust's object_store), for the sync engine.

botocore spends about a millisecond of Python per request (signing, parsing): with
two cores that, not the network, limits a sync of many small files to ~800 files/s
whatever the thread count. obstore signs and sends in Rust, so one Python thread
with an asyncio loop keeps `in_flight` requests going at a fraction of that cost.

This path only *writes whole small objects* (single PUT, bodies in memory); every
other S3 operation, and large objects, stay on `S3Remote` (boto3). It is built over
the same `AwsSession` as `S3Remote` (`remote/session.py`: one boto3 session, so the
same profile, environment, config files and credentials), and its failures become
the same s3vault errors (`remote/errors.py`).

    native = NativeS3.for_remote(remote)
    native.put_many(requests, on_done, in_flight=64)   # blocks until all are done
"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import obstore
from botocore.exceptions import ClientError, ConnectTimeoutError
from botocore.exceptions import EndpointConnectionError as _Unreachable
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.exceptions import (
    AlreadyExistsError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from s3vault.errors import (
    AccessDeniedError,
    ConfigError,
    NotFoundError,
    S3VaultError,
    UnreachableError,
    UsageError,
)
from s3vault.remote.errors import translate
from s3vault.remote.objects import Written, quoted, s3_url
from s3vault.remote.put_batch import PutBatch, PutOutcome, PutRequest
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

if TYPE_CHECKING:
    from obstore import PutMode

IN_FLIGHT = 64
"""Requests on the wire at once: the measured sweet spot on loopback (2 cores)."""

_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]+)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")  # in obstore's debug dump
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")
# What object_store cannot address (see `supports_key`): a control character, a
# leading or trailing "/", an empty segment, or a "." or ".." segment.
_UNSUPPORTED_KEY = re.compile(r"[\x00-\x1f\x7f]|^/|/$|//|(?:^|/)\.{1,2}(?:/|$)")


class Remote(Protocol):
    """What `NativeS3.for_remote` takes from an `S3Remote` (not imported: s3.py builds
    its own NativeS3 for listings, so importing it here would be a cycle)."""

    session: AwsSession
    throttle: Throttle | None


def supports_key(key: str) -> bool:
    """True when object_store can address ``key`` exactly as S3 stores it.

    Its paths have no empty, ``.`` or ``..`` segments, no leading or trailing ``/``
    and no ASCII control characters; such keys must go through `S3Remote`.
    """
    return bool(key) and _UNSUPPORTED_KEY.search(key) is None


class NativeS3:
    """Whole-object PUTs through obstore; one store per bucket, built on first use.

    Endpoint, region and credentials come from ``session``, the `AwsSession` the
    boto3 path uses: the endpoint and region its S3 client resolved, the credentials
    of its boto3 session, so environment variables, profiles, SSO and refreshable
    credentials all work as for boto3. Thread-safe: each `put_many` call runs its
    own event loop in the calling thread. ``throttle`` is the upload bandwidth
    limit shared with `S3Remote`.
    """

    def __init__(
        self,
        session: AwsSession,
        *,
        connect_timeout: float = 10.0,
        timeout: float = 120.0,
        retries: int = 4,
        throttle: Throttle | None = None,
    ) -> None:
        self.session = session
        self.settings = session.settings
        self.endpoint_url = session.s3_endpoint_url
        self.region = session.s3_region or "us-east-1"
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.retries = retries
        self.throttle = throttle
        self._stores: dict[str, S3Store] = {}
        self._credentials: Boto3CredentialProvider | None = None
        self._ca: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_remote(cls, remote: Remote) -> NativeS3:
        """The native path over ``remote``'s session (same endpoint, region and
        credentials), sharing its bandwidth limit."""
        return cls(remote.session, throttle=remote.throttle)

    # ---- stores --------------------------------------------------------------------

    def _session_credentials(self) -> Boto3CredentialProvider:
        if self._credentials is None:
            # Loaded once by the shared session: the provider below then reads them
            # from its cache, and refreshes them when they are refreshable.
            if self.session.credentials() is None:
                raise AccessDeniedError(
                    "no AWS credentials found",
                    hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile "
                    "(AWS_PROFILE or s3.profile in the config).",
                )
            self._credentials = Boto3CredentialProvider(
                self.session.boto3_session, ttl=timedelta(minutes=5)
            )
            bundle = self.session.ca_bundle
            if bundle and self.endpoint_url.startswith("https:"):
                try:
                    with open(bundle, encoding="ascii", errors="replace") as pem:
                        self._ca = pem.read()
                except OSError as exc:
                    raise ConfigError(f"cannot read the CA bundle {bundle}: {exc}") from None
        return self._credentials

    def store(self, bucket: str) -> S3Store:
        """The obstore store of ``bucket`` (built once, then shared by all threads)."""
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                store = self._stores[bucket] = self._build(bucket)
            return store

    def _build(self, bucket: str) -> S3Store:
        credentials = self._session_credentials()
        url = urllib.parse.urlsplit(self.endpoint_url)
        aws = (url.hostname or "").endswith(_AWS_HOSTS)
        style = self.settings.addressing_style
        # As boto3 does: virtual-hosted on AWS unless asked for paths (or the bucket
        # has dots, which break TLS there), paths on other endpoints unless asked.
        virtual = style == "virtual" or (style == "auto" and aws and "." not in bucket)
        config: dict[str, Any] = {"region": self.region, "virtual_hosted_style_request": virtual}
        if not aws or style == "virtual":
            endpoint = self.endpoint_url.rstrip("/")
            if virtual:
                endpoint = urllib.parse.urlunsplit(
                    (url.scheme, f"{bucket}.{url.netloc}", url.path.rstrip("/"), "", "")
                )
            # Both names: obstore would otherwise prefer AWS_ENDPOINT_URL_S3 from the
            # environment over what the config (or boto3) chose.
            config["endpoint"] = config["aws_endpoint_url_s3"] = endpoint
        client: dict[str, Any] = {
            "allow_http": url.scheme == "http",
            "connect_timeout": timedelta(seconds=self.connect_timeout),
            "timeout": timedelta(seconds=self.timeout),
        }
        if self._ca:
            client["root_certificate"] = self._ca
        try:
            return S3Store(
                bucket,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
                # 5xx, throttling and dropped connections, as botocore's standard mode.
                retry_config={
                    "max_retries": self.retries,
                    "retry_timeout": timedelta(seconds=60),
                    "backoff": {
                        "init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=5),
                    },
                },
                credential_provider=credentials,
            )
        except Exception as exc:  # obstore's configuration errors
            raise ConfigError(f"cannot set up S3 for {s3_url(bucket)}: {_summary(exc)}") from None

    # ---- putting -------------------------------------------------------------------

    def put_many(
        self,
        requests: Iterable[PutRequest],
        on_done: Callable[[PutOutcome], None],
        *,
        in_flight: int = IN_FLIGHT,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        """PUT every request, ``in_flight`` at a time; ``on_done`` learns each outcome.

        Blocks until all are done. ``requests`` is consumed lazily, one item when a
        slot frees up, so at most ``in_flight`` bodies are held here (make them with
        a generator). ``on_done`` runs on this thread, one call at a time, in the
        order requests finish; S3 failures arrive there as `PutOutcome.error`. A
        request that finds S3 unreachable is tried ``attempts`` times in all, after
        pauses of ``backoff``, 2 × ``backoff``, ... (other requests go on meanwhile).

        An exception from ``requests`` or ``on_done`` stops taking new requests; the
        ones in flight finish (and are reported), then it is raised here.
        """
        asyncio.run(self._put_many(iter(requests), on_done, max(1, in_flight), attempts, backoff))

    def put(self, request: PutRequest) -> Written:
        """One PUT (and its ``then``), raising its error: for tests and one-offs."""
        outcomes: list[PutOutcome] = []
        self.put_many([request], outcomes.append, in_flight=1, attempts=1)
        outcome = outcomes[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.written is not None
        return outcome.written

    async def _put_many(
        self,
        requests: Iterator[PutRequest],
        on_done: Callable[[PutOutcome], None],
        in_flight: int,
        attempts: int,
        backoff: float,
    ) -> None:
        batch = PutBatch(self._put_once, requests, on_done, in_flight, attempts, backoff)
        batch.fill()
        try:
            # Shielded: cancelling this run must not cancel the wait for the
            # requests already on the wire (below).
            await asyncio.shield(batch.idle)
        except asyncio.CancelledError:
            batch.more = False
            # Whatever happened, what is on the wire finishes and is reported.
            await batch.idle
            raise
        if batch.failure is not None:
            raise batch.failure

    def _put_once(self, request: PutRequest) -> asyncio.Future[Written]:
        """One attempt at one PUT: a future of what S3 stored (or its s3vault error).

        A plain future, not a task: with thousands of small requests, a task and its
        coroutine frames per request would cost more Python than the request itself.
        """
        loop = asyncio.get_running_loop()
        what = s3_url(request.bucket, request.key)
        written: asyncio.Future[Written] = loop.create_future()
        if not supports_key(request.key):
            written.set_exception(
                UsageError(f"{what}: this key cannot be written through the native S3 path")
            )
            return written
        mode: PutMode
        if request.if_match is not None:
            mode = {"e_tag": request.if_match}
        elif request.if_none_match:
            mode = "create"
        else:
            mode = "overwrite"
        attributes: dict[str, str] = {"Content-Type": request.content_type}
        attributes.update(request.metadata)

        def answered(sent: asyncio.Future[Any]) -> None:
            if written.cancelled():
                return
            if sent.cancelled():
                written.cancel()
                return
            failure = sent.exception()
            if failure is not None:
                written.set_exception(native_error(failure, what))
                return
            result = sent.result()
            etag = result.get("e_tag")
            if not etag:
                written.set_exception(
                    UnreachableError(f"S3 stored {what} but answered without an ETag")
                )
                return
            written.set_result(Written(etag=quoted(etag), version_id=result.get("version")))

        def send(waited: asyncio.Future[Any] | None = None) -> None:
            if waited is not None and (waited.cancelled() or waited.exception() is not None):
                if waited.cancelled():
                    written.cancel()
                else:
                    written.set_exception(waited.exception())  # type: ignore[arg-type]
                return
            try:
                # Already a future (pyo3's): ensure_future only tells mypy so.
                sent = asyncio.ensure_future(
                    obstore.put_async(
                        self.store(request.bucket),
                        request.key,
                        request.body,
                        attributes=attributes,
                        mode=mode,
                        use_multipart=False,
                    )
                )
            except Exception as exc:
                written.set_exception(
                    exc if isinstance(exc, S3VaultError) else native_error(exc, what)
                )
                return
            sent.add_done_callback(answered)

        if self.throttle is None:
            send()
        else:
            # Its wait is a blocking sleep: taken off the loop, other requests go on.
            waited = loop.run_in_executor(None, self.throttle.take, len(request.body))
            waited.add_done_callback(send)
        return written


# ---- errors -----------------------------------------------------------------------


def native_error(exc: BaseException, what: str) -> S3VaultError:
    """The s3vault error for an obstore failure on ``what``, mapped as `translate` maps
    botocore's (same classes, messages and hints)."""
    text = str(exc)
    if isinstance(exc, AlreadyExistsError | PreconditionError):
        return translate(_client_error("PreconditionFailed", "", 412), what)
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{what} does not exist")
    status = _STATUS.search(text)
    code = _CODE.search(text)
    message = _MESSAGE.search(text)
    if status:
        return translate(
            _client_error(
                code.group(1) if code else "",
                message.group(1) if message else "",
                int(status.group(1)),
            ),
            what,
        )
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return translate(_client_error("AccessDenied", _summary(exc), 403), what)
    if isinstance(exc, ValueError):
        return UsageError(f"S3 request for {what} refused: {_summary(exc)}")
    kind = _HTTP_KIND.search(text)
    endpoint = _endpoint_of(text) or what
    if kind and kind.group(1) == "Timeout":
        return translate(ConnectTimeoutError(endpoint_url=endpoint), what)
    if kind and kind.group(1) == "Connect":
        return translate(_Unreachable(endpoint_url=endpoint), what)
    return UnreachableError(f"S3 request for {what} failed: {_summary(exc)}")


def _client_error(code: str, message: str, status: int) -> ClientError:
    """The botocore error S3's answer would have raised: `translate` then maps it."""
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


def _summary(exc: BaseException) -> str:
    """The first line of obstore's message, without its debug dump."""
    first = str(exc).split("\n", 1)[0].strip()
    return first.rsplit(" - ", 1)[-1] if " - " in first else first


def _endpoint_of(text: str) -> str | None:
    found = re.search(r"Error performing \w+ (\S+)", text)
    return found.group(1) if found else None
