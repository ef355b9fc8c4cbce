"""Opening a data key with a raw master key, and the errors when none opens it.

The key-type and wrap checks behind `KeyProvider.decrypt_data_key`: which wrap a key
type can open (`RAW_WRAP_KEY_TYPES`, `LEGACY_RAW_WRAPS`), the unwrap itself
(`unwrap_raw`), the size a data key must have (`check_data_key`), the consistency of a
KMS envelope (`check_kms_content_cipher`), and the message that says why no key opened
an object (`no_key_opens`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from s3vault.crypto.constants import (
    AES_KEY_SIZES,
    DATA_KEY_BYTES,
    RESERVED_CONTEXT_KEY,
    WRAP_AES_GCM,
    WRAP_AES_KEYWRAP,
    WRAP_KMS_CONTEXT,
    WRAP_KMS_LEGACY,
    WRAP_RSA_OAEP_SHA1,
    WRAP_RSA_OAEP_SHA256,
)
from s3vault.crypto.wrap import (
    aes_ecb_unwrap,
    aes_gcm_unwrap,
    aes_keywrap_unwrap,
    rsa_oaep_sha256_unwrap,
    rsa_oaep_unwrap,
    rsa_pkcs1_unwrap,
)
from s3vault.errors import FormatError, IntegrityError, KeyMissingError, S3VaultError
from s3vault.keys.material import AesKey, MasterKey, RsaKey

if TYPE_CHECKING:
    from s3vault.crypto.envelope import Envelope

RAW_WRAP_KEY_TYPES: dict[str | None, str] = {WRAP_AES_GCM: "aes", WRAP_RSA_OAEP_SHA1: "rsa"}
"""The authenticated raw wraps, and the type of key each needs."""
LEGACY_RAW_WRAPS = {None, WRAP_AES_KEYWRAP, WRAP_RSA_OAEP_SHA256}


def check_kms_content_cipher(envelope: Envelope) -> None:
    # KMS authenticates the context; its copy of the content cipher must match the
    # unauthenticated metadata, or a GCM object could be presented as CBC.
    stored = envelope.description
    if (
        envelope.wrap_algorithm == WRAP_KMS_CONTEXT
        and stored.get(RESERVED_CONTEXT_KEY) != envelope.content_cipher
    ):
        raise FormatError(
            f"the KMS encryption context names content cipher "
            f"{stored.get(RESERVED_CONTEXT_KEY)!r} but the envelope says "
            f"{envelope.content_cipher!r}"
        )


def unwrap_raw(key: MasterKey, envelope: Envelope) -> bytes | None:
    """The data key under ``key``; None if the key's type cannot open this wrap."""
    wrap, edk = envelope.wrap_algorithm, envelope.encrypted_data_key
    cipher = envelope.content_cipher
    data_key: bytes | None = None
    if isinstance(key, AesKey):
        if wrap == WRAP_AES_GCM:
            data_key = aes_gcm_unwrap(key.secret, edk, cipher)
        elif wrap is None:
            data_key = aes_ecb_unwrap(key.secret, edk)
        elif wrap == WRAP_AES_KEYWRAP:
            data_key = aes_keywrap_unwrap(key.secret, edk)
    elif isinstance(key, RsaKey):
        if wrap == WRAP_RSA_OAEP_SHA1:
            data_key = rsa_oaep_unwrap(key.private_key(), edk, cipher)
        elif wrap is None:
            data_key = rsa_pkcs1_unwrap(key.private_key(), edk)
        elif wrap == WRAP_RSA_OAEP_SHA256:
            data_key = rsa_oaep_sha256_unwrap(key.private_key(), edk)
    if data_key is not None:
        check_data_key(data_key, legacy=wrap not in RAW_WRAP_KEY_TYPES)
    return data_key


def check_data_key(data_key: bytes, *, legacy: bool) -> None:
    # New formats always carry a 32-byte key; old V1 writers may have used AES-128/192.
    allowed = AES_KEY_SIZES if legacy else {DATA_KEY_BYTES}
    if len(data_key) not in allowed:
        raise IntegrityError(
            f"the unwrapped data key is {len(data_key)} bytes, not {DATA_KEY_BYTES}: "
            "wrong key or altered envelope"
        )


def no_key_opens(
    envelope: Envelope,
    described: str | None,
    key_name: str | None,
    failed: list[str],
    mismatched: list[str],
) -> S3VaultError:
    wrap = envelope.wrap_algorithm or "V1 (AES/ECB or RSA PKCS#1 v1.5)"
    if failed:
        name = failed[0]
        return IntegrityError(
            f"key '{name}' did not open this object's data key ({wrap} wrap): the envelope "
            f"was altered, or '{name}' is not the key that wrote it (same name, other material)",
            hint="If the object was written with another copy of this key, import that copy.",
        )
    if key_name is not None and key_name in mismatched:
        return KeyMissingError(
            f"key '{key_name}' cannot open this object: its data key is wrapped with {wrap}",
            hint="AES/GCM and AESWrap need an AES key; RSA wraps need an RSA key.",
        )
    if described:
        where = f"it names key '{described}', which is not in your keyring"
    else:
        where = f"its description is {show_mapping(envelope.description)}"
    if envelope.is_legacy and key_name is None:
        return KeyMissingError(
            f"no key was tried for this legacy object: {where}",
            hint="Legacy wraps cannot be checked, so s3vault never guesses: name the key "
            "with --key NAME.",
        )
    return KeyMissingError(
        f"none of your keys opens this object; {where}",
        hint="Import the key that wrote it (`s3vault key import NAME ...`), "
        "or name it with --key NAME.",
    )


def show_mapping(mapping: Mapping[str, str]) -> str:
    return json.dumps(dict(mapping), sort_keys=True)


def legacy_what(envelope: Envelope) -> str:
    if envelope.wrap_algorithm is None:
        return "the legacy V1 format (unauthenticated AES/ECB or RSA PKCS#1 v1.5 key wrap)"
    if envelope.wrap_algorithm in (WRAP_KMS_LEGACY, WRAP_AES_KEYWRAP, WRAP_RSA_OAEP_SHA256):
        return f"the legacy {envelope.wrap_algorithm} key wrap"
    return f"legacy {envelope.content_cipher} content encryption (unauthenticated)"
