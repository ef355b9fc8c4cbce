"""Wrapping and unwrapping the data key: every failure is the same IntegrityError."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from s3vault.crypto import (
    CEK_GCM,
    RESERVED_CONTEXT_KEY,
    SUITE_V3,
    aes_ecb_unwrap,
    aes_gcm_unwrap,
    aes_gcm_wrap,
    aes_keywrap_unwrap,
    kms_encryption_context,
    rsa_oaep_sha256_unwrap,
    rsa_oaep_unwrap,
    rsa_oaep_wrap,
    rsa_pkcs1_unwrap,
    user_context,
)
from s3vault.errors import IntegrityError, UsageError

DATA_KEY = os.urandom(32)
UNWRAP_FAILED = "the wrapped data key did not verify"

OAEP_SHA1 = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303 - fixed by the wire format
    algorithm=hashes.SHA1(),  # noqa: S303
    label=None,
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- AES/GCM -------------------------------------------------------------------------


@pytest.mark.parametrize("kek_size", [16, 24, 32])
@pytest.mark.parametrize("content_cipher", [CEK_GCM, SUITE_V3])
def test_aes_gcm_round_trip(kek_size: int, content_cipher: str) -> None:
    kek = os.urandom(kek_size)
    edk = aes_gcm_wrap(kek, DATA_KEY, content_cipher)
    assert len(edk) == 60
    assert aes_gcm_unwrap(kek, edk, content_cipher) == DATA_KEY


def test_aes_gcm_wrap_iv_is_random() -> None:
    kek = os.urandom(32)
    assert aes_gcm_wrap(kek, DATA_KEY, CEK_GCM)[:12] != aes_gcm_wrap(kek, DATA_KEY, CEK_GCM)[:12]


def test_aes_gcm_unwrap_failures() -> None:
    kek = os.urandom(32)
    edk = aes_gcm_wrap(kek, DATA_KEY, CEK_GCM)
    cases = {
        "wrong key": (os.urandom(32), edk, CEK_GCM),
        "V2 wrap read as V3": (kek, edk, SUITE_V3),
        "CBC swapped in": (kek, edk, "AES/CBC/PKCS5Padding"),
        "truncated": (kek, edk[:-1], CEK_GCM),
        "extended": (kek, edk + b"\0", CEK_GCM),
        "empty": (kek, b"", CEK_GCM),
    }
    for position in (0, 11, 12, 43, 44, 59):  # IV, ciphertext and tag bytes
        flipped = bytearray(edk)
        flipped[position] ^= 0x01
        cases[f"bit flip at {position}"] = (kek, bytes(flipped), CEK_GCM)
    for key, wrapped, cipher in cases.values():
        with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
            aes_gcm_unwrap(key, wrapped, cipher)


@pytest.mark.parametrize("bad", [b"", b"k" * 15, b"k" * 33])
def test_aes_gcm_bad_kek_is_a_caller_bug(bad: bytes) -> None:
    with pytest.raises(ValueError):
        aes_gcm_wrap(bad, DATA_KEY, CEK_GCM)
    with pytest.raises(ValueError):
        aes_gcm_unwrap(bad, b"x" * 60, CEK_GCM)


def test_wrap_refuses_a_short_data_key(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError):
        aes_gcm_wrap(os.urandom(32), DATA_KEY[:16], CEK_GCM)
    with pytest.raises(ValueError):
        rsa_oaep_wrap(rsa_key.public_key(), DATA_KEY[:16], CEK_GCM)


# --- RSA-OAEP-SHA1 -------------------------------------------------------------------


@pytest.mark.parametrize("content_cipher", [CEK_GCM, SUITE_V3])
def test_rsa_oaep_round_trip(rsa_key: rsa.RSAPrivateKey, content_cipher: str) -> None:
    edk = rsa_oaep_wrap(rsa_key.public_key(), DATA_KEY, content_cipher)
    assert len(edk) == 256
    assert rsa_oaep_unwrap(rsa_key, edk, content_cipher) == DATA_KEY


def test_rsa_oaep_unwrap_failures(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    public = rsa_key.public_key()
    edk = rsa_oaep_wrap(public, DATA_KEY, CEK_GCM)
    flipped = bytearray(edk)
    flipped[100] ^= 0x80
    forged = {
        "wrong length byte": b"\x10" + DATA_KEY + b"AES/GCM/NoPadding",
        "short key": b"\x20" + DATA_KEY[:16] + b"AES/GCM/NoPadding",
        "no suffix": b"\x20" + DATA_KEY,
        "suffix with extra": b"\x20" + DATA_KEY + b"AES/GCM/NoPadding!",
        "empty": b"",
    }
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_oaep_unwrap(other_rsa_key, edk, CEK_GCM)
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_oaep_unwrap(rsa_key, edk, SUITE_V3)
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_oaep_unwrap(rsa_key, bytes(flipped), CEK_GCM)
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_oaep_unwrap(rsa_key, edk[:-1], CEK_GCM)
    for pre_image in forged.values():
        with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
            rsa_oaep_unwrap(rsa_key, public.encrypt(pre_image, OAEP_SHA1), CEK_GCM)


def test_failures_are_indistinguishable(rsa_key: rsa.RSAPrivateKey) -> None:
    """Padding failure and a bad pre-image give the very same error: no oracle."""
    public = rsa_key.public_key()
    errors = []
    for edk in (b"\0" * 256, public.encrypt(b"\x20" + DATA_KEY + b"115", OAEP_SHA1)):
        with pytest.raises(IntegrityError) as info:
            rsa_oaep_unwrap(rsa_key, edk, CEK_GCM)
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__  # the library's reason is not shown
        errors.append(str(info.value))
    assert errors[0] == errors[1]


# --- legacy --------------------------------------------------------------------------


def _ecb_wrap(kek: bytes, data_key: bytes) -> bytes:
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(data_key) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()  # noqa: S305 - legacy V1
    return encryptor.update(padded) + encryptor.finalize()


def test_aes_ecb_unwrap() -> None:
    kek = os.urandom(32)
    edk = _ecb_wrap(kek, DATA_KEY)
    assert len(edk) == 48
    assert aes_ecb_unwrap(kek, edk) == DATA_KEY
    for bad_key, bad_edk in [(os.urandom(32), edk), (kek, edk[:32]), (kek, edk[:-1]), (kek, b"")]:
        with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
            aes_ecb_unwrap(bad_key, bad_edk)
    # A validly padded value that is no AES key size is refused too.
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        aes_ecb_unwrap(kek, _ecb_wrap(kek, DATA_KEY[:20]))


def test_rsa_pkcs1_unwrap(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
    edk = rsa_key.public_key().encrypt(DATA_KEY, padding.PKCS1v15())
    assert rsa_pkcs1_unwrap(rsa_key, edk) == DATA_KEY
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_pkcs1_unwrap(other_rsa_key, edk)
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_pkcs1_unwrap(rsa_key, rsa_key.public_key().encrypt(b"x" * 20, padding.PKCS1v15()))


def test_aes_keywrap_unwrap() -> None:
    kek = os.urandom(32)
    edk = keywrap.aes_key_wrap(kek, DATA_KEY)
    assert aes_keywrap_unwrap(kek, edk) == DATA_KEY
    tampered = bytearray(edk)
    tampered[5] ^= 1
    for bad_key, bad_edk in [(os.urandom(32), edk), (kek, bytes(tampered)), (kek, edk[:-8])]:
        with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
            aes_keywrap_unwrap(bad_key, bad_edk)


# Java's JCE OAEPWithSHA-256AndMGF1Padding used MGF1-SHA-1; other providers MGF1-SHA-256.
MGF_HASHES = {"mgf-sha256": hashes.SHA256(), "mgf-sha1": hashes.SHA1()}  # noqa: S303


@pytest.mark.parametrize("mgf_hash", MGF_HASHES.values(), ids=list(MGF_HASHES))
def test_rsa_oaep_sha256_unwrap(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey, mgf_hash: hashes.HashAlgorithm
) -> None:
    scheme = padding.OAEP(mgf=padding.MGF1(mgf_hash), algorithm=hashes.SHA256(), label=None)
    edk = rsa_key.public_key().encrypt(DATA_KEY, scheme)
    assert rsa_oaep_sha256_unwrap(rsa_key, edk) == DATA_KEY
    with pytest.raises(IntegrityError, match=UNWRAP_FAILED):
        rsa_oaep_sha256_unwrap(other_rsa_key, edk)


# --- KMS encryption context ------------------------------------------------------------


def test_kms_encryption_context() -> None:
    context = kms_encryption_context({"project": "x"}, SUITE_V3)
    assert context == {"project": "x", RESERVED_CONTEXT_KEY: "115"}
    assert kms_encryption_context({}, CEK_GCM) == {RESERVED_CONTEXT_KEY: "AES/GCM/NoPadding"}
    assert user_context(context) == {"project": "x"}
    assert user_context({"kms_cmk_id": "alias/old"}) == {}


@pytest.mark.parametrize("reserved", [RESERVED_CONTEXT_KEY, "kms_cmk_id"])
def test_kms_reserved_keys_refused(reserved: str) -> None:
    with pytest.raises(UsageError, match="reserved"):
        kms_encryption_context({reserved: "x"}, CEK_GCM)
