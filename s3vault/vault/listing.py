"""Listing a prefix with each object's envelope, as `s3vault ls` shows it.

The listing's keys are HEADed as the listing streams (`S3Remote.heads`: many in flight
through the native client), and the envelopes read by a few threads (an envelope in an
instruction file costs a GET); entries come out in the listing's order. Instruction
files are not shown as objects of their own but as the `location` of the object they
belong to, also when the two fall into different batches of the listing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s3vault.errors import NotFoundError
from s3vault.remote.objects import ObjectHead, ObjectSummary
from s3vault.remote.s3 import S3Remote
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.results import PrefixEntry

if TYPE_CHECKING:
    from s3vault.remote.native_head import HeadResult

ENVELOPE_WORKERS = 8  # instruction-file GETs in parallel; metadata envelopes cost no request
BATCH = 256  # how far back an instruction file looks for its object in the listing


@dataclass(frozen=True)
class _Pending:
    """A listed object waiting for its HEAD (``base``: it is the instruction file of
    object ``base``, whose HEAD tells whether it is an orphan)."""

    entry: ObjectSummary
    base: str | None = None


def list_with_envelopes(
    remote: S3Remote,
    bucket: str,
    prefix: str,
    *,
    recursive: bool,
    instruction_suffix: str,
    is_instruction_key: Callable[[str], bool],
    info_of: Callable[[ObjectHead], ObjectInfo],
) -> Iterator[ObjectInfo | PrefixEntry]:
    """Objects under ``prefix`` described by ``info_of`` (their HEAD -> envelope).

    A key ending in ``instruction_suffix`` whose object does not exist is listed as
    what it is.
    """
    plan: deque[PrefixEntry | _Pending] = deque()

    def keys_to_head() -> Iterator[str]:
        """The keys to HEAD, in listing order; ``plan`` gets every entry to show."""
        entries = remote.list(bucket, prefix, recursive=recursive)
        for batch in _batches(entries, BATCH):
            listed = {e.key for e in batch if isinstance(e, ObjectSummary)}
            for entry in batch:
                if isinstance(entry, str):
                    plan.append(PrefixEntry(bucket, entry))
                elif not is_instruction_key(entry.key):
                    plan.append(_Pending(entry))
                    yield entry.key
                elif (base := entry.key[: -len(instruction_suffix)]) not in listed:
                    # Its object may sit in an earlier batch of the listing.
                    plan.append(_Pending(entry, base))
                    yield base

    def described(pending: _Pending, answer: HeadResult) -> ObjectInfo | None:
        if pending.base is not None:
            if not isinstance(answer, NotFoundError):
                return None  # the instruction file of an object that exists
            try:
                answer = remote.head(bucket, pending.entry.key)
            except NotFoundError as exc:
                answer = exc
        if isinstance(answer, NotFoundError):
            # Deleted between LIST and HEAD: show what the listing said.
            e = pending.entry
            answer = ObjectHead(bucket, e.key, e.size, e.etag, e.last_modified, {})
        elif not isinstance(answer, ObjectHead):
            raise answer
        return info_of(answer)

    ready: deque[PrefixEntry | Future[ObjectInfo | None]] = deque()

    def drain(limit: int) -> Iterator[ObjectInfo | PrefixEntry]:
        while len(ready) > limit:
            item = ready.popleft()
            if isinstance(item, PrefixEntry):
                yield item
            elif (info := item.result()) is not None:
                yield info

    with ThreadPoolExecutor(max_workers=ENVELOPE_WORKERS, thread_name_prefix="s3-env") as pool:
        for _key, answer in remote.heads(bucket, keys_to_head()):
            pending = plan.popleft()
            while isinstance(pending, PrefixEntry):
                ready.append(pending)
                pending = plan.popleft()
            ready.append(pool.submit(described, pending, answer))
            yield from drain(BATCH)
        ready.extend(p for p in plan if isinstance(p, PrefixEntry))  # after the last object
        yield from drain(0)


def _batches(
    items: Iterator[ObjectSummary | str], size: int
) -> Iterator[list[ObjectSummary | str]]:
    batch: list[ObjectSummary | str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
