"""How a run carries out its actions: a bounded pool, retries while S3 is
unreachable, and per-file failures turned into report entries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from s3vault.errors import S3VaultError, UnreachableError
from s3vault.sync.report import Tally

T = TypeVar("T")


class Runner:
    """``workers`` threads at most; ``attempts`` tries, ``backoff`` doubling between."""

    def __init__(self, *, workers: int, attempts: int, backoff: float) -> None:
        self.workers = max(1, workers)
        self.attempts = max(1, attempts)
        self.backoff = backoff

    def run_all(self, items: Iterable[T], run: Callable[[T], None]) -> None:
        """Run ``run`` on each item in a bounded pool; per-file errors were reported."""
        todo = list(items)
        if not todo:
            return
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(todo)), thread_name_prefix="sync"
        ) as pool:
            for future in [pool.submit(run, item) for item in todo]:
                future.result()

    def retrying(self, call: Callable[[], T]) -> T:
        """``call()``, again after a pause while S3 is unreachable (``attempts`` in all)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except UnreachableError:
                if attempt == self.attempts:
                    raise
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def guarded(path: str, tally: Tally, work: Callable[[], None]) -> None:
        """Run one file's work; an expected failure becomes a per-file error."""
        try:
            work()
        except S3VaultError as exc:
            tally.error(path, exc)
