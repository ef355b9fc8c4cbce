"""Streaming content encryption: chunking never changes bytes, tampering never passes."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import s3vault.crypto.content as content_module
from s3vault.crypto import (
    CEK_CBC,
    CEK_GCM,
    SUITE_V3,
    WRAP_AES_GCM,
    WRAP_KMS_LEGACY,
    ContentDecryptor,
    ContentEncryptor,
    Envelope,
    Location,
    Version,
    ciphertext_length,
    derive_v3_keys,
    plaintext_length,
    start_decryption,
    start_encryption,
)
from s3vault.errors import FormatError, IntegrityError, LegacyFormatError, RefusedError

RNG = random.Random(20260101)
DATA_KEY = RNG.randbytes(32)
PLAINTEXT = RNG.randbytes(200_003)
CONTENT_FAILED = "content did not authenticate"


def envelope_for(enc: ContentEncryptor) -> Envelope:
    return Envelope(
        version=enc.version,
        location=Location.METADATA,
        content_cipher=enc.content_cipher,
        wrap_algorithm=WRAP_AES_GCM,
        encrypted_data_key=b"unused here",
        description={},
        iv=enc.iv,
        message_id=enc.message_id,
        commitment=enc.commitment,
        tag_length=128,
    )


def random_chunks(data: bytes, rng: random.Random, largest: int) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 2, 15, 16, 17, rng.randint(0, largest)])
        yield data[pos : pos + size]
        pos += size


def encrypt(
    version: Version, plaintext: bytes, chunks: Iterator[bytes] | None = None
) -> tuple[Envelope, bytes]:
    enc = start_encryption(version, DATA_KEY)
    body = b"".join(enc.update(c) for c in (chunks or [plaintext])) + enc.finalize()
    return envelope_for(enc), body


def decrypt(decryptor: ContentDecryptor, chunks: Iterator[bytes] | list[bytes]) -> bytes:
    """Plaintext, only once finalize() has verified it (as a caller must do)."""
    pieces = [decryptor.update(chunk) for chunk in chunks]
    pieces.append(decryptor.finalize())
    return b"".join(pieces)


def one_shot(env: Envelope, plaintext: bytes) -> bytes:
    if env.version is Version.V3:
        assert env.message_id is not None
        dek, _ = derive_v3_keys(DATA_KEY, env.message_id)
        return AESGCM(dek).encrypt(b"\x01" * 12, plaintext, b"\x00\x73")
    assert env.iv is not None
    return AESGCM(DATA_KEY).encrypt(env.iv, plaintext, None)


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("seed", range(5))
def test_chunking_gives_one_shot_ciphertext(version: Version, seed: int) -> None:
    rng = random.Random(seed)
    env, body = encrypt(version, PLAINTEXT, random_chunks(PLAINTEXT, rng, 70_000))
    assert body == one_shot(env, PLAINTEXT)
    assert len(body) == ciphertext_length(len(PLAINTEXT), env.content_cipher)
    assert plaintext_length(len(body), env) == len(PLAINTEXT)


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("size", [0, 1, 4096, 70_000])
def test_a_body_encrypted_whole_equals_the_streamed_one_and_decrypts(
    version: Version, size: int
) -> None:
    plaintext = PLAINTEXT[:size]
    enc = start_encryption(version, DATA_KEY)
    body = enc.encrypt_whole(plaintext)
    env = envelope_for(enc)
    assert body == one_shot(env, plaintext)
    assert decrypt(start_decryption(env, DATA_KEY), [body]) == plaintext


def test_an_encryptor_that_sealed_a_whole_body_refuses_any_more() -> None:
    """Its key and IV were used: a second body under them would break GCM."""
    enc = start_encryption(Version.V2, DATA_KEY)
    enc.encrypt_whole(b"first")
    with pytest.raises(ValueError, match="sealed its whole body"):
        enc.update(b"second")
    with pytest.raises(ValueError, match="has not started"):
        enc.encrypt_whole(b"second")
    streaming = start_encryption(Version.V2, DATA_KEY)
    streaming.update(b"part")
    with pytest.raises(ValueError, match="has not started"):
        streaming.encrypt_whole(b"rest")


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("seed", range(5))
def test_decrypt_any_split(version: Version, seed: int) -> None:
    env, body = encrypt(version, PLAINTEXT)
    chunks = list(random_chunks(body, random.Random(seed), 70_000))
    assert decrypt(start_decryption(env, DATA_KEY), chunks) == PLAINTEXT


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 32, 33])
def test_small_bodies_every_split(version: Version, size: int) -> None:
    plaintext = PLAINTEXT[:size]
    env, body = encrypt(version, plaintext)
    for cut in range(len(body) + 1):  # the tag split at every position
        assert decrypt(start_decryption(env, DATA_KEY), [body[:cut], body[cut:]]) == plaintext
    assert decrypt(start_decryption(env, DATA_KEY), [bytes([b]) for b in body]) == plaintext


def test_held_back_tag_is_not_returned_by_update() -> None:
    env, body = encrypt(Version.V2, PLAINTEXT[:100])
    dec = start_decryption(env, DATA_KEY)
    assert len(dec.update(body)) == 100  # all plaintext, the 16 tag bytes held back
    assert dec.finalize() == b""


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
def test_bit_flip_anywhere_fails(version: Version) -> None:
    env, body = encrypt(version, PLAINTEXT[:1000])
    positions = [0, 1, 500, 999, *range(1000, 1016)]  # body and every tag byte
    for position in positions:
        tampered = bytearray(body)
        tampered[position] ^= 0x01
        with pytest.raises(IntegrityError, match=CONTENT_FAILED):
            decrypt(start_decryption(env, DATA_KEY), [bytes(tampered)])


@pytest.mark.parametrize("version", [Version.V2, Version.V3])
@pytest.mark.parametrize("cut", [1, 15, 16, 17, 500, 1016])
def test_truncation_fails(version: Version, cut: int) -> None:
    env, body = encrypt(version, PLAINTEXT[:1000])
    with pytest.raises(IntegrityError, match=CONTENT_FAILED):
        decrypt(start_decryption(env, DATA_KEY), [body[:-cut]])


def test_extension_fails() -> None:
    env, body = encrypt(Version.V2, PLAINTEXT[:1000])
    with pytest.raises(IntegrityError, match=CONTENT_FAILED):
        decrypt(start_decryption(env, DATA_KEY), [body, b"\0"])


def test_wrong_data_key_fails_v2() -> None:
    env, body = encrypt(Version.V2, PLAINTEXT[:1000])
    with pytest.raises(IntegrityError, match=CONTENT_FAILED):
        decrypt(start_decryption(env, os.urandom(32)), [body])


def test_v3_commitment_checked_before_decryption(monkeypatch: pytest.MonkeyPatch) -> None:
    env, _ = encrypt(Version.V3, PLAINTEXT[:1000])
    used: list[object] = []
    real_cipher = content_module.Cipher

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(args)
        return real_cipher(*args, **kwargs)

    monkeypatch.setattr(content_module, "Cipher", spy)
    with pytest.raises(IntegrityError, match="key commitment mismatch"):
        start_decryption(env, os.urandom(32))  # the wrong data key
    assert env.commitment is not None
    bad_commitment = bytes([env.commitment[0] ^ 1]) + env.commitment[1:]
    env_bad = replace(env, commitment=bad_commitment)
    with pytest.raises(IntegrityError, match="key commitment mismatch"):
        start_decryption(env_bad, DATA_KEY)
    assert used == []  # no cipher was ever set up: the DEK was never used
    start_decryption(env, DATA_KEY)
    assert len(used) == 1  # the spy does see the cipher of a good key


def test_v3_message_id_swap_fails() -> None:
    env, _ = encrypt(Version.V3, PLAINTEXT[:10])
    other = replace(env, message_id=os.urandom(28))
    with pytest.raises(IntegrityError, match="key commitment mismatch"):
        start_decryption(other, DATA_KEY)


def test_gcm_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content_module, "GCM_MAX_PLAINTEXT", 100)
    enc = start_encryption(Version.V2, DATA_KEY)
    enc.update(b"x" * 60)
    enc.update(b"x" * 40)
    with pytest.raises(RefusedError, match="larger than"):
        enc.update(b"x")


def test_encryption_parameters() -> None:
    a = start_encryption(Version.V2, DATA_KEY)
    b = start_encryption(Version.V2, DATA_KEY)
    assert a.iv is not None and len(a.iv) == 12 and a.iv != b.iv
    assert a.message_id is None and a.commitment is None
    c = start_encryption(Version.V3, DATA_KEY)
    d = start_encryption(Version.V3, DATA_KEY)
    assert c.message_id is not None and len(c.message_id) == 28
    assert c.message_id != d.message_id
    assert c.commitment is not None and len(c.commitment) == 28
    with pytest.raises(ValueError):
        start_encryption(Version.V1, DATA_KEY)
    with pytest.raises(ValueError):
        start_encryption(Version.V2, DATA_KEY[:16])
    with pytest.raises(ValueError):
        start_encryption(Version.V2, DATA_KEY, iv=b"short")
    with pytest.raises(ValueError):
        start_encryption(Version.V3, DATA_KEY, message_id=b"short")


def test_bad_gcm_envelopes() -> None:
    env, _ = encrypt(Version.V2, b"x")
    for bad in (
        replace(env, iv=b"\0" * 16),
        replace(env, iv=None),
        replace(env, tag_length=96),
        replace(env, content_cipher="AES/CTR/NoPadding"),
    ):
        with pytest.raises(FormatError):
            start_decryption(bad, DATA_KEY)
    with pytest.raises(IntegrityError):
        start_decryption(env, DATA_KEY[:16])


def test_lengths() -> None:
    assert ciphertext_length(0, CEK_GCM) == 16
    assert ciphertext_length(5, SUITE_V3) == 21
    assert [ciphertext_length(n, CEK_CBC) for n in (0, 15, 16, 17)] == [16, 16, 32, 32]
    env, _ = encrypt(Version.V2, b"")
    assert plaintext_length(16, env) == 0
    assert plaintext_length(15, env) is None  # truncated below a tag
    cbc = cbc_envelope(b"\0" * 16)
    assert plaintext_length(32, cbc) is None
    assert plaintext_length(32, replace(cbc, unencrypted_content_length=20)) == 20


# --- legacy CBC ----------------------------------------------------------------------


def cbc_envelope(iv: bytes, version: Version = Version.V1) -> Envelope:
    return Envelope(
        version=version,
        location=Location.METADATA,
        content_cipher=CEK_CBC,
        wrap_algorithm=None if version is Version.V1 else WRAP_KMS_LEGACY,
        encrypted_data_key=b"unused",
        description={},
        iv=iv,
    )


def cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    padded = padder.update(plaintext) + padder.finalize()
    return encryptor.update(padded) + encryptor.finalize()


@pytest.mark.parametrize("version", [Version.V1, Version.V2])
def test_cbc_refused_without_opt_in(version: Version) -> None:
    env = cbc_envelope(os.urandom(16), version)
    with pytest.raises(LegacyFormatError, match="--allow-legacy"):
        start_decryption(env, DATA_KEY)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000])
def test_cbc_decrypts_with_opt_in(size: int) -> None:
    iv = os.urandom(16)
    body = cbc_encrypt(DATA_KEY, iv, PLAINTEXT[:size])
    assert len(body) == ciphertext_length(size, CEK_CBC)
    chunks = list(random_chunks(body, random.Random(size), 100))
    dec = start_decryption(cbc_envelope(iv), DATA_KEY, allow_legacy=True)
    assert decrypt(dec, chunks) == PLAINTEXT[:size]


def test_cbc_failures() -> None:
    iv = os.urandom(16)
    body = cbc_encrypt(DATA_KEY, iv, PLAINTEXT[:100])
    env = cbc_envelope(iv)
    with pytest.raises(IntegrityError, match=CONTENT_FAILED):  # partial block
        decrypt(start_decryption(env, DATA_KEY, allow_legacy=True), [body[:-1]])
    bad_padding = body[:-16] + cbc_encrypt(DATA_KEY, body[-32:-16], b"\x00" * 16)[:16]
    with pytest.raises(IntegrityError, match=CONTENT_FAILED):
        decrypt(start_decryption(env, DATA_KEY, allow_legacy=True), [bad_padding])
    with pytest.raises(FormatError):
        start_decryption(cbc_envelope(b"\0" * 12), DATA_KEY, allow_legacy=True)
