"""What the vault's operations return: results in the user's words, and sealed objects."""

from __future__ import annotations

from dataclasses import dataclass

from s3vault.remote.objects import s3_url


@dataclass(frozen=True)
class PutResult:
    bucket: str
    key: str
    etag: str
    version_id: str | None
    plaintext_size: int
    ciphertext_size: int
    format: str
    location: str
    key_name: str
    wrap_algorithm: str
    instruction_file: str | None  # the key of the instruction file written, if any

    @property
    def url(self) -> str:
        return s3_url(self.bucket, self.key)


@dataclass(frozen=True)
class SealedObject:
    """A small object encrypted in memory (`Vault.seal`): what `Vault.put` would store."""

    key: str
    body: bytes  # ciphertext followed by the GCM tag
    metadata: dict[str, str]  # the envelope (or V3's part of it) and the extra metadata
    instruction: bytes | None  # body of the instruction file, written after the object
    instruction_key: str | None  # where that body goes: KEY + the vault's suffix
    plaintext_size: int
    format: str
    location: str
    key_name: str
    wrap_algorithm: str


@dataclass(frozen=True)
class GetResult:
    bucket: str
    key: str
    plaintext_size: int
    format: str
    key_name: str | None
    destination: str


@dataclass(frozen=True)
class PrefixEntry:
    """A "folder" in a non-recursive listing."""

    bucket: str
    prefix: str
