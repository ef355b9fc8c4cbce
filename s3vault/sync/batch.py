"""Uploads of many small files at once: read whole, sealed in memory, sent natively.

`SyncEngine` hands this module the plan's uploads of files up to `SMALL_FILE_LIMIT`
when there are at least `MIN_BATCH` of them. Each file is read once (hashed from the
same bytes), sealed with `Vault.seal` (the envelope `Vault.put` writes) and sent by
`NativeS3` with `IN_FLIGHT` requests on the wire; larger files keep the per-file
streaming path (`Vault.put` over boto3). The rules are the engine's, file by file:

- every write is conditional (``IfNoneMatch: *`` for a new path, ``IfMatch`` the
  recorded ETag); HTTP 412 is a conflict, or ``deferred`` if the file changed since;
- a file whose size, mtime or inode changed while it was read is stored nowhere and
  left for the next run (``deferred``);
- a write is announced (`StateDB.begin_upload`) before its first byte goes out, and
  the state row is written only after S3 confirmed the object (and its instruction
  file); both in transactions of many rows;
- S3 unreachable: each request is retried like `SyncEngine._retrying` does;
- a 412 on a changed file whose object still carries this machine's upload token
  (key rotation re-wrote it) relearns the row and writes again, once, as the per-file
  path does.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from s3vault.config.sync import FolderSettings
from s3vault.crypto.envelope import Location, Version
from s3vault.errors import ConflictError, S3VaultError
from s3vault.remote.native import IN_FLIGHT, NativeS3, PutOutcome, PutRequest, supports_key
from s3vault.remote.s3 import Written
from s3vault.sync.engine import (
    MTIME_METADATA,
    UNKNOWN_HASH,
    UPLOAD_TOKEN_METADATA,
    PathError,
    PathIssue,
    SyncEngine,
    SyncReport,
    _changed_since,
    _Tally,
    report_unread,
)
from s3vault.sync.model import LocalFile, SyncedFile, Upload
from s3vault.sync.state import InFlightUpload

MiB = 1024 * 1024
SMALL_FILE_LIMIT = 1 * MiB
"""Files up to this size take the batch path. At most `IN_FLIGHT` + `ANNOUNCE_GROUP`
sealed bodies are in memory at once (96 MiB at worst; 4 KiB files: under 1 MiB)."""
MIN_BATCH = 16
"""Fewer small uploads than this go the per-file way: a watcher's batch of a few
files gains nothing from starting the native client."""
ANNOUNCE_GROUP = 32
"""Files read, sealed and announced (one transaction) before the first of them is sent."""
ROWS_PER_TRANSACTION = 64
FLUSH_SECONDS = 0.25
"""Confirmed uploads wait at most about this long (or for `ROWS_PER_TRANSACTION`
others) before their rows are written."""


def split_uploads(
    uploads: Sequence[Upload], local: dict[str, LocalFile], folder: FolderSettings
) -> tuple[list[Upload], list[Upload]]:
    """(uploads for the batch path, uploads for `Vault.put`), by size as scanned."""
    small = [
        u
        for u in uploads
        if local[u.path].size <= SMALL_FILE_LIMIT and supports_key(folder.key_for(u.path))
    ]
    if len(small) < MIN_BATCH:
        return [], list(uploads)
    chosen = {u.path for u in small}
    return small, [u for u in uploads if u.path not in chosen]


def upload_small_files(
    engine: SyncEngine, actions: Sequence[Upload], tally: _Tally
) -> list[Upload]:
    """Carry out ``actions`` through the native path, reporting each file to ``tally``.

    Returns the actions to run through `Vault.put` instead: files that grew past
    `SMALL_FILE_LIMIT` since the scan.
    """
    if not actions:
        return []
    batch = _Batch(engine, tally)
    # One keyring read per key for the whole batch, not one per file.
    with engine.vault.keys.remembering_keys():
        batch.run(actions)
    return batch.too_big


class _TooBig(Exception):
    """The file grew past the batch path's limit since the scan."""


@dataclass(frozen=True, slots=True)
class _Job:
    """A file on its way: what its row needs once S3 confirmed (not its bytes)."""

    action: Upload
    path: str
    full: Path
    before: os.stat_result
    digest: str
    key_name: str
    token: str  # also in the object's metadata: lets a restart adopt it (engine._adopt)


@dataclass(frozen=True, slots=True)
class _Finished:
    job: _Job
    written: Written | None = None  # stored: record the row
    deferred: bool = False
    conflict: str | None = None
    rotated: bool = False  # the 412 may be our own object, re-written by key rotation
    error: S3VaultError | None = None


class _Batch:
    def __init__(self, engine: SyncEngine, tally: _Tally) -> None:
        self.engine = engine
        self.folder = engine.folder
        self.vault = engine.vault
        self.state = engine.state
        self.fid = engine.fid
        self.tally = tally
        self.too_big: list[Upload] = []
        self._rotated: list[_Finished] = []
        self._finished: list[_Finished] = []
        self._flushed_at = time.monotonic()

    def run(self, actions: Sequence[Upload]) -> None:
        try:
            native = NativeS3.for_remote(self.vault.remote)
        except S3VaultError as exc:  # no S3 client at all (a missing profile, say)
            for action in actions:
                self._report_error(action.path, exc)
            return
        try:
            native.put_many(
                self._requests(actions),
                self._on_done,
                in_flight=IN_FLIGHT,
                attempts=self.engine.attempts,
                backoff=self.engine.backoff,
            )
        finally:
            # Also after an error: what S3 confirmed gets its row.
            self._flush()
        for f in self._rotated:
            self.engine._guarded(f.job.path, self.tally, functools.partial(self._after_rotation, f))

    def _after_rotation(self, f: _Finished) -> None:
        """A 412 on a changed file: as on the per-file path, write again on the new ETag
        if the object is ours re-written by key rotation; else it is a conflict."""
        if not self.engine._upload_again_if_own(f.job.action, self.tally):
            issue = PathIssue(f.job.path, f.conflict or "")
            self._report(f.job.path, lambda r: r.conflicts.append(issue))

    # ---- reading and sealing ---------------------------------------------------------

    def _requests(self, actions: Sequence[Upload]) -> Iterator[PutRequest]:
        for start in range(0, len(actions), ANNOUNCE_GROUP):
            ready = [r for r in map(self._prepare, actions[start : start + ANNOUNCE_GROUP]) if r]
            if not ready:
                continue
            with self.state.transaction():
                for request in ready:
                    job: _Job = request.tag
                    self.state.begin_upload(
                        self.fid,
                        InFlightUpload(
                            job.path,
                            request.key,
                            job.before.st_size,
                            job.before.st_mtime_ns,
                            job.token,
                        ),
                    )
            yield from ready

    def _prepare(self, action: Upload) -> PutRequest | None:
        """The file read, hashed and sealed; None when it was reported already."""
        path = action.path
        full = self.engine._local(path)
        key = self.folder.key_for(path)
        try:
            data, before = _read_whole(full, follow_symlinks=self.folder.follow_symlinks)
        except _TooBig:
            self.too_big.append(action)
            return None
        except OSError as exc:
            # Gone, unreadable, no longer a regular file, or changed while read.
            self._unread(path, exc, full)
            return None
        token = self.engine.new_token()
        try:
            sealed = self.vault.seal(
                data,
                key,
                key_name=self.folder.key,
                version=Version(self.folder.format),
                location=Location(self.folder.envelope),
                extra_metadata={
                    MTIME_METADATA: str(before.st_mtime_ns),
                    UPLOAD_TOKEN_METADATA: token,
                },
            )
        except S3VaultError as exc:
            self._report_error(path, exc)
            return None
        bucket = self.folder.bucket
        then = None
        if sealed.instruction is not None and sealed.instruction_key is not None:
            then = PutRequest(bucket, sealed.instruction_key, sealed.instruction)
        return PutRequest(
            bucket,
            key,
            sealed.body,
            sealed.metadata,
            if_match=action.expected_etag,
            if_none_match=action.if_none_match,
            then=then,
            tag=_Job(
                action, path, full, before, hashlib.sha256(data).hexdigest(), sealed.key_name, token
            ),
        )

    # ---- outcomes --------------------------------------------------------------------

    def _on_done(self, outcome: PutOutcome) -> None:
        job: _Job = outcome.request.tag
        error = outcome.error
        if error is None:
            finished = _Finished(job, written=outcome.written)
        elif outcome.written is not None:
            # The object is stored but its instruction file is not: unreadable as it
            # is, so no row; the next run sees an object it does not know (a conflict).
            message = f"{error.message} (the object was stored without its instruction file)"
            finished = _Finished(job, error=type(error)(message, hint=error.hint))
        elif isinstance(error, ConflictError):
            if _changed_since(job.full, job.before):
                finished = _Finished(job, deferred=True)  # changed meanwhile: try again later
            else:
                # HTTP 412: another writer's object is there, or ours (re-written by
                # key rotation, or landed after a crash): checked once the batch is
                # done. Never overwrite it.
                finished = _Finished(job, conflict=error.message, rotated=True)
        else:
            finished = _Finished(job, error=error)
        self._finished.append(finished)
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
        exact = {f.job.path: not _changed_since(f.job.full, f.job.before) for f in finished}
        with self.state.transaction():
            for f in finished:
                if f.written is None:
                    self.state.end_upload(self.fid, f.job.path)
                    continue
                job, same = f.job, exact[f.job.path]
                self.state.record_synced(
                    self.fid,
                    SyncedFile(
                        path=job.path,
                        size=job.before.st_size,
                        # Changed after it was read: not sure it is what was stored. An
                        # impossible mtime and hash make the next run compare and upload.
                        mtime_ns=job.before.st_mtime_ns if same else -1,
                        content_hash=job.digest if same else UNKNOWN_HASH,
                        etag=f.written.etag,
                        key_name=job.key_name,
                        version_id=f.written.version_id,
                        token=job.token,
                    ),
                )
        for f in finished:
            self._report_finished(f)

    def _report_finished(self, f: _Finished) -> None:
        path, size = f.job.path, f.job.before.st_size
        if f.written is not None:

            def count(r: SyncReport) -> None:
                r.uploaded += 1
                r.bytes += size

            self.tally.update(count)
            self.tally.done(path, size)
        elif f.deferred:
            self._report(path, lambda r: r.deferred.append(path))
        elif f.rotated:
            self._rotated.append(f)  # reported after the batch (see `run`)
        elif f.conflict is not None:
            issue = PathIssue(path, f.conflict)
            self._report(path, lambda r: r.conflicts.append(issue))
        elif f.error is not None:
            self._report_error(path, f.error)

    def _report(self, path: str, change: Callable[[SyncReport], None]) -> None:
        self.tally.update(change)
        self.tally.done(path)

    def _unread(self, path: str, exc: OSError, full: Path) -> None:
        report_unread(self.tally, path, exc, full)
        self.tally.done(path)

    def _report_error(self, path: str, exc: S3VaultError) -> None:
        error = PathError(path, exc.message, int(exc.exit_code))
        self._report(path, lambda r: r.errors.append(error))


def _read_whole(path: Path, *, follow_symlinks: bool) -> tuple[bytes, os.stat_result]:
    """A small regular file's bytes and its stat from before they were read.

    Opened as `hash_file` opens it (no symlink unless followed, never blocking on a
    FIFO). OSError if it is not a regular file any more or changed while read;
    `_TooBig` if it grew past `SMALL_FILE_LIMIT`.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with open(fd, "rb") as f:
        before = os.fstat(f.fileno())
        if not stat.S_ISREG(before.st_mode):
            raise IsADirectoryError(f"{path} is no longer a regular file")
        if before.st_size > SMALL_FILE_LIMIT:
            raise _TooBig(path)
        data = f.read(before.st_size + 1)
    if len(data) != before.st_size or _changed_since(path, before):
        raise InterruptedError(f"{path} changed while it was read")
    return data, before
