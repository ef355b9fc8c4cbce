"""Uploads of many small files at once: read whole, sealed in memory, sent natively.

`SyncEngine` hands this module the plan's uploads of files up to `SMALL_FILE_LIMIT`
when there are at least `MIN_SMALL_FILES` of them. Each file is read once (hashed from
the same bytes), sealed with `Vault.seal` (the envelope `Vault.put` writes) and stored
with `Vault.put_sealed_many` (obstore, many requests in flight); larger files keep the
streaming path. The upload rules are `sync.uploads`'s, file by file; what differs is
that announcements and rows are written in transactions of many rows, and that
refusals (HTTP 412) are looked into once all files were sent.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from s3vault.config.sync import FolderSettings
from s3vault.errors import ConflictError, S3VaultError
from s3vault.localfile import changed_since
from s3vault.sync.model import LocalFile, Upload
from s3vault.sync.uploads import FileUpload, Uploads
from s3vault.vault import SealedOutcome, SealedPut, Vault

MiB = 1024 * 1024
SMALL_FILE_LIMIT = 1 * MiB
"""Files up to this size take this path. At most `IN_FLIGHT` + `ANNOUNCE_GROUP` sealed
bodies are in memory at once (96 MiB at worst; 4 KiB files: under 1 MiB)."""
MIN_SMALL_FILES = 16
"""Fewer small uploads than this go the streaming way: a watcher's handful of files
gains nothing from starting the native client."""
ANNOUNCE_GROUP = 32
"""Files read, sealed and announced (one transaction) before the first of them is sent."""
ROWS_PER_TRANSACTION = 64
FLUSH_SECONDS = 0.25
"""Confirmed uploads wait at most about this long (or for `ROWS_PER_TRANSACTION`
others) before their rows are written."""


def split_uploads(
    uploads: Sequence[Upload], local: dict[str, LocalFile], vault: Vault, folder: FolderSettings
) -> tuple[list[Upload], list[Upload]]:
    """(uploads for this path, uploads for the streaming path), by size as scanned."""
    small = [
        u
        for u in uploads
        if local[u.path].size <= SMALL_FILE_LIMIT
        and vault.can_put_sealed(folder.object_key(u.path))
    ]
    if len(small) < MIN_SMALL_FILES:
        return [], list(uploads)
    chosen = {u.path for u in small}
    return small, [u for u in uploads if u.path not in chosen]


def upload_small_files(uploads: Uploads, actions: Sequence[Upload]) -> list[Upload]:
    """Carry out ``actions`` through the native path, reporting each file to the tally.

    Returns the actions to stream instead: files that grew past `SMALL_FILE_LIMIT`
    since the scan.
    """
    if not actions:
        return []
    run = _SmallFiles(uploads)
    # One keyring read per key for all of them, not one per file.
    with uploads.vault.remembering_keys():
        run.run(actions)
    return run.too_big


class _TooBig(Exception):
    """The file grew past this path's limit since the scan."""


class _SmallFiles:
    def __init__(self, uploads: Uploads) -> None:
        self.uploads = uploads
        self.vault = uploads.vault
        self.folder = uploads.folder
        self.state = uploads.state
        self.tally = uploads.tally
        self.too_big: list[Upload] = []
        self._refused: list[tuple[FileUpload, str]] = []
        self._finished: list[SealedOutcome] = []
        self._flushed_at = time.monotonic()
        self._started = False  # the first file was taken up
        # Asked once, not once per file: the same for every file of the run.
        self._version = uploads.version
        self._location = uploads.location
        self._root = os.fspath(self.folder.path)

    def run(self, actions: Sequence[Upload]) -> None:
        runner = self.uploads.runner
        try:
            self.vault.put_sealed_many(
                self._puts(actions),
                self._on_done,
                attempts=runner.attempts,
                backoff=runner.backoff,
            )
        except S3VaultError as exc:
            if self._started:
                raise
            # No S3 client at all (a missing profile, say): no file was taken up.
            for action in actions:
                self.tally.error(action.path, exc)
            return
        finally:
            # Also after an error: what S3 confirmed gets its row.
            self._flush()
        for upload, reason in self._refused:
            runner.guarded(
                upload.path, self.tally, functools.partial(self.uploads.refused, upload, reason)
            )

    # ---- reading and sealing ---------------------------------------------------------

    def _puts(self, actions: Sequence[Upload]) -> Iterator[SealedPut]:
        self._started = True
        for start in range(0, len(actions), ANNOUNCE_GROUP):
            ready = [p for p in map(self._prepare, actions[start : start + ANNOUNCE_GROUP]) if p]
            if not ready:
                continue
            self.uploads.announce_many([put.tag for put in ready])
            yield from ready

    def _prepare(self, action: Upload) -> SealedPut | None:
        """The file read, hashed and sealed; None when it was reported already."""
        # The path as `FolderSettings.local_path` makes it, without a Path per file.
        full = os.path.join(self._root, *action.path.split("/"))
        try:
            data, before = _read_whole(full, follow_symlinks=self.folder.follow_symlinks)
        except _TooBig:
            self.too_big.append(action)
            return None
        except OSError as exc:
            # Gone, unreadable, no longer a regular file, or changed while read.
            self.tally.unread(action.path, exc, Path(full))
            return None
        upload = self.uploads.start(action, full, before, hashlib.sha256(data).hexdigest())
        try:
            sealed = self.vault.seal(
                data,
                upload.key,
                key_name=self.folder.key,
                version=self._version,
                location=self._location,
                extra_metadata=self.uploads.metadata(upload),
            )
        except S3VaultError as exc:
            self.tally.error(action.path, exc)
            return None
        return SealedPut(
            self.folder.bucket,
            sealed,
            if_match=action.expected_etag,
            if_none_match=action.if_none_match,
            tag=upload,
        )

    # ---- outcomes --------------------------------------------------------------------

    def _on_done(self, outcome: SealedOutcome) -> None:
        self._finished.append(outcome)
        if (
            len(self._finished) >= ROWS_PER_TRANSACTION
            or time.monotonic() - self._flushed_at >= FLUSH_SECONDS
        ):
            self._flush()

    def _flush(self) -> None:
        """Write the rows (or end the announcements) of finished files, then report them."""
        finished, self._finished = self._finished, []
        self._flushed_at = time.monotonic()
        if not finished:
            return
        rows, failed = [], []
        for outcome in finished:
            upload: FileUpload = outcome.put.tag
            if outcome.written is None or outcome.error is not None:
                failed.append(upload.path)
                continue
            rows.append(
                self.uploads.row(
                    upload,
                    etag=outcome.written.etag,
                    version_id=outcome.written.version_id,
                    key_name=outcome.put.sealed.key_name,
                )
            )
        with self.state.transaction():
            self.state.record_synced_many(self.uploads.fid, rows)
            self.state.end_uploads(self.uploads.fid, failed)
        for outcome in finished:
            self._report(outcome)

    def _report(self, outcome: SealedOutcome) -> None:
        upload: FileUpload = outcome.put.tag
        error = outcome.error
        if error is None:
            self.tally.uploaded(upload.path, upload.size)
        elif outcome.written is not None:
            # The object is stored but its instruction file is not: unreadable as it
            # is, so no row; the next run sees an object it does not know (a conflict).
            message = f"{error.message} (the object was stored without its instruction file)"
            self.tally.error(upload.path, type(error)(message, hint=error.hint))
        elif isinstance(error, ConflictError):
            # HTTP 412: looked into once all files are sent (see `run`). Never overwritten.
            self._refused.append((upload, error.message))
        else:
            self.tally.error(upload.path, error)


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _read_whole(path: str, *, follow_symlinks: bool) -> tuple[bytes, os.stat_result]:
    """A small regular file's bytes and its stat from before they were read.

    Opened as `hash_file` opens it (no symlink unless followed, never blocking on a
    FIFO). OSError if it is not a regular file any more or changed while read;
    `_TooBig` if it grew past `SMALL_FILE_LIMIT`.
    """
    fd = os.open(path, _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | _NOFOLLOW)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise IsADirectoryError(f"{path} is no longer a regular file")
        if before.st_size > SMALL_FILE_LIMIT:
            raise _TooBig(path)
        # One more byte than the size: a file that grew is seen, not cut short.
        data = _read_fd(fd, before.st_size + 1)
    finally:
        os.close(fd)
    if len(data) != before.st_size or changed_since(path, before):
        raise InterruptedError(f"{path} changed while it was read")
    return data, before


def _read_fd(fd: int, want: int) -> bytes:
    """Up to ``want`` bytes of ``fd``, fewer only at its end."""
    data = os.read(fd, want)
    while len(data) < want:  # a short read (rare on a regular file): go on
        more = os.read(fd, want - len(data))
        if not more:
            break
        data += more
    return data
