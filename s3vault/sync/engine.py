"""One sync run of a folder: scan, plan, guard, then execute the plan against S3.

`SyncEngine.reconcile` is what `s3vault sync` runs once and what the agent runs at
start-up, periodically and for each batch of watcher events (``paths``). The pure
core (scan, planner, guard) decides; this module only carries the plan out, with the
rules of docs/sync.md ("Executing a plan"):

- every write is conditional (``IfNoneMatch: *`` for a new path, ``IfMatch`` the
  recorded ETag for a changed one); HTTP 412 is a conflict, never an overwrite;
- a state row is written only after S3 confirmed the object;
- a file that changed while it was read is stored nowhere and left for the next run
  (``deferred``);
- transient errors (S3 unreachable) are retried with backoff; any per-file error is
  collected in the report and never ends the run;
- no local file is ever opened for writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from s3vault.config.sync import FolderSettings
from s3vault.crypto.constants import GCM_TAG_BYTES
from s3vault.crypto.envelope import Location, Version, parse_envelope
from s3vault.errors import (
    ConflictError,
    ExitCode,
    NotFoundError,
    RefusedError,
    S3VaultError,
    UnreachableError,
    local_error,
)
from s3vault.keys.provider import DESCRIPTION_KEY
from s3vault.remote.etag import same_etag
from s3vault.sync.guard import FORCE, guard
from s3vault.sync.ignore import IgnoreRules
from s3vault.sync.model import (
    Action,
    Conflict,
    Copy,
    DeleteRemote,
    Forget,
    LocalFile,
    Plan,
    RemoteObject,
    SyncedFile,
    Touch,
    Upload,
)
from s3vault.sync.planner import plan as make_plan
from s3vault.sync.planner import remote_index
from s3vault.sync.scan import (
    ScanResult,
    file_hasher,
    hash_file,
    root_identity,
    root_status,
    scan,
    scan_paths,
)
from s3vault.sync.state import InFlightUpload, StateDB
from s3vault.vault.vault import ObjectHead, Vault

log = logging.getLogger(__name__)

MTIME_METADATA = "s3vault-mtime"
"""User metadata with the file's mtime in ns: `s3vault restore` gives it back."""
UPLOAD_TOKEN_METADATA = "s3vault-upload"  # noqa: S105 (a metadata name, not a secret)
"""A token per write, ``WRITER.RANDOM``, also kept in the state (in-flight announcement,
then the row): it proves an object is this machine's write, after a crash between S3's
answer and the state row, or after key rotation re-wrote the object with a new ETag.
WRITER is the state database's id (`StateDB.writer`)."""

UNKNOWN_HASH = ""
"""Content hash of a row whose uploaded bytes are not known for sure (see `_upload`)."""

T = TypeVar("T")


class SyncRefused(RefusedError):
    """The guard refused the run: nothing was changed in S3."""

    title = "Sync refused"


@dataclass(frozen=True, slots=True)
class SyncProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str | None = None


@dataclass(frozen=True, slots=True)
class PathIssue:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class PathError:
    path: str
    message: str
    exit_code: int


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One step of a plan, in the user's words: what `sync --dry-run` lists."""

    action: str  # upload, rename, delete, touch, conflict, forget (see ACTION_NAMES)
    path: str
    to: str | None = None  # rename: the new path
    reason: str | None = None  # upload: new, changed, missing-remotely; conflict: why
    bytes: int | None = None  # upload: the file's size


@dataclass
class SyncReport:
    """What one run did; counts of files, plus the paths that need attention."""

    folder: str
    dry_run: bool = False
    uploaded: int = 0
    copied: int = 0  # renames and moves: a server-side copy, then the old object goes
    deleted: int = 0
    touched: int = 0
    forgotten: int = 0
    relearned: int = 0  # objects re-written with the same plaintext (key rotation)
    skipped: int = 0  # symlinks, special files, names that are not UTF-8
    conflicts: list[PathIssue] = field(default_factory=list)
    errors: list[PathError] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)  # action name -> count
    would: list[PlannedAction] = field(default_factory=list)  # dry run: every step
    bytes: int = 0
    duration: float = 0.0
    forced: str = ""  # the guard's reason when --force overruled it

    @property
    def exit_code(self) -> int:
        """0 clean, 8 with conflicts, else the first error's code."""
        if self.errors:
            return self.errors[0].exit_code
        if self.conflicts:
            return int(ExitCode.CONFLICT)
        return int(ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


class _Tally:
    """Thread-safe report updates and progress callbacks from the workers.

    Progress counts bytes as they are sent (`sending`), not only when a file is
    done, so a run busy with one large file still shows it moving.
    """

    NOTIFY_EVERY = 0.25  # seconds between progress callbacks while bytes flow

    def __init__(
        self,
        report: SyncReport,
        files_total: int,
        bytes_total: int,
        progress: Callable[[SyncProgress], None] | None,
    ) -> None:
        self.report = report
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.files_done = 0
        self.bytes_done = 0
        self.progress = progress
        self.lock = threading.Lock()
        self._sent: dict[str, int] = {}  # bytes of files still in flight, counted already
        self._notified = 0.0

    def update(self, change: Callable[[SyncReport], None]) -> None:
        with self.lock:
            change(self.report)

    def announce(self) -> None:
        """Tell the progress callback what the run is about to do (0 of n files)."""
        self._notify(None, force=True)

    def sending(self, path: str, size: int) -> Callable[[int], None]:
        """A callback for a transfer's progress: ``n`` more bytes of ``path`` went out.

        Counted up to the file's ``size`` (a retried upload sends its bytes again).
        """

        def sent(n: int) -> None:
            with self.lock:
                before = self._sent.get(path, 0)
                now = min(size, before + n)
                self._sent[path] = now
                self.bytes_done += now - before
            self._notify(path)

        return sent

    def done(self, path: str, nbytes: int = 0) -> None:
        with self.lock:
            self.files_done += 1
            # Bytes counted while sending are replaced by the file's final count.
            self.bytes_done += nbytes - self._sent.pop(path, 0)
        self._notify(path, force=True)

    def _notify(self, path: str | None, *, force: bool = False) -> None:
        if not self.progress:
            return
        with self.lock:
            now = time.monotonic()
            if not force and now - self._notified < self.NOTIFY_EVERY:
                return
            self._notified = now
            snapshot = SyncProgress(
                self.files_done, self.files_total, self.bytes_done, self.bytes_total, path
            )
        self.progress(snapshot)


class SyncEngine:
    """Reconciles one folder with its S3 prefix; safe to call again at any time."""

    def __init__(
        self,
        folder: FolderSettings,
        vault: Vault,
        state: StateDB,
        *,
        workers: int = 8,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.folder = folder
        # The folder's instruction files are under its own suffix, if it names one.
        self.vault = vault.with_instruction_suffix(folder.instruction_suffix)
        self.state = state
        self.workers = max(1, workers)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.fid = folder.folder_id
        self.writer = state.writer

    # ---- one run ---------------------------------------------------------------------

    def reconcile(
        self,
        *,
        paths: Collection[str] | None = None,
        force: bool = False,
        dry_run: bool = False,
        with_remote_listing: bool = True,
        progress: Callable[[SyncProgress], None] | None = None,
    ) -> SyncReport:
        """Bring S3 in line with the folder (or with just ``paths`` of it).

        Raises `SyncRefused` when the guard refuses the plan (nothing changed), and
        an S3VaultError when the run cannot start (S3 unreachable for the listing);
        per-file failures end up in the report instead.

        A run reads each master key from the keyring once; the next run reads it
        again, so a long-running agent picks up a replaced key.
        """
        with self.vault.keys.remembering_keys():
            return self._reconcile(
                paths=paths,
                force=force,
                dry_run=dry_run,
                with_remote_listing=with_remote_listing,
                progress=progress,
            )

    def _reconcile(
        self,
        *,
        paths: Collection[str] | None,
        force: bool,
        dry_run: bool,
        with_remote_listing: bool,
        progress: Callable[[SyncProgress], None] | None,
    ) -> SyncReport:
        started = time.monotonic()
        root = self.folder.path
        report = SyncReport(folder=self.fid, dry_run=dry_run)
        status = root_status(root)
        if status != "ok":
            verdict = guard(Plan(), 0, 0, self.folder, root_status=status)
            raise SyncRefused(verdict.reason, hint=verdict.hint or None)
        identity = root_identity(root)
        record = self.state.folder(self.fid)
        root_changed = bool(record and record.identity and record.identity != identity)

        if not dry_run:
            self._recover_interrupted_uploads()
        rules = IgnoreRules.for_folder(root, self.folder.ignore)
        follow = self.folder.follow_symlinks
        found = scan_paths(root, paths, rules, follow_symlinks=follow) if paths else None
        if found is None:
            found = scan(root, rules, follow_symlinks=follow)
        report.skipped = len(found.skipped)
        all_rows = self.state.all(self.fid)
        rows = all_rows if not paths else _under(all_rows, paths)
        remote: dict[str, RemoteObject] | None = None
        if with_remote_listing:
            listing = self.vault.remote.list(self.folder.bucket, self.folder.prefix)
            remote = remote_index(listing, self.folder, self.vault.is_instruction_key)
            if paths:
                remote = _under(remote, paths)
            if not dry_run:
                relearned = self._relearn_own_objects(rows, remote, found.files)
                all_rows.update(relearned)
                if rows is not all_rows:  # an event batch's share of them
                    rows.update(relearned)
                report.relearned = len(relearned)

        plan = make_plan(
            found.files,
            rows,
            remote,
            delete_policy=self.folder.delete,
            hash_of=file_hasher(root, follow_symlinks=follow),
            unreadable=found.unreadable,
            is_ignored=rules.is_ignored,
        )
        local_count = _local_total(found, rows, len(all_rows), whole=not paths)
        verdict = guard(
            plan,
            local_count,
            len(all_rows),
            self.folder,
            root_status=status,
            root_changed=root_changed,
            force=force,
        )
        if not verdict.ok:
            hint = verdict.hint or f"Nothing was changed in S3; see `{FORCE}`."
            raise SyncRefused(verdict.reason, hint=hint)
        report.forced = verdict.reason
        report.planned = _planned(plan)
        if dry_run:
            report.would = [_described(action, found.files) for action in _steps(plan)]
        for error_path, why in found.errors.items():
            report.errors.append(PathError(error_path, why, int(ExitCode.USAGE)))
        if not dry_run:
            self._execute(plan, found.files, all_rows, report, progress)
            # The root as synced now: a later run notices when another directory
            # takes its place (and --force made the user confirm this one).
            self.state.remember_folder(
                self.fid, root, self.folder.bucket, self.folder.prefix, identity
            )
        report.duration = time.monotonic() - started
        return report

    # ---- executing a plan ------------------------------------------------------------

    def _execute(
        self,
        plan: Plan,
        local: dict[str, LocalFile],
        rows: dict[str, SyncedFile],
        report: SyncReport,
        progress: Callable[[SyncProgress], None] | None,
    ) -> None:
        uploads = plan.of(Upload)
        tally = _Tally(
            report,
            files_total=len(plan.actions),
            bytes_total=sum(local[u.path].size for u in uploads),
            progress=progress,
        )
        tally.announce()
        copied: set[str] = set()
        # Copies first (they read objects an upload or delete may change), then
        # uploads and touches, deletes last: nothing is removed before what
        # preserves it has run.
        self._run_all(plan.of(Copy), lambda a: self._copy(a, local, rows, tally, copied))
        # Many small files go through the native batch path (sync/batch.py, which
        # builds on this module); the others, and files that grew, one by one.
        from s3vault.sync.batch import split_uploads, upload_small_files

        small, others = split_uploads(uploads, local, self.folder)
        others += upload_small_files(self, small, tally)
        self._run_all(others, lambda a: self._upload(a, local[a.path], tally))
        for touch in plan.of(Touch):
            self._touch(touch, tally)
        for conflict in plan.of(Conflict):
            self._conflict(conflict, tally)
        deletes = [d for d in plan.of(DeleteRemote) if _may_delete(d, copied, tally)]
        self._run_all(deletes, lambda a: self._delete(a, tally))
        for forget in plan.of(Forget):
            self.state.forget(self.fid, forget.path)
            tally.update(lambda r: setattr(r, "forgotten", r.forgotten + 1))
            tally.done(forget.path)

    def _run_all(self, actions: Iterable[T], run: Callable[[T], None]) -> None:
        """Run ``run`` on each action in a bounded pool; per-file errors were reported."""
        items = list(actions)
        if not items:
            return
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(items)), thread_name_prefix="sync"
        ) as pool:
            for future in [pool.submit(run, item) for item in items]:
                future.result()

    def _guarded(self, path: str, tally: _Tally, work: Callable[[], None]) -> None:
        """Run one file's work; an expected failure becomes a per-file error."""
        try:
            work()
        except S3VaultError as exc:
            error = PathError(path, exc.message, int(exc.exit_code))
            tally.update(lambda r: r.errors.append(error))
            tally.done(path)

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call()``, again after a pause while S3 is unreachable (``attempts`` in all)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except UnreachableError:
                if attempt == self.attempts:
                    raise
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    # ---- uploads ---------------------------------------------------------------------

    def _upload(self, action: Upload, file: LocalFile, tally: _Tally) -> None:
        self._guarded(action.path, tally, lambda: self._upload_once(action, tally))

    def _upload_once(self, action: Upload, tally: _Tally, *, relearned: bool = False) -> None:
        path = action.path
        full = self._local(path)
        key = self.folder.key_for(path)
        try:
            before = os.stat(full)
            # Hashed before the upload; Vault.put then checks that size, mtime and
            # inode do not change between its open and the commit, and we compare
            # with this stat below, so the hash is that of the bytes stored.
            digest = hash_file(full, follow_symlinks=self.folder.follow_symlinks)
        except OSError as exc:
            report_unread(tally, path, exc, full)
            tally.done(path)
            return
        token = self.new_token()
        self.state.begin_upload(
            self.fid, InFlightUpload(path, key, before.st_size, before.st_mtime_ns, token)
        )
        try:
            result = self._retrying(
                lambda: self.vault.put(
                    full,
                    self.folder.bucket,
                    key,
                    key_name=self.folder.key,
                    version=Version(self.folder.format),
                    location=Location(self.folder.envelope),
                    if_match=action.expected_etag,
                    if_none_match=action.if_none_match,
                    extra_metadata={
                        MTIME_METADATA: str(before.st_mtime_ns),
                        UPLOAD_TOKEN_METADATA: token,
                    },
                    progress=tally.sending(path, before.st_size),
                )
            )
        except ConflictError as exc:
            reason = exc.message
            self.state.end_upload(self.fid, path)
            if _changed_since(full, before):
                # Changed (or removed) while it was read: nothing was stored.
                tally.update(lambda r: r.deferred.append(path))
            else:
                if not relearned and self._upload_again_if_own(action, tally):
                    return
                # HTTP 412: another writer's object is there. Never overwrite it.
                tally.update(lambda r: r.conflicts.append(PathIssue(path, reason)))
            tally.done(path)
            return
        except NotFoundError:
            self.state.end_upload(self.fid, path)
            tally.update(lambda r: r.deferred.append(path))  # vanished since the scan
            tally.done(path)
            return
        except BaseException:
            self.state.end_upload(self.fid, path)
            raise
        exact = not _changed_since(full, before)
        self.state.record_synced(
            self.fid,
            SyncedFile(
                path=path,
                size=before.st_size,
                # Not sure what was stored (the file changed after the upload's
                # check): an impossible mtime and hash make the next run compare
                # again and upload, conditional on this ETag.
                mtime_ns=before.st_mtime_ns if exact else -1,
                content_hash=digest if exact else UNKNOWN_HASH,
                etag=result.etag,
                key_name=result.key_name,
                version_id=result.version_id,
                token=token,
            ),
        )

        def count(r: SyncReport) -> None:
            r.uploaded += 1
            r.bytes += before.st_size

        tally.update(count)
        tally.done(path, before.st_size)

    # ---- copies, touches, deletes ----------------------------------------------------

    def _copy(
        self,
        action: Copy,
        local: dict[str, LocalFile],
        rows: dict[str, SyncedFile],
        tally: _Tally,
        copied: set[str],
    ) -> None:
        def work() -> None:
            source = rows[action.src_path]
            file = local[action.dst_path]
            # The envelope travels with the object: its instruction file is copied too.
            written = self._retrying(
                lambda: self.vault.copy(
                    self.folder.bucket,
                    self.folder.key_for(action.src_path),
                    self.folder.key_for(action.dst_path),
                    if_match=action.src_etag,
                    # The object is the plaintext and the GCM tag; above the copy
                    # threshold (5 GiB) it is copied in parts.
                    size=source.size + GCM_TAG_BYTES,
                )
            )
            self.state.record_synced(
                self.fid,
                SyncedFile(
                    path=action.dst_path,
                    size=file.size,
                    mtime_ns=file.mtime_ns,
                    content_hash=source.content_hash,
                    etag=written.etag,
                    key_name=source.key_name,
                    version_id=written.version_id,
                    token=source.token,  # the copy carries the source's metadata
                ),
            )
            with tally.lock:
                copied.add(action.src_path)
            tally.update(lambda r: setattr(r, "copied", r.copied + 1))
            tally.done(action.dst_path)

        self._guarded(action.dst_path, tally, work)

    def _conflict(self, action: Conflict, tally: _Tally) -> None:
        issue = PathIssue(action.path, action.reason)
        tally.update(lambda r: r.conflicts.append(issue))
        tally.done(action.path)

    def _touch(self, action: Touch, tally: _Tally) -> None:
        self.state.touch(self.fid, action.path, action.mtime_ns)
        tally.update(lambda r: setattr(r, "touched", r.touched + 1))
        tally.done(action.path)

    def _delete(self, action: DeleteRemote, tally: _Tally) -> None:
        def work() -> None:
            bucket, remote = self.folder.bucket, self.vault.remote
            key = self.folder.key_for(action.path)
            # Conditional on the ETag we synced: an object another machine wrote
            # since is kept and reported (stores without conditional deletes get
            # a HEAD and a compare; with versioning on, nothing is lost either way).
            try:
                self._retrying(lambda: remote.delete_if_match(bucket, key, action.expected_etag))
            except ConflictError:
                issue = PathIssue(action.path, "deleted here, but changed in S3 since: kept")
                tally.update(lambda r: r.conflicts.append(issue))
                tally.done(action.path)
                return
            self._retrying(lambda: self.vault.delete_instruction_file(bucket, key))
            # A rename's row was recorded under the new name by the copy already; it
            # counts as `copied` (renamed), not as a deleted file.
            self.state.forget(self.fid, action.path)
            if action.renamed_to is None:
                tally.update(lambda r: setattr(r, "deleted", r.deleted + 1))
            tally.done(action.path)

        self._guarded(action.path, tally, work)

    # ---- objects written before a crash or re-written by key rotation ---------------
    #
    # Every write carries an upload token, `writer.random`: the writer part is this
    # state database's (StateDB.writer). An object with such a token is this
    # machine's own write, never another machine's: after kill -9 a write may reach
    # S3 after its announcement was settled, and key rotation rewrites objects with
    # new ETags but the same token. Such objects are relearned, not conflicts.

    def new_token(self) -> str:
        """A fresh upload token of this state's writer."""
        return f"{self.writer}.{secrets.token_hex(8)}"

    def _is_own(self, token: str | None) -> bool:
        return bool(token) and str(token).startswith(self.writer + ".")

    def _relearn_own_objects(
        self,
        rows: dict[str, SyncedFile],
        remote: dict[str, RemoteObject],
        local: Collection[str],
    ) -> dict[str, SyncedFile]:
        """Rows for objects this machine wrote that the state does not know as they are.

        Two kinds, one HEAD each: a row whose object has another ETag (rotated, or a
        later write of ours that landed after a crash), and a local file with no row
        whose object exists (a write whose announcement was settled before S3 had
        it). Anything not ours is left for the plan to report as a conflict.
        """
        stale = [
            path
            for path, row in rows.items()
            if (obj := remote.get(path)) is not None and not same_etag(obj.etag, row.etag)
        ]
        unknown = [path for path in local if path not in rows and path in remote]
        learned: dict[str, SyncedFile] = {}

        def relearn(path: str) -> None:
            with contextlib.suppress(S3VaultError):  # unknown: the plan reports it
                new = self._relearn(path, rows.get(path))
                if new is not None:
                    learned[path] = new

        self._run_all([*stale, *unknown], relearn)
        return learned

    def _upload_again_if_own(self, action: Upload, tally: _Tally) -> bool:
        """After a 412 on ``action``: if the object there is this machine's (rotated, or
        a write that landed after a crash), relearn its row and, unless it already
        holds the file, write again, once, on its ETag. False if it is another
        writer's object (a conflict)."""
        new = self._relearn(action.path, self.state.get(self.fid, action.path))
        if new is None:
            return False
        if self._holds_file(new):
            tally.update(lambda r: setattr(r, "relearned", r.relearned + 1))
            tally.done(action.path)
        else:
            retry = Upload(action.path, "changed", expected_etag=new.etag)
            self._upload_once(retry, tally, relearned=True)
        return True

    def _holds_file(self, row: SyncedFile) -> bool:
        """Whether ``row``'s object holds the file as it is now (by size and mtime, as
        the planner judges)."""
        if row.content_hash == UNKNOWN_HASH:
            return False
        try:
            now = os.stat(self._local(row.path), follow_symlinks=self.folder.follow_symlinks)
        except OSError:
            return False
        return (now.st_size, now.st_mtime_ns) == (row.size, row.mtime_ns)

    def _relearn(self, path: str, row: SyncedFile | None) -> SyncedFile | None:
        """The row for the object now at ``path``'s key if this machine wrote it; None
        if it is gone or another writer's. Recorded in the state."""
        try:
            head = self.vault.remote.head(self.folder.bucket, self.folder.key_for(path))
        except NotFoundError:
            return None
        token = head.metadata.get(UPLOAD_TOKEN_METADATA)
        if row is not None and row.token and token == row.token:
            # The same write, re-wrapped or re-encrypted: the same plaintext.
            new = dataclasses.replace(
                row,
                etag=head.etag,
                version_id=head.version_id,
                key_name=_key_name_of(head.metadata) or row.key_name,
            )
            why = "was re-written with the same content (key rotation)"
        elif self._is_own(token):
            new = self._own_row(path, head)
            why = "was written here before an interruption"
        else:
            return None
        self.state.record_synced(self.fid, new)
        log.info("%s: %s %s", self.fid, path, why)
        return new

    def _own_row(self, path: str, head: ObjectHead) -> SyncedFile:
        """A row for this machine's object at ``path``: exact if the file still has the
        size and mtime the object records, else one the next plan uploads again."""
        size = max(head.size - GCM_TAG_BYTES, 0)
        mtime = head.metadata.get(MTIME_METADATA, "")
        digest = UNKNOWN_HASH
        full = self._local(path)
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
            key_name=_key_name_of(head.metadata) or self.folder.key,
            version_id=head.version_id,
            token=head.metadata.get(UPLOAD_TOKEN_METADATA),
        )

    def _recover_interrupted_uploads(self) -> None:
        """Settle the writes this state announced and never recorded (a crash, kill -9).

        A write whose object S3 holds is adopted: its row is recorded, so the next
        plan neither uploads it again nor takes it for another machine's object.
        Multipart uploads of the others are aborted; only keys this machine
        announced are touched, and only uploads initiated before this run. A write
        S3 commits after this (it was still on its way) carries this state's writer
        id and is relearned by a later plan. Best effort: with S3 unreachable, the
        next run tries again.
        """
        leftovers = self.state.uploads(self.fid)
        if not leftovers:
            return
        now = datetime.now(UTC)
        remote, bucket = self.vault.remote, self.folder.bucket
        with contextlib.suppress(S3VaultError):
            for upload in leftovers:
                for key, upload_id, initiated in remote.multipart_uploads(bucket, upload.key):
                    if key == upload.key and initiated <= now:
                        remote.abort_upload(bucket, key, upload_id)
                if not self._adopt(upload):
                    self.state.end_upload(self.fid, upload.path)

    def _adopt(self, upload: InFlightUpload) -> bool:
        """Record ``upload`` as synced if S3 holds its object; False if it does not."""
        if not upload.token:
            return False
        try:
            head = self.vault.remote.head(self.folder.bucket, upload.key)
        except NotFoundError:
            return False
        token = head.metadata.get(UPLOAD_TOKEN_METADATA)
        if token != upload.token and not self._is_own(token):
            return False  # another machine's
        self.state.record_synced(self.fid, self._own_row(upload.path, head))
        log.info("%s: adopted %s, uploaded before an interruption", self.fid, upload.path)
        return True

    def _local(self, path: str) -> Path:
        return self.folder.path.joinpath(*path.split("/"))


# ---- helpers -------------------------------------------------------------------------

V = TypeVar("V")

# A file that vanished, became a folder or another kind of file, or changed while it
# was read since the scan: the next run sees what it is now.
_CHANGING = (FileNotFoundError, NotADirectoryError, IsADirectoryError, InterruptedError)


def report_unread(tally: _Tally, path: str, exc: OSError, full: Path) -> None:
    """Report a file that could not be read for its upload.

    Changing or gone: deferred to the next run. Anything else (permission denied,
    an I/O error) will not go away by itself: a per-file error that says why.
    """
    if isinstance(exc, _CHANGING):
        tally.update(lambda r: r.deferred.append(path))
        return
    failure = local_error(exc, "read", full)
    error = PathError(path, failure.message, int(failure.exit_code))
    tally.update(lambda r: r.errors.append(error))


def _under(items: dict[str, V], paths: Collection[str]) -> dict[str, V]:
    """The entries at or below any of ``paths`` (files or directories)."""
    tops = [p.strip("/") for p in paths]
    if any(not t or t == "." for t in tops):
        return dict(items)
    return {k: v for k, v in items.items() if any(k == t or k.startswith(t + "/") for t in tops)}


def _local_total(
    found: ScanResult, rows: dict[str, SyncedFile], state_total: int, whole: bool
) -> int:
    """The folder's file count for the guard; for a batch, estimated from the state."""
    if whole:
        return len(found.files)
    gone = sum(1 for p in rows if p not in found.files)
    new = sum(1 for p in found.files if p not in rows)
    return state_total - gone + new


ACTION_NAMES: dict[type, str] = {
    Upload: "upload",
    Copy: "rename",
    DeleteRemote: "delete",
    Touch: "touch",
    Conflict: "conflict",
    Forget: "forget",
}
"""What each kind of plan action is called in reports, the CLI and the docs."""


def _steps(plan: Plan) -> Iterator[Action]:
    """The plan's actions as a user counts them: a rename is one step, not a copy
    and a delete."""
    for action in plan.actions:
        if not (isinstance(action, DeleteRemote) and action.renamed_to is not None):
            yield action


def _planned(plan: Plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in _steps(plan):
        name = ACTION_NAMES[type(action)]
        counts[name] = counts.get(name, 0) + 1
    return counts


def _described(action: Action, local: dict[str, LocalFile]) -> PlannedAction:
    name = ACTION_NAMES[type(action)]
    if isinstance(action, Upload):
        file = local.get(action.path)
        return PlannedAction(
            name, action.path, reason=action.reason, bytes=file.size if file else None
        )
    if isinstance(action, Copy):
        return PlannedAction(name, action.src_path, to=action.dst_path)
    if isinstance(action, Conflict):
        return PlannedAction(name, action.path, reason=action.reason)
    return PlannedAction(name, action.path)


def _may_delete(action: DeleteRemote, copied: set[str], tally: _Tally) -> bool:
    """A delete completing a rename runs only if its copy succeeded."""
    if action.renamed_to is None or action.path in copied:
        return True
    tally.done(action.path)
    return False


def _key_name_of(metadata: dict[str, str]) -> str | None:
    """The master key an object's envelope names (its description), if it is in the
    metadata; None for an instruction-file envelope or metadata that is no envelope."""
    try:
        envelope = parse_envelope(metadata)
    except S3VaultError:
        return None
    name = envelope.description.get(DESCRIPTION_KEY)
    return name if isinstance(name, str) else None


def _changed_since(path: Path, before: os.stat_result) -> bool:
    try:
        after = os.stat(path)
    except OSError:
        return True
    return (after.st_size, after.st_mtime_ns, after.st_ino) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
