"""This machine's own objects: written before a crash, or re-written by key rotation.

Every write carries an upload token, ``writer.random`` (`metadata.UPLOAD_TOKEN_METADATA`);
the writer part is this state database's (`StateDB.writer`). An object with such a
token is this machine's own write, never another machine's: after kill -9 a write may
reach S3 after its announcement was settled, and key rotation rewrites objects with
new ETags but the same token. Such objects are relearned (their rows recorded again),
not reported as conflicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import secrets
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import BinaryIO, Literal, cast

from s3vault.config.sync import FolderSettings
from s3vault.errors import AccessDeniedError, NotFoundError, S3VaultError
from s3vault.etag import same_etag
from s3vault.localfile import changed_since
from s3vault.sync.metadata import MTIME_METADATA, UPLOAD_TOKEN_METADATA
from s3vault.sync.model import UNKNOWN_HASH, RemoteObject, StateRows, SyncedFile
from s3vault.sync.runner import Runner
from s3vault.sync.scan import hash_file
from s3vault.sync.state import InFlightUpload, StateDB
from s3vault.vault import ObjectHead, Vault

log = logging.getLogger(__name__)

LATE_WRITE_GRACE = 10.0
"""Seconds after it began that an interrupted write S3 does not hold is still waited
for (a request S3 received whole may be committed after its sender died)."""


class Ownership:
    """Tells this machine's objects from others' and records their rows again."""

    def __init__(self, folder: FolderSettings, vault: Vault, state: StateDB, runner: Runner):
        self.folder = folder
        self.vault = vault
        self.state = state
        self.runner = runner
        self.fid = folder.folder_id
        self.writer = state.writer

    def new_token(self) -> str:
        """A fresh upload token of this state's writer."""
        return f"{self.writer}.{secrets.token_hex(8)}"

    def is_own(self, token: str | None) -> bool:
        return bool(token) and str(token).startswith(self.writer + ".")

    # ---- relearning ------------------------------------------------------------------

    def relearn_own_objects(
        self,
        rows: Mapping[str, SyncedFile],
        remote: Mapping[str, RemoteObject],
        local: Collection[str],
    ) -> dict[str, SyncedFile]:
        """Rows for objects this machine wrote that the state does not know as they are.

        Two kinds, one HEAD each: a row whose object has another ETag (rotated, or a
        later write of ours that landed after a crash), and a local file with no row
        whose object exists (a write whose announcement was settled before S3 had
        it). Anything not ours is left for the plan to report as a conflict.
        """
        # Over every row and file of the folder: plain values only, no row is built.
        state = StateRows.of(rows)
        stale = [
            path
            for path, etag in state.etags()
            if (obj := remote.get(path)) is not None
            and obj.etag != etag
            and not same_etag(obj.etag, etag)
        ]
        unknown = [path for path in local if path not in state.raw and path in remote]
        learned: dict[str, SyncedFile] = {}

        def relearn(path: str) -> None:
            with contextlib.suppress(S3VaultError):  # unknown: the plan reports it
                new = self.relearn(path, rows.get(path))
                if new is not None:
                    learned[path] = new

        self.runner.run_all([*stale, *unknown], relearn)
        return learned

    def relearn(self, path: str, row: SyncedFile | None) -> SyncedFile | None:
        """The row for the object now at ``path``'s key if this machine wrote it; None
        if it is gone or another writer's. Recorded in the state."""
        try:
            head = self.vault.head(self.folder.bucket, self.folder.object_key(path))
        except NotFoundError:
            return None
        token = head.metadata.get(UPLOAD_TOKEN_METADATA)
        if row is not None and row.token and token == row.token:
            # The same write, re-wrapped or re-encrypted: the same plaintext.
            new = dataclasses.replace(
                row,
                etag=head.etag,
                version_id=head.version_id,
                key_name=self.vault.master_key_name(head) or row.key_name,
            )
            why = "was re-written with the same content (key rotation)"
        elif self.is_own(token):
            new = self.own_row(path, head)
            why = "was written here before an interruption"
        elif row is None and (same := self.same_content_row(path, head)) is not None:
            new = same
            why = "already holds the file (its state was lost, or it was restored here)"
        else:
            return None
        self.state.record_synced(self.fid, new)
        log.info("%s: %s %s", self.fid, path, why)
        return new

    def same_content_row(self, path: str, head: ObjectHead) -> SyncedFile | None:
        """A row for the object at ``path`` if it holds exactly the local file, else None.

        For a file with no row whose object another state wrote: the state database
        was deleted or rebuilt, or the folder was restored from S3 on this machine.
        Only an object whose plaintext size and recorded mtime are the file's is
        fetched (restore and ``cp -a`` keep the mtime), and only identical bytes
        (SHA-256 of the decrypted object) make it this file's object; anything else
        stays a conflict. Without this, every file would be a conflict for ever.
        """
        mtime = head.metadata.get(MTIME_METADATA, "")
        full = self.folder.local_path(path)
        try:
            now = os.stat(full, follow_symlinks=self.folder.follow_symlinks)
            if not mtime.isdigit() or (now.st_size, now.st_mtime_ns) != (
                self.vault.sealed_plaintext_size(head),
                int(mtime),
            ):
                return None
            digest = hash_file(full, follow_symlinks=self.folder.follow_symlinks)
        except OSError:
            return None
        theirs = _HashingSink()
        try:
            self.vault.get(self.folder.bucket, head.key, cast(BinaryIO, theirs))  # verified first
        except S3VaultError as exc:  # e.g. sealed with a key this machine lacks
            log.info("%s: %s not compared with its object: %s", self.fid, path, exc.message)
            return None
        if theirs.hexdigest() != digest or changed_since(full, now):
            return None
        return SyncedFile(
            path=path,
            size=now.st_size,
            mtime_ns=now.st_mtime_ns,
            content_hash=digest,
            etag=head.etag,
            key_name=self.vault.master_key_name(head) or self.folder.key,
            version_id=head.version_id,
            token=head.metadata.get(UPLOAD_TOKEN_METADATA),
        )

    def holds_file(self, row: SyncedFile) -> bool:
        """Whether ``row``'s object holds the file as it is now (by size and mtime, as
        the planner judges)."""
        if row.content_hash == UNKNOWN_HASH:
            return False
        try:
            now = os.stat(
                self.folder.local_path(row.path), follow_symlinks=self.folder.follow_symlinks
            )
        except OSError:
            return False
        return (now.st_size, now.st_mtime_ns) == (row.size, row.mtime_ns)

    def own_row(self, path: str, head: ObjectHead) -> SyncedFile:
        """A row for this machine's object at ``path``: exact if the file still has the
        size and mtime the object records, else one the next plan uploads again."""
        size = self.vault.sealed_plaintext_size(head)
        mtime = head.metadata.get(MTIME_METADATA, "")
        digest = UNKNOWN_HASH
        full = self.folder.local_path(path)
        try:
            now = os.stat(full, follow_symlinks=self.folder.follow_symlinks)
            if mtime.isdigit() and (now.st_size, now.st_mtime_ns) == (size, int(mtime)):
                digest = hash_file(full, follow_symlinks=self.folder.follow_symlinks)
        except OSError:
            pass
        return SyncedFile(
            path=path,
            size=size,
            # Not known to hold the file as it is: an impossible mtime and hash make
            # the next plan compare it again and upload, conditional on this ETag.
            mtime_ns=int(mtime) if digest != UNKNOWN_HASH else -1,
            content_hash=digest,
            etag=head.etag,
            key_name=self.vault.master_key_name(head) or self.folder.key,
            version_id=head.version_id,
            token=head.metadata.get(UPLOAD_TOKEN_METADATA),
        )

    # ---- writes interrupted by a crash -----------------------------------------------

    def recover_interrupted_uploads(self) -> list[str]:
        """Settle the writes this state announced and never recorded (a crash, kill -9).

        A write whose object S3 holds is adopted: its row is recorded, so the next
        plan neither uploads it again nor takes it for another machine's object.
        Multipart uploads of the others are aborted; only keys this machine
        announced are touched, and only uploads initiated before this run. Best
        effort, write by write: one S3 refuses or that finds S3 unreachable is tried
        again at the next run (the adoption of the others goes on); without the right
        to list or abort multipart uploads, a write is still adopted or forgotten.

        A write S3 does not hold yet is kept for `LATE_WRITE_GRACE` after it began:
        S3 finishes a request it received in full even when its sender died, and a
        busy server did so after this HEAD (seen in tests/reliability). Forgotten at
        once, such a write of a file deleted meanwhile stayed in S3 for good, owned
        by no row. Returns the paths of the writes kept: the next run looks again.
        """
        now = datetime.now(UTC)
        kept: list[str] = []
        for upload in self.state.uploads(self.fid):
            settled = True
            try:
                self.vault.abort_unfinished_uploads(self.folder.bucket, upload.key, now)
            except AccessDeniedError as exc:
                # Not allowed to list or abort uploads: never will be; its parts stay
                # until a lifecycle rule ends them.
                log.warning("%s: parts of %s left in S3: %s", self.fid, upload.path, exc.message)
            except S3VaultError as exc:
                settled = False  # tried again at the next run
                log.warning("%s: %s: %s", self.fid, upload.path, exc.message)
            try:
                found = self._adopt(upload)
                if found == "adopted" or not settled:
                    continue
                if found == "absent" and now.timestamp() - upload.started_at < LATE_WRITE_GRACE:
                    kept.append(upload.path)
                else:
                    self.state.end_upload(self.fid, upload.path)
            except S3VaultError as exc:
                log.warning("%s: %s: %s", self.fid, upload.path, exc.message)
        return kept

    def _adopt(self, upload: InFlightUpload) -> Literal["adopted", "absent", "other"]:
        """Record ``upload`` as synced if S3 holds its object: "adopted"; "absent" if S3
        has no object at its key, "other" if it holds one this write did not make."""
        if not upload.token:
            return "other"
        try:
            head = self.vault.head(self.folder.bucket, upload.key)
        except NotFoundError:
            return "absent"
        token = head.metadata.get(UPLOAD_TOKEN_METADATA)
        if token != upload.token and not self.is_own(token):
            return "other"  # another machine's
        self.state.record_synced(self.fid, self.own_row(upload.path, head))
        log.info("%s: adopted %s, uploaded before an interruption", self.fid, upload.path)
        return "adopted"


class _HashingSink(io.RawIOBase):
    """A write-only stream that keeps only the SHA-256 of what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self._hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._hash.update(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
