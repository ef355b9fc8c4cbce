"""Many whole-object PUTs kept in flight on one asyncio loop (`NativeS3.put_many`).

`PutRequest` is one PUT (with an optional follow-up, an instruction file), `PutOutcome`
what became of it; `PutBatch` keeps ``in_flight`` of them on the wire with callbacks on
their futures, retries those that find S3 unreachable, and hands each outcome to the
caller as it comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from s3vault.errors import S3VaultError, UnreachableError
from s3vault.remote.objects import Written, s3_url

# Standard content headers obstore sends as such; any other attribute becomes
# x-amz-meta-NAME, so user metadata must not use these names.
_CONTENT_ATTRIBUTES = {
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-type",
    "cache-control",
    "storage-class",
}


@dataclass(frozen=True, slots=True)
class PutRequest:
    """One whole-object PUT. ``then`` is written after this one succeeded (its
    instruction file, say), in the same slot; ``tag`` is the caller's, untouched."""

    bucket: str
    key: str
    body: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    if_match: str | None = None
    if_none_match: bool = False
    content_type: str = "application/octet-stream"
    then: PutRequest | None = None
    tag: Any = None

    def __post_init__(self) -> None:
        if self.if_match is not None and self.if_none_match:
            raise ValueError("if_match and if_none_match exclude each other")
        if not _CONTENT_ATTRIBUTES.isdisjoint(map(str.lower, self.metadata)):
            raise ValueError(f"user metadata may not use the names {sorted(_CONTENT_ATTRIBUTES)}")


@dataclass(frozen=True, slots=True)
class PutOutcome:
    """What became of a `PutRequest`.

    ``written`` is the request's own object (None if it failed); ``error`` the first
    failure, of the request or of its ``then`` (written set, error set: the object
    is stored but what had to follow it is not).
    """

    request: PutRequest
    written: Written | None = None
    error: S3VaultError | None = None


class PutBatch:
    """The requests of one `NativeS3.put_many` call, driven by callbacks on the loop.

    Each request goes through ``put_once`` (one attempt; retried while S3 is
    unreachable), then its ``then``; a finished request frees its slot, which takes
    the next one. Made inside the running loop; `fill` starts it, `idle` is done
    when nothing is left on the wire and nothing more will be taken.
    """

    def __init__(
        self,
        put_once: Callable[[PutRequest], Awaitable[Written]],
        requests: Iterator[PutRequest],
        on_done: Callable[[PutOutcome], None],
        in_flight: int,
        attempts: int,
        backoff: float,
    ) -> None:
        self.put_once = put_once
        self.requests = requests
        self.on_done = on_done
        self.in_flight = in_flight
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.loop = asyncio.get_running_loop()
        self.running = 0
        self.more = True  # ``requests`` may hold more
        self.failure: BaseException | None = None  # from ``requests`` or ``on_done``
        self.idle: asyncio.Future[None] = self.loop.create_future()

    def fill(self) -> None:
        """Take requests while slots are free; set `idle` once nothing is left to do."""
        while self.more and self.failure is None and self.running < self.in_flight:
            try:
                request = next(self.requests, None)
            except BaseException as exc:
                self.failure = exc
                break
            if request is None:
                self.more = False
                break
            self.running += 1
            self._attempt(request, request, 1, None)
        if self.running == 0 and not self.idle.done():
            self.idle.set_result(None)

    def _attempt(
        self, request: PutRequest, part: PutRequest, attempt: int, written: Written | None
    ) -> None:
        """Send ``part`` (``request`` itself, or its ``then`` once ``written``)."""
        try:
            sent = asyncio.ensure_future(self.put_once(part))
        except BaseException as exc:
            self._abandon(exc)
            return
        sent.add_done_callback(
            lambda future: self._answered(request, part, attempt, written, future)
        )

    def _answered(
        self,
        request: PutRequest,
        part: PutRequest,
        attempt: int,
        written: Written | None,
        future: asyncio.Future[Written],
    ) -> None:
        error: S3VaultError | None = None
        stored: Written | None = None
        if future.cancelled():
            error = UnreachableError(f"the request for {s3_url(part.bucket, part.key)} was cut")
        elif future.exception() is None:
            stored = future.result()
        elif isinstance(future.exception(), S3VaultError):
            error = future.exception()  # type: ignore[assignment]
        else:  # not an S3 failure but a bug: raised once the others are done
            self._abandon(future.exception())  # type: ignore[arg-type]
            return
        if isinstance(error, UnreachableError) and attempt < self.attempts:
            delay = self.backoff * 2 ** (attempt - 1)
            self.loop.call_later(delay, self._attempt, request, part, attempt + 1, written)
        elif part is not request:  # the follow-up: the request ends either way
            self._finish(PutOutcome(request, written, error))
        elif error is not None:
            self._finish(PutOutcome(request, error=error))
        elif request.then is not None:
            self._attempt(request, request.then, 1, stored)
        else:
            self._finish(PutOutcome(request, stored))

    def _finish(self, outcome: PutOutcome) -> None:
        self.running -= 1
        try:
            self.on_done(outcome)
        except BaseException as exc:
            self.failure = self.failure or exc
        self.fill()

    def _abandon(self, exc: BaseException) -> None:
        """A request ends with an exception that is no S3 failure: not reported, and
        raised by `NativeS3.put_many` once the others on the wire are done."""
        self.running -= 1
        self.failure = self.failure or exc
        self.fill()
