"""Download and decrypt objects, or whole folders (prefixes), into a local folder.

Verified as `s3vault get` and `restore` do: each object is decrypted into a temp file
beside its target and renamed into place only after it authenticated (`Vault.get` to
a path), so a tampered object leaves no file. A folder keeps its layout below the
prefix the browser shows; a key that would leave the chosen folder (``..``, an
absolute path) is refused by `target_path`. Existing files are not replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from s3vault.errors import S3VaultError, local_error
from s3vault.gui.activity import Level
from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Cancelled, Job
from s3vault.gui.messages import Problem, show_problem
from s3vault.vault import Vault
from s3vault.vault.local_paths import WrittenNames, free_target

ACTIVITY_PER_OBJECT = 200  # above this, the activity list gets failures and a summary


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    done: int  # objects finished (downloaded, failed or skipped)
    total: int
    bytes: int  # plaintext bytes written so far
    key: str  # the object being downloaded


@dataclass
class DownloadReport:
    folder: Path
    downloaded: list[str] = field(default_factory=list)  # keys
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, message)
    skipped: list[str] = field(default_factory=list)  # keys whose file exists already
    bytes: int = 0
    cancelled: bool = False

    def summary(self) -> str:
        parts = [f"{len(self.downloaded)} downloaded and verified"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped (the file exists)")
        if self.cancelled:
            parts.append("cancelled")
        return ", ".join(parts) + f" → {self.folder}"


def plan(
    vault: Vault, bucket: str, keys: list[str], prefixes: list[str], base: str, job: Job
) -> list[str]:
    """The object keys to download: ``keys`` and every object under ``prefixes``."""
    wanted = list(keys)
    for prefix in prefixes:
        for entry in vault.list_objects(bucket, prefix):
            job.check()
            relkey = entry.key[len(prefix) :]
            # Instruction files travel with their object; "dir/" keys are placeholders.
            if relkey and not relkey.endswith("/") and not vault.is_instruction_key(entry.key):
                wanted.append(entry.key)
    return wanted


def download_all(
    vault: Vault, bucket: str, keys: list[str], base: str, report: DownloadReport, job: Job
) -> DownloadReport:
    """Download each key to ``report.folder`` / (key less ``base``), noting each outcome
    in ``report`` as it happens (a cancelled job still tells what it did)."""
    folder = report.folder
    written = WrittenNames(folder)  # two keys, one file on a case-folding file system

    def advance(n: int) -> None:
        job.check()  # a cancel stops inside a large object too (its temp file goes)

    with vault.remembering_keys():
        for n, key in enumerate(keys):
            job.report(DownloadProgress(n, len(keys), report.bytes, key))
            try:
                job.check()
            except Cancelled:
                report.cancelled = True
                break
            relkey = key[len(base) :] if key.startswith(base) else key.rsplit("/", 1)[-1]
            try:
                written.refuse_clash(relkey)
                path = free_target(folder, relkey)
                if path is None:  # an existing file is kept
                    report.skipped.append(key)
                    continue
                result = vault.get(bucket, key, path, progress=advance)
            except Cancelled:
                report.cancelled = True
                break
            except S3VaultError as exc:
                report.failed.append((key, exc.message))
                continue
            written.add(relkey)
            report.downloaded.append(key)
            report.bytes += result.plaintext_size
    job.report(DownloadProgress(len(keys), len(keys), report.bytes, ""))
    return report


def start_download(
    ctx: AppContext,
    bucket: str,
    keys: list[str],
    folder: Path,
    *,
    prefixes: list[str] | None = None,
    base: str = "",
    on_progress: Callable[[DownloadProgress], None] | None = None,
    on_finished: Callable[[DownloadReport | Problem], None] | None = None,
) -> Job:
    """Download ``keys`` and the objects under ``prefixes`` into ``folder`` (a job).

    Paths are the keys less ``base`` (the prefix the browser shows). The outcome goes
    to ``ctx.activity`` (per object, and a summary) and to ``on_finished``.
    """
    folders = list(prefixes or [])
    report = DownloadReport(folder)

    def work(job: Job) -> DownloadReport:
        vault = ctx.vault()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_error(exc, "create the folder", folder) from None
        wanted = plan(vault, bucket, keys, folders, base, job)
        return download_all(vault, bucket, wanted, base, report, job)

    def done(report: DownloadReport) -> None:
        log_report(ctx, bucket, report)
        if on_finished is not None:
            on_finished(report)

    def failed(problem: Problem) -> None:
        ctx.activity.add("download", f"s3://{bucket}/{base}", problem.message, "error")
        if on_finished is not None:
            on_finished(problem)

    def cancelled() -> None:
        report.cancelled = True
        done(report)

    return ctx.jobs.start(
        f"download from s3://{bucket}/{base}",
        work,
        on_done=done,
        on_failed=failed,
        on_progress=on_progress,
        on_cancelled=cancelled,
    )


def log_report(ctx: AppContext, bucket: str, report: DownloadReport) -> None:
    """Each object's outcome (up to `ACTIVITY_PER_OBJECT`) and a summary, into activity."""
    if len(report.downloaded) <= ACTIVITY_PER_OBJECT:
        for key in report.downloaded:
            ctx.activity.add("download", f"s3://{bucket}/{key}", "decrypted and verified", "done")
    for key, message in report.failed[:ACTIVITY_PER_OBJECT]:
        ctx.activity.add("download", f"s3://{bucket}/{key}", message, "error")
    level: Level = "error" if report.failed else ("warning" if report.cancelled else "done")
    ctx.activity.add("download", f"s3://{bucket}", report.summary(), level)


def choose_folder(parent: QWidget, on_chosen: Callable[[Path], object]) -> QFileDialog:
    """Ask for a folder without blocking the event loop; ``on_chosen`` gets it."""
    dialog = QFileDialog(parent, "Download and decrypt into")
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.setAccessibleName("Choose a folder to download into")
    dialog.fileSelected.connect(lambda path: on_chosen(Path(path)))
    dialog.open()
    return dialog


def show_failures(parent: QWidget, report: DownloadReport) -> None:
    """Say which objects failed (the first few), in one message."""
    if not report.failed:
        return
    names = "\n".join(f"{key}: {message}" for key, message in report.failed[:5])
    more = f"\n… and {len(report.failed) - 5} more" if len(report.failed) > 5 else ""
    show_problem(
        parent,
        Problem(
            "Download failed",
            f"{len(report.failed)} object(s) were not downloaded; no file was left for "
            f"them.\n{names}{more}",
            "The Activity view lists every object.",
        ),
    )
