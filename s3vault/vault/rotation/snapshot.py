"""An object as rotation read it, and the conditions every write of it is held to.

Rotation reads an object (its HEAD, and its instruction file if the envelope is there)
once, then writes only on condition that S3 still has exactly what was read: the
object's ETag, or the instruction file's. A concurrent writer therefore makes the
rotation of that object fail (ConflictError, `changed_after_read`) and keeps its own
content. This is about objects in S3; `Vault.put`'s check that a *local file* did not
change while it was read is another matter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from s3vault.crypto.envelope import Envelope
from s3vault.errors import ConflictError
from s3vault.remote.s3 import StoredObject, Written, s3_url
from s3vault.vault.envelopes import InstructionFile
from s3vault.vault.vault import Vault


@dataclass(frozen=True)
class Snapshot:
    """An object as read before rotating it: what every write is conditional on."""

    stored: StoredObject
    envelope: Envelope | None  # None: not encrypted
    instruction: InstructionFile | None = None  # where the envelope came from, if not metadata

    @property
    def bucket(self) -> str:
        return self.stored.head.bucket

    @property
    def key(self) -> str:
        return self.stored.head.key

    @property
    def etag(self) -> str:
        return self.stored.head.etag

    @property
    def url(self) -> str:
        return s3_url(self.bucket, self.key)


@dataclass(frozen=True)
class Rewritten:
    """What rotating one object wrote: its new envelope and S3's answer to the last write."""

    envelope: Envelope
    written: Written
    content_verified: bool  # the body was downloaded and authenticated after writing


def read_snapshot(vault: Vault, bucket: str, key: str) -> Snapshot:
    """HEAD the object (with what a rewrite must keep) and read its envelope as the vault does.

    A missing instruction file is the vault's business (`Vault.read_envelope_and_file`):
    an error for an object an encryption client wrote, a plain object otherwise.
    """
    stored = vault.remote.head_stored(bucket, key)
    envelope, instruction = vault.read_envelope_and_file(stored.head)
    return Snapshot(stored, envelope, instruction)


def check_object_etag_unchanged(vault: Vault, snap: Snapshot) -> None:
    """ConflictError unless the object still has the ETag it was read at (one HEAD).

    For writes that are not conditional on the object itself: a new instruction file
    must never be paired with content other than the one its data key belongs to.
    """
    if vault.remote.head(snap.bucket, snap.key).etag != snap.etag:
        raise changed_after_read(snap.url)


def write_instruction_file(vault: Vault, snap: Snapshot, body: bytes, *, if_match: str) -> Written:
    """Replace the object's instruction file with ``body`` if it still has ETag ``if_match``.

    Its metadata and headers stay those read; S3's refusal is a plain ConflictError.
    """
    instruction = snap.instruction
    assert instruction is not None, "the envelope of this object is not in an instruction file"
    return vault.remote.put_bytes_if_match(
        snap.bucket,
        vault.instruction_key(snap.key),
        body,
        instruction.stored.head.metadata,
        if_match=if_match,
        headers=instruction.stored.headers,
    )


def changed_after_read(url: str) -> ConflictError:
    """The error for an object another writer changed between rotation's read and write."""
    return ConflictError(
        f"{url} changed after it was read: it was not rotated, and the new content was "
        "left as it is",
        hint="Run the rotation again to rotate the new content.",
    )


@contextmanager
def conflict_means_changed(url: str) -> Iterator[None]:
    """Re-raise S3's precondition failure (ConflictError) as `changed_after_read`."""
    try:
        yield
    except ConflictError:
        raise changed_after_read(url) from None
