"""Drag and drop upload: files and folders dropped on the window (or on the browser at
a prefix) are checked, then encrypted with the current key and uploaded.

    session = start_upload(window, ctx, paths, "my-vault", "docs/")
    session.finished.connect(lambda summary: ...)

One `UploadSession` per drop, in steps, none of which waits on the UI thread:

1. check (a job): the current key exists, the drop is walked and named (`drop_check`),
   and the keys that already hold objects are found;
2. ask, once per drop: dropped folders -> "Upload once" / "Keep in sync" / Cancel
   ("Keep in sync" adds the folder to ``folders:`` in the config and uploads nothing
   itself: the agent syncs it); existing objects -> Replace / Keep both / Skip / Cancel.
   Cancel uploads nothing at all;
3. upload (a job, `upload_run`): per-file progress, Cancel, Retry failed.

Everything that happens goes to ``ctx.activity`` (what="upload"); failures are also
shown in the window and, once per drop, in a message box.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from s3vault.errors import KeyMissingError
from s3vault.gui.activity import Level
from s3vault.gui.config_file import Document, edit
from s3vault.gui.context import AppContext
from s3vault.gui.drop_check import DropPlan, find_existing, key_refusal, plan_drop
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem, problem_of, show_problem
from s3vault.gui.upload_dialog import (
    CANCEL,
    Ask,
    Question,
    UploadModel,
    UploadRow,
    UploadWindow,
    ask_with_box,
)
from s3vault.gui.upload_run import FINAL, Existing, FileEvent, State, Upload, run_uploads

WHAT = "upload"
NO_KEY_HINT = "Generate or import a key in Keys (the first key becomes current)."


@dataclass(frozen=True, slots=True)
class UploadSummary:
    done: int
    failed: int
    skipped: int
    cancelled: int
    not_uploaded: int  # dropped paths refused by the check (unreadable, special, ...)
    cancelled_by_user: bool
    folders_added: int = 0

    def text(self) -> str:
        parts = [f"{self.done} uploaded"]
        for n, what in (
            (self.failed, "failed"),
            (self.skipped, "skipped"),
            (self.cancelled, "cancelled"),
            (self.not_uploaded, "not uploadable"),
            (self.folders_added, "folder(s) added to sync"),
        ):
            if n:
                parts.append(f"{n} {what}")
        text = ", ".join(parts)
        return f"Cancelled: {text}" if self.cancelled_by_user else text


class UploadSession(QObject):
    """One drop, from its check to its last file.

    ``changed`` fires whenever a row or the counts change; ``finished`` (an
    `UploadSummary`) when a run ends (again after each Retry failed); ``folder_added``
    (a Path) for each folder added to ``folders:`` by "Keep in sync"; ``run_started``
    (the `Job`) when the files start to upload. ``running`` is False between runs;
    ``summary`` is the last run's; ``model`` holds the rows the window shows.
    """

    changed = Signal()
    finished = Signal(object)
    folder_added = Signal(object)
    run_started = Signal(object)  # the upload's Job, right after it started

    def __init__(
        self,
        ctx: AppContext,
        parent: QWidget | None,
        paths: list[Path],
        bucket: str,
        prefix: str,
        *,
        ask: Ask = ask_with_box,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.parent_widget = parent
        self.paths = list(paths)
        self.bucket = bucket
        self.prefix = prefix
        self.ask = ask
        self.on_finished = on_finished
        self.model = UploadModel(self)
        self.running = True
        self.cancelled_by_user = False
        self.summary: UploadSummary | None = None
        self.key_name: str | None = None
        self.existing = Existing.REPLACE
        self.folders_added = 0
        self._uploads: dict[int, Upload] = {}
        self._job: Job | None = None
        self._stage = "Checking the dropped files…"
        self.plan = DropPlan()
        self.window = UploadWindow(self, parent)

    # ---- what the window shows --------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(files to upload, how many of them reached a final state)."""
        rows = [self.model.rows[i] for i in self._uploads]
        return len(rows), sum(1 for r in rows if r.state in FINAL)

    def status_text(self) -> str:
        if self.summary is not None and not self.running:
            return self.summary.text()
        total, finished = self.counts()
        if not total:
            return self._stage
        sent = sum(self.model.rows[i].sent for i in self._uploads)
        size = sum(self.model.rows[i].size for i in self._uploads)
        return f"{finished} of {total} files, {_mib(sent)} of {_mib(size)} MiB"

    # ---- 1. check ------------------------------------------------------------------

    def start(self) -> None:
        self.window.show()
        self._job = self.ctx.jobs.start(
            "check a drop",
            self._check,
            on_done=self._checked,
            on_failed=self._failed,
            on_cancelled=self._nothing_uploaded,
        )

    def _check(self, job: Job) -> tuple[str, DropPlan]:
        ctx = self.ctx
        name = ctx.config.defaults.key or ctx.keystore().current()
        if name is None:
            raise KeyMissingError(
                "no current key to encrypt the dropped files with", hint=NO_KEY_HINT
            )
        vault = ctx.vault()
        try:  # a missing key, KMS down: one message, before any file
            vault.keys.resolve_key(name)
        except KeyMissingError as exc:
            raise KeyMissingError(
                exc.message, hint="Generate or import it in Keys, or make another key current."
            ) from None
        plan = plan_drop(self.paths, self.prefix, lambda key: key_refusal(vault, key), job.check)
        find_existing(vault, self.bucket, self.prefix, plan, job.check)
        return name, plan

    def _checked(self, result: tuple[str, DropPlan]) -> None:
        self.key_name, plan = result
        self.plan = plan
        rows = [UploadRow(p.path, "", 0, State.SKIPPED, message=p.message) for p in plan.problems]
        self.model.add(rows)
        for problem in plan.problems:
            self.ctx.activity.add(WHAT, str(problem.path), problem.message, "warning")
        if plan.folders:
            self._stage = "Waiting for an answer…"
            self._ask(_folder_question(plan.folders), self._folder_answer)
        else:
            self._ask_existing()

    # ---- 2. ask --------------------------------------------------------------------

    def _ask(self, question: Question, then: Callable[[str], None]) -> None:
        self.changed.emit()
        self.ask(self.window, question, then)

    def _folder_answer(self, answer: str) -> None:
        if answer == "sync":
            self._stage = "Adding the folders to sync…"
            folders = list(self.plan.folders)
            self._job = self.ctx.jobs.start(
                "add folders to sync",
                lambda job: self._add_to_config(folders),
                on_done=lambda _: self._folders_added(folders),
                on_failed=self._failed,
            )
        elif answer == "once":
            self._ask_existing()
        else:
            self._nothing_uploaded()

    def _add_to_config(self, folders: list[Path]) -> None:
        key = self.key_name
        assert key is not None

        def change(doc: Document) -> None:
            entries = doc.get("folders")
            if not isinstance(entries, CommentedSeq):
                entries = CommentedSeq()
                doc["folders"] = entries
            for folder in folders:
                entry = CommentedMap()
                entry["path"] = str(folder)
                entry["bucket"] = self.bucket
                entry["prefix"] = f"{self.prefix}{folder.name}/"
                entry["key"] = key
                entries.append(entry)

        edit(self.ctx.config_path, change)

    def _folders_added(self, folders: list[Path]) -> None:
        try:
            self.ctx.reload_config()
        except Exception as exc:  # the file was validated when written: unexpected
            self._failed(problem_of(exc))
            return
        for folder in folders:
            self.plan.without_folder(folder)
            self.folders_added += 1
            self.ctx.activity.add(
                WHAT,
                str(folder),
                f"added to sync (s3://{self.bucket}/{self.prefix}{folder.name}/); "
                "the agent syncs it after restart",
                "done",
            )
            self.folder_added.emit(folder)
        self._ask_existing()

    def _ask_existing(self) -> None:
        taken = [f for f in self.plan.files if f.key in self.plan.existing]
        if not taken:
            self._upload(Existing.REPLACE)
            return
        self._stage = "Waiting for an answer…"
        self._ask(
            _existing_question(taken[0].key, len(taken), len(self.plan.files)),
            self._existing_answer,
        )

    def _existing_answer(self, answer: str) -> None:
        if answer == CANCEL:
            self._nothing_uploaded()
        else:
            self._upload(Existing(answer))

    # ---- 3. upload -----------------------------------------------------------------

    def _upload(self, existing: Existing) -> None:
        if self.cancelled_by_user:  # Cancel was pressed while a question was open
            self._nothing_uploaded()
            return
        self.existing = existing
        files = self.plan.files
        first = self.model.add([UploadRow(f.path, f.key, f.size) for f in files])
        for i, f in enumerate(files):
            self._uploads[first + i] = Upload(
                first + i, f.path, f.key, f.size, self.plan.existing.get(f.key)
            )
        self._run(list(self._uploads.values()))

    def _run(self, uploads: list[Upload]) -> None:
        if not uploads:
            self._finish()
            return
        self.running = True
        self.cancelled_by_user = False
        key_name, existing = self.key_name, self.existing
        assert key_name is not None
        vault_of = self.ctx.vault

        def work(job: Job) -> None:
            run_uploads(
                vault_of(),
                self.bucket,
                uploads,
                existing,
                key_name,
                lambda: job.cancelled,
                job.report,
            )

        self._job = self.ctx.jobs.start(
            f"upload to s3://{self.bucket}/{self.prefix}",
            work,
            on_progress=self._file_event,
            on_failed=self._show_problem,
        )
        self._job.signals.finished.connect(self._finish)
        self.run_started.emit(self._job)
        self.changed.emit()

    def _file_event(self, event: FileEvent) -> None:
        row = self.model.apply(event)
        if event.state is State.DONE:
            self.ctx.activity.add(
                WHAT,
                f"s3://{self.bucket}/{row.key}",
                f"encrypted and uploaded from {row.path}",
                "done",
            )
        elif event.state is State.FAILED:
            self.ctx.activity.add(WHAT, str(row.path), event.message, "error")
        elif event.state is State.SKIPPED:
            self.ctx.activity.add(WHAT, str(row.path), event.message, "info")
        self.changed.emit()

    def cancel(self) -> None:
        """Stop: nothing more starts, a file under way stops (its upload aborted);
        what was uploaded stays. Thread-safe (a flag)."""
        self.cancelled_by_user = True
        if self._job is not None:
            self._job.cancel()

    def retry_failed(self) -> None:
        """Upload the failed files again (same keys, same answer to "existing")."""
        if self.running:
            return
        rows = [i for i, u in self._uploads.items() if self.model.rows[i].state is State.FAILED]
        for i in rows:
            self.model.apply(FileEvent(i, State.QUEUED))
        self._run([self._uploads[i] for i in rows])

    # ---- the end -------------------------------------------------------------------

    def _show_problem(self, problem: Problem) -> None:
        self.ctx.activity.add(WHAT, self._where(), problem.text(), "error")
        show_problem(self.window, problem)
        self._stage = problem.message

    def _failed(self, problem: Problem) -> None:
        """A step before the upload failed: nothing was uploaded."""
        self._show_problem(problem)
        self._finish()

    def _nothing_uploaded(self) -> None:
        self.cancelled_by_user = True
        self._stage = "Cancelled: nothing was uploaded"
        self._finish()

    def _finish(self) -> None:
        for i in self._uploads:
            if self.model.rows[i].state is State.QUEUED:  # the job ended before them
                self.model.apply(FileEvent(i, State.CANCELLED, message="not started"))
        self.running = False
        m = self.model
        uploads = [m.rows[i] for i in self._uploads]
        states = Counter(r.state for r in uploads)
        self.summary = UploadSummary(
            done=states[State.DONE],
            failed=states[State.FAILED],
            skipped=states[State.SKIPPED],
            cancelled=states[State.CANCELLED],
            not_uploaded=len(m.rows) - len(uploads),
            cancelled_by_user=self.cancelled_by_user,
            folders_added=self.folders_added,
        )
        level: Level = (
            "error" if self.summary.failed else "warning" if self.cancelled_by_user else "done"
        )
        self.ctx.activity.add(WHAT, self._where(), self.summary.text(), level)
        if self.summary.failed:
            show_problem(self.window, _failures_problem(uploads))
        self.changed.emit()
        self.finished.emit(self.summary)
        if self.on_finished is not None:
            self.on_finished()

    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def start_upload(
    parent: QWidget | None,
    ctx: AppContext,
    paths: list[Path],
    bucket: str,
    prefix: str,
    *,
    on_finished: Callable[[], None] | None = None,
    ask: Ask = ask_with_box,
) -> UploadSession | None:
    """Check, ask and upload ``paths`` to ``s3://bucket/prefix``; None if there is
    nothing to upload. The session's window shows the progress; ``on_finished`` is
    called at the end of each run (e.g. to refresh a listing)."""
    if not paths:
        return None
    session = UploadSession(ctx, parent, paths, bucket, prefix, ask=ask, on_finished=on_finished)
    session.start()
    return session


def _folder_question(folders: list[Path]) -> Question:
    names = ", ".join(f.name for f in folders[:3]) + (" …" if len(folders) > 3 else "")
    return Question(
        "Dropped folder",
        f"Upload {names} once, or keep it in sync?",
        (("once", "Upload once"), ("sync", "Keep in sync"), (CANCEL, "Cancel")),
        detail="Keep in sync adds it to the synced folders: the agent uploads it and every "
        "later change.",
    )


def _existing_question(example: str, taken: int, total: int) -> Question:
    what = (
        f"'{example}' already exists"
        if taken == 1
        else (f"{taken} of the {total} files already exist (e.g. '{example}')")
    )
    return Question(
        "Objects exist",
        f"{what}. What should happen to them?",
        (
            (Existing.REPLACE.value, "Replace"),
            (Existing.KEEP_BOTH.value, "Keep both"),
            (Existing.SKIP.value, "Skip"),
            (CANCEL, "Cancel"),
        ),
        detail="Keep both uploads the new file as 'name (1).ext'. Cancel uploads nothing.",
    )


def _failures_problem(rows: list[UploadRow]) -> Problem:
    failed = [r for r in rows if r.state is State.FAILED]
    common = Counter(r.message for r in failed).most_common(1)[0][0]
    return Problem(
        "Upload failed",
        f"{len(failed)} of {len(rows)} files could not be uploaded. {common}",
        "Nothing partial was stored. Fix the cause, then use Retry failed.",
    )


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f}"
