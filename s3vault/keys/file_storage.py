"""Records in one passphrase-encrypted file: `FileStorage` (``keystore.type: file``).

For machines without a Secret Service (servers, containers, CI). The whole key set
(every record, the index included) is one AES-256-GCM ciphertext (`keys.sealed_file`),
in a file of mode 0600 in a folder of mode 0700.

A write transaction is: take the lock file beside it (``PATH.lock``), read and decrypt
the file, change the records in memory, encrypt them with a fresh nonce and write the
file once, atomically (a temporary file in the same folder, fsync, rename, fsync of the
folder). A process killed at any point leaves the old file or the new one, never a
mix; a stray temporary file is removed by the next write.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from s3vault.errors import local_error
from s3vault.keys.lock import WriteLock, file_lock_path, private_dir
from s3vault.keys.passphrase import PassphraseSource
from s3vault.keys.sealed_file import (
    FileKey,
    damaged,
    file_key,
    new_file_key,
    read_header,
    seal,
    unseal,
)
from s3vault.keys.storage import Record

CONTENT_VERSION = 1


class FileStorage:
    """Records in the encrypted file ``path``; the passphrase from ``passphrase``.

    Nothing is read until first use; a missing file reads as empty (no passphrase
    needed) and is created by the first write.
    """

    def __init__(self, path: Path, passphrase: PassphraseSource) -> None:
        self.path = path
        self.where = f"the keystore file {path}"
        self._passphrase = passphrase
        self._lock = WriteLock(file_lock_path(path), what=self.where)
        # Per thread: the records of the running transaction and the key to seal them.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"FileStorage({str(self.path)!r})"

    # --- Storage ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        with self._lock.held():
            local.key, local.entries = self._load()
            local.dirty = False
            local.depth = 1
            try:
                yield
                if local.dirty:
                    self._save(local.key, local.entries)
            finally:
                local.depth = 0
                local.key = local.entries = None

    def read(self, entry: str, *, what: str) -> Record | None:
        entries = self._entries() if self._in_transaction() else self._load()[1]
        record = entries.get(entry)
        # A copy: callers change what they read (the index) before writing it back.
        return copy.deepcopy(record) if record is not None else None

    def write(self, entry: str, record: Record) -> None:
        self._entries()[entry] = copy.deepcopy(record)
        self._local.dirty = True

    def remove(self, entry: str) -> None:
        if self._entries().pop(entry, None) is not None:
            self._local.dirty = True

    # --- the file ----------------------------------------------------------------

    def _in_transaction(self) -> bool:
        return bool(getattr(self._local, "depth", 0))

    def _entries(self) -> dict[str, Record]:
        if not self._in_transaction():
            raise RuntimeError("a key-store write outside a transaction")
        entries: dict[str, Record] = self._local.entries
        return entries

    def _place(self) -> str:
        return str(self.path.expanduser().resolve())

    def _load(self) -> tuple[FileKey | None, dict[str, Record]]:
        """The key that opened the file (None: no file yet) and its records."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, {}
        except OSError as exc:
            raise local_error(exc, "read", self.path) from None
        header, aad, ciphertext = read_header(data, where=self.where)
        key = file_key(
            self._place(),
            header,
            self._passphrase.describe(),
            lambda: self._passphrase.read(where=self.where, new=False),
            where=self.where,
        )
        plaintext = unseal(key, header, aad, ciphertext, where=self.where)
        try:
            content: Any = json.loads(plaintext)
            entries = content["entries"]
            if content.get("v") != CONTENT_VERSION or not isinstance(entries, dict):
                raise ValueError("unexpected content")
        except (ValueError, KeyError, TypeError, AttributeError):
            # Authenticated yet not ours: no detail, it could quote key material.
            raise damaged(self.where, "its content is not a key set") from None
        return key, entries

    def _save(self, key: FileKey | None, entries: dict[str, Record]) -> None:
        if key is None:  # a new file: a new salt, and the passphrase asked twice if typed
            source = self._passphrase
            key = new_file_key(
                self._place(), source.describe(), source.read(where=self.where, new=True)
            )
        content = {"v": CONTENT_VERSION, "entries": entries}
        data = seal(key, json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
        _write_atomically(self.path, data)


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: the old file or the new one, whatever happens."""
    folder = path.parent
    private_dir(folder)
    for stray in folder.glob(f".{path.name}.*.tmp"):  # left by a killed writer
        with suppress(OSError):
            stray.unlink()
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise local_error(exc, "write", path) from None
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp: mode 0600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(temp)
        raise local_error(exc, "write", path) from None
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); not possible on Windows, where it is skipped."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
