"""Many small sealed objects stored at once, through the native S3 path.

`Vault.seal` encrypts a small file in memory; `put_sealed_many` sends many such
objects (each followed by its instruction file, if it has one) with obstore, many
requests in flight, where boto3's per-request CPU would be the limit. The conditions,
errors and bandwidth limit are those of `Vault.put`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3vault.errors import S3VaultError
from s3vault.remote.objects import Written
from s3vault.remote.s3 import S3Remote
from s3vault.vault.results import SealedObject

if TYPE_CHECKING:
    from s3vault.remote.native import PutOutcome, PutRequest


@dataclass(frozen=True, slots=True)
class SealedPut:
    """One sealed object to store at ``sealed.key``, with its write condition.

    ``if_match`` replaces only the object with that ETag; ``if_none_match`` stores
    it only where no object is. ``tag`` is the caller's, handed back untouched.
    """

    bucket: str
    sealed: SealedObject
    if_match: str | None = None
    if_none_match: bool = False
    tag: Any = None


@dataclass(frozen=True, slots=True)
class SealedOutcome:
    """What became of a `SealedPut`: ``written`` is the object (None if it failed);
    ``error`` the first failure, of the object or of its instruction file after it
    (both set: the object is stored without its envelope)."""

    put: SealedPut
    written: Written | None = None
    error: S3VaultError | None = None


def put_sealed_many(
    remote: S3Remote,
    puts: Iterable[SealedPut],
    on_done: Callable[[SealedOutcome], None],
    *,
    attempts: int,
    backoff: float,
) -> None:
    """Store every put, `IN_FLIGHT` at a time; ``on_done`` learns each outcome.

    ``puts`` is consumed lazily (make them with a generator: bodies stay few in
    memory); ``on_done`` runs on this thread. See `NativeS3.put_many`.
    """
    # Imported here: obstore costs about 0.2 s at start-up, and only sync needs it.
    from s3vault.remote.native import IN_FLIGHT, NativeS3, PutRequest

    native = NativeS3.for_remote(remote)

    def requests() -> Iterator[PutRequest]:
        for put in puts:
            sealed = put.sealed
            then = None
            if sealed.instruction is not None and sealed.instruction_key is not None:
                then = PutRequest(put.bucket, sealed.instruction_key, sealed.instruction)
            yield PutRequest(
                put.bucket,
                sealed.key,
                sealed.body,
                sealed.metadata,
                if_match=put.if_match,
                if_none_match=put.if_none_match,
                then=then,
                tag=put,
            )

    def done(outcome: PutOutcome) -> None:
        on_done(SealedOutcome(outcome.request.tag, outcome.written, outcome.error))

    native.put_many(requests(), done, in_flight=IN_FLIGHT, attempts=attempts, backoff=backoff)
