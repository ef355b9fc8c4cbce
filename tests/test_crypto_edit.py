"""Envelope editing (crypto.edit): the data-key part replaced, everything else kept verbatim."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from s3vault.crypto import (
    CEK_CBC,
    CEK_GCM,
    ENVELOPE_ENTRIES,
    SUITE_V3,
    WRAP_AES_GCM,
    WRAP_KMS_CONTEXT,
    WRAP_RSA_OAEP_SHA1,
    Envelope,
    Location,
    Version,
    data_key_envelope,
    parse_envelope,
    render_envelope,
    replace_data_key,
    user_entries,
)
from s3vault.errors import FormatError

V2_PART = {"x-amz-key-v2", "x-amz-wrap-alg", "x-amz-matdesc"}
V3_PART = {"x-amz-3", "x-amz-w", "x-amz-m", "x-amz-t"}
USER = {"owner": "ana", "s3vault-mtime": "1700000000000000000"}


def envelope(version: Version, location: Location, wrap: str, edk: bytes) -> Envelope:
    v3 = version is Version.V3
    kms = wrap == WRAP_KMS_CONTEXT
    return Envelope(
        version=version,
        location=location,
        content_cipher=SUITE_V3 if v3 else CEK_GCM,
        wrap_algorithm=wrap,
        encrypted_data_key=edk,
        description=(
            {"project": "x", "aws:x-amz-cek-alg": SUITE_V3 if v3 else CEK_GCM}
            if kms
            else {"s3vault-key": "old"}
        ),
        iv=None if v3 else b"\x07" * 12,
        message_id=b"\x01" * 28 if v3 else None,
        commitment=b"\x02" * 28 if v3 else None,
        tag_length=128,
    )


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("new_wrap", [WRAP_AES_GCM, WRAP_RSA_OAEP_SHA1, WRAP_KMS_CONTEXT])
def test_replace_data_key_in_metadata_changes_only_the_data_key_part(
    version: Version, new_wrap: str
) -> None:
    old = envelope(version, Location.METADATA, WRAP_AES_GCM, b"o" * 60)
    metadata, _ = render_envelope(old)
    metadata = {**metadata, **USER, "x-amz-unencrypted-content-length": "5"}
    new = envelope(version, Location.METADATA, new_wrap, b"n" * 184)

    edited = replace_data_key(metadata, new)

    part = V3_PART if version is Version.V3 else V2_PART
    assert {k: v for k, v in edited.items() if k not in part} == {
        k: v for k, v in metadata.items() if k not in part
    }
    assert parse_envelope(edited) == replace(new, unencrypted_content_length=5)
    # A raw description (x-amz-m) gives way to a KMS context (x-amz-t), never both.
    if version is Version.V3:
        assert ("x-amz-t" in edited) == (new_wrap == WRAP_KMS_CONTEXT)
        assert ("x-amz-m" in edited) != (new_wrap == WRAP_KMS_CONTEXT)


def test_replace_data_key_keeps_other_strings_verbatim() -> None:
    """Entries outside the data-key part keep the exact text another client wrote."""
    old = envelope(Version.V3, Location.METADATA, WRAP_AES_GCM, b"o" * 60)
    metadata, _ = render_envelope(old)
    metadata["note"] = '{"a": 1}'  # JSON-looking user metadata is not re-encoded either
    new = envelope(Version.V3, Location.METADATA, WRAP_RSA_OAEP_SHA1, b"n" * 256)

    edited = replace_data_key(metadata, new)

    assert edited["x-amz-d"] == metadata["x-amz-d"] and edited["x-amz-i"] == metadata["x-amz-i"]
    assert edited["note"] == '{"a": 1}'
    assert base64.b64decode(edited["x-amz-3"]) == b"n" * 256


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
def test_replace_data_key_in_an_instruction_file(version: Version) -> None:
    old = envelope(version, Location.INSTRUCTION_FILE, WRAP_AES_GCM, b"o" * 60)
    metadata, instruction = render_envelope(old)
    assert instruction is not None
    new = envelope(version, Location.INSTRUCTION_FILE, WRAP_KMS_CONTEXT, b"n" * 184)

    edited = replace_data_key(instruction, new)

    # The instruction file keeps only what FORMAT.md allows there: no V3 content part.
    assert not {"x-amz-c", "x-amz-d", "x-amz-i"} & edited.keys()
    assert parse_envelope(metadata, edited) == new


def test_replace_data_key_refuses_what_s3vault_does_not_write() -> None:
    v1 = Envelope(
        version=Version.V1,
        location=Location.METADATA,
        content_cipher=CEK_CBC,
        wrap_algorithm=None,
        encrypted_data_key=b"k" * 32,
        description={},
        iv=b"\x00" * 16,
    )
    with pytest.raises(ValueError, match="v1"):
        replace_data_key({}, v1)


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("wrap", [WRAP_AES_GCM, WRAP_RSA_OAEP_SHA1, WRAP_KMS_CONTEXT])
def test_data_key_envelope_reads_an_instruction_file_on_its_own(
    version: Version, wrap: str
) -> None:
    env = envelope(version, Location.INSTRUCTION_FILE, wrap, b"e" * 60)
    _, instruction = render_envelope(env)
    assert instruction is not None

    alone = data_key_envelope(instruction)

    assert alone.version is version and alone.location is Location.INSTRUCTION_FILE
    assert alone.wrap_algorithm == wrap
    assert alone.encrypted_data_key == env.encrypted_data_key
    assert alone.description == env.description
    if version is Version.V3:
        # Placeholders: the real values are in the object's metadata.
        assert alone.message_id == bytes(28) and alone.commitment == bytes(28)


def test_data_key_envelope_is_as_strict_as_parsing() -> None:
    with pytest.raises(FormatError):
        data_key_envelope({"x-amz-3": "not base64!", "x-amz-w": "02"})
    with pytest.raises(FormatError):
        data_key_envelope({"x-amz-key-v2": "AAAA", "x-amz-3": "AAAA"})
    with pytest.raises(FormatError):
        data_key_envelope({"owner": "ana"})


def test_user_entries_are_the_metadata_outside_the_envelope() -> None:
    for version in (Version.V2, Version.V3):
        metadata, _ = render_envelope(envelope(version, Location.METADATA, WRAP_AES_GCM, b"k" * 60))
        metadata = {**metadata, **USER, "x-amz-unencrypted-content-length": "5"}
        assert user_entries(metadata) == USER
    # V1 names and the V3 content part count as envelope too.
    assert user_entries({"x-amz-key": "a", "x-amz-c": "115", "x-amz-d": "b", **USER}) == USER
    assert {"x-amz-key", "x-amz-iv", "x-amz-i", "x-amz-t"} <= ENVELOPE_ENTRIES
