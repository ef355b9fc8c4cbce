"""Streaming download: an object's bytes in order, pinned to the ETag HEAD saw.

Below the multipart threshold it is one GetObject read in chunks; above, ranged GETs
of `RANGE_SIZE` with ``concurrency`` in flight, yielded in order, so a sequential
consumer (the GCM decryptor) is fed at the speed of parallel transfer while memory
stays at (concurrency + 1) ranges. Each request takes its size from the bandwidth
limit, when there is one. The native path (`native_get.RangeReader`) does the same
through obstore with less client CPU; `vault.fetch` chooses between them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from botocore.exceptions import BotoCoreError

from s3vault.config.model import TransferSettings
from s3vault.errors import UnreachableError
from s3vault.remote.errors import s3_errors, translate
from s3vault.remote.objects import ObjectHead, Progress, s3_url
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

MiB = 1024 * 1024
RANGE_SIZE = 4 * MiB
"""Bytes per ranged GET of a large object; `concurrency` of them are in memory at most."""
BODY_ATTEMPTS = 4
"""Tries of one body (or range) that breaks off mid-way, the first included; each
retry resumes where the last stopped. botocore's own retries cover the request."""
BODY_BACKOFF = 0.2  # seconds before the first resume; doubled each time


class Chunks(Iterator[bytes]):
    """An object's bytes in order, in chunks.

    `start` begins the transfer before the first chunk is asked for (the native path
    sends its first requests; the others start on the first `next`); `close`, or the
    end of a ``with`` block, stops it and frees what is in flight.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        start: Callable[[], None] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self._start = start
        self._close = close

    def __next__(self) -> bytes:
        return next(self._chunks)

    def start(self) -> None:
        if self._start is not None:
            self._start()

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> Chunks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _cut_short(what: str, got_to: int, end: int) -> UnreachableError:
    return UnreachableError(
        f"the download of {what} was cut short at byte {got_to} of {end}",
        hint="Try again; if this persists, check the network or the S3 endpoint.",
    )


def iter_object(
    session: AwsSession,
    head: ObjectHead,
    *,
    transfer: TransferSettings,
    progress: Progress | None = None,
    throttle: Throttle | None = None,
) -> Chunks:
    """The object's bytes in order, in chunks (the contract: `S3Remote.iter_object`)."""
    if head.size < transfer.multipart_threshold:
        single = _iter_single(session, head, progress, throttle)
        return Chunks(single, close=single.close)
    ranges = _iter_ranges(session, head, transfer.concurrency, progress, throttle)
    return Chunks(ranges, close=ranges.close)


def _iter_single(
    session: AwsSession, head: ObjectHead, progress: Progress | None, throttle: Throttle | None
) -> Generator[bytes, None, None]:
    what = s3_url(head.bucket, head.key)
    if throttle is not None:
        throttle.take(head.size)
    offset = 0
    for attempt in range(1, BODY_ATTEMPTS + 1):
        # botocore retries a request that fails before its answer, not a body cut
        # short (a reset, a truncated answer): those resume here, from the bytes
        # already handed on, pinned to the same ETag.
        ranged = {"Range": f"bytes={offset}-"} if offset else {}
        with s3_errors(what):
            response = session.s3_client.get_object(
                Bucket=head.bucket, Key=head.key, IfMatch=head.etag, **ranged
            )
        body = response["Body"]
        if offset and not str(response.get("ContentRange", "")).startswith(f"bytes {offset}-"):
            body.close()  # a store that ignored the range: its bytes would not fit on
            raise _cut_short(what, offset, head.size)
        try:
            for chunk in body.iter_chunks(MiB):
                offset += len(chunk)
                if progress:
                    progress(len(chunk))
                yield chunk
        except BotoCoreError as exc:
            if offset >= head.size:
                # Every byte came (the answer announced more): the decryptor
                # authenticates them all, so nothing wrong can pass.
                return
            failure = translate(exc, what)
        else:
            if offset >= head.size:
                return
            failure = _cut_short(what, offset, head.size)
        finally:
            body.close()
        if attempt >= BODY_ATTEMPTS:
            raise failure
        time.sleep(BODY_BACKOFF * 2 ** (attempt - 1))


def _iter_ranges(
    session: AwsSession,
    head: ObjectHead,
    concurrency: int,
    progress: Progress | None,
    throttle: Throttle | None,
) -> Generator[bytes, None, None]:
    what = s3_url(head.bucket, head.key)
    part = RANGE_SIZE

    def fetch(start: int) -> bytes:
        end = min(start + part, head.size) - 1
        if throttle is not None:
            throttle.take(end - start + 1)
        for attempt in range(1, BODY_ATTEMPTS + 1):
            with s3_errors(what):
                body = session.s3_client.get_object(
                    Bucket=head.bucket,
                    Key=head.key,
                    Range=f"bytes={start}-{end}",
                    IfMatch=head.etag,
                )["Body"]
            try:
                data = bytes(body.read())
            except BotoCoreError as exc:  # cut short: asked again, as in _iter_single
                failure = translate(exc, what)
            else:
                if len(data) == end - start + 1:
                    if progress:
                        progress(len(data))
                    return data
                failure = _cut_short(what, start + len(data), end + 1)
            finally:
                body.close()
            if attempt >= BODY_ATTEMPTS:
                raise failure
            time.sleep(BODY_BACKOFF * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    starts = iter(range(0, head.size, part))
    window: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-get") as pool:
        try:
            for start in starts:
                window.append(pool.submit(fetch, start))
                if len(window) >= concurrency:
                    break
            while window:
                data = window.popleft().result()
                # Keep `concurrency` ranges in flight while this one is decrypted
                # and written: memory is (concurrency + 1) x RANGE_SIZE.
                nxt = next(starts, None)
                if nxt is not None:
                    window.append(pool.submit(fetch, nxt))
                yield data
                del data
        finally:
            for f in window:
                f.cancel()
