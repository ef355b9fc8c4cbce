"""Parallel ranged GETs through obstore (Rust's object_store) for large downloads.

botocore reads a response body in Python (urllib3, 64 KiB reads joined into bytes)
and spends a millisecond of Python per request; on a 2-core machine that CPU is
taken from the decryption, the file writes and the server itself. obstore sends the
requests and reads the bodies in Rust, off the GIL, so the consumer (the GCM
decryptor and the file writer) gets the CPU.

`RangeReader` yields the object's bytes in order, range after range:

- at most ``in_flight`` ranges are requested and not yet consumed, so memory is
  (in_flight + 1) x ``range_size`` whatever the object size;
- every request carries ``If-Match`` with the ETag HEAD saw, and every answer's ETag
  is compared with it as well: an object replaced between two ranges fails with
  ConflictError instead of splicing two objects;
- a range that comes back short, or fails on the network, is asked for again
  (``attempts`` in all); a body that stays short raises UnreachableError;
- the bandwidth limit (`Throttle`) is taken before each range is requested;
- failures are obstore's, mapped by `native_error` to the errors botocore's would be.

The requests run on an asyncio loop in one helper thread owned by the reader; the
consumer's thread only waits for the next range in order. `open_ranges` wraps a reader
in the `Chunks` contract of `S3Remote.iter_object`; `vault.fetch` decides when to use it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING

import obstore

from s3vault.config.model import TransferSettings
from s3vault.errors import ConflictError, UnreachableError
from s3vault.remote import download
from s3vault.remote.download import Chunks
from s3vault.remote.native import NativeS3, native_error
from s3vault.remote.objects import ObjectHead, Progress, s3_url
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle

if TYPE_CHECKING:
    from obstore import GetOptions


def open_ranges(
    session: AwsSession,
    head: ObjectHead,
    *,
    transfer: TransferSettings,
    progress: Progress | None = None,
    throttle: Throttle | None = None,
) -> Chunks:
    """`S3Remote.iter_object` of a large object, through obstore (the same contract:
    chunks in order, and the same bytes in flight as boto3's ranges: ``concurrency`` x
    `download.RANGE_SIZE`, in fewer, larger ranges)."""
    in_flight = max(1, transfer.concurrency * download.RANGE_SIZE // RANGE_SIZE)
    reader = RangeReader(
        native_for(session),
        head,
        range_size=RANGE_SIZE,
        in_flight=in_flight,
        progress=progress,
        throttle=throttle,
    )
    return Chunks(reader, start=reader.start, close=reader.close)


RANGE_SIZE = 8 * 1024 * 1024
"""Bytes per ranged GET. Fewer, larger requests cost SeaweedFS less CPU than 4 MiB ones
(on 2 cores the server competes with the client); memory is kept by halving the window."""
PIECE_SIZE = 256 * 1024
"""Bytes per piece of a range handed to Python (the last piece of a range may be shorter)."""

_natives: weakref.WeakKeyDictionary[AwsSession, NativeS3] = weakref.WeakKeyDictionary()
_natives_lock = threading.Lock()


def native_for(session: AwsSession) -> NativeS3:
    """The native client of ``session``, built once: its stores (connection pools)
    serve every download of the session."""
    with _natives_lock:
        native = _natives.get(session)
        if native is None:
            native = _natives[session] = NativeS3(session)
        return native


class RangeReader:
    """The bytes of ``head``'s object, in order, in pieces of about `PIECE_SIZE`.

    An iterator (iterate once) that `start` sets going before the first range is
    asked for (say, while the data key is unwrapped); it stops and frees what is in
    flight when it ends, fails, or is closed (`close`, or ``with``). ``peak_window``
    is the most ranges requested and not yet handed out at any time (never more than
    ``in_flight``); ``requests`` counts the GETs sent, retries included.
    """

    def __init__(
        self,
        native: NativeS3,
        head: ObjectHead,
        *,
        range_size: int = RANGE_SIZE,
        in_flight: int = 8,
        progress: Progress | None = None,
        throttle: Throttle | None = None,
        attempts: int = 3,
        backoff: float = 0.2,
    ) -> None:
        if range_size <= 0 or in_flight <= 0:
            raise ValueError("range_size and in_flight must be positive")
        self.native = native
        self.head = head
        self.range_size = range_size
        self.in_flight = in_flight
        self.progress = progress
        self.throttle = throttle
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.what = s3_url(head.bucket, head.key)
        self.peak_window = 0
        self.requests = 0
        self._starts = iter(range(0, head.size, range_size))
        self._window: deque[Future[list[bytes]]] = deque()
        self._current: deque[bytes] = deque()  # the pieces of the range being handed out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._store: object = None
        self._closed = False

    def start(self) -> None:
        """Send the first ``in_flight`` requests now (once; the first `next` does it too)."""
        if self._loop is not None or self._closed:
            return
        self._store = self.native.store(self.head.bucket)  # configuration errors here
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run, args=(loop,), name="s3-get", daemon=True)
        self._thread.start()
        for start in self._starts:
            self._request(start)
            if len(self._window) >= self.in_flight:
                break

    def _request(self, start: int) -> None:
        assert self._loop is not None
        fetch = self._fetch(self._store, start)
        self._window.append(asyncio.run_coroutine_threadsafe(fetch, self._loop))
        self.peak_window = max(self.peak_window, len(self._window))

    def __iter__(self) -> RangeReader:
        return self

    def __next__(self) -> bytes:
        while not self._current:
            self._current = deque(self._next_range())
        return self._current.popleft()

    def _next_range(self) -> list[bytes]:
        self.start()
        if not self._window:
            self.close()
            raise StopIteration
        try:
            pieces = self._window.popleft().result()
        except BaseException:
            self.close()
            raise
        # The next range is asked for before this one is decrypted and written, so
        # the transfer goes on meanwhile.
        following = next(self._starts, None)
        if following is not None:
            self._request(following)
        if self.progress:
            self.progress(sum(map(len, pieces)))
        return pieces

    def close(self) -> None:
        """Stop: cancel the requests in flight, end the helper thread. Idempotent."""
        self._closed = True
        self._stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _stop(self) -> None:
        for future in self._window:
            future.cancel()
        self._window.clear()
        self._current.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Abandoned without `close`: let the helper thread end (it is not joined here).
        self._stop()

    async def _fetch(self, store: object, start: int) -> list[bytes]:
        end = min(start + self.range_size, self.head.size)
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._fetch_once(store, start, end)
            except UnreachableError:
                if attempt >= self.attempts:
                    raise
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _fetch_once(self, store: object, start: int, end: int) -> list[bytes]:
        if self.throttle is not None:
            # A blocking sleep: taken off the loop, so the other ranges go on.
            await asyncio.to_thread(self.throttle.take, end - start)
        options: GetOptions = {"range": (start, end), "if_match": self.head.etag}
        self.requests += 1
        try:
            result = await obstore.get_async(store, self.head.key, options=options)  # type: ignore[arg-type]
            etag = result.meta.get("e_tag")
            # Pieces of PIECE_SIZE as Python bytes rather than one buffer per range:
            # the allocator reuses them, where a fresh multi-MiB buffer per range costs
            # a page fault per 4 KiB (measured: a third less system CPU, fewer faults).
            pieces = [piece async for piece in result.stream(min_chunk_size=PIECE_SIZE)]
        except Exception as exc:
            raise native_error(exc, self.what) from None
        if etag is not None and etag.strip('"') != self.head.etag.strip('"'):
            # A store that ignores If-Match: the answer itself shows the change.
            raise ConflictError(f"{self.what} changed while s3vault was reading it")
        got = sum(map(len, pieces))
        if got != end - start:
            raise UnreachableError(
                f"the download of {self.what} was cut short: {got} of "
                f"{end - start} bytes at offset {start}",
                hint="Try again; if this persists, check the network or the S3 endpoint.",
            )
        return pieces


def _run(loop: asyncio.AbstractEventLoop) -> None:
    """The helper thread: the loop until `RangeReader` stops it, then its tasks settle
    (cancelled requests end) and it closes."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        loop.close()
