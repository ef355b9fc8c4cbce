"""Key derivation of the V3 format (suite 115, FORMAT.md §4).

One data key and one message id give the content key (DEK) and the key commitment
stored as x-amz-d. The commitment binds the object to exactly one data key, so a
reader that checks it cannot be shown different plaintexts under different keys.
"""

from __future__ import annotations

import hmac

from s3vault.crypto.constants import (
    COMMITMENT_BYTES,
    DATA_KEY_BYTES,
    MESSAGE_ID_BYTES,
    V3_SUITE_ID_BYTES,
)

_DEK_INFO = V3_SUITE_ID_BYTES + b"DERIVEKEY"
_COMMIT_INFO = V3_SUITE_ID_BYTES + b"COMMITKEY"
_SHA512_BYTES = 64
# Both outputs fit in one SHA-512 block, so HKDF-Expand (RFC 5869) is its first
# block alone: T(1) = HMAC(PRK, info || 0x01), truncated. One C call each instead of
# cryptography's HKDFExpand objects: this runs once per object written.
assert max(DATA_KEY_BYTES, COMMITMENT_BYTES) <= _SHA512_BYTES


def derive_v3_keys(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """Return (DEK, 32 bytes; commitment, 28 bytes) for a 32-byte data key and message id.

    Raises ValueError on wrong input lengths (a caller bug: the envelope parser and
    the unwrap functions already guarantee them).
    """
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"the data key must be {DATA_KEY_BYTES} bytes, not {len(data_key)}")
    if len(message_id) != MESSAGE_ID_BYTES:
        raise ValueError(f"the message id must be {MESSAGE_ID_BYTES} bytes, not {len(message_id)}")
    # HKDF-Extract is HMAC with the salt as key; done by hand because the spec keeps
    # one PRK for two Expand calls, which cryptography's one-shot HKDF cannot do.
    prk = hmac.digest(message_id, data_key, "sha512")
    dek = hmac.digest(prk, _DEK_INFO + b"\x01", "sha512")[:DATA_KEY_BYTES]
    commitment = hmac.digest(prk, _COMMIT_INFO + b"\x01", "sha512")[:COMMITMENT_BYTES]
    return dek, commitment
