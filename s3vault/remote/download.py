"""Streaming download: an object's bytes in order, pinned to the ETag HEAD saw.

Below the multipart threshold it is one GetObject read in chunks; above, ranged GETs
of `RANGE_SIZE` with ``concurrency`` in flight, yielded in order, so a sequential
consumer (the GCM decryptor) is fed at the speed of parallel transfer while memory
stays at (concurrency + 1) ranges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from s3vault.config.model import TransferSettings
from s3vault.errors import ConfigError
from s3vault.remote.errors import s3_errors
from s3vault.remote.objects import ObjectHead, Progress, s3_url
from s3vault.remote.session import AwsSession

MiB = 1024 * 1024
RANGE_SIZE = 4 * MiB
"""Bytes per ranged GET of a large object; `concurrency` of them are in memory at most."""


def iter_object(
    session: AwsSession,
    head: ObjectHead,
    *,
    transfer: TransferSettings,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """The object's bytes in order, in chunks (the contract: `S3Remote.iter_object`)."""
    if head.size < transfer.multipart_threshold:
        yield from _iter_single(session, head, progress)
    else:
        yield from _iter_ranges(session, head, transfer.concurrency, progress)


def _iter_single(
    session: AwsSession, head: ObjectHead, progress: Progress | None
) -> Iterator[bytes]:
    what = s3_url(head.bucket, head.key)
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
    session: AwsSession, head: ObjectHead, concurrency: int, progress: Progress | None
) -> Iterator[bytes]:
    what = s3_url(head.bucket, head.key)
    part = RANGE_SIZE

    def fetch(start: int) -> bytes:
        end = min(start + part, head.size) - 1
        with s3_errors(what):
            r = session.s3_client.get_object(
                Bucket=head.bucket,
                Key=head.key,
                Range=f"bytes={start}-{end}",
                IfMatch=head.etag,
            )
            data = bytes(r["Body"].read())
        if len(data) != end - start + 1:
            raise ConfigError(f"short read from {what} at byte {start}")
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
