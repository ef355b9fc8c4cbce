"""Progress bars for long transfers: on a terminal only, quiet for scripts and pipes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from s3vault.cli.output import err_console

SHOW_ABOVE_BYTES = 4 * 1024 * 1024


class TransferProgress:
    """A progress bar whose total may be learnt once the transfer starts.

    ``advance`` and ``start`` are thread-safe and do nothing when no bar is shown
    (stderr is not a terminal, or the transfer is too small to notice).
    """

    def __init__(self, label: str, bar: Progress | None) -> None:
        self._label = label
        self._bar = bar
        self._task: TaskID | None = None
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        with self._lock:
            if self._bar is not None and self._task is None and total >= SHOW_ABOVE_BYTES:
                self._task = self._bar.add_task(self._label, total=total)

    def advance(self, n: int) -> None:
        with self._lock:
            if self._bar is not None and self._task is not None:
                self._bar.advance(self._task, n)


@contextmanager
def transfer_progress(label: str, total: int | None = None) -> Iterator[TransferProgress]:
    """A `TransferProgress` on stderr; call ``start(total)`` unless ``total`` is given."""
    if not sys.stderr.isatty():
        yield TransferProgress(label, None)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        progress = TransferProgress(label, bar)
        if total is not None:
            progress.start(total)
        yield progress
