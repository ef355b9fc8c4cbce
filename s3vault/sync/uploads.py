"""The upload rules, one place for both ways a file travels.

A file goes up either streamed on its own (`upload_file`, `Vault.put` over boto3) or
sealed in memory with many other small ones (`sync.small_files`, the native path).
The paths differ only in how the bytes travel; what happens around them is here
(docs/sync.md, "Executing a plan"):

- the file's stat is taken before its first byte is read and its hash from the same
  bytes; the write is announced in the state (`StateDB.begin_upload`) with its upload
  token before anything is sent;
- every write is conditional (``IfNoneMatch: *`` for a new path, ``IfMatch`` the
  recorded ETag); a refusal (HTTP 412) is a conflict, never an overwrite — unless the
  file changed meanwhile (deferred) or the object is this machine's own, re-written
  by key rotation (relearned, and written again once);
- the state row is written only after S3 confirmed the object; a file that changed
  after it was read gets a row that makes the next run compare and upload again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from s3vault.config.sync import FolderSettings
from s3vault.errors import ConflictError, NotFoundError
from s3vault.localfile import changed_since
from s3vault.sync.metadata import upload_metadata
from s3vault.sync.model import UNKNOWN_HASH, SyncedFile, Upload
from s3vault.sync.ownership import Ownership
from s3vault.sync.report import Tally
from s3vault.sync.runner import Runner
from s3vault.sync.scan import hash_file
from s3vault.sync.state import InFlightUpload, StateDB
from s3vault.vault import Location, Vault, Version


@dataclass(frozen=True, slots=True)
class FileUpload:
    """One file on its way: what its write and its row need (not its bytes)."""

    action: Upload
    key: str
    full: str | Path
    before: os.stat_result  # taken before the first byte was read
    digest: str  # SHA-256 of the bytes read
    token: str  # the upload token, in the object's metadata and the state

    @property
    def path(self) -> str:
        return self.action.path

    @property
    def size(self) -> int:
        return self.before.st_size


class Uploads:
    """The upload rules of one folder's run; see the module docstring."""

    def __init__(
        self,
        folder: FolderSettings,
        vault: Vault,
        state: StateDB,
        runner: Runner,
        ownership: Ownership,
        tally: Tally,
    ) -> None:
        self.folder = folder
        self.vault = vault
        self.state = state
        self.runner = runner
        self.ownership = ownership
        self.tally = tally
        self.fid = folder.folder_id

    # ---- around the bytes ------------------------------------------------------------

    def start(
        self, action: Upload, full: str | Path, before: os.stat_result, digest: str
    ) -> FileUpload:
        """The upload of a file read (or hashed) as ``before`` describes it."""
        key = self.folder.object_key(action.path)
        return FileUpload(action, key, full, before, digest, self.ownership.new_token())

    def announce(self, upload: FileUpload) -> None:
        """Record the coming write in the state, so a crash cannot orphan it."""
        self.announce_many([upload])

    def announce_many(self, uploads: Sequence[FileUpload]) -> None:
        """`announce` for many writes, in one transaction."""
        self.state.begin_uploads(
            self.fid,
            [
                InFlightUpload(u.path, u.key, u.size, u.before.st_mtime_ns, u.token)
                for u in uploads
            ],
        )

    def metadata(self, upload: FileUpload) -> dict[str, str]:
        return upload_metadata(upload.before.st_mtime_ns, upload.token)

    @property
    def version(self) -> Version:
        return Version(self.folder.format)

    @property
    def location(self) -> Location:
        return Location(self.folder.envelope)

    def stored(
        self, upload: FileUpload, *, etag: str, version_id: str | None, key_name: str
    ) -> None:
        """S3 confirmed the object: its state row (call `tally.uploaded` after)."""
        self.state.record_synced(
            self.fid, self.row(upload, etag=etag, version_id=version_id, key_name=key_name)
        )

    def row(
        self, upload: FileUpload, *, etag: str, version_id: str | None, key_name: str
    ) -> SyncedFile:
        """The state row of a confirmed object, for `StateDB.record_synced` (`stored`)."""
        exact = not changed_since(upload.full, upload.before)
        return SyncedFile(
            path=upload.path,
            size=upload.size,
            # Not sure what was stored (the file changed after it was read): an
            # impossible mtime and hash make the next run compare and upload.
            mtime_ns=upload.before.st_mtime_ns if exact else -1,
            content_hash=upload.digest if exact else UNKNOWN_HASH,
            etag=etag,
            key_name=key_name,
            version_id=version_id,
            token=upload.token,
        )

    def not_stored(self, upload: FileUpload) -> None:
        """Nothing was stored: the write's announcement ends."""
        self.state.end_upload(self.fid, upload.path)

    def refused(self, upload: FileUpload, reason: str, *, relearned: bool = False) -> None:
        """S3 refused the conditional write (HTTP 412): decide what it means.

        Changed (or removed) since it was read: deferred, nothing was stored. Else the
        object there is another writer's (a conflict, never overwritten) or this
        machine's own (rotated, or landed after a crash): relearned and, unless it
        holds the file already, written again once on its new ETag.
        """
        if changed_since(upload.full, upload.before):
            self.tally.defer(upload.path)
        elif relearned or not self._upload_again_if_own(upload.action):
            self.tally.conflict(upload.path, reason)

    def _upload_again_if_own(self, action: Upload) -> bool:
        """False if the object at ``action``'s key is another writer's."""
        new = self.ownership.relearn(action.path, self.state.get(self.fid, action.path))
        if new is None:
            return False
        if self.ownership.holds_file(new):
            self.tally.update(lambda r: setattr(r, "relearned", r.relearned + 1))
            self.tally.done(action.path)
        else:
            retry = Upload(action.path, "changed", expected_etag=new.etag)
            self._upload_once(retry, relearned=True)
        return True

    # ---- the streaming path ----------------------------------------------------------

    def upload_file(self, action: Upload) -> None:
        """Stream one file up with `Vault.put`; the outcome goes to the tally."""
        self.runner.guarded(action.path, self.tally, lambda: self._upload_once(action))

    def _upload_once(self, action: Upload, *, relearned: bool = False) -> None:
        full = self.folder.local_path(action.path)
        try:
            before = os.stat(full)
            # Hashed before the upload; Vault.put then checks that size, mtime and
            # inode do not change between its open and the commit, and `stored`
            # compares with this stat, so the hash is that of the bytes stored.
            digest = hash_file(full, follow_symlinks=self.folder.follow_symlinks)
        except OSError as exc:
            self.tally.unread(action.path, exc, full)
            return
        upload = self.start(action, full, before, digest)
        self.announce(upload)
        try:
            result = self.runner.retrying(
                lambda: self.vault.put(
                    full,
                    self.folder.bucket,
                    upload.key,
                    key_name=self.folder.key,
                    version=self.version,
                    location=self.location,
                    if_match=action.expected_etag,
                    if_none_match=action.if_none_match,
                    extra_metadata=self.metadata(upload),
                    progress=self.tally.sending(action.path, upload.size),
                )
            )
        except ConflictError as exc:
            self.not_stored(upload)
            self.refused(upload, exc.message, relearned=relearned)
            return
        except NotFoundError:
            self.not_stored(upload)
            self.tally.defer(action.path)  # vanished since the scan
            return
        except BaseException:
            self.not_stored(upload)
            raise
        self.stored(
            upload, etag=result.etag, version_id=result.version_id, key_name=result.key_name
        )
        self.tally.uploaded(action.path, upload.size)
