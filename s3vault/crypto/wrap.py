"""Wrapping the 32-byte data key with a master key (FORMAT.md §3).

``content_cipher`` is the string that binds a wrap to the content format:
``AES/GCM/NoPadding`` for V2 and ``115`` for V3. It is the AAD of an AES/GCM wrap and
the suffix of an RSA-OAEP pre-image, so a V2 wrap does not open as V3 and a content
cipher cannot be swapped in the metadata.

Every unwrap failure raises the same `IntegrityError`, whatever step failed, so that
no caller can be turned into a padding or format oracle. The legacy unwraps are
decrypt only; the caller gates them behind its explicit legacy opt-in.

KMS wrapping calls the service and lives outside this pure package; only the
encryption-context rules are here.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from s3vault.crypto.constants import (
    AES_KEY_SIZES,
    DATA_KEY_BYTES,
    GCM_IV_BYTES,
    GCM_TAG_BYTES,
    RESERVED_CONTEXT_KEY,
    RESERVED_CONTEXT_KEYS,
)
from s3vault.errors import IntegrityError, UsageError

_AES_GCM_EDK_BYTES = GCM_IV_BYTES + DATA_KEY_BYTES + GCM_TAG_BYTES
_OAEP_SHA1 = asym_padding.OAEP(
    mgf=asym_padding.MGF1(hashes.SHA1()),  # noqa: S303 - the S3EC wire format fixes SHA-1
    algorithm=hashes.SHA1(),  # noqa: S303
    label=None,
)


def aes_gcm_wrap(
    kek: bytes, data_key: bytes, content_cipher: str, *, iv: bytes | None = None
) -> bytes:
    """EDK = IV(12) ‖ AES-GCM(kek, data key, AAD = content_cipher) ‖ tag(16): 60 bytes.

    ``kek`` is a raw AES master key of 16, 24 or 32 bytes. ``iv`` is random unless
    given, which only known-answer tests should do.
    """
    _check_aes_key(kek)
    _check_data_key(data_key)
    iv = os.urandom(GCM_IV_BYTES) if iv is None else iv
    if len(iv) != GCM_IV_BYTES:
        raise ValueError(f"the wrap IV must be {GCM_IV_BYTES} bytes")
    return iv + AESGCM(kek).encrypt(iv, data_key, content_cipher.encode("ascii"))


def aes_gcm_unwrap(kek: bytes, edk: bytes, content_cipher: str) -> bytes:
    """The data key from an AES/GCM EDK; `IntegrityError` unless it verifies."""
    _check_aes_key(kek)
    if len(edk) != _AES_GCM_EDK_BYTES:
        _fail()
    iv, sealed = edk[:GCM_IV_BYTES], edk[GCM_IV_BYTES:]
    try:
        return AESGCM(kek).decrypt(iv, sealed, content_cipher.encode("ascii"))
    except InvalidTag:
        _fail()


def rsa_oaep_wrap(public_key: RSAPublicKey, data_key: bytes, content_cipher: str) -> bytes:
    """RSA-OAEP (SHA-1, MGF1-SHA-1, no label) of 0x20 ‖ data key ‖ content_cipher."""
    _check_data_key(data_key)
    pre_image = bytes([DATA_KEY_BYTES]) + data_key + content_cipher.encode("ascii")
    return public_key.encrypt(pre_image, _OAEP_SHA1)


def rsa_oaep_unwrap(private_key: RSAPrivateKey, edk: bytes, content_cipher: str) -> bytes:
    """The data key from an RSA-OAEP-SHA1 EDK, checking its length byte and suffix."""
    try:
        pre_image = private_key.decrypt(edk, _OAEP_SHA1)
    except ValueError:
        _fail()
    expected_suffix = content_cipher.encode("ascii")
    length_ok = pre_image[:1] == bytes([DATA_KEY_BYTES])
    size_ok = len(pre_image) == 1 + DATA_KEY_BYTES + len(expected_suffix)
    suffix_ok = hmac.compare_digest(pre_image[1 + DATA_KEY_BYTES :], expected_suffix)
    if not (length_ok and size_ok and suffix_ok):
        _fail()
    return pre_image[1 : 1 + DATA_KEY_BYTES]


# --- legacy, decrypt only ------------------------------------------------------------


def aes_ecb_unwrap(kek: bytes, edk: bytes) -> bytes:
    """V1 x-amz-key under an AES master key: AES/ECB/PKCS5 of the data key (48 bytes).

    Unauthenticated: a wrong key is caught only by the padding (almost always) and,
    for the content, by CBC padding; never offer it as a guess among keys.
    """
    _check_aes_key(kek)
    if not edk or len(edk) % 16:
        _fail()
    # ECB is what the V1 format stored; this only reads it.
    decryptor = Cipher(algorithms.AES(kek), modes.ECB()).decryptor()  # noqa: S305
    unpadder = padding.PKCS7(128).unpadder()
    try:
        padded = decryptor.update(edk) + decryptor.finalize()
        data_key = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        _fail()
    return _legacy_data_key(data_key)


def rsa_pkcs1_unwrap(private_key: RSAPrivateKey, edk: bytes) -> bytes:
    """V1 x-amz-key under an RSA master key: RSA PKCS#1 v1.5 of the raw data key."""
    try:
        data_key = private_key.decrypt(edk, asym_padding.PKCS1v15())
    except ValueError:
        _fail()
    return _legacy_data_key(data_key)


def aes_keywrap_unwrap(kek: bytes, edk: bytes) -> bytes:
    """V2 ``AESWrap``: RFC 3394 AES key wrap of the raw data key."""
    _check_aes_key(kek)
    try:
        data_key = keywrap.aes_key_unwrap(kek, edk)
    except (keywrap.InvalidUnwrap, ValueError):
        _fail()
    return _legacy_data_key(data_key)


def rsa_oaep_sha256_unwrap(private_key: RSAPrivateKey, edk: bytes) -> bytes:
    """V2 ``RSA/ECB/OAEPWithSHA-256AndMGF1Padding`` of the raw data key.

    Java's JCE name leaves the MGF1 hash open: its own provider used MGF1-SHA-1,
    others MGF1-SHA-256; both are tried.
    """
    for mgf_hash in (hashes.SHA256(), hashes.SHA1()):  # noqa: S303
        scheme = asym_padding.OAEP(
            mgf=asym_padding.MGF1(mgf_hash), algorithm=hashes.SHA256(), label=None
        )
        try:
            data_key = private_key.decrypt(edk, scheme)
        except ValueError:
            continue
        return _legacy_data_key(data_key)
    _fail()


# --- KMS encryption context -----------------------------------------------------------


def kms_encryption_context(user_context: Mapping[str, str], content_cipher: str) -> dict[str, str]:
    """The context to send to KMS and store: the user's plus aws:x-amz-cek-alg.

    Raises `UsageError` if the user context sets a key the format reserves.
    """
    reserved = sorted(RESERVED_CONTEXT_KEYS & set(user_context))
    if reserved:
        raise UsageError(
            f"the encryption context key {reserved[0]!r} is reserved by the S3 Encryption "
            "Client format",
            hint="Choose another key name for your encryption context.",
        )
    return {**user_context, RESERVED_CONTEXT_KEY: content_cipher}


def user_context(stored_context: Mapping[str, str]) -> dict[str, str]:
    """The user's part of a stored KMS context: the reserved keys removed.

    The official clients require a reader's context to equal this exactly.
    """
    return {k: v for k, v in stored_context.items() if k not in RESERVED_CONTEXT_KEYS}


# --- helpers ---------------------------------------------------------------------------


def _fail() -> NoReturn:
    # `from None`: the library's own exception (padding, tag, length) would tell
    # which step failed; a tampered envelope must not learn that.
    raise IntegrityError(
        "the wrapped data key did not verify with this master key: wrong key or tampered envelope",
        hint="Check that the object was written with this key; "
        "if it was, the object's envelope was modified.",
    ) from None


def _check_aes_key(kek: bytes) -> None:
    if len(kek) not in AES_KEY_SIZES:
        raise ValueError(f"an AES master key must be 16, 24 or 32 bytes, not {len(kek)}")


def _check_data_key(data_key: bytes) -> None:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"the data key must be {DATA_KEY_BYTES} bytes, not {len(data_key)}")


def _legacy_data_key(data_key: bytes) -> bytes:
    # Old writers may have used AES-128/192 data keys for CBC content; anything that
    # is not an AES key size means the wrong master key (or tampering).
    if len(data_key) not in AES_KEY_SIZES:
        _fail()
    return data_key
