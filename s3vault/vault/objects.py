"""What s3vault tells about a stored object: its envelope, decoded, in the user's words."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from s3vault.crypto.constants import CEK_CBC, CEK_GCM, SUITE_V3
from s3vault.crypto.content import plaintext_length
from s3vault.crypto.envelope import Envelope
from s3vault.remote.objects import ObjectHead
from s3vault.vault.key_check import KeyIdentity, named_key

CONTENT_CIPHER_NAMES = {
    SUITE_V3: "AES-256-GCM, HKDF-SHA512 key derivation and key commitment (suite 115)",
    CEK_GCM: "AES-256-GCM",
    CEK_CBC: "AES-256-CBC with PKCS#5 padding (legacy, unauthenticated)",
}


def _b64(value: bytes | None) -> str | None:
    return base64.b64encode(value).decode("ascii") if value is not None else None


@dataclass(frozen=True)
class ObjectInfo:
    """One object: its S3 facts and, when encrypted, its decoded envelope."""

    bucket: str
    key: str
    ciphertext_size: int
    etag: str
    last_modified: datetime | None
    version_id: str | None
    envelope: Envelope | None
    envelope_error: str | None = None
    instruction_file: str | None = None  # the key of the object holding the envelope, if any
    # Set by `Vault.identify_key` (the data key opened); else what the envelope names.
    checked_key: KeyIdentity | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def encrypted(self) -> bool:
        return self.envelope is not None

    @property
    def master_key(self) -> KeyIdentity | None:
        """The master key: as checked by `Vault.identify_key`, else as the envelope
        names it (unconfirmed); None for a plain object."""
        if self.checked_key is not None:
            return self.checked_key
        return named_key(self.envelope) if self.envelope is not None else None

    def with_checked_key(self, key: KeyIdentity) -> ObjectInfo:
        return replace(self, checked_key=key)

    @property
    def key_name(self) -> str | None:
        key = self.master_key
        return key.key_name if key is not None else None

    @property
    def plaintext_size(self) -> int | None:
        if self.envelope is None:
            return self.ciphertext_size
        return plaintext_length(self.ciphertext_size, self.envelope)

    @property
    def format_label(self) -> str:
        if self.envelope is not None:
            return self.envelope.version.value
        return "invalid" if self.envelope_error else "plain"

    @classmethod
    def from_head(
        cls,
        head: ObjectHead,
        envelope: Envelope | None,
        error: str | None = None,
        *,
        instruction_file: str | None = None,
    ) -> ObjectInfo:
        return cls(
            bucket=head.bucket,
            key=head.key,
            ciphertext_size=head.size,
            etag=head.etag,
            last_modified=head.last_modified,
            version_id=head.version_id,
            envelope=envelope,
            envelope_error=error,
            instruction_file=instruction_file,
        )

    def to_json(self) -> dict[str, Any]:
        """Every envelope field, decoded; binary values in standard base64.

        The master key fields (docs/format.md, "What inspect shows"): ``key_name``,
        ``key_names``, ``kms_key_id``, ``key_source``, ``key_confirmed``, ``key_check``
        and ``key_check_message``; all null / false / "not-checked" for a plain object.
        """
        data: dict[str, Any] = {
            "url": self.url,
            "bucket": self.bucket,
            "key": self.key,
            "encrypted": self.encrypted,
            "format": self.format_label,
            "ciphertext_size": self.ciphertext_size,
            "plaintext_size": self.plaintext_size,
            "etag": self.etag,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
            "version_id": self.version_id,
            **(self.master_key or KeyIdentity()).to_json(),
        }
        if self.envelope_error:
            data["error"] = self.envelope_error
        env = self.envelope
        if env is None:
            return data
        kms = env.is_kms
        data.update(
            {
                "location": env.location.value,
                "instruction_file": self.instruction_file,
                "content_cipher": env.content_cipher,
                "content_cipher_name": CONTENT_CIPHER_NAMES.get(env.content_cipher),
                "wrap_algorithm": env.wrap_algorithm
                or ("AES/ECB or RSA/PKCS1 (legacy V1)" if env.version.value == "v1" else None),
                "description": None if kms else dict(env.description),
                "encryption_context": dict(env.description) if kms else None,
                "encrypted_data_key": _b64(env.encrypted_data_key),
                "encrypted_data_key_size": len(env.encrypted_data_key),
                "iv": _b64(env.iv),
                "message_id": _b64(env.message_id),
                "commitment": _b64(env.commitment),
                "tag_length": env.tag_length,
                "legacy": env.is_legacy,
            }
        )
        return data
