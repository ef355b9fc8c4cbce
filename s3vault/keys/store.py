"""Named master keys in the OS keyring (Secret Service, macOS Keychain, Windows).

Layout under one keyring *service* (default ``s3vault``), one entry per username:

- ``NAME``: the key's record, JSON ``{"v": 1, "type": "aes"|"rsa"|"kms", "created": ISO
  8601, ...}`` with the material as base64 (or the KMS key id). A record longer than
  `PART_CHARS` is split: the entry then holds ``{"v": 1, "parts": N, "slot": "a"|"b",
  "sha256": HEX}`` and the text is in ``NAME#a1`` ... ``NAME#aN``. Windows stores a
  secret as UTF-16 and caps it at 2,560 bytes, i.e. 1,280 characters (jaraco/keyring
  #540); an RSA-4096 record is about 3,300.
- ``__index__``: the non-secret list of keys (type, created, fingerprint, bits, KMS key
  id) and the ``current`` key, so that ``list()`` reads no secret. It is a record too
  and splits the same way when there are many keys.

Every write is ordered so that an interruption leaves the old value readable or a
damage that is detected, never a silently wrong key: the parts go into the slot the
head does not point at, then the head (one keyring call, atomic) switches to them, then
the old parts are removed; the SHA-256 in the head catches a part that went missing or
was edited. A key is written before the index names it; on delete the index drops it
first, then the head goes, then every part (leftovers of interrupted writes included).
Two processes changing keys at the same instant can still lose one index update (the
keyring has no transactions); the keys themselves are never lost that way.

Only OS keyrings are accepted: no plaintext or "encrypted file" fallback, ever.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import keyring
import keyring.core
import keyring.errors
from keyring.backend import KeyringBackend

from s3vault.errors import (
    ConflictError,
    IntegrityError,
    KeyMissingError,
    S3VaultError,
    UsageError,
)
from s3vault.keys.backend import keyring_error, secret_service_backend, usable_backend
from s3vault.keys.material import (
    AesKey,
    KeyType,
    KmsKey,
    MasterKey,
    RsaKey,
    same_material,
    validate_name,
)

INDEX = "__index__"
RECORD_VERSION = 1
# Characters per keyring entry: under Windows' 1,280 with room for the JSON around it.
PART_CHARS = 1000
_SLOTS = ("a", "b")

PutResult = Literal["created", "unchanged", "replaced"]


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


@dataclass(frozen=True)
class _Layout:
    """Where a record's parts are: a slot and a count, or nowhere (a one-entry record)."""

    slot: str | None = None
    parts: int = 0


class TornRecordError(IntegrityError):
    """A split keyring entry lost a part or a part changed (an interrupted write)."""


class KeyStore:
    """Named master keys in the OS keyring, plus which one is current.

    ``service`` is the keyring service name (the config's ``keyring.service``, which
    ``S3VAULT_KEYRING_SERVICE`` overrides in the config layer). ``backend`` defaults to
    `keyring.get_keyring()`; it is resolved and checked on first use, so building a
    KeyStore never touches D-Bus.
    """

    def __init__(self, service: str = "s3vault", *, backend: KeyringBackend | None = None):
        if not service or "#" in service:
            raise UsageError(f"invalid keyring service name {service!r}")
        self.service = service
        self._requested = backend
        self._backend: KeyringBackend | None = None

    def __repr__(self) -> str:
        return f"KeyStore(service={self.service!r})"

    # --- public API -------------------------------------------------------------

    def names(self) -> builtins.list[str]:
        return sorted(self._read_index()[0]["keys"])

    def list(self) -> builtins.list[KeyInfo]:
        index, _ = self._read_index()
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
        record, _ = self._read_record(name, what=f"key '{name}'")
        if record is None:
            raise _missing(name)
        return _key_from_record(name, record)

    def put(self, key: MasterKey, *, force: bool = False) -> PutResult:
        """Store ``key`` under its name; idempotent for the same material.

        Same name and same material: "unchanged" (nothing written but a missing index
        entry). Same name, other material: ConflictError unless ``force``.
        """
        name = validate_name(key.name)
        outcome: PutResult = "created"
        created = _now()
        layout: _Layout | None
        try:
            existing, layout = self._read_record(name, what=f"key '{name}'")
        except TornRecordError:
            if not force:
                raise
            existing, layout, outcome = None, None, "replaced"
        if existing is not None:
            if same_material(_key_from_record(name, existing), key):
                self._index_add(key, existing.get("created") or created)
                return "unchanged"
            if not force:
                raise ConflictError(
                    f"a different key named '{name}' is already in the keyring",
                    hint="Choose another name, or pass --force to replace it (objects "
                    "wrapped by the old key then need a copy of it to be read).",
                )
            outcome = "replaced"
        self._write_record(name, _record_from_key(key, created), layout)
        self._index_add(key, created)
        return outcome

    def delete(self, name: str) -> None:
        """Remove the key ``name`` (index entry first, then the secret)."""
        validate_name(name)
        index, index_layout = self._read_index()
        listed = name in index["keys"]
        head = self._get(name)
        if not listed and head is None:
            raise _missing(name)
        if listed:
            del index["keys"][name]
            if index["current"] == name:
                # No silent switch to another key: new objects then need an explicit one.
                index["current"] = None
            self._write_record(INDEX, index, index_layout)
        self._delete(name)
        # Every part, also leftovers of interrupted writes: no fragment of a deleted
        # key stays behind.
        for slot in _SLOTS:
            self._delete_parts(name, slot, start=1)

    def set_current(self, name: str) -> None:
        """Make ``name`` the key used for new objects when none is named."""
        key = self.get(name)  # must exist and be readable
        self._index_add(key, None, make_current=True)

    def current(self) -> str | None:
        current = self._read_index()[0]["current"]
        return current if isinstance(current, str) else None

    # --- index ------------------------------------------------------------------

    def _read_index(self) -> tuple[dict[str, Any], _Layout]:
        index, layout = self._read_record(INDEX, what="the key index")
        if index is None:
            return {"v": RECORD_VERSION, "current": None, "keys": {}}, layout
        index.setdefault("current", None)
        index.setdefault("keys", {})
        return index, layout

    def _index_add(
        self, key: MasterKey, created: str | None, *, make_current: bool = False
    ) -> None:
        index, layout = self._read_index()
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
        self._write_record(INDEX, index, layout)

    # --- records: JSON values, split into parts when long ------------------------

    def _read_record(self, entry: str, *, what: str) -> tuple[dict[str, Any] | None, _Layout]:
        """The record under ``entry`` (None if absent) and where its parts are."""
        head_text = self._get(entry)
        if head_text is None:
            return None, _Layout()
        head = _parse_json(head_text, what)
        if "parts" not in head:
            return head, _Layout()
        try:
            layout = _Layout(str(head["slot"]), int(head["parts"]))
            digest = str(head["sha256"])
        except (KeyError, TypeError, ValueError):
            raise _torn(what, "its head entry is malformed") from None
        if layout.slot not in _SLOTS:
            raise _torn(what, "its head entry is malformed")
        chunks = []
        for i in range(1, layout.parts + 1):
            chunk = self._get(_part(entry, layout.slot, i))
            if chunk is None:
                raise _torn(what, f"part {i} of {layout.parts} is missing")
            chunks.append(chunk)
        text = "".join(chunks)
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            raise _torn(what, "its parts do not match the checksum in its head entry")
        return _parse_json(text, what), layout

    def _write_record(self, entry: str, record: dict[str, Any], old: _Layout | None) -> None:
        """Write ``record``; ``old`` is where the previous one's parts are (None: unknown)."""
        text = json.dumps(record, sort_keys=True, separators=(",", ":"))
        if len(text) <= PART_CHARS:
            self._set(entry, text)
            self._drop_old_parts(entry, old, keep=None)
            return
        # The slot the current head does not point at: until the head switches, the
        # old value stays whole.
        slot = "b" if old is not None and old.slot == "a" else "a"
        chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
        for i, chunk in enumerate(chunks, start=1):
            self._set(_part(entry, slot, i), chunk)
        self._delete_parts(entry, slot, start=len(chunks) + 1)  # an older, longer value's
        head = {
            "v": RECORD_VERSION,
            "parts": len(chunks),
            "slot": slot,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
        self._set(entry, json.dumps(head, sort_keys=True, separators=(",", ":")))
        self._drop_old_parts(entry, old, keep=slot)

    def _drop_old_parts(self, entry: str, old: _Layout | None, *, keep: str | None) -> None:
        if old is None:  # unknown (a damaged entry): look in every slot
            for slot in _SLOTS:
                if slot != keep:
                    self._delete_parts(entry, slot, start=1)
        elif old.slot is not None and old.slot != keep:
            self._delete_parts(entry, old.slot, start=1, known=old.parts)

    def _delete_parts(self, entry: str, slot: str, *, start: int, known: int = 0) -> None:
        """Delete parts ``start``.. of ``slot``, last first.

        Parts are written 1..N and deleted N..1, so what an interruption leaves is a
        prefix 1..k: beyond the ``known`` count, probing stops at the first gap.
        """
        last = max(known, start - 1)
        while self._get(_part(entry, slot, last + 1)) is not None:
            last += 1
        for i in range(last, start - 1, -1):
            self._delete(_part(entry, slot, i))

    # --- the keyring, with its errors translated ----------------------------------

    @property
    def backend(self) -> KeyringBackend:
        if self._backend is None:
            with self._errors("open the keyring"):
                requested = self._requested or secret_service_backend() or keyring.get_keyring()
            self._backend = usable_backend(requested)
        return self._backend

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (keyring.errors.KeyringError, OSError) as exc:
            raise keyring_error(exc, action) from None
        except Exception as exc:
            # secretstorage/jeepney raise their own classes (not KeyringError) for a
            # vanished D-Bus or a dismissed prompt; anything else is a bug, re-raised.
            if type(exc).__module__.split(".")[0] in {"secretstorage", "jeepney", "dbus"}:
                raise keyring_error(exc, action) from None
            raise

    def _get(self, username: str) -> str | None:
        backend = self.backend
        with _KEYRING_CALLS, self._errors("read from it"):
            return backend.get_password(self.service, username)

    def _set(self, username: str, value: str) -> None:
        backend = self.backend
        with _KEYRING_CALLS, self._errors("write to it"):
            backend.set_password(self.service, username, value)

    def _delete(self, username: str) -> None:
        backend = self.backend
        # PasswordDeleteError means "no such entry": the entry is gone either way.
        with (
            _KEYRING_CALLS,
            self._errors("delete from it"),
            suppress(keyring.errors.PasswordDeleteError),
        ):
            backend.delete_password(self.service, username)


_KEYRING_CALLS = threading.Lock()
"""One keyring call at a time per process: the Secret Service backend keeps one D-Bus
connection for the process (keys/secret_service.py), and jeepney's blocking connection
under it is not thread-safe. Workers (a bulk rotation, the sync engine) take turns."""


def _part(entry: str, slot: str, i: int) -> str:
    return f"{entry}#{slot}{i}"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _missing(name: str) -> KeyMissingError:
    return KeyMissingError(
        f"no key named '{name}' in the keyring",
        hint="`s3vault key list` shows the keys you have.",
    )


def _torn(what: str, why: str) -> TornRecordError:
    return TornRecordError(
        f"the keyring entry of {what} is damaged: {why} "
        "(an interrupted write, or an edit outside s3vault)",
        hint="Import the key again from a backup with --force, or remove it with "
        "`s3vault key delete NAME`.",
    )


def _parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise _torn(what, "it is not valid JSON") from None
    if not isinstance(value, dict):
        raise _torn(what, "it is not a JSON object")
    return value


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
    raise _torn(f"key '{name}'", "its record is not a readable s3vault key")
