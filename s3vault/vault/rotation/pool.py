"""A bounded thread pool over a stream of work: rotation's objects and old versions.

A bulk rotation lists and rotates at the same time, so a prefix of millions of objects
never sits in memory, and Ctrl-C (or a cancel) drops what has not started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def run_bounded(
    work: Callable[[_In], _Out],
    items: Iterable[_In],
    workers: int,
    cancel: threading.Event | None = None,
) -> Iterator[_Out]:
    """``work(item)`` for each item on ``workers`` threads; results as they complete.

    At most twice ``workers`` items are taken from ``items`` ahead of the results, so
    a listing of millions streams through in constant memory. Items not yet started
    are dropped when the consumer stops (Ctrl-C) or ``cancel`` is set.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rotate") as pool:
        pending: set[Future[_Out]] = set()
        try:
            for item in items:
                if cancel is not None and cancel.is_set():
                    break
                pending.add(pool.submit(work, item))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
