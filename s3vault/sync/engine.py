"""One sync run of a folder: scan, plan, guard, then execute the plan against S3.

`SyncEngine.reconcile` is what `s3vault sync` runs once and what the agent runs at
start-up, periodically and for each set of watcher events (``paths``). The pure
core (scan, planner, guard) decides; this module carries the plan out, with the
rules of docs/sync.md ("Executing a plan"):

- every write is conditional; HTTP 412 is a conflict, never an overwrite; a state row
  is written only after S3 confirmed the object (uploads: `sync.uploads`, by one of
  two paths: streamed, or many small files at once in `sync.small_files`);
- objects this machine wrote before a crash or that key rotation re-wrote are
  relearned, not conflicts (`sync.ownership`);
- transient errors (S3 unreachable) are retried with backoff; any per-file error is
  collected in the report and never ends the run (`sync.runner`);
- no local file is ever opened for writing;
- one run at a time per folder and state database (`StateDB.folder_lock`): a second
  process syncing the same folder is refused (`FolderBusyError`).

Every object goes through `s3vault.vault.Vault`: nothing here talks to S3, the keys
or the envelope format directly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from s3vault.config.sync import FolderSettings
from s3vault.errors import ConflictError, ExitCode, RefusedError
from s3vault.sync import small_files
from s3vault.sync.guard import FORCE, guard
from s3vault.sync.ignore import IgnoreRules
from s3vault.sync.model import (
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
from s3vault.sync.ownership import Ownership
from s3vault.sync.planner import plan as make_plan
from s3vault.sync.planner import remote_index
from s3vault.sync.report import (
    PathError,
    SyncProgress,
    SyncReport,
    Tally,
    described,
    planned_counts,
    steps,
)
from s3vault.sync.runner import Runner
from s3vault.sync.scan import ScanResult, file_hasher, root_identity, root_status, scan, scan_paths
from s3vault.sync.state import FolderRecord, InFlightUpload, StateDB
from s3vault.sync.uploads import Uploads
from s3vault.vault import Vault


class SyncRefused(RefusedError):
    """The guard refused the run: nothing was changed in S3. ``kind`` says which
    refusal (`GuardVerdict.kind`: mass-delete, folder-emptied, root-missing, ...)."""

    title = "Sync refused"

    def __init__(self, message: str, *, hint: str | None = None, kind: str = "") -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


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
        self.runner = Runner(workers=workers, attempts=attempts, backoff=backoff)
        self.ownership = Ownership(folder, self.vault, state, self.runner)
        self.fid = folder.folder_id

    def new_token(self) -> str:
        """A fresh upload token of this state's writer (see `sync.ownership`)."""
        return self.ownership.new_token()

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
        again, so a long-running agent picks up a replaced key. `FolderBusyError` if
        another process is syncing this folder with the same state database (a dry
        run never is).
        """
        # A dry run writes nothing: it may look while another process syncs.
        lock = contextlib.nullcontext() if dry_run else self.state.folder_lock(self.fid)
        with lock, self.vault.remembering_keys():
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
            raise SyncRefused(verdict.reason, hint=verdict.hint or None, kind=verdict.kind)
        identity = root_identity(root)
        record = self.state.folder(self.fid)
        root_changed = bool(record and record.identity and record.identity != identity)

        if not dry_run:
            # Writes a killed run left that S3 may still commit: the next run looks again.
            report.deferred.extend(self.ownership.recover_interrupted_uploads())
        rules = IgnoreRules.for_folder(root, self.folder.ignore)
        follow = self.folder.follow_symlinks
        # The listing (the run's one request, S3's time more than ours) goes on while
        # the folder is scanned and the state read; its failure still stops the run.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="listing") as pool:
            listing = pool.submit(self._remote_index) if with_remote_listing else None
            found = scan_paths(root, paths, rules, follow_symlinks=follow) if paths else None
            if found is None:
                found = scan(root, rules, follow_symlinks=follow)
            all_rows = self.state.rows(self.fid)
            remote = listing.result() if listing is not None else None
        report.skipped = len(found.skipped)
        rows = all_rows if not paths else all_rows.only(_under(all_rows, paths))
        if remote is not None:
            if paths:
                remote = {p: remote[p] for p in _under(remote, paths)}
            if not dry_run:
                relearned = self.ownership.relearn_own_objects(rows, remote, found.files)
                all_rows.update(relearned)
                if rows is not all_rows:  # the share of them under ``paths``
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
            raise SyncRefused(verdict.reason, hint=hint, kind=verdict.kind)
        report.forced = verdict.reason
        report.planned = planned_counts(plan)
        if dry_run:
            report.would = [described(action, found.files) for action in steps(plan)]
        for error_path, why in found.errors.items():
            report.errors.append(PathError(error_path, why, int(ExitCode.USAGE)))
        if not dry_run:
            self._execute(plan, found.files, all_rows, report, progress)
            # The root as synced now: a later run notices when another directory
            # takes its place (and --force made the user confirm this one). Written
            # only when it differs: a run that changed nothing writes nothing.
            remembered = FolderRecord(
                self.fid, root, self.folder.bucket, self.folder.prefix, identity
            )
            if record != remembered:
                self.state.remember_folder(
                    self.fid, root, self.folder.bucket, self.folder.prefix, identity
                )
        report.duration = time.monotonic() - started
        return report

    def _remote_index(self) -> dict[str, RemoteObject]:
        """The folder's objects by relative path, from one recursive listing."""
        listing = self.vault.list_objects(self.folder.bucket, self.folder.prefix)
        return remote_index(listing, self.folder, self.vault.is_instruction_key)

    # ---- executing a plan ------------------------------------------------------------

    def _execute(
        self,
        plan: Plan,
        local: dict[str, LocalFile],
        rows: Mapping[str, SyncedFile],
        report: SyncReport,
        progress: Callable[[SyncProgress], None] | None,
    ) -> None:
        uploads = plan.of(Upload)
        tally = Tally(
            report,
            files_total=len(plan.actions),
            bytes_total=sum(local[u.path].size for u in uploads),
            progress=progress,
        )
        tally.announce()
        copied: set[str] = set()
        run_all = self.runner.run_all
        # Copies first (they read objects an upload or delete may change), then
        # uploads and touches, deletes last: nothing is removed before what
        # preserves it has run.
        run_all(plan.of(Copy), lambda a: self._copy(a, local, rows, tally, copied))
        # Many small files go up together (sync/small_files.py); the others, and
        # files that grew past its limit, are streamed one by one.
        rules = Uploads(self.folder, self.vault, self.state, self.runner, self.ownership, tally)
        small, others = small_files.split_uploads(uploads, local, self.vault, self.folder)
        others += small_files.upload_small_files(rules, small)
        run_all(others, rules.upload_file)
        for touch in plan.of(Touch):
            self._touch(touch, tally)
        for conflict in plan.of(Conflict):
            tally.conflict(conflict.path, conflict.reason)
        deletes = [d for d in plan.of(DeleteRemote) if _may_delete(d, copied, tally)]
        run_all(deletes, lambda a: self._delete(a, tally))
        for forget in plan.of(Forget):
            self.state.forget(self.fid, forget.path)
            tally.update(lambda r: setattr(r, "forgotten", r.forgotten + 1))
            tally.done(forget.path)

    # ---- copies, touches, deletes ----------------------------------------------------

    def _copy(
        self,
        action: Copy,
        local: dict[str, LocalFile],
        rows: Mapping[str, SyncedFile],
        tally: Tally,
        copied: set[str],
    ) -> None:
        def work() -> None:
            source = rows[action.src_path]
            file = local[action.dst_path]
            dst_key = self.folder.object_key(action.dst_path)
            # Announced like an upload (the copy carries the source's token): a copy
            # S3 finished after a kill is adopted by the next run, and deleted if its
            # file is gone by then; unannounced, it stayed in S3 with no row (found
            # by tests/reliability/test_crash_agent.py at soak scale).
            announced = InFlightUpload(
                action.dst_path, dst_key, file.size, file.mtime_ns, source.token
            )
            self.state.begin_upload(self.fid, announced)
            try:
                # The envelope travels with the object: its instruction file is copied too.
                written = self.runner.retrying(
                    lambda: self.vault.copy(
                        self.folder.bucket,
                        self.folder.object_key(action.src_path),
                        dst_key,
                        if_match=action.src_etag,
                    )
                )
            except Exception:
                self.state.end_upload(self.fid, action.dst_path)
                raise
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
            tally.renamed(action.src_path, action.dst_path)

        self.runner.guarded(action.dst_path, tally, work)

    def _touch(self, action: Touch, tally: Tally) -> None:
        self.state.touch(self.fid, action.path, action.mtime_ns)
        tally.update(lambda r: setattr(r, "touched", r.touched + 1))
        tally.done(action.path)

    def _delete(self, action: DeleteRemote, tally: Tally) -> None:
        def work() -> None:
            bucket, key = self.folder.bucket, self.folder.object_key(action.path)
            # Conditional on the ETag we synced: an object another machine wrote
            # since is kept and reported (stores without conditional deletes get
            # a HEAD and a compare; with versioning on, nothing is lost either way).
            # The object's instruction file goes after it.
            try:
                self.runner.retrying(
                    lambda: self.vault.delete_if_match(bucket, key, action.expected_etag)
                )
            except ConflictError:
                tally.conflict(action.path, "deleted here, but changed in S3 since: kept")
                return
            # A rename's row was recorded under the new name by the copy already; it
            # counts as `copied` (renamed), not as a deleted file.
            self.state.forget(self.fid, action.path)
            if action.renamed_to is None:
                tally.deleted(action.path)
            else:
                tally.done(action.path)

        self.runner.guarded(action.path, tally, work)


# ---- helpers -------------------------------------------------------------------------


def _under(keys: Iterable[str], paths: Collection[str]) -> list[str]:
    """The keys at or below any of ``paths`` (files or directories)."""
    tops = [p.strip("/") for p in paths]
    if any(not t or t == "." for t in tops):
        return list(keys)
    return [k for k in keys if any(k == t or k.startswith(t + "/") for t in tops)]


def _local_total(
    found: ScanResult, rows: Mapping[str, SyncedFile], state_total: int, whole: bool
) -> int:
    """The folder's file count for the guard; for a batch, estimated from the state."""
    if whole:
        return len(found.files)
    gone = sum(1 for p in rows if p not in found.files)
    new = sum(1 for p in found.files if p not in rows)
    return state_total - gone + new


def _may_delete(action: DeleteRemote, copied: set[str], tally: Tally) -> bool:
    """A delete completing a rename runs only if its copy succeeded."""
    if action.renamed_to is None or action.path in copied:
        return True
    tally.done(action.path)
    return False
