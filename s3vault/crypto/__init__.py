"""The S3 Encryption Client envelope format, pure: bytes in, bytes out.

- `constants`: the wire names and sizes;
- `envelope`: the envelope read from and written to metadata and instruction files;
- `wrap`: the data key wrapped with a master key (AES/GCM, RSA-OAEP; legacy reads);
- `kdf`: V3 key derivation and key commitment;
- `content`: streaming encryption and decryption of an object's body;
- `edit`: an existing envelope edited (its data-key part replaced, the user's entries).

No I/O here: S3, KMS and the keyring are the callers' business.
"""

from s3vault.crypto.constants import (
    CEK_CBC,
    CEK_GCM,
    DATA_KEY_BYTES,
    ENVELOPE_ENTRIES,
    GCM_MAX_PLAINTEXT,
    GCM_TAG_BYTES,
    LEGACY_WRAPS,
    METADATA_LIMIT_BYTES,
    RESERVED_CONTEXT_KEY,
    SUITE_V3,
    V3_WRAP_CODES,
    WRAP_AES_GCM,
    WRAP_AES_KEYWRAP,
    WRAP_KMS_CONTEXT,
    WRAP_KMS_LEGACY,
    WRAP_RSA_OAEP_SHA1,
    WRAP_RSA_OAEP_SHA256,
)
from s3vault.crypto.content import (
    ContentDecryptor,
    ContentEncryptor,
    ciphertext_length,
    plaintext_length,
    start_decryption,
    start_encryption,
)
from s3vault.crypto.edit import data_key_envelope, replace_data_key, user_entries
from s3vault.crypto.envelope import (
    Envelope,
    Location,
    Version,
    check_metadata_size,
    expects_instruction_file,
    instruction_file_body,
    metadata_size,
    needs_instruction_file,
    parse_envelope,
    parse_instruction_file,
    render_envelope,
)
from s3vault.crypto.kdf import derive_v3_keys
from s3vault.crypto.wrap import (
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

__all__ = [
    "CEK_CBC",
    "CEK_GCM",
    "DATA_KEY_BYTES",
    "ENVELOPE_ENTRIES",
    "GCM_MAX_PLAINTEXT",
    "GCM_TAG_BYTES",
    "LEGACY_WRAPS",
    "METADATA_LIMIT_BYTES",
    "RESERVED_CONTEXT_KEY",
    "SUITE_V3",
    "V3_WRAP_CODES",
    "WRAP_AES_GCM",
    "WRAP_AES_KEYWRAP",
    "WRAP_KMS_CONTEXT",
    "WRAP_KMS_LEGACY",
    "WRAP_RSA_OAEP_SHA1",
    "WRAP_RSA_OAEP_SHA256",
    "ContentDecryptor",
    "ContentEncryptor",
    "Envelope",
    "Location",
    "Version",
    "aes_ecb_unwrap",
    "aes_gcm_unwrap",
    "aes_gcm_wrap",
    "aes_keywrap_unwrap",
    "check_metadata_size",
    "ciphertext_length",
    "data_key_envelope",
    "derive_v3_keys",
    "expects_instruction_file",
    "instruction_file_body",
    "kms_encryption_context",
    "metadata_size",
    "needs_instruction_file",
    "parse_envelope",
    "parse_instruction_file",
    "plaintext_length",
    "render_envelope",
    "replace_data_key",
    "rsa_oaep_sha256_unwrap",
    "rsa_oaep_unwrap",
    "rsa_oaep_wrap",
    "rsa_pkcs1_unwrap",
    "start_decryption",
    "start_encryption",
    "user_context",
    "user_entries",
]
