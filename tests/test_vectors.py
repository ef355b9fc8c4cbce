"""Every object in tests/vectors, written by the official Ruby S3 Encryption Client.

Objects marked `decrypts` must give the recorded plaintext; objects marked `fails`
(tampered copies) must raise a clean s3vault error and release no plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from s3vault.crypto import (
    WRAP_AES_GCM,
    WRAP_RSA_OAEP_SHA1,
    Envelope,
    Version,
    aes_ecb_unwrap,
    aes_gcm_unwrap,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
    rsa_oaep_unwrap,
    rsa_pkcs1_unwrap,
    start_decryption,
)
from s3vault.errors import FormatError, IntegrityError, LegacyFormatError

VECTORS = Path(__file__).parent / "vectors"
MANIFEST: list[dict[str, Any]] = (
    json.loads((VECTORS / "manifest.json").read_text()) if VECTORS.is_dir() else []
)


def test_the_vectors_are_there() -> None:
    # Without the vectors every parametrized test below would silently vanish: fail
    # loudly instead.
    assert MANIFEST, f"no test vectors at {VECTORS}"
    assert len(MANIFEST) >= 60


# The wrong key for each key file: never used by the objects it is swapped in for.
WRONG_KEY = {
    "keys/aes256-a.key": "keys/aes256-b.key",
    "keys/aes128-a.key": "keys/aes256-b.key",
    "keys/aes256-b.key": "keys/aes256-a.key",
    "keys/rsa2048-a.pem": "keys/rsa2048-b.pem",
}
CHUNK = 64 * 1024 + 3  # odd, so chunk edges fall inside blocks and the tag


def by_name(expect: str) -> list[Any]:
    return [pytest.param(e, id=e["name"]) for e in MANIFEST if e["expect"] == expect]


@dataclass
class StoredObject:
    envelope: Envelope
    body: bytes


def load_object(entry: dict[str, Any]) -> StoredObject:
    """Read the envelope as the vault does: metadata, then the instruction file if needed."""
    folder = VECTORS / "objects" / entry["name"]
    metadata = json.loads((folder / "metadata.json").read_text())
    instruction = None
    if needs_instruction_file(metadata):
        instruction = parse_instruction_file((folder / "instruction.json").read_bytes())
    return StoredObject(parse_envelope(metadata, instruction), (folder / "body.bin").read_bytes())


def load_key(key_file: str) -> bytes | RSAPrivateKey:
    path = VECTORS / key_file
    if path.suffix == ".key":
        return base64.b64decode(path.read_text().strip(), validate=True)
    key = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


def unwrap(env: Envelope, key: bytes | RSAPrivateKey) -> bytes:
    """The data key, with the unwrap the envelope names (V1: the master key's type)."""
    edk = env.encrypted_data_key
    if isinstance(key, bytes):
        if env.wrap_algorithm is None:
            return aes_ecb_unwrap(key, edk)
        assert env.wrap_algorithm == WRAP_AES_GCM
        return aes_gcm_unwrap(key, edk, env.content_cipher)
    if env.wrap_algorithm is None:
        return rsa_pkcs1_unwrap(key, edk)
    assert env.wrap_algorithm == WRAP_RSA_OAEP_SHA1
    return rsa_oaep_unwrap(key, edk, env.content_cipher)


def open_object(entry: dict[str, Any], key_file: str, *, allow_legacy: bool) -> bytes:
    """The plaintext, returned only after the body has verified."""
    stored = load_object(entry)
    data_key = unwrap(stored.envelope, load_key(key_file))
    decryptor = start_decryption(stored.envelope, data_key, allow_legacy=allow_legacy)
    body = memoryview(stored.body)
    pieces = [decryptor.update(bytes(body[i : i + CHUNK])) for i in range(0, len(body), CHUNK)]
    pieces.append(decryptor.finalize())
    return b"".join(pieces)


@pytest.mark.parametrize("entry", by_name("decrypts"))
def test_decrypts(entry: dict[str, Any]) -> None:
    plaintext = open_object(entry, entry["key_file"], allow_legacy=entry["format"] == "v1")
    assert hashlib.sha256(plaintext).hexdigest() == entry["plaintext_sha256"]
    env = load_object(entry).envelope
    assert env.version.value == entry["format"]
    assert env.content_cipher == entry["content_cipher"]
    assert env.location.value.replace("-", "_") == entry["envelope_location"]
    assert env.unencrypted_content_length == len(plaintext)


@pytest.mark.parametrize("entry", by_name("fails"))
def test_tampered_fails(entry: dict[str, Any]) -> None:
    released: list[bytes] = []
    with pytest.raises((FormatError, IntegrityError, LegacyFormatError)):
        released.append(open_object(entry, entry["key_file"], allow_legacy=True))
    assert released == []


@pytest.mark.parametrize("entry", [e for e in by_name("decrypts") if e.values[0]["format"] == "v1"])
def test_v1_refused_without_opt_in(entry: dict[str, Any]) -> None:
    with pytest.raises(LegacyFormatError, match="--allow-legacy"):
        open_object(entry, entry["key_file"], allow_legacy=False)


@pytest.mark.parametrize("entry", by_name("decrypts"))
def test_wrong_key_fails(entry: dict[str, Any]) -> None:
    wrong = WRONG_KEY[entry["key_file"]]
    env = load_object(entry).envelope
    if env.version is Version.V1:
        # Unauthenticated wrap: the failure may show in the wrap's or the content's padding.
        with pytest.raises(IntegrityError):
            open_object(entry, wrong, allow_legacy=True)
    else:
        with pytest.raises(IntegrityError, match="wrapped data key did not verify"):
            unwrap(env, load_key(wrong))
