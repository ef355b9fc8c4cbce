"""When Python's garbage collector may pause the app: only when it is idle.

A full collection walks every object the process holds. With botocore's service
models and a listing of 100,000 rows that is millions of objects and 100-400 ms with
the interpreter lock held: the UI thread freezes, whichever thread triggered it (the
bench measured it during rotations and listings). So:

- the objects alive after start-up are frozen (`gc.freeze`): never walked again;
- the young generations collect as usual (cheap: they hold only new objects);
- the oldest generation is never collected automatically; `IdleCollector` collects
  it in full (after unfreezing, so nothing leaks) when no job has run for a while,
  when a pause is not felt, then freezes what survived.
"""

from __future__ import annotations

import gc
import logging
import time

from PySide6.QtCore import QObject, QTimer

from s3vault.gui.jobs import JobRunner

log = logging.getLogger(__name__)

IDLE_SECONDS = 20.0  # no job for this long: the user is not waiting for anything
CHECK_MS = 5000
NEVER = 1_000_000_000  # a generation-2 threshold that is never reached


class IdleCollector(QObject):
    """Owns the collector's schedule for the app's lifetime (`stop` restores it)."""

    def __init__(self, jobs: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self._old_threshold = gc.get_threshold()
        self._last_busy = time.monotonic()
        self._dirty = False  # has work run since the last full collection?
        young, middle, _ = self._old_threshold
        gc.set_threshold(young, middle, NEVER)
        gc.freeze()
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_MS)
        self._timer.timeout.connect(self._check)
        self._timer.start()

    def _check(self) -> None:
        now = time.monotonic()
        if self._jobs.running:
            self._last_busy, self._dirty = now, True
            return
        if self._dirty and now - self._last_busy >= IDLE_SECONDS:
            self.collect()

    def collect(self) -> int:
        """A full collection now (unfreeze, collect, freeze); the objects freed."""
        began = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self._dirty = False
        took = (time.perf_counter() - began) * 1000
        log.debug("idle collection: %d objects freed in %.0f ms", freed, took)
        return freed

    def stop(self) -> None:
        self._timer.stop()
        gc.unfreeze()
        gc.set_threshold(*self._old_threshold)
