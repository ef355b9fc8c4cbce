"""Progress bars for long transfers: on a terminal only, quiet for scripts and pipes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from s3vault.cli.output import err_console

SHOW_ABOVE_BYTES = 4 * 1024 * 1024


@contextmanager
def transfer_progress(
    label: str, total: int | None, *, enabled: bool = True
) -> Iterator[Callable[[int], None] | None]:
    """Yield a thread-safe ``advance(n)`` callback, or None when no bar is shown.

    A bar appears only when stderr is a terminal and the transfer is big enough
    to take a noticeable time.
    """
    if not enabled or not sys.stderr.isatty() or (total is not None and total < SHOW_ABOVE_BYTES):
        yield None
        return
    lock = threading.Lock()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(n: int) -> None:
            with lock:
                bar.advance(task, n)

        yield advance
