"""Records in the OS keyring (Secret Service, macOS Keychain, Windows): `KeyringStorage`.

Layout under one keyring *service* (default ``s3vault``), one entry per username:
``ENTRY`` holds the record's JSON. A record longer than `PART_CHARS` is split: the entry
then holds ``{"v": 1, "parts": N, "slot": "a"|"b", "sha256": HEX}`` and the text is in
``ENTRY#a1`` ... ``ENTRY#aN``. Windows stores a secret as UTF-16 and caps it at 2,560
bytes, i.e. 1,280 characters (jaraco/keyring #540); an RSA-4096 record is about 3,300.

Every write is ordered so that an interruption leaves the old value readable or a
damage that is detected, never a silently wrong key: the parts go into the slot the
head does not point at, then the head (one keyring call, atomic) switches to them, then
the old parts are removed; the SHA-256 in the head catches a part that went missing or
was edited. The keyring has no transactions: writes are serialised across processes by
a lock file (`keys.lock`, under the user state dir). Readers take no lock; one that
meets a record another process is rewriting (a part already gone) reads it again under
the lock, and only damage still there then is reported.

Only OS keyrings are accepted (`keys.backend`): no plaintext fallback, ever.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s3vault.errors import UsageError
from s3vault.keys.backend import (
    PasswordBackend,
    default_backend,
    is_keyring_failure,
    is_missing_entry,
    keyring_error,
    secret_service_backend,
    usable_backend,
)
from s3vault.keys.lock import WriteLock, keyring_lock_path
from s3vault.keys.storage import DamagedRecordError, Record

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

RECORD_VERSION = 1
# Characters per keyring entry: under Windows' 1,280 with room for the JSON around it.
PART_CHARS = 1000
_SLOTS = ("a", "b")


@dataclass(frozen=True)
class _Layout:
    """Where a record's parts are: a slot and a count, or nowhere (a one-entry record)."""

    slot: str | None = None
    parts: int = 0


class KeyringStorage:
    """Records in the OS keyring under ``service``.

    ``backend`` defaults to the Secret Service when nobody chose another one (see
    `keys.backend.secret_service_backend`), else `keyring.get_keyring()`; it is
    resolved and checked on first use, so building one never touches D-Bus.
    """

    where = "the keyring"

    def __init__(self, service: str = "s3vault", *, backend: KeyringBackend | None = None):
        if not service or "#" in service:
            raise UsageError(f"invalid keyring service name {service!r}")
        self.service = service
        self._requested = backend
        self._backend: PasswordBackend | None = None
        self._lock = WriteLock(keyring_lock_path(service), what="the keyring's keys")
        # Per thread: where the parts of each entry read in the current transaction
        # are, so a rewrite uses the other slot. Cleared when a transaction starts
        # (under the lock): a layout read before it may be stale.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"KeyringStorage(service={self.service!r})"

    # --- Storage ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        with self._lock.held():
            self._local.layouts = {}
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                self._local.layouts = {}

    def read(self, entry: str, *, what: str) -> Record | None:
        layouts = self._layouts()
        layouts.pop(entry, None)  # unknown until read whole
        try:
            record, layout = self._read(entry, what)
        except DamagedRecordError:
            if getattr(self._local, "depth", 0):
                raise
            # Readers take no lock, so a writer of another process may be between two
            # steps (its new parts written, the old ones being removed). Damage that is
            # still there once no writer runs is real.
            with self.transaction():
                return self.read(entry, what=what)
        layouts[entry] = layout
        return record

    def write(self, entry: str, record: Record) -> None:
        """Write ``record``, using the layout its last read found (unknown: probe all)."""
        old = self._layouts().pop(entry, None)
        text = json.dumps(record, sort_keys=True, separators=(",", ":"))
        if len(text) <= PART_CHARS:
            self._set(entry, text)
            self._drop_old_parts(entry, old, keep=None)
            self._layouts()[entry] = _Layout()
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
        self._layouts()[entry] = _Layout(slot, len(chunks))

    def remove(self, entry: str) -> None:
        self._layouts().pop(entry, None)
        self._delete(entry)
        # Every part, also leftovers of interrupted writes: no fragment stays behind.
        for slot in _SLOTS:
            self._delete_parts(entry, slot, start=1)

    # --- records: JSON values, split into parts when long ------------------------

    def _layouts(self) -> dict[str, _Layout]:
        layouts: dict[str, _Layout] | None = getattr(self._local, "layouts", None)
        if layouts is None:
            layouts = self._local.layouts = {}
        return layouts

    def _read(self, entry: str, what: str) -> tuple[Record | None, _Layout]:
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
            raise torn(what, "its head entry is malformed") from None
        if layout.slot not in _SLOTS:
            raise torn(what, "its head entry is malformed")
        chunks = []
        for i in range(1, layout.parts + 1):
            chunk = self._get(_part(entry, layout.slot, i))
            if chunk is None:
                raise torn(what, f"part {i} of {layout.parts} is missing")
            chunks.append(chunk)
        text = "".join(chunks)
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            raise torn(what, "its parts do not match the checksum in its head entry")
        return _parse_json(text, what), layout

    def _drop_old_parts(self, entry: str, old: _Layout | None, *, keep: str | None) -> None:
        if old is None:  # unknown (not read, or damaged): look in every slot
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
    def backend(self) -> PasswordBackend:
        if self._backend is None:
            # Choosing probes the Secret Service over the process's one D-Bus connection,
            # which another thread of this store may be using for a call already: the
            # two replies would cross and both threads wait forever. One at a time.
            with _KEYRING_CALLS:
                if self._backend is None:
                    with self._errors("open the keyring"):
                        requested = (
                            self._requested or secret_service_backend() or default_backend()
                        )
                    self._backend = usable_backend(requested)
        return self._backend

    @contextmanager
    def _errors(self, action: str, *, missing_ok: bool = False) -> Iterator[None]:
        """The keyring libraries' failures as KeyringUnavailableError; anything else is
        a bug, re-raised. ``missing_ok``: "no such entry" is not an error."""
        try:
            yield
        except Exception as exc:
            if missing_ok and is_missing_entry(exc):
                return
            if is_keyring_failure(exc):
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
        with _KEYRING_CALLS, self._errors("delete from it", missing_ok=True):
            backend.delete_password(self.service, username)


_KEYRING_CALLS = threading.Lock()
"""One keyring call at a time per process: the Secret Service backend keeps one D-Bus
connection for the process (keys/secret_service.py), and jeepney's blocking connection
under it is not thread-safe. Workers (a bulk rotation, the sync engine) take turns."""


def _part(entry: str, slot: str, i: int) -> str:
    return f"{entry}#{slot}{i}"


def torn(what: str, why: str) -> DamagedRecordError:
    return DamagedRecordError(
        f"the keyring entry of {what} is damaged: {why} "
        "(an interrupted write, or an edit outside s3vault)",
        hint="Import the key again from a backup with --force, or remove it with "
        "`s3vault key delete NAME`.",
    )


def _parse_json(text: str, what: str) -> Record:
    try:
        value = json.loads(text)
    except ValueError:
        raise torn(what, "it is not valid JSON") from None
    if not isinstance(value, dict):
        raise torn(what, "it is not a JSON object")
    return value
