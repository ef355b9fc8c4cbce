"""The vault's envelopes: the one for new content, and an instruction file as read.

`new_envelope` is how every writer of new content (put, seal, rotation's
re-encryption) starts it, so all of them write the same envelope; `new_object` lays
it out as `put` and `seal` store it (metadata and instruction file).
`envelope_not_found` is the one error for an envelope that is in neither place. `InstructionFile`
is what `Vault.read_envelope_and_file` read beside an object: enough to rewrite that
file conditionally later (key rotation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from s3vault.crypto.constants import CEK_GCM, GCM_TAG_BITS, META_UNENCRYPTED_LENGTH, SUITE_V3
from s3vault.crypto.content import ContentEncryptor, start_encryption
from s3vault.crypto.envelope import (
    Envelope,
    Location,
    Version,
    check_metadata_size,
    instruction_file_body,
    render_envelope,
)
from s3vault.errors import FormatError, UsageError
from s3vault.keys.provider import EncryptionMaterials
from s3vault.remote.objects import StoredObject, s3_url


@dataclass(frozen=True)
class InstructionFile:
    """An object's instruction file as read: what rewriting it conditionally needs."""

    stored: StoredObject  # its ETag and metadata, and the headers a rewrite keeps
    body: bytes
    fields: dict[str, str]


def content_cipher_for(version: Version) -> str:
    """The content cipher s3vault writes in a ``version`` envelope (V1 it never writes)."""
    return SUITE_V3 if version is Version.V3 else CEK_GCM


def new_envelope(
    version: Version, location: Location, materials: EncryptionMaterials
) -> tuple[Envelope, ContentEncryptor]:
    """The envelope of new content under ``materials``' data key, and its encryptor.

    ``materials`` must be for `content_cipher_for(version)`. Each call starts with a
    fresh IV (V2) or message id and commitment (V3).
    """
    encryptor = start_encryption(version, materials.data_key)
    envelope = Envelope(
        version=version,
        location=location,
        content_cipher=content_cipher_for(version),
        wrap_algorithm=materials.wrap_algorithm,
        encrypted_data_key=materials.encrypted_data_key,
        description=dict(materials.description),
        iv=encryptor.iv,
        message_id=encryptor.message_id,
        commitment=encryptor.commitment,
        tag_length=GCM_TAG_BITS,
    )
    return envelope, encryptor


@dataclass(frozen=True)
class NewObject:
    """A new object's cipher and envelope, as `put` and `seal` store them."""

    content_cipher: str
    materials: EncryptionMaterials
    encryptor: ContentEncryptor
    metadata: dict[str, str]  # the envelope (or V3's part of it) and the user metadata
    instruction: bytes | None  # the instruction file's body, if the envelope goes there


def new_object(
    materials: EncryptionMaterials,
    size: int,
    version: Version,
    location: Location,
    extra_metadata: Mapping[str, str] | None,
) -> NewObject:
    """The envelope of an object of ``size`` bytes under ``materials``, laid out for S3.

    The metadata gets x-amz-unencrypted-content-length and ``extra_metadata`` and is
    checked against S3's 2 KB limit.
    """
    envelope, encryptor = new_envelope(version, location, materials)
    metadata, instruction = render_envelope(envelope)
    metadata[META_UNENCRYPTED_LENGTH] = str(size)
    add_extra_metadata(metadata, extra_metadata)
    check_metadata_size(metadata)
    return NewObject(
        content_cipher=content_cipher_for(version),
        materials=materials,
        encryptor=encryptor,
        metadata=metadata,
        instruction=instruction_file_body(instruction) if instruction is not None else None,
    )


def add_extra_metadata(metadata: dict[str, str], extra: Mapping[str, str] | None) -> None:
    """Add user metadata beside the envelope; never let it replace an envelope entry."""
    for name, value in (extra or {}).items():
        lowered = name.lower()
        if lowered.startswith("x-amz-") or lowered in metadata:
            raise UsageError(f"metadata name {name!r} is reserved for the envelope")
        metadata[lowered] = value


def envelope_not_found(bucket: str, key: str, where: str, outcome: str = "") -> FormatError:
    """The error for an object whose envelope is neither in its metadata nor at ``where``
    (its instruction file under the suffix in use), e.g. written under another suffix."""
    message = (
        f"{s3_url(bucket, key)} has no envelope in its metadata, and its instruction file "
        f"{s3_url(bucket, where)} does not exist"
    )
    return FormatError(
        f"{message}: {outcome}" if outcome else message,
        hint="If its writer keeps envelopes under another suffix, name it with "
        "--instruction-suffix (or defaults.instruction_suffix in the config).",
    )
