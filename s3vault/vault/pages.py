"""A prefix listed page by page, and the envelopes of a few of its objects on demand.

`Vault.list` HEADs every object it yields, which a view of a large prefix cannot wait
for: a HEAD costs a request per object, a LIST a thousand keys.
So a view shows `list_pages` as it arrives (names, stored sizes, dates) and asks
`describe` for the envelopes of the rows a person actually looks at.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from s3vault.crypto.envelope import Location
from s3vault.errors import NotFoundError, S3VaultError
from s3vault.remote.objects import ObjectHead, ObjectSummary
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.results import PrefixEntry
from s3vault.vault.vault import Vault

PAGE_SIZE = 500
DESCRIBE_WORKERS = 4  # envelope reads at once; more only add GIL contention with the UI on 2 cores


def warm_up(vault: Vault) -> None:
    """Build the S3 client now, before a view lists anything.

    Building it parses botocore's S3 model (a large JSON document) in one C call that
    holds the interpreter lock for tens of milliseconds, which froze the window while
    the first prefix opened; the app does it at start, in a job.
    """
    _ = vault.remote.client


def list_pages(
    vault: Vault, bucket: str, prefix: str = "", *, page_size: int = PAGE_SIZE
) -> Iterator[list[ObjectSummary | PrefixEntry]]:
    """The folders and objects directly under ``prefix``, ``page_size`` at a time.

    Nothing is HEADed. As in `Vault.list`, an instruction file is left out when its
    object was listed (an object's key is a prefix of its instruction file's key, so
    it always comes first in S3's order); one whose object is missing is listed as
    what it is. Only the keys listed so far are kept, to recognise those files.
    """
    seen: set[str] = set()
    cut = len(vault.instruction_suffix)
    page: list[ObjectSummary | PrefixEntry] = []
    for entry in vault.remote.list(bucket, prefix, recursive=False):
        if isinstance(entry, str):
            page.append(PrefixEntry(bucket, entry))
        elif vault.is_instruction_key(entry.key) and entry.key[:-cut] in seen:
            continue
        else:
            seen.add(entry.key)
            page.append(entry)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


def describe(vault: Vault, bucket: str, objects: Sequence[ObjectSummary]) -> list[ObjectInfo]:
    """The `ObjectInfo` (envelope decoded) of each listed object, in their order.

    The HEADs go out together through the native client (`S3Remote.heads`); the
    envelopes in instruction files are read by a few threads. Never raises for one
    object: an object deleted since it was listed is described from its listing entry,
    and one whose HEAD or envelope fails carries the error.
    """

    def one(entry: ObjectSummary, answer: ObjectHead | S3VaultError) -> ObjectInfo:
        listed = ObjectHead(bucket, entry.key, entry.size, entry.etag, entry.last_modified, {})
        if isinstance(answer, NotFoundError):
            return ObjectInfo.from_head(listed, None)
        if isinstance(answer, S3VaultError):
            return ObjectInfo.from_head(listed, None, error=answer.message)
        try:
            envelope = vault.read_envelope(answer)
        except S3VaultError as exc:
            return ObjectInfo.from_head(answer, None, error=exc.message)
        in_file = envelope is not None and envelope.location is Location.INSTRUCTION_FILE
        where = vault.instruction_key(answer.key) if in_file else None
        return ObjectInfo.from_head(answer, envelope, instruction_file=where)

    if not objects:
        return []
    try:
        answers = [answer for _key, answer in vault.remote.heads(bucket, [o.key for o in objects])]
    except S3VaultError as exc:  # the native client could not be set up
        answers = [exc] * len(objects)
    if len(objects) <= 1:
        return [one(objects[0], answers[0])]
    workers = min(DESCRIBE_WORKERS, len(objects))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-describe") as pool:
        return list(pool.map(one, objects, answers))
