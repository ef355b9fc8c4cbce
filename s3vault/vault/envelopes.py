"""The vault's envelopes: the one for new content, and an instruction file as read.

`new_envelope` is how every writer of new content (put, seal, rotation's
re-encryption) starts it, so all of them write the same envelope. `InstructionFile`
is what `Vault.read_envelope_and_file` read beside an object: enough to rewrite that
file conditionally later (key rotation).
"""

from __future__ import annotations

from dataclasses import dataclass

from s3vault.crypto.constants import CEK_GCM, GCM_TAG_BITS, SUITE_V3
from s3vault.crypto.content import ContentEncryptor, start_encryption
from s3vault.crypto.envelope import Envelope, Location, Version
from s3vault.keys.provider import EncryptionMaterials
from s3vault.remote.s3 import StoredObject


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
