"""Names and sizes of the S3 Encryption Client wire format (FORMAT.md §2-§4).

Strings here are stored verbatim in object metadata and instruction files, and some
are authenticated (the content-cipher string is the AAD of an AES/GCM wrap, part of
an RSA-OAEP pre-image and of a KMS encryption context): never change their spelling.
"""

from __future__ import annotations

from typing import Final

# Content ciphers: the value of x-amz-cek-alg (V2) or x-amz-c (V3).
CEK_GCM: Final = "AES/GCM/NoPadding"
CEK_CBC: Final = "AES/CBC/PKCS5Padding"  # legacy, unauthenticated: decrypt only
SUITE_V3: Final = "115"  # ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (suite id 0x0073)

# Wrap algorithms: the value of x-amz-wrap-alg (V2); V3 stores a two-digit code.
WRAP_AES_GCM: Final = "AES/GCM"
WRAP_RSA_OAEP_SHA1: Final = "RSA-OAEP-SHA1"
WRAP_KMS_CONTEXT: Final = "kms+context"

# Legacy wraps, decrypt only and only behind the caller's explicit opt-in.
WRAP_KMS_LEGACY: Final = "kms"
WRAP_AES_KEYWRAP: Final = "AESWrap"
WRAP_RSA_OAEP_SHA256: Final = "RSA/ECB/OAEPWithSHA-256AndMGF1Padding"
LEGACY_WRAPS: Final = frozenset({WRAP_KMS_LEGACY, WRAP_AES_KEYWRAP, WRAP_RSA_OAEP_SHA256})

V2_WRAPS: Final = frozenset({WRAP_AES_GCM, WRAP_RSA_OAEP_SHA1, WRAP_KMS_CONTEXT}) | LEGACY_WRAPS
KMS_WRAPS: Final = frozenset({WRAP_KMS_CONTEXT, WRAP_KMS_LEGACY})
# Raw-key wraps whose unwrap authenticates (a wrong key fails, it yields no garbage):
# only these may be tried with keys the envelope does not name.
AUTHENTICATED_RAW_WRAPS: Final = frozenset({WRAP_AES_GCM, WRAP_RSA_OAEP_SHA1})

# x-amz-w code -> canonical (V2) wrap name. V3 knows no legacy wrap.
V3_WRAP_CODES: Final = {"02": WRAP_AES_GCM, "12": WRAP_KMS_CONTEXT, "22": WRAP_RSA_OAEP_SHA1}
V3_WRAP_NAMES: Final = {name: code for code, name in V3_WRAP_CODES.items()}

# Sizes in bytes unless the name says otherwise.
DATA_KEY_BYTES: Final = 32
GCM_IV_BYTES: Final = 12
CBC_IV_BYTES: Final = 16
GCM_TAG_BYTES: Final = 16
GCM_TAG_BITS: Final = 128
MESSAGE_ID_BYTES: Final = 28
COMMITMENT_BYTES: Final = 28
AES_KEY_SIZES: Final = frozenset({16, 24, 32})
# NIST SP 800-38D: at most 2^32 - 2 blocks of 16 bytes under one key and IV.
GCM_MAX_PLAINTEXT: Final = 68_719_476_704

# V3 content encryption (FORMAT.md §4): fixed IV, AAD = the suite id as two bytes.
V3_CONTENT_IV: Final = b"\x01" * GCM_IV_BYTES
V3_SUITE_ID_BYTES: Final = b"\x00\x73"

METADATA_LIMIT_BYTES: Final = 2048

# KMS encryption-context keys the format owns: a user context must not set them.
RESERVED_CONTEXT_KEY: Final = "aws:x-amz-cek-alg"
LEGACY_KMS_CONTEXT_KEY: Final = "kms_cmk_id"  # the whole context of a legacy `kms` wrap
RESERVED_CONTEXT_KEYS: Final = frozenset({RESERVED_CONTEXT_KEY, LEGACY_KMS_CONTEXT_KEY})

# Metadata / instruction-file map keys (without S3's x-amz-meta- prefix).
META_KEY_V1: Final = "x-amz-key"
META_KEY_V2: Final = "x-amz-key-v2"
META_KEY_V3: Final = "x-amz-3"
META_IV: Final = "x-amz-iv"
META_MATDESC: Final = "x-amz-matdesc"
META_WRAP_ALG: Final = "x-amz-wrap-alg"
META_CEK_ALG: Final = "x-amz-cek-alg"
META_TAG_LEN: Final = "x-amz-tag-len"
META_CONTENT_CIPHER_V3: Final = "x-amz-c"
META_WRAP_V3: Final = "x-amz-w"
META_MATDESC_V3: Final = "x-amz-m"
META_CONTEXT_V3: Final = "x-amz-t"
META_COMMITMENT_V3: Final = "x-amz-d"
META_MESSAGE_ID_V3: Final = "x-amz-i"
META_UNENCRYPTED_LENGTH: Final = "x-amz-unencrypted-content-length"
META_INSTRUCTION_MARKER: Final = "x-amz-crypto-instr-file"  # Java's, on the instruction object

# The entries that hold the wrapped data key and say what wraps it: what a re-wrap
# replaces. V3 keeps exactly these in an instruction file (V2 moves its whole envelope).
V2_DATA_KEY_ENTRIES: Final = (META_KEY_V2, META_WRAP_ALG, META_MATDESC)
V3_DATA_KEY_ENTRIES: Final = (META_KEY_V3, META_WRAP_V3, META_MATDESC_V3, META_CONTEXT_V3)
# Every entry an envelope puts in object metadata (x-amz-unencrypted-content-length too):
# the rest of an object's metadata is the user's own.
ENVELOPE_ENTRIES: Final = frozenset(
    {
        META_KEY_V1,
        META_KEY_V2,
        META_KEY_V3,
        META_IV,
        META_MATDESC,
        META_WRAP_ALG,
        META_CEK_ALG,
        META_TAG_LEN,
        META_CONTENT_CIPHER_V3,
        META_WRAP_V3,
        META_MATDESC_V3,
        META_CONTEXT_V3,
        META_COMMITMENT_V3,
        META_MESSAGE_ID_V3,
        META_UNENCRYPTED_LENGTH,
    }
)
