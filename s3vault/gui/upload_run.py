"""The upload of a checked drop: each file encrypted and stored with `Vault.put`, a few
files at a time, every write conditional on what the check saw. No Qt here: `uploads`
runs `run_uploads` in a job and turns its `FileEvent`s into the progress window.

Nothing half-done is left behind: a cancelled or failed multipart upload is aborted
by the vault, a file that grows, shrinks or vanishes while it is read fails before
its object is committed (`Vault.put`'s check), and a write that finds the key taken
(or the object changed since the check) stores nothing (ConflictError).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from s3vault.errors import ConflictError, NotFoundError
from s3vault.gui.jobs import Cancelled
from s3vault.gui.messages import problem_of
from s3vault.vault import Vault

PARALLEL_FILES = 3  # files at once; each file's parts are parallel in the vault too


class State(StrEnum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


FINAL = frozenset({State.DONE, State.FAILED, State.SKIPPED, State.CANCELLED})


class Existing(StrEnum):
    """What to do when an object already holds a file's key (asked once per drop)."""

    REPLACE = "replace"
    KEEP_BOTH = "keep-both"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Upload:
    """One file of the run: its row, the key it goes to and, if an object held that
    key when the drop was checked, that object's ETag."""

    row: int
    path: Path
    key: str
    size: int
    existing_etag: str | None = None


@dataclass(frozen=True, slots=True)
class FileEvent:
    """A change of one row, sent from the job to the UI thread."""

    row: int
    state: State
    sent: int = 0  # bytes of the object body sent so far
    message: str = ""
    key: str | None = None  # the key it was stored at (keep both: a new name)


def keep_both_name(key: str, n: int) -> str:
    """``dir/report.pdf`` -> ``dir/report (n).pdf`` (a dotfile or no dot: at the end)."""
    path = PurePosixPath(key)
    stem, dot, ext = path.name.rpartition(".")
    name = f"{stem} ({n}).{ext}" if dot and stem else f"{path.name} ({n})"
    parent = key[: len(key) - len(path.name)]
    return parent + name


def run_uploads(
    vault: Vault,
    bucket: str,
    uploads: list[Upload],
    existing: Existing,
    key_name: str,
    cancelled: Callable[[], bool],
    report: Callable[[FileEvent], None],
) -> None:
    """Upload every file (``existing`` says what a file whose key is taken does);
    ``report`` learns each change. Returns once every file reached a final state."""
    taken = {u.key for u in uploads}
    lock = threading.Lock()

    def free_key(key: str) -> str:
        n = 1
        while True:
            candidate = keep_both_name(key, n)
            with lock:
                free = candidate not in taken
                if free:
                    taken.add(candidate)
            if free and not _exists(vault, bucket, candidate):
                return candidate
            n += 1

    def one(upload: Upload) -> None:
        if cancelled():
            report(FileEvent(upload.row, State.CANCELLED, message="cancelled before it started"))
            return
        key, if_match = upload.key, None
        if upload.existing_etag is not None:
            if existing is Existing.SKIP:
                report(FileEvent(upload.row, State.SKIPPED, message="an object exists: kept"))
                return
            if existing is Existing.KEEP_BOTH:
                key = free_key(upload.key)
            else:
                if_match = upload.existing_etag
        report(FileEvent(upload.row, State.UPLOADING, key=key))
        _put(vault, bucket, upload, key, if_match, key_name, cancelled, report)

    with ThreadPoolExecutor(max_workers=PARALLEL_FILES, thread_name_prefix="upload") as pool:
        for _ in pool.map(one, uploads):
            pass


def _put(
    vault: Vault,
    bucket: str,
    upload: Upload,
    key: str,
    if_match: str | None,
    key_name: str,
    cancelled: Callable[[], bool],
    report: Callable[[FileEvent], None],
) -> None:
    sent = 0
    lock = threading.Lock()

    def progress(n: int) -> None:
        nonlocal sent
        with lock:
            sent += n
            so_far = sent
        report(FileEvent(upload.row, State.UPLOADING, so_far, key=key))
        # Raising from the vault's progress aborts a multipart upload (no parts left
        # behind). Once the whole body is sent the object is (about to be) stored:
        # then it is let finish, and counts as done.
        if cancelled() and so_far < upload.size:
            raise Cancelled

    try:
        vault.put(
            upload.path,
            bucket,
            key,
            key_name=key_name,
            progress=progress,
            if_match=if_match,
            if_none_match=if_match is None,
        )
    except Cancelled:
        report(FileEvent(upload.row, State.CANCELLED, sent, "cancelled; nothing was stored", key))
    except ConflictError as exc:
        message = problem_of(exc).text()
        if exc.message.startswith("s3://"):  # the write's condition, not the local file
            message += (
                "\nNothing was stored: an object appeared at this key after the drop was "
                "checked. Drop the file again to choose what to do."
                if if_match is None
                else "\nNothing was stored: the existing object changed after the drop was "
                "checked, and was kept. Drop the file again to choose what to do."
            )
        report(FileEvent(upload.row, State.FAILED, sent, message, key))
    except Exception as exc:  # every failure of one file is that file's message
        report(FileEvent(upload.row, State.FAILED, sent, problem_of(exc).text(), key))
    else:
        report(FileEvent(upload.row, State.DONE, sent, "encrypted and uploaded", key))


def _exists(vault: Vault, bucket: str, key: str) -> bool:
    try:
        vault.head(bucket, key)
    except NotFoundError:
        return False
    return True
