"""Streaming download: an object's bytes in order, pinned to the ETag HEAD saw.

Below the multipart threshold it is one GetObject read in chunks; above, ranged GETs
of `RANGE_SIZE` with ``concurrency`` in flight, yielded in order, so a sequential
consumer (the GCM decryptor) is fed at the speed of parallel transfer while memory
stays at (concurrency + 1) ranges. Each request takes its size from the bandwidth
limit, when there is one. The native path (`native_get.RangeReader`) does the same
through obstore with less client CPU; `vault.fetch` chooses between them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from s3vault.config.model import TransferSettings
from s3vault.errors import UnreachableError
from s3vault.remote.errors import s3_errors
from s3vault.remote.objects import ObjectHead, Progress, s3_url
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

MiB = 1024 * 1024
RANGE_SIZE = 4 * MiB
"""Bytes per ranged GET of a large object; `concurrency` of them are in memory at most."""


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
    with s3_errors(what):
        body = session.s3_client.get_object(Bucket=head.bucket, Key=head.key, IfMatch=head.etag)[
            "Body"
        ]
        try:
            for chunk in body.iter_chunks(MiB):
                if progress:
                    progress(len(chunk))
                yield chunk
        finally:
            body.close()


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
        with s3_errors(what):
            r = session.s3_client.get_object(
                Bucket=head.bucket,
                Key=head.key,
                Range=f"bytes={start}-{end}",
                IfMatch=head.etag,
            )
            data = bytes(r["Body"].read())
        if len(data) != end - start + 1:
            raise UnreachableError(
                f"the download of {what} was cut short: {len(data)} of "
                f"{end - start + 1} bytes at offset {start}",
                hint="Try again; if this persists, check the network or the S3 endpoint.",
            )
        if progress:
            progress(len(data))
        return data

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
