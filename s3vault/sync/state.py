"""The state database: what this machine has uploaded, and writes still in flight.

One SQLite file in the user's state dir (`default_state_path`), in WAL mode, for
every folder of the config (rows are keyed by `FolderSettings.folder_id`).

Crash-safety rule, the caller's duty: **a file's row is written only after S3
confirmed its object**, with the ETag S3 answered. So after a crash at any point the
database never claims more than S3 holds; at worst it knows less, and the next run
uploads again (conditionally, so nothing another machine wrote is overwritten).
To tell, after a crash, "the object I was writing when I died" from "an object
another machine wrote", a write is announced first in ``uploads`` with a token that
the object also carries (see docs/sync.md); `record_synced` removes the announcement
in the same transaction that records the file.

Each method is one transaction; `transaction()` groups several (a rename's row
update and its forget, say). With ``synchronous=NORMAL`` a committed transaction
survives a crash of the process (kill -9); a power loss may undo the last few, which
then look like the crash case above.

Threads: one connection, guarded by a lock; every method may be called from any
thread. A `transaction()` holds the lock for its whole body, so never wait for the
network inside one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from s3vault.errors import ConflictError, LocalFileError, local_error
from s3vault.private import private_dir, private_file
from s3vault.sync.model import RootIdentity, StateRows, SyncedFile

SCHEMA_VERSION = 3

_SCHEMA_V1 = (
    """
    CREATE TABLE folders (
        folder_id   TEXT PRIMARY KEY,   -- s3://bucket/prefix/
        root        TEXT NOT NULL,      -- the local folder
        bucket      TEXT NOT NULL,
        prefix      TEXT NOT NULL,
        root_device INTEGER,            -- the root's identity when last synced
        root_inode  INTEGER
    )
    """,
    """
    CREATE TABLE files (
        folder_id    TEXT NOT NULL,
        path         TEXT NOT NULL,     -- POSIX, relative to the root
        size         INTEGER NOT NULL,  -- plaintext bytes
        mtime_ns     INTEGER NOT NULL,
        content_hash TEXT NOT NULL,     -- SHA-256 hex of the plaintext uploaded
        etag         TEXT NOT NULL,     -- as S3 answered the upload
        version_id   TEXT,
        key_name     TEXT NOT NULL,     -- master key of the object's envelope
        synced_at    REAL NOT NULL,     -- Unix time
        PRIMARY KEY (folder_id, path)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX files_by_hash ON files (folder_id, content_hash)",
    """
    CREATE TABLE uploads (
        folder_id  TEXT NOT NULL,
        path       TEXT NOT NULL,
        key        TEXT NOT NULL,
        token      TEXT,                -- also in the object: proves it was this write
        upload_id  TEXT,                -- multipart upload to abort after a crash
        size       INTEGER NOT NULL,    -- the local file as it was read
        mtime_ns   INTEGER NOT NULL,
        started_at REAL NOT NULL,
        PRIMARY KEY (folder_id, path)
    ) WITHOUT ROWID
    """,
)

# v2: the upload token the object carries (`s3vault-upload` metadata). A rewrite that
# keeps the plaintext (key rotation) keeps it too, so a changed ETag with the same token
# is this machine's object, re-wrapped, not another machine's write.
_SCHEMA_V2 = ("ALTER TABLE files ADD COLUMN token TEXT",)

# v3: a random writer id for this database, the first part of every upload token it
# hands out. An object whose token starts with it was written from this database,
# even when its announcement is gone: a write that S3 committed only after the agent
# that sent it was killed, and after the restart had looked for it (see docs/sync.md).
_SCHEMA_V3 = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "INSERT INTO meta VALUES ('writer', lower(hex(randomblob(8))))",
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}

# Columns in the order of SyncedFile's fields, so a row unpacks into one.
_SELECT_FILES = (
    "SELECT path, size, mtime_ns, content_hash, etag, key_name, version_id, synced_at, "
    "token "
    "FROM files WHERE folder_id=?"
)
_SELECT_FILE = (
    "SELECT path, size, mtime_ns, content_hash, etag, key_name, version_id, synced_at, "
    "token "
    "FROM files WHERE folder_id=? AND path=?"
)
_SELECT_BY_HASH = (
    "SELECT path, size, mtime_ns, content_hash, etag, key_name, version_id, synced_at, "
    "token "
    "FROM files WHERE folder_id=? AND content_hash=? ORDER BY path"
)
_UPSERT_FILE = (
    "INSERT OR REPLACE INTO files (folder_id, path, size, mtime_ns, content_hash, etag, "
    "key_name, version_id, synced_at, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class StateError(LocalFileError):
    title = "State database"


class FolderBusyError(ConflictError):
    """Another process is syncing the folder with the same state database."""

    title = "Folder busy"


@dataclass(frozen=True, slots=True)
class FolderRecord:
    folder_id: str
    root: Path
    bucket: str
    prefix: str
    identity: RootIdentity | None


@dataclass(frozen=True, slots=True)
class InFlightUpload:
    """A write to S3 that started and was not yet recorded as synced."""

    path: str
    key: str
    size: int
    mtime_ns: int
    token: str | None = None
    upload_id: str | None = None
    started_at: float = 0.0


def default_state_path() -> Path:
    """``state.db`` in the user's state dir (e.g. ``~/.local/state/s3vault``)."""
    return Path(platformdirs.user_state_dir("s3vault")) / "state.db"


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


class StateDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        try:
            # 0600 in a 0700 folder before SQLite opens it (it would follow the umask);
            # SQLite gives its -wal and -shm the mode of the database.
            private_file(path)
            for extra in (_sidecar(path, "-wal"), _sidecar(path, "-shm")):
                if extra.exists():  # an older install's, made with the umask's mode
                    private_file(extra)
            # isolation_level=None: no implicit transactions; ours are explicit.
            self._conn = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self.journal_mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"cannot open the state database {path}: {exc}",
                hint="If the file is damaged, move it away: the next sync rebuilds it "
                "from S3 (an object that holds a file's very bytes is that file's; "
                "nothing is uploaded again).",
            ) from None
        except OSError as exc:
            raise local_error(exc, "create the state database", path) from None

    @property
    def writer(self) -> str:
        """This database's writer id (hex), the prefix of the upload tokens it issues."""
        (value,) = self._read("SELECT value FROM meta WHERE name='writer'", ())[0]
        return str(value)

    def _migrate(self) -> None:
        with self.transaction():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"the state database {self.path} was written by a newer s3vault "
                    f"(schema {version}, this one knows {SCHEMA_VERSION})",
                    hint="Upgrade s3vault.",
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={target}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def folder_lock(self, folder_id: str) -> Iterator[None]:
        """Hold the folder for one sync run: `FolderBusyError` if another holds it.

        Two processes (a one-shot `s3vault sync` and the agent, say) working on the
        same folder and rows at once would each take the other's writes for another
        machine's. An flock on a file beside the database, one per folder; the kernel
        releases it when the process dies, however it dies.
        """
        name = hashlib.sha256(folder_id.encode()).hexdigest()[:24]
        path = self.path.parent / "locks" / f"{name}.lock"
        try:
            private_dir(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise local_error(exc, "create the lock file", path) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderBusyError(
                    f"{folder_id} is being synced by another s3vault process right now",
                    hint="If the agent syncs this folder, `s3vault sync-now` asks it to; "
                    "else wait for the other `s3vault sync` to finish.",
                ) from None
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes in the body commit together or not at all (nests)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._sql("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._sql("COMMIT")
            finally:
                self._depth = 0

    def _sql(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            # "database is locked" after the timeout, disk full, I/O error.
            raise StateError(f"state database {self.path}: {exc}") from None

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            raise StateError(f"state database {self.path}: {exc}") from None

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with self.transaction():
            return self._sql(sql, params).rowcount

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            return self._sql(sql, params).fetchall()

    # ---- files ---------------------------------------------------------------------

    def get(self, folder_id: str, path: str) -> SyncedFile | None:
        rows = self._read(_SELECT_FILE, (folder_id, path))
        return SyncedFile(*rows[0]) if rows else None

    def all(self, folder_id: str) -> dict[str, SyncedFile]:
        rows = self._read(_SELECT_FILES, (folder_id,))
        return {row[0]: SyncedFile(*row) for row in rows}

    def rows(self, folder_id: str) -> StateRows:
        """Every row of the folder, as a sync run reads them: one query, no object per
        row until one is asked for (see `StateRows`)."""
        return StateRows({row[0]: row for row in self._read(_SELECT_FILES, (folder_id,))})

    def count(self, folder_id: str) -> int:
        return int(self._read("SELECT count(*) FROM files WHERE folder_id=?", (folder_id,))[0][0])

    def by_hash(self, folder_id: str, content_hash: str) -> list[SyncedFile]:
        """Rows with this content: rename and copy candidates."""
        rows = self._read(_SELECT_BY_HASH, (folder_id, content_hash))
        return [SyncedFile(*row) for row in rows]

    def record_synced(self, folder_id: str, file: SyncedFile) -> None:
        """The file's object is in S3 as ``file`` says (call only after S3 confirmed).

        Replaces the path's row and ends its in-flight upload, in one transaction.
        """
        self.record_synced_many(folder_id, [file])

    def record_synced_many(self, folder_id: str, files: Sequence[SyncedFile]) -> None:
        """`record_synced` for many files (each confirmed by S3), in one transaction."""
        with self.transaction():
            self._many(
                _UPSERT_FILE,
                [
                    (
                        folder_id,
                        file.path,
                        file.size,
                        file.mtime_ns,
                        file.content_hash,
                        file.etag,
                        file.key_name,
                        file.version_id,
                        file.synced_at,
                        file.token,
                    )
                    for file in files
                ],
            )
            self._many(
                "DELETE FROM uploads WHERE folder_id=? AND path=?",
                [(folder_id, file.path) for file in files],
            )

    def touch(self, folder_id: str, path: str, mtime_ns: int) -> bool:
        """Only the mtime changed (same content): remember the new one."""
        return bool(
            self._write(
                "UPDATE files SET mtime_ns=? WHERE folder_id=? AND path=?",
                (mtime_ns, folder_id, path),
            )
        )

    def forget(self, folder_id: str, path: str) -> bool:
        """Drop a row (its object was deleted, or is gone). False if there was none."""
        return bool(
            self._write("DELETE FROM files WHERE folder_id=? AND path=?", (folder_id, path))
        )

    def rename(
        self,
        folder_id: str,
        src: str,
        dst: str,
        *,
        etag: str | None = None,
        version_id: str | None = None,
    ) -> bool:
        """Move ``src``'s row to ``dst`` (replacing any), with the copy's new ETag if given.

        False (and nothing changed) if ``src`` has no row.
        """
        with self.transaction():
            if self.get(folder_id, src) is None:
                return False
            self._sql("DELETE FROM files WHERE folder_id=? AND path=?", (folder_id, dst))
            self._sql(
                "UPDATE files SET path=?, etag=coalesce(?, etag), "
                "version_id=CASE WHEN ? IS NULL THEN version_id ELSE ? END "
                "WHERE folder_id=? AND path=?",
                (dst, etag, etag, version_id, folder_id, src),
            )
            return True

    # ---- folders -------------------------------------------------------------------

    def remember_folder(
        self,
        folder_id: str,
        root: Path,
        bucket: str,
        prefix: str,
        identity: RootIdentity | None,
    ) -> None:
        """Where the folder is and which directory it was when last synced."""
        self._write(
            "INSERT OR REPLACE INTO folders VALUES (?, ?, ?, ?, ?, ?)",
            (
                folder_id,
                str(root),
                bucket,
                prefix,
                identity.device if identity else None,
                identity.inode if identity else None,
            ),
        )

    def folder(self, folder_id: str) -> FolderRecord | None:
        rows = self._read("SELECT * FROM folders WHERE folder_id=?", (folder_id,))
        if not rows:
            return None
        fid, root, bucket, prefix, device, inode = rows[0]
        identity = RootIdentity(device, inode) if device is not None else None
        return FolderRecord(fid, Path(root), bucket, prefix, identity)

    def drop_folder(self, folder_id: str) -> None:
        """Forget a folder removed from the config: its rows and in-flight uploads."""
        with self.transaction():
            self._sql("DELETE FROM files WHERE folder_id=?", (folder_id,))
            self._sql("DELETE FROM uploads WHERE folder_id=?", (folder_id,))
            self._sql("DELETE FROM folders WHERE folder_id=?", (folder_id,))

    # ---- writes in flight ----------------------------------------------------------

    def begin_upload(self, folder_id: str, upload: InFlightUpload) -> None:
        """Announce a write before its first byte goes to S3."""
        self.begin_uploads(folder_id, [upload])

    def begin_uploads(self, folder_id: str, uploads: Sequence[InFlightUpload]) -> None:
        """`begin_upload` for many writes, in one transaction."""
        now = time.time()
        with self.transaction():
            self._many(
                "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        folder_id,
                        upload.path,
                        upload.key,
                        upload.token,
                        upload.upload_id,
                        upload.size,
                        upload.mtime_ns,
                        upload.started_at or now,
                    )
                    for upload in uploads
                ],
            )

    def set_upload_id(self, folder_id: str, path: str, upload_id: str) -> None:
        """The multipart upload S3 created for the write (to abort after a crash)."""
        self._write(
            "UPDATE uploads SET upload_id=? WHERE folder_id=? AND path=?",
            (upload_id, folder_id, path),
        )

    def end_upload(self, folder_id: str, path: str) -> None:
        """The write failed or was abandoned (success ends it in `record_synced`)."""
        self.end_uploads(folder_id, [path])

    def end_uploads(self, folder_id: str, paths: Sequence[str]) -> None:
        """`end_upload` for many paths, in one transaction."""
        with self.transaction():
            self._many(
                "DELETE FROM uploads WHERE folder_id=? AND path=?",
                [(folder_id, path) for path in paths],
            )

    def uploads(self, folder_id: str) -> list[InFlightUpload]:
        """Writes that were in flight when the agent last stopped (or are now)."""
        rows = self._read(
            "SELECT path, key, size, mtime_ns, token, upload_id, started_at FROM uploads "
            "WHERE folder_id=? ORDER BY started_at",
            (folder_id,),
        )
        return [InFlightUpload(*row) for row in rows]
