"""Many HEADs at once through obstore, for listings with envelopes and restores.

A HEAD through botocore costs about a millisecond of Python (signing, parsing); here
one thread runs an asyncio loop that keeps ``in_flight`` HEADs on the wire, signed and
parsed in Rust, while the caller works on the answers. The answers are the
`ObjectHead` boto3's HEAD gives (`remote/small.py:head`): user metadata by lowercase
name, quoted ETag, content type, version id.

    for key, head in heads(native, bucket, keys):   # in the order of keys
        ...                                          # ObjectHead, or the S3VaultError
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import obstore

from s3vault.errors import S3VaultError
from s3vault.remote import small
from s3vault.remote.native import IN_FLIGHT, native_error, supports_key
from s3vault.remote.objects import ObjectHead, quoted, s3_url

if TYPE_CHECKING:
    from obstore import GetResult
    from obstore.store import S3Store

    from s3vault.remote.native import NativeS3

# obstore's names for the standard headers; every other attribute is user metadata.
_STANDARD = {
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Type",
    "Cache-Control",
    "Storage-Class",
}

HeadResult = ObjectHead | S3VaultError


def heads(
    native: NativeS3,
    bucket: str,
    keys: Iterable[str],
    *,
    in_flight: int = IN_FLIGHT,
    ahead: int | None = None,
) -> Iterator[tuple[str, HeadResult]]:
    """HEAD every key of ``keys``, ``in_flight`` at once; (key, answer) in their order.

    An answer is the `ObjectHead`, or the s3vault error of that HEAD (NotFoundError for
    a key that is gone). ``keys`` is read lazily, at most ``ahead`` (default four times
    ``in_flight``) keys before the answer the caller waits for, so memory stays bounded
    whatever their number. Keys object_store cannot name are HEADed through boto3.
    Closing the iterator early cancels what is still in flight.
    """
    store = native.store(bucket)  # configuration errors surface here, once
    in_flight = max(1, in_flight)
    # Keys go to the loop thread in batches: one wake-up of that thread (and one
    # hand-over of the interpreter lock) per batch, not per key.
    batch = max(1, in_flight // 4)
    batches_ahead = max(1, (ahead if ahead is not None else 4 * in_flight) // batch)
    loop = _LoopThread()
    slots = asyncio.Semaphore(in_flight)
    waiting: deque[tuple[list[str], Future[list[HeadResult]]]] = deque()

    def submit(keys: list[str]) -> None:
        coro = _head_batch(native, store, bucket, keys, slots)
        waiting.append((keys, asyncio.run_coroutine_threadsafe(coro, loop.loop)))

    try:
        for chunk in _chunks(keys, batch):
            submit(chunk)
            # Hand out what is ready; wait only when the window is full.
            while waiting and (len(waiting) >= batches_ahead or waiting[0][1].done()):
                done, answers = waiting.popleft()
                yield from zip(done, answers.result(), strict=True)
        while waiting:
            done, answers = waiting.popleft()
            yield from zip(done, answers.result(), strict=True)
    finally:
        for _, answers in waiting:
            answers.cancel()
        loop.close()


def _chunks(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _head_batch(
    native: NativeS3, store: S3Store, bucket: str, keys: list[str], slots: asyncio.Semaphore
) -> list[HeadResult]:
    return list(await asyncio.gather(*(_head(native, store, bucket, k, slots) for k in keys)))


async def _head(
    native: NativeS3, store: S3Store, bucket: str, key: str, slots: asyncio.Semaphore
) -> HeadResult:
    async with slots:
        if not supports_key(key):
            return await asyncio.to_thread(_boto3_head, native, bucket, key)
        try:
            result = await obstore.get_async(store, key, options={"head": True})
        except Exception as exc:
            if _UNDECODABLE_METADATA in str(exc):
                # object_store refuses the whole answer when one user metadata value is
                # not UTF-8 (anyone who can write to the bucket can store one); boto3
                # reads it, as `head` and `get` do, and the envelope check judges it.
                return await asyncio.to_thread(_boto3_head, native, bucket, key)
            return native_error(exc, s3_url(bucket, key))
        return head_of(bucket, key, result)


_UNDECODABLE_METADATA = "contained non UTF-8 characters"
"""How object_store says a metadata value of an answer is not UTF-8."""


def _boto3_head(native: NativeS3, bucket: str, key: str) -> HeadResult:
    try:
        return small.head(native.session, bucket, key)
    except S3VaultError as exc:
        return exc


def head_of(bucket: str, key: str, result: GetResult) -> ObjectHead:
    """The `ObjectHead` of an obstore HEAD answer, as boto3's head gives it."""
    meta = result.meta
    attributes: dict[str, Any] = dict(result.attributes)
    etag = meta.get("e_tag")
    return ObjectHead(
        bucket=bucket,
        key=key,
        size=int(meta["size"]),
        etag=quoted(etag) if etag else "",
        last_modified=meta["last_modified"],
        metadata={k.lower(): str(v) for k, v in attributes.items() if k not in _STANDARD},
        content_type=attributes.get("Content-Type"),
        version_id=meta.get("version"),
    )


class _LoopThread:
    """An asyncio loop running in a thread of its own, until `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="s3-heads", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Let every task end (cancelled ones included), then stop the loop."""
        asyncio.run_coroutine_threadsafe(_settle(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _settle() -> None:
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await asyncio.gather(*others, return_exceptions=True)
