"""Master keys as values: AES secrets, RSA key pairs, KMS key references.

Pure code (no keyring, no KMS calls): parsing what a user imports, generating new
keys, naming them, and fingerprints for display. Secret bytes never appear in a
``repr()`` or in an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar, Literal, TypeAlias

from s3vault.errors import RefusedError, UsageError

if TYPE_CHECKING:
    # cryptography's RSA and serialization are imported where they are used: `key
    # list` and an AES key's commands never need them.
    from cryptography.hazmat.primitives.asymmetric import rsa

KeyType: TypeAlias = Literal["aes", "rsa", "kms"]
GenerateType: TypeAlias = Literal["aes256", "rsa2048", "rsa3072", "rsa4096"]
GENERATE_TYPES: tuple[GenerateType, ...] = ("aes256", "rsa2048", "rsa3072", "rsa4096")

AES_KEY_BYTES = frozenset({16, 24, 32})
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
# Longest KMS key reference AWS accepts (a full alias or key ARN is far shorter).
KMS_KEY_ID_MAX = 2048

# Keyring entries are addressed by name; "#" separates the parts of a split entry and
# "__index__" is the store's own entry, so neither may be a key name.
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
RESERVED_NAMES = frozenset({"__index__"})


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a key, else raise UsageError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in RESERVED_NAMES:
        raise UsageError(
            f"invalid key name {name!r}",
            hint="A key name is 1-64 characters of letters, digits, '.', '_' and '-', "
            "not starting with '.' (e.g. laptop-2026).",
        )
    return name


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class AesKey:
    """A raw AES master key (16, 24 or 32 bytes): wraps data keys with AES/GCM."""

    name: str
    secret: bytes = field(repr=False)
    type: ClassVar[KeyType] = "aes"

    def __post_init__(self) -> None:
        if len(self.secret) not in AES_KEY_BYTES:
            raise UsageError(f"an AES key must be 16, 24 or 32 bytes, not {len(self.secret)}")

    @property
    def bits(self) -> int:
        return len(self.secret) * 8

    @property
    def fingerprint(self) -> str:
        # An HMAC, not a hash of the raw secret: a published fingerprint must not
        # let anyone test guesses of the key against an unkeyed digest of it.
        return hmac.new(self.secret, b"s3vault fingerprint", hashlib.sha256).digest()[:8].hex()


@dataclass(frozen=True)
class RsaKey:
    """An RSA key pair, kept as a PKCS#8 PEM private key: wraps with RSA-OAEP-SHA1."""

    name: str
    private_pem: bytes = field(repr=False)
    type: ClassVar[KeyType] = "rsa"

    def __post_init__(self) -> None:
        self.private_key()  # fail at construction, not at first use

    @cached_property
    def _private(self) -> rsa.RSAPrivateKey:
        return _load_rsa_private(self.private_pem)

    def private_key(self) -> rsa.RSAPrivateKey:
        return self._private

    def public_key(self) -> rsa.RSAPublicKey:
        return self._private.public_key()

    @property
    def bits(self) -> int:
        return self._private.key_size

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of the DER SubjectPublicKeyInfo."""
        from cryptography.hazmat.primitives import serialization

        spki = self.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _short_hash(spki)

    def pkcs8_der(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class KmsKey:
    """A reference to an AWS KMS key (id, ARN or alias): no secret is held locally."""

    name: str
    key_id: str
    type: ClassVar[KeyType] = "kms"

    def __post_init__(self) -> None:
        validate_kms_key_id(self.key_id)

    @property
    def bits(self) -> None:
        return None

    @property
    def fingerprint(self) -> str:
        return _short_hash(self.key_id.encode())


MasterKey: TypeAlias = AesKey | RsaKey | KmsKey


def same_material(a: MasterKey, b: MasterKey) -> bool:
    """Whether two keys are the same key, whatever their names (constant-time for secrets)."""
    if isinstance(a, AesKey) and isinstance(b, AesKey):
        return hmac.compare_digest(a.secret, b.secret)
    if isinstance(a, RsaKey) and isinstance(b, RsaKey):
        # Compare the canonical encoding, so a PKCS#1 and a PKCS#8 import of one
        # key are the same key.
        return hmac.compare_digest(a.pkcs8_der(), b.pkcs8_der())
    if isinstance(a, KmsKey) and isinstance(b, KmsKey):
        return a.key_id == b.key_id
    return False


@dataclass(frozen=True)
class ResolvedKey:
    """A master key as the user named it, with what tells it apart from other keys.

    Raw keys are told apart by name. A KMS key has many names (an alias, its id, its
    ARN, a reference in the store), so it is told apart by the ARN KMS gives it.
    """

    name: str  # as the user or the config wrote it
    key: MasterKey
    arn: str | None = None  # KMS keys only

    @property
    def is_kms(self) -> bool:
        return isinstance(self.key, KmsKey)

    def same_key_as(self, other: ResolvedKey) -> bool:
        """Whether the two name one key (a KMS alias and its ARN do)."""
        if self.is_kms or other.is_kms:
            return self.arn == other.arn
        return self.key.name == other.key.name


# --- parsing what a user imports -------------------------------------------------

AesEncoding: TypeAlias = Literal["raw", "hex", "base64"]
_HEX_RE = re.compile(rb"[0-9A-Fa-f]+")
_B64_RE = re.compile(rb"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")


def parse_aes(name: str, data: bytes) -> tuple[AesKey, AesEncoding]:
    """An AES key from raw bytes, hex or base64 text; also says which form it was.

    Text forms are tried first (on the text with whitespace removed): a 32-byte raw
    key that happens to be all hex digits is read as hex. A random key does that with
    probability (22/256)^32, a typed passphrase does it on purpose: either way the
    caller shows the form and size it used.
    """
    text = b"".join(data.split())
    if text and _HEX_RE.fullmatch(text) and len(text) % 2 == 0:
        decoded = binascii.unhexlify(text)
        if len(decoded) in AES_KEY_BYTES:
            return AesKey(name, decoded), "hex"
    if text and _B64_RE.fullmatch(text):
        try:
            altchars = b"-_" if (b"-" in text or b"_" in text) else None
            decoded = base64.b64decode(text, altchars=altchars, validate=True)
        except binascii.Error:
            decoded = b""
        if len(decoded) in AES_KEY_BYTES:
            return AesKey(name, decoded), "base64"
    if len(data) in AES_KEY_BYTES:
        return AesKey(name, data), "raw"
    raise UsageError(
        f"cannot read an AES key from {len(data)} bytes of input",
        hint="Give 16, 24 or 32 raw bytes, or the same as hex or base64 text "
        "(e.g. `openssl rand -base64 32`).",
    )


def parse_rsa(name: str, data: bytes) -> RsaKey:
    """An RSA key from a PEM private key (PKCS#1 or PKCS#8), stored as PKCS#8."""
    return RsaKey(name, _to_pkcs8_pem(_load_rsa_private(data)))


def _load_rsa_private(data: bytes) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if b"ENCRYPTED" in data:
        raise UsageError(
            "the RSA private key is protected by a passphrase",
            hint="Remove the passphrase first, e.g. `openssl pkey -in key.pem -out plain.pem`, "
            "and pipe the result to `s3vault key import NAME --type rsa --file -`.",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The library's message can quote the input: keep it out of ours.
        raise UsageError(
            "cannot read an RSA private key: expected a PEM file "
            "('BEGIN RSA PRIVATE KEY' or 'BEGIN PRIVATE KEY')"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(f"the PEM file holds a {type(key).__name__}, not an RSA private key")
    if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
        raise RefusedError(
            f"RSA keys of {key.key_size} bits are not supported: "
            f"use {RSA_MIN_BITS} to {RSA_MAX_BITS} bits"
        )
    return key


def _to_pkcs8_pem(key: rsa.RSAPrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def validate_kms_key_id(key_id: str) -> str:
    """A KMS key id, ARN or alias: checked for shape only (no call to KMS)."""
    if (
        not isinstance(key_id, str)
        or not key_id
        or len(key_id) > KMS_KEY_ID_MAX
        or not key_id.isascii()
        or not key_id.isprintable()
        or any(c.isspace() for c in key_id)
    ):
        raise UsageError(
            "invalid KMS key id",
            hint="Give a key id, key ARN or alias, e.g. alias/s3vault or "
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab.",
        )
    return key_id


# --- generating new keys ---------------------------------------------------------


def generate_key(name: str, kind: GenerateType = "aes256") -> AesKey | RsaKey:
    """A fresh random master key of the given kind."""
    if kind == "aes256":
        return AesKey(name, os.urandom(32))
    if kind in ("rsa2048", "rsa3072", "rsa4096"):
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
        return RsaKey(name, _to_pkcs8_pem(private))
    raise UsageError(f"unknown key type {kind!r}: choose one of {', '.join(GENERATE_TYPES)}")
