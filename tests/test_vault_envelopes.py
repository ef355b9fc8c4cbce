"""vault.envelopes: the envelope every writer of new content starts from (no services)."""

from __future__ import annotations

import os

import pytest

from s3vault.crypto import (
    CEK_GCM,
    SUITE_V3,
    WRAP_AES_GCM,
    Location,
    Version,
    parse_envelope,
    render_envelope,
    start_decryption,
)
from s3vault.keys.provider import EncryptionMaterials
from s3vault.vault.envelopes import content_cipher_for, new_envelope


def materials() -> EncryptionMaterials:
    # The wrap is not checked here: a stand-in for what the key provider returns.
    return EncryptionMaterials(
        data_key=os.urandom(32),
        encrypted_data_key=b"w" * 60,
        wrap_algorithm=WRAP_AES_GCM,
        description={"s3vault-key": "k", "project": "x"},
        key_name="k",
    )


def test_content_cipher_for_each_version_s3vault_writes() -> None:
    assert content_cipher_for(Version.V3) == SUITE_V3
    assert content_cipher_for(Version.V2) == CEK_GCM


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("location", [Location.METADATA, Location.INSTRUCTION_FILE])
def test_new_envelope_round_trips_and_opens_what_its_encryptor_wrote(
    version: Version, location: Location
) -> None:
    new = materials()
    envelope, encryptor = new_envelope(version, location, new)

    assert envelope.version is version and envelope.location is location
    assert envelope.content_cipher == content_cipher_for(version)
    assert envelope.encrypted_data_key == new.encrypted_data_key
    assert envelope.description == new.description and envelope.tag_length == 128
    metadata, instruction = render_envelope(envelope)
    assert parse_envelope(metadata, instruction) == envelope
    body = encryptor.update(b"hello") + encryptor.finalize()
    decryptor = start_decryption(envelope, new.data_key)
    assert decryptor.update(body) + decryptor.finalize() == b"hello"


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
def test_new_envelope_is_fresh_each_time(version: Version) -> None:
    new = materials()
    first, _ = new_envelope(version, Location.METADATA, new)
    second, _ = new_envelope(version, Location.METADATA, new)
    assert (first.iv, first.message_id) != (second.iv, second.message_id)
