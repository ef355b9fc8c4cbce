"""Progress displays for long work: on a terminal only, quiet for scripts and pipes.

- `transfer_progress`: bytes of one transfer (put, get);
- `sync_progress`: files and bytes of a sync run;
- `count_progress`: a count of items whose total is not known up front (restore).

Names shown here come from the disk or the bucket: every text column prints them as
they are (`PlainTextColumn`), never as markup.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from s3vault.cli.output import err_console, human_size, visible

SHOW_ABOVE_BYTES = 4 * 1024 * 1024


class PlainTextColumn(TextColumn):
    """A text column whose fields (file and object names) are shown exactly."""

    def __init__(self, text_format: str) -> None:
        super().__init__(text_format, markup=False)

    def render(self, task: Task) -> Text:
        return Text(visible(self.text_format.format(task=task)), style=self.style)


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


def _bar(*columns: Any) -> Progress:
    return Progress(*columns, console=err_console, transient=True)


@contextmanager
def transfer_progress(
    label: str, total: int | None = None, *, shown: bool = True
) -> Iterator[TransferProgress]:
    """A `TransferProgress` on stderr; call ``start(total)`` unless ``total`` is given.

    ``shown=False`` (with --json) draws nothing, as without a terminal."""
    if not shown or not sys.stderr.isatty():
        yield TransferProgress(label, None)
        return
    with _bar(
        PlainTextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        progress = TransferProgress(label, bar)
        if total is not None:
            progress.start(total)
        yield progress


class RunProgress(Protocol):
    """What a sync run reports (`s3vault.sync.engine.SyncProgress`)."""

    @property
    def files_done(self) -> int: ...
    @property
    def files_total(self) -> int: ...
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def current(self) -> str | None: ...


@contextmanager
def sync_progress(
    label: str, *, shown: bool = True
) -> Iterator[Callable[[RunProgress], None] | None]:
    """A callback drawing "n/m files, bytes" on a terminal; None for scripts and pipes
    (and with ``shown=False``)."""
    if not shown or not sys.stderr.isatty():
        yield None
        return
    with _bar(
        PlainTextColumn("{task.description}"),
        BarColumn(),
        PlainTextColumn("{task.fields[amount]}"),
        TimeElapsedColumn(),
        PlainTextColumn("{task.fields[current]}"),
    ) as bar:
        task = bar.add_task(label, total=None, amount="", current="")

        def update(p: RunProgress) -> None:
            # The bar follows bytes, what takes the time; a run with nothing to
            # upload (renames, deletes) follows files.
            by_bytes = p.bytes_total > 0
            bar.update(
                task,
                total=(p.bytes_total if by_bytes else p.files_total) or None,
                completed=p.bytes_done if by_bytes else p.files_done,
                description=f"{label} {p.files_done}/{p.files_total} files",
                amount=f"{human_size(p.bytes_done)}/{human_size(p.bytes_total)}",
                current=p.current or "",
            )

        yield update


@contextmanager
def count_progress(label: str, *, shown: bool = True) -> Iterator[Callable[[str], None]]:
    """A callback counting finished items (showing the latest name) on a terminal
    (unless ``shown=False``)."""
    if not shown or not sys.stderr.isatty():
        yield lambda name: None
        return
    with _bar(
        SpinnerColumn(),
        PlainTextColumn("{task.description} {task.completed:.0f}"),
        TimeElapsedColumn(),
        PlainTextColumn("{task.fields[current]}"),
    ) as bar:
        task = bar.add_task(label, total=None, current="")
        yield lambda name: bar.update(task, advance=1, current=name)
