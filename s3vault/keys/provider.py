"""The key provider: which master key wraps a new data key, and which opens an old one.

A new object's data key is wrapped by the key the caller names, else the configured
default, else the store's current key. Raw keys name themselves in the object's
description (``{"s3vault-key": NAME}``); that description is not authenticated, so it
only chooses which key to try first. KMS keys need no local secret: a KMS key is either
a named reference in the store or written ``kms:KEY_ID`` (no keyring needed at all).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3vault.crypto.constants import (
    CEK_GCM,
    DATA_KEY_BYTES,
    RESERVED_CONTEXT_KEY,
    SUITE_V3,
    WRAP_AES_GCM,
    WRAP_KMS_CONTEXT,
    WRAP_KMS_LEGACY,
    WRAP_RSA_OAEP_SHA1,
)
from s3vault.crypto.wrap import (
    aes_gcm_wrap,
    kms_encryption_context,
    rsa_oaep_wrap,
    user_context,
)
from s3vault.errors import (
    ConfigError,
    FormatError,
    IntegrityError,
    KeyMissingError,
    LegacyFormatError,
    S3VaultError,
    UsageError,
)
from s3vault.keys.kms import KmsClient
from s3vault.keys.material import (
    AesKey,
    KmsKey,
    MasterKey,
    ResolvedKey,
    validate_kms_key_id,
    validate_name,
)
from s3vault.keys.store import KeyStore
from s3vault.keys.unwrap import (
    LEGACY_RAW_WRAPS,
    RAW_WRAP_KEY_TYPES,
    check_data_key,
    check_kms_content_cipher,
    legacy_what,
    no_key_opens,
    show_mapping,
    unwrap_raw,
)

if TYPE_CHECKING:
    from s3vault.crypto.envelope import Envelope

DESCRIPTION_KEY = "s3vault-key"
KMS_PREFIX = "kms:"


@dataclass(frozen=True)
class EncryptionMaterials:
    """A new object's data key, wrapped, with the description to store beside it."""

    data_key: bytes = field(repr=False)
    encrypted_data_key: bytes
    wrap_algorithm: str
    description: dict[str, str]
    key_name: str


class KeyProvider:
    """Master keys for encrypting and decrypting data keys.

    ``store`` (or a factory for it) and ``kms_client`` (a factory for a boto3 KMS
    client, or a `KmsClient`) are used only when needed: reading a KMS-wrapped object
    without ``--key`` never opens the keyring, and raw keys never build a KMS client.
    ``default_key`` is the configured key for new objects (``defaults.key``); it wins
    over the store's current key.
    """

    def __init__(
        self,
        store: KeyStore | Callable[[], KeyStore],
        *,
        kms_client: Callable[[], Any] | KmsClient | None = None,
        default_key: str | None = None,
    ) -> None:
        self._store_source = store
        self._store = store if isinstance(store, KeyStore) else None
        self._kms_source = kms_client
        self._kms = kms_client if isinstance(kms_client, KmsClient) else None
        self._default_key = default_key
        # The keys read inside `remembering_keys` blocks (see there); empty outside.
        self._remember_lock = threading.Lock()
        self._remember_depth = 0
        self._remembered: dict[str, MasterKey] = {}
        self._remembered_current: str | None = None

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            source = self._store_source
            self._store = source if isinstance(source, KeyStore) else source()
        return self._store

    @property
    def kms(self) -> KmsClient:
        if self._kms is None:
            if self._kms_source is None or isinstance(self._kms_source, KmsClient):
                raise ConfigError("this s3vault has no KMS client configured")
            self._kms = KmsClient(self._kms_source)
        return self._kms

    @contextmanager
    def remembering_keys(self) -> Iterator[None]:
        """Read each stored key from the keyring at most once inside this block.

        A sync run encrypts thousands of files with the same key; without this every
        file would cost a keyring round trip (D-Bus on Linux). The memory is dropped
        when the outermost block ends, so a long-running agent that opens one block
        per run picks up a key replaced with `key import --force` or a new current
        key (`key use`) on its next run. Blocks nest and may be used from threads.
        """
        with self._remember_lock:
            self._remember_depth += 1
        try:
            yield
        finally:
            with self._remember_lock:
                self._remember_depth -= 1
                if self._remember_depth == 0:
                    self._remembered.clear()
                    self._remembered_current = None

    def _stored(self, name: str) -> MasterKey:
        """``store.get(name)``, remembered inside a `remembering_keys` block."""
        if self._remember_depth:
            key = self._remembered.get(name)
            if key is not None:
                return key
        key = self.store.get(name)
        with self._remember_lock:
            if self._remember_depth:
                self._remembered[name] = key
        return key

    def _current(self) -> str | None:
        """``store.current()``, remembered inside a `remembering_keys` block."""
        if self._remember_depth and self._remembered_current is not None:
            return self._remembered_current
        current = self.store.current()
        with self._remember_lock:
            if self._remember_depth:
                self._remembered_current = current
        return current

    # --- encrypting -------------------------------------------------------------

    def encryption_materials(
        self,
        content_cipher: str,
        *,
        key_name: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> EncryptionMaterials:
        """A fresh data key for a new object, wrapped by the chosen master key.

        ``content_cipher`` is ``AES/GCM/NoPadding`` (V2) or ``115`` (V3): the wrap is
        bound to it. ``context`` is the KMS encryption context (authenticated by KMS)
        or, for raw keys, extra entries of the (unauthenticated) description.
        """
        if content_cipher not in (CEK_GCM, SUITE_V3):
            raise ValueError(f"s3vault does not encrypt with {content_cipher!r}")
        name = key_name or self._default_key or self._current()
        if name is None:
            raise KeyMissingError(
                "no master key for new objects: none is named and none is current",
                hint="Create one with `s3vault key generate NAME` (the first key becomes "
                "current), or pick one with `s3vault key use NAME`.",
            )
        return self.new_materials(self._named_key(name), content_cipher, context=context)

    def new_materials(
        self,
        key: MasterKey,
        content_cipher: str,
        *,
        context: Mapping[str, str] | None = None,
    ) -> EncryptionMaterials:
        """A fresh data key wrapped by ``key``, a key already read (see `named_key`).

        KMS keys make it with GenerateDataKey; raw keys take 32 bytes from the OS and
        wrap them (`wrap_data_key`).
        """
        if isinstance(key, KmsKey):
            if content_cipher not in (CEK_GCM, SUITE_V3):
                raise ValueError(f"s3vault does not encrypt with {content_cipher!r}")
            encryption_context = kms_encryption_context(dict(context or {}), content_cipher)
            data_key, blob = self.kms.generate_data_key(key.key_id, encryption_context)
            check_data_key(data_key, legacy=False)
            return EncryptionMaterials(
                data_key, blob, WRAP_KMS_CONTEXT, encryption_context, key.name
            )
        return self.wrap_data_key(os.urandom(DATA_KEY_BYTES), content_cipher, key, context=context)

    # --- decrypting -------------------------------------------------------------

    def described_key(self, description: Mapping[str, str]) -> MasterKey | None:
        """The stored key that the description names, if this store has it."""
        return self.raw_key(description.get(DESCRIPTION_KEY))

    def decrypt_data_key(
        self,
        envelope: Envelope,
        *,
        key_name: str | None = None,
        context: Mapping[str, str] | None = None,
        allow_legacy: bool = False,
    ) -> tuple[bytes, str | None]:
        """The object's data key and the name of the key that opened it.

        Raw wraps: the key the description names, then ``key_name``, then (only for
        the authenticated AES/GCM and RSA-OAEP-SHA1 wraps) every stored key of that
        type; the first that verifies wins. Unauthenticated legacy wraps are never
        guessed: they use ``key_name`` if given, else the described key, and only with
        ``allow_legacy``. KMS: ``context``, if given, must equal the stored context
        minus the reserved keys; KMS decrypts with the stored context (pinned to the
        ``key_name`` KMS key if given). The name is None for KMS without ``key_name``.

        A ``context`` for a raw wrap is a UsageError (nothing would check it).

        Raises LegacyFormatError, KeyMissingError (no key of yours can open it),
        IntegrityError (the key it names, or the one you named, does not verify; or a
        KMS context mismatch) or FormatError.
        """
        if envelope.is_legacy and not allow_legacy:
            raise LegacyFormatError(
                f"this object uses {legacy_what(envelope)}; re-run with --allow-legacy to read it",
                hint="Legacy formats are not authenticated like V2/V3; "
                "re-encrypt the object once you have read it.",
            )
        if envelope.is_kms:
            return self._decrypt_kms(envelope, key_name, context)
        if context is not None:
            # Only KMS checks a context. A raw key's description is not authenticated:
            # comparing it would promise a check that does not happen.
            raise UsageError(
                "--context is checked only for objects whose data key AWS KMS wraps; "
                f"this one is wrapped by a {envelope.wrap_algorithm} key",
                hint="Leave out --context; `s3vault inspect` shows the object's description.",
            )
        return self._decrypt_raw(envelope, key_name)

    def _decrypt_kms(
        self, envelope: Envelope, key_name: str | None, context: Mapping[str, str] | None
    ) -> tuple[bytes, str | None]:
        stored = dict(envelope.description)
        check_kms_content_cipher(envelope)
        if context is not None:
            expected = user_context(stored)
            if dict(context) != expected:
                raise IntegrityError(
                    "the encryption context does not match the object's: it was written "
                    f"with {show_mapping(expected)}, you gave {show_mapping(dict(context))}",
                    hint="Pass exactly the object's context (or none to read it as is).",
                )
        kms_key_id = None
        if key_name is not None:
            key = self._named_key(key_name)
            if not isinstance(key, KmsKey):
                raise UsageError(
                    f"key '{key_name}' is an {key.type.upper()} key, but this object's data "
                    "key is wrapped by AWS KMS"
                )
            kms_key_id = key.key_id
        data_key = self.kms.decrypt(envelope.encrypted_data_key, stored, key_id=kms_key_id)
        check_data_key(data_key, legacy=envelope.wrap_algorithm == WRAP_KMS_LEGACY)
        return data_key, key_name

    def _decrypt_raw(self, envelope: Envelope, key_name: str | None) -> tuple[bytes, str]:
        wrap = envelope.wrap_algorithm
        if wrap not in RAW_WRAP_KEY_TYPES and wrap not in LEGACY_RAW_WRAPS:
            raise FormatError(f"unknown wrap algorithm {wrap!r}")
        authenticated = wrap in RAW_WRAP_KEY_TYPES
        described = envelope.description.get(DESCRIPTION_KEY)

        # Explicit choices first: the key the description names (not for legacy wraps
        # when the user named one: with no check, the user's word wins), then --key.
        names: list[str] = []
        if described is not None and (authenticated or key_name is None):
            names.append(described)
        if key_name is not None and key_name not in names:
            names.append(key_name)

        failed: list[str] = []  # explicitly chosen keys that did not verify
        mismatched: list[str] = []  # explicitly chosen keys of the wrong type
        for name in names:
            key = self._named_key(name) if name == key_name else self.raw_key(name)
            opened = self._try_key(key, envelope, failed, mismatched, name)
            if opened is not None:
                return opened, name
        if authenticated:
            tried = set(names)
            wanted = RAW_WRAP_KEY_TYPES[wrap]
            for info in self.store.list():
                if info.type != wanted or info.name in tried:
                    continue
                try:
                    key = self._stored(info.name)
                except S3VaultError:
                    continue  # a damaged entry cannot open anything; others may
                opened = self._try_key(key, envelope, [], [], info.name)
                if opened is not None:
                    return opened, info.name
        raise no_key_opens(envelope, described, key_name, failed, mismatched)

    @staticmethod
    def _try_key(
        key: MasterKey | None,
        envelope: Envelope,
        failed: list[str],
        mismatched: list[str],
        name: str,
    ) -> bytes | None:
        """The data key if ``key`` opens the wrap; records why it did not."""
        if key is None:
            return None
        try:
            data_key = unwrap_raw(key, envelope)
        except IntegrityError:
            failed.append(name)
            return None
        if data_key is None:
            mismatched.append(name)
            return None
        return data_key

    # --- rotation ---------------------------------------------------------------

    def named_key(self, name: str) -> MasterKey:
        """The key a user or config named (``kms:KEY_ID`` needs no store)."""
        return self._named_key(name)

    def resolve_key(self, name: str) -> ResolvedKey:
        """The key a user or config named, and for a KMS key its ARN (DescribeKey).

        KeyMissingError (and KMS errors) here, before any object is touched.
        """
        key = self._named_key(name)
        arn = self.kms.key_arn(key.key_id) if isinstance(key, KmsKey) else None
        return ResolvedKey(name, key, arn)

    def wrap_data_key(
        self,
        data_key: bytes,
        content_cipher: str,
        key: MasterKey,
        *,
        context: Mapping[str, str] | None = None,
    ) -> EncryptionMaterials:
        """Wrap a given data key with ``key`` (a new object's, or a re-wrap's).

        ``content_cipher`` is ``AES/GCM/NoPadding`` (V2) or ``115`` (V3): the wrap is
        bound to it. A KMS key gets the encryption context ``context`` ∪
        ``{"aws:x-amz-cek-alg": content_cipher}`` (KMS Encrypt), a raw key the
        description ``{"s3vault-key": NAME}`` ∪ ``context``.
        """
        if content_cipher not in (CEK_GCM, SUITE_V3):
            raise ValueError(f"s3vault does not wrap for {content_cipher!r}")
        check_data_key(data_key, legacy=False)
        context = dict(context or {})
        if isinstance(key, KmsKey):
            encryption_context = kms_encryption_context(context, content_cipher)
            blob = self.kms.encrypt(key.key_id, data_key, encryption_context)
            return EncryptionMaterials(
                data_key, blob, WRAP_KMS_CONTEXT, encryption_context, key.name
            )
        for reserved in (DESCRIPTION_KEY, RESERVED_CONTEXT_KEY):
            if reserved in context:
                raise UsageError(f"the context key {reserved!r} is reserved by s3vault")
        description = {DESCRIPTION_KEY: key.name, **context}
        if isinstance(key, AesKey):
            edk = aes_gcm_wrap(key.secret, data_key, content_cipher)
            return EncryptionMaterials(data_key, edk, WRAP_AES_GCM, description, key.name)
        edk = rsa_oaep_wrap(key.public_key(), data_key, content_cipher)
        return EncryptionMaterials(data_key, edk, WRAP_RSA_OAEP_SHA1, description, key.name)

    @staticmethod
    def unwrap_with(key: MasterKey, envelope: Envelope) -> bytes | None:
        """The data key if raw ``key`` opens the envelope's wrap; None if it does not.

        None for a wrong key, a key of the other type and KMS keys or wraps alike.
        Legacy wraps are the caller's to gate (see `decrypt_data_key`).
        """
        if isinstance(key, KmsKey) or envelope.is_kms:
            return None
        try:
            return unwrap_raw(key, envelope)
        except IntegrityError:
            return None

    def decrypt_kms_data_key(self, envelope: Envelope) -> tuple[bytes, str]:
        """The data key of a KMS-wrapped object and the ARN of the KMS key that wrapped it."""
        if not envelope.is_kms:
            raise ValueError("not a KMS-wrapped data key")
        check_kms_content_cipher(envelope)
        data_key, arn = self.kms.decrypt_with_key_id(
            envelope.encrypted_data_key, envelope.description
        )
        check_data_key(data_key, legacy=envelope.wrap_algorithm == WRAP_KMS_LEGACY)
        return data_key, arn

    def open_with(self, key: ResolvedKey, envelope: Envelope) -> bytes | None:
        """The data key if exactly ``key`` wraps it; None if another key (or type) does.

        A raw key unwraps (`unwrap_with`); a KMS key asks KMS to decrypt and compares
        the ARN of the key that wrapped it, so KMS errors (access denied, unreachable)
        are raised, not taken for "another key".
        """
        if not key.is_kms:
            return self.unwrap_with(key.key, envelope)
        if not envelope.is_kms:
            return None
        data_key, arn = self.decrypt_kms_data_key(envelope)
        return data_key if arn == key.arn else None

    @staticmethod
    def context_of(envelope: Envelope) -> dict[str, str]:
        """The context its writer gave with the data key: what a re-wrap carries over.

        For KMS the encryption context without the entries the format adds; for a raw
        key the description without ``s3vault-key``. `wrap_data_key` with this context
        gives a new wrap the same entries.
        """
        if envelope.is_kms:
            return user_context(envelope.description)
        return {k: v for k, v in envelope.description.items() if k != DESCRIPTION_KEY}

    # --- keys by name -----------------------------------------------------------

    def _named_key(self, name: str) -> MasterKey:
        """The key a user or config named: ``kms:KEY_ID`` needs no store."""
        if name.startswith(KMS_PREFIX):
            return KmsKey(name, validate_kms_key_id(name[len(KMS_PREFIX) :]))
        return self._stored(name)

    def raw_key(self, name: object) -> MasterKey | None:
        """The raw (AES or RSA) key of the store named ``name``; None if there is none.

        Made for names read from an envelope's description, which whoever wrote the
        object chose: a name that is not a valid key name, is not in the store or names
        a KMS key is simply not a match. Remembered inside a `remembering_keys` block.
        """
        if not isinstance(name, str):
            return None
        try:
            key = self._stored(validate_name(name))
        except (KeyMissingError, UsageError):
            return None
        return None if isinstance(key, KmsKey) else key
