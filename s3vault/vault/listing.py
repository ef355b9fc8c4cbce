"""Listing a prefix with each object's envelope, as `s3vault ls` shows it.

The listing's keys are HEADed in parallel, 256 at a time; instruction files are not
shown as objects of their own but as the `location` of the object they belong to,
also when the two fall into different batches of the listing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from s3vault.errors import NotFoundError
from s3vault.remote.objects import ObjectHead, ObjectSummary
from s3vault.remote.s3 import S3Remote
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.results import PrefixEntry

LIST_WORKERS = 16
BATCH = 256


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

    def summary_info(entry: ObjectSummary) -> ObjectInfo:
        try:
            head = remote.head(bucket, entry.key)
        except NotFoundError:
            # Deleted between LIST and HEAD: show what the listing said.
            head = ObjectHead(bucket, entry.key, entry.size, entry.etag, entry.last_modified, {})
        return info_of(head)

    def orphan_info(entry: ObjectSummary, base: str) -> ObjectInfo | None:
        """None when ``entry`` is the instruction file of object ``base``, else its info."""
        if remote.exists(bucket, base):
            return None
        return summary_info(entry)

    entries = remote.list(bucket, prefix, recursive=recursive)
    with ThreadPoolExecutor(max_workers=LIST_WORKERS, thread_name_prefix="s3-head") as pool:
        for batch in _batches(entries, BATCH):
            keys = {e.key for e in batch if isinstance(e, ObjectSummary)}
            heads: list[PrefixEntry | Future[ObjectInfo | None]] = []
            for entry in batch:
                if isinstance(entry, str):
                    heads.append(PrefixEntry(bucket, entry))
                elif is_instruction_key(entry.key):
                    base = entry.key[: -len(instruction_suffix)]
                    if base not in keys:
                        # Its object may sit in an earlier batch of the listing.
                        heads.append(pool.submit(orphan_info, entry, base))
                else:
                    heads.append(pool.submit(summary_info, entry))
            for item in heads:
                if isinstance(item, PrefixEntry):
                    yield item
                elif (info := item.result()) is not None:
                    yield info


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
