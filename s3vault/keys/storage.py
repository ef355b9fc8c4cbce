"""Where a `KeyStore` keeps its records: the small interface its two stores implement.

A *record* is a JSON object under an *entry* name: one per key (``NAME``) plus the
index (``__index__``). `keys.keyring_storage` keeps each record in OS keyring entries
(split into parts when long); `keys.file_storage` keeps all of them in one encrypted
file. `KeyStore` (keys/store.py) holds the logic over records: which key is current,
conflicts, idempotent puts.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from s3vault.errors import IntegrityError

Record = dict[str, Any]


class DamagedRecordError(IntegrityError):
    """A record cannot be read back as it was written (an interrupted write, an edit)."""


# The keyring store's name for it, kept for callers that catch it.
TornRecordError = DamagedRecordError


class Storage(Protocol):
    """Records by entry name, and a write transaction across processes."""

    where: str
    """Where the keys are, for messages: "the keyring", "the keystore file PATH"."""

    def read(self, entry: str, *, what: str) -> Record | None:
        """The record under ``entry`` (None if absent); DamagedRecordError if unreadable.
        ``what`` names it in that error ("key 'laptop'", "the key index")."""
        ...

    def write(self, entry: str, record: Record) -> None:
        """Store ``record`` under ``entry`` (only inside `transaction`)."""
        ...

    def remove(self, entry: str) -> None:
        """Remove ``entry`` and every fragment of it (only inside `transaction`)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Hold the store's cross-process write lock; re-entrant within a thread.

        Reads inside it see the writes made in it; a read-modify-write done inside one
        never loses another process's update.
        """
        ...
