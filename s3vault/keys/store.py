"""Named master keys and which one is current: `KeyStore`, over one of two storages.

Records (`keys.storage`): ``NAME`` holds a key, JSON ``{"v": 1, "type":
"aes"|"rsa"|"kms", "created": ISO 8601, ...}`` with the material as base64 (or the KMS
key id); ``__index__`` holds the non-secret list of keys (type, created, fingerprint,
bits, KMS key id) and the ``current`` key, so that ``list()`` reads no secret.

The storage is the OS keyring (`keys.keyring_storage`, the default) or one
passphrase-encrypted file (`keys.file_storage`, ``keystore.type: file``);
`keys.open.keystore_from_config` chooses. Every change (put, delete, set_current) is
one transaction of the storage: it holds a cross-process lock file while it reads,
changes and writes the index, so parallel processes never lose each other's updates.
A key is written before the index names it; on delete the index drops it first, then
the key goes, so an interruption leaves at worst an unlisted key that a second put or
delete cleans up, never a listed key that is gone.
"""

from __future__ import annotations

import base64
import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from s3vault.errors import (
    ConflictError,
    KeyMissingError,
    S3VaultError,
)
from s3vault.keys.keyring_storage import RECORD_VERSION, KeyringStorage
from s3vault.keys.material import (
    AesKey,
    KeyType,
    KmsKey,
    MasterKey,
    RsaKey,
    same_material,
    validate_name,
)
from s3vault.keys.storage import DamagedRecordError, Record, Storage, TornRecordError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

    from s3vault.keys.backend import PasswordBackend

INDEX = "__index__"

PutResult = Literal["created", "unchanged", "replaced"]

__all__ = ["INDEX", "KeyInfo", "KeyStore", "PutResult", "TornRecordError"]


@dataclass(frozen=True)
class KeyInfo:
    """What `s3vault key list` shows about a key: nothing secret."""

    name: str
    type: KeyType
    created: str
    fingerprint: str
    bits: int | None
    key_id: str | None
    current: bool


class KeyStore:
    """Named master keys, plus which one is current.

    ``KeyStore(service)`` keeps them in the OS keyring under ``service`` (the config's
    ``keyring.service``); ``KeyStore(storage=...)`` in another `Storage` (the file
    keystore). Building one touches nothing: the keyring or the file is opened on
    first use.
    """

    def __init__(
        self,
        service: str = "s3vault",
        *,
        backend: KeyringBackend | None = None,
        storage: Storage | None = None,
    ):
        self.storage: Storage = storage or KeyringStorage(service, backend=backend)

    def __repr__(self) -> str:
        return f"KeyStore({self.storage!r})"

    @property
    def where(self) -> str:
        """Where the keys are, for messages: "the keyring", "the keystore file PATH"."""
        return self.storage.where

    @property
    def service(self) -> str:
        """The keyring service (keyring store only)."""
        return self._keyring().service

    @property
    def backend(self) -> PasswordBackend:
        """The OS keyring backend (keyring store only), resolved on first use."""
        return self._keyring().backend

    def _keyring(self) -> KeyringStorage:
        if not isinstance(self.storage, KeyringStorage):
            raise TypeError(f"{self!r} does not keep its keys in the keyring")
        return self.storage

    # --- public API -------------------------------------------------------------

    def names(self) -> builtins.list[str]:
        return sorted(self._read_index()["keys"])

    def list(self) -> builtins.list[KeyInfo]:
        index = self._read_index()
        return [
            KeyInfo(
                name=name,
                type=entry["type"],
                created=entry["created"],
                fingerprint=entry["fingerprint"],
                bits=entry.get("bits"),
                key_id=entry.get("key_id"),
                current=name == index["current"],
            )
            for name, entry in sorted(index["keys"].items())
        ]

    def get(self, name: str) -> MasterKey:
        """The key named ``name``; KeyMissingError if there is none."""
        validate_name(name)
        record = self.storage.read(name, what=f"key '{name}'")
        if record is None:
            raise self._missing(name)
        return _key_from_record(name, record)

    def created(self, name: str) -> str | None:
        """When the key ``name`` was first stored (ISO 8601), from the index."""
        entry = self._read_index()["keys"].get(name)
        return entry.get("created") if entry else None

    def put(self, key: MasterKey, *, force: bool = False, created: str | None = None) -> PutResult:
        """Store ``key`` under its name; idempotent for the same material.

        Same name and same material: "unchanged" (nothing written but a missing index
        entry). Same name, other material: ConflictError unless ``force``.
        ``created`` (ISO 8601) keeps the creation time of a key copied from another
        store; default: now.
        """
        name = validate_name(key.name)
        outcome: PutResult = "created"
        created = created or _now()
        with self.storage.transaction():
            try:
                existing = self.storage.read(name, what=f"key '{name}'")
            except DamagedRecordError:
                if not force:
                    raise
                existing, outcome = None, "replaced"
            if existing is not None:
                if same_material(_key_from_record(name, existing), key):
                    self._index_add(key, existing.get("created") or created)
                    return "unchanged"
                if not force:
                    raise ConflictError(
                        f"a different key named '{name}' is already in {self.where}",
                        hint="Choose another name, or pass --force to replace it (objects "
                        "wrapped by the old key then need a copy of it to be read).",
                    )
                outcome = "replaced"
            self.storage.write(name, _record_from_key(key, created))
            self._index_add(key, created)
        return outcome

    def delete(self, name: str) -> None:
        """Remove the key ``name`` (index entry first, then the secret)."""
        validate_name(name)
        with self.storage.transaction():
            index = self._read_index()
            listed = name in index["keys"]
            try:
                present = self.storage.read(name, what=f"key '{name}'") is not None
            except DamagedRecordError:
                present = True  # a damaged key can be deleted
            if not listed and not present:
                raise self._missing(name)
            if listed:
                del index["keys"][name]
                if index["current"] == name:
                    # No silent switch to another key: new objects then need an explicit one.
                    index["current"] = None
                self.storage.write(INDEX, index)
            self.storage.remove(name)

    def set_current(self, name: str) -> None:
        """Make ``name`` the key used for new objects when none is named."""
        with self.storage.transaction():
            key = self.get(name)  # must exist and be readable
            self._index_add(key, None, make_current=True)

    def current(self) -> str | None:
        current = self._read_index()["current"]
        return current if isinstance(current, str) else None

    # --- index ------------------------------------------------------------------

    def _read_index(self) -> Record:
        index = self.storage.read(INDEX, what="the key index")
        if index is None:
            return {"v": RECORD_VERSION, "current": None, "keys": {}}
        index.setdefault("current", None)
        index.setdefault("keys", {})
        return index

    def _index_add(
        self, key: MasterKey, created: str | None, *, make_current: bool = False
    ) -> None:
        index = self._read_index()
        old = index["keys"].get(key.name)
        entry = {
            "type": key.type,
            "created": created or (old or {}).get("created") or _now(),
            "fingerprint": key.fingerprint,
            "bits": key.bits,
            "key_id": key.key_id if isinstance(key, KmsKey) else None,
        }
        current = key.name if make_current or index["current"] is None else index["current"]
        if old == entry and current == index["current"]:
            return
        index["keys"][key.name] = entry
        index["current"] = current
        self.storage.write(INDEX, index)

    def _missing(self, name: str) -> KeyMissingError:
        return KeyMissingError(
            f"no key named '{name}' in {self.where}",
            hint="`s3vault key list` shows the keys you have.",
        )


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _record_from_key(key: MasterKey, created: str) -> dict[str, Any]:
    record: dict[str, Any] = {"v": RECORD_VERSION, "type": key.type, "created": created}
    if isinstance(key, AesKey):
        record["secret"] = base64.b64encode(key.secret).decode()
    elif isinstance(key, RsaKey):
        record["pkcs8"] = base64.b64encode(key.pkcs8_der()).decode()
    else:
        record["key_id"] = key.key_id
    return record


def _key_from_record(name: str, record: dict[str, Any]) -> MasterKey:
    from cryptography.hazmat.primitives import serialization

    kind = record.get("type")
    try:
        if record.get("v") != RECORD_VERSION:
            raise ValueError("unknown record version")
        if kind == "aes":
            return AesKey(name, base64.b64decode(record["secret"], validate=True))
        if kind == "rsa":
            der = base64.b64decode(record["pkcs8"], validate=True)
            private = serialization.load_der_private_key(der, password=None)
            pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return RsaKey(name, pem)
        if kind == "kms":
            return KmsKey(name, str(record["key_id"]))
    except (KeyError, TypeError, ValueError, S3VaultError):
        pass  # no detail: it could quote the material
    raise DamagedRecordError(
        f"the record of key '{name}' is not a readable s3vault key",
        hint="Import the key again from a backup with --force, or remove it with "
        "`s3vault key delete NAME`.",
    )
