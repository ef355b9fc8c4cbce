"""Slow work off the UI thread: a `Job` runs a function in a thread pool and reports
back with Qt signals, which arrive on the UI thread (queued connections).

    job = ctx.jobs.start("list s3://b/p/", lambda job: vault.list(...), on_done=show)
    job.cancel()    # the function sees job.cancelled / job.check() between its parts

Cancellation is a flag the work checks between parts (a file, a page, an object):
Python threads cannot be interrupted, and a half-written part must end cleanly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from shiboken6 import isValid

from s3vault.gui.messages import Problem, problem_of

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised by `Job.check` once the job was cancelled; ends the job quietly."""


class _Signals(QObject):
    progress = Signal(object)  # whatever the work reports (its views know the shape)
    done = Signal(object)  # the work's return value
    failed = Signal(object)  # a Problem
    cancelled = Signal()
    finished = Signal()  # after done, failed or cancelled


class Job(QRunnable):
    """One piece of work for the pool; build it with `JobRunner.start`."""

    def __init__(self, name: str, work: Callable[[Job], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner holds it until `finished`
        self.name = name
        self.signals = _Signals()
        self._work = work
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        """Raise `Cancelled` if the job was cancelled (call it between parts)."""
        if self._cancel.is_set():
            raise Cancelled

    def report(self, value: object) -> None:
        """Send a progress value to the UI thread."""
        self.signals.progress.emit(value)

    def run(self) -> None:
        try:
            result = self._work(self)
        except Cancelled:
            self.signals.cancelled.emit()
        except BaseException as exc:  # every failure becomes a message, never a crash
            if self.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.failed.emit(problem_of(exc))
        else:
            if self.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.done.emit(result)
        finally:
            self.signals.finished.emit()


class _Relay(QObject):
    """Hands a job's signals to its callbacks for as long as the owner lives.

    A child of the owner (a view): when the view is deleted, so is the relay, and Qt
    drops its connections, so a result that arrives late never calls into a deleted
    widget.
    """

    def __init__(
        self,
        owner: QObject,
        on_done: Callable[[Any], None] | None,
        on_failed: Callable[[Problem], None] | None,
        on_progress: Callable[[Any], None] | None,
        on_cancelled: Callable[[], None] | None,
    ) -> None:
        super().__init__(owner)
        self._on_done = on_done
        self._on_failed = on_failed
        self._on_progress = on_progress
        self._on_cancelled = on_cancelled

    @Slot(object)
    def done(self, value: object) -> None:
        if self._on_done is not None:
            self._on_done(value)

    @Slot(object)
    def failed(self, problem: Problem) -> None:
        if self._on_failed is not None:
            self._on_failed(problem)

    @Slot(object)
    def progress(self, value: object) -> None:
        if self._on_progress is not None:
            self._on_progress(value)

    @Slot()
    def cancelled(self) -> None:
        if self._on_cancelled is not None:
            self._on_cancelled()


def _owner_of(*callbacks: Callable[..., Any] | None) -> QObject | None:
    for callback in callbacks:
        target = getattr(callback, "__self__", None)
        if isinstance(target, QObject):
            return target
    return None


class JobRunner(QObject):
    """The app's thread pool; keeps each job alive until it has finished."""

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[Job] = set()

    def start(
        self,
        name: str,
        work: Callable[[Job], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[Problem], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        owner: QObject | None = None,
    ) -> Job:
        """Run ``work(job)`` in the pool. The callbacks run on the UI thread, and only
        while ``owner`` (the view that asked) still exists; by default the owner is
        the Qt object whose method a callback is (``on_done=self._shown``)."""
        if owner is None:
            owner = _owner_of(on_done, on_failed, on_progress, on_cancelled)
        job = Job(name, work)
        relay = _Relay(owner or self, on_done, on_failed, on_progress, on_cancelled)
        job.signals.done.connect(relay.done)
        job.signals.failed.connect(relay.failed)
        job.signals.progress.connect(relay.progress)
        job.signals.cancelled.connect(relay.cancelled)

        def finished() -> None:
            self._running.discard(job)
            if isValid(relay):  # not when its owner went first and took it along
                relay.deleteLater()

        job.signals.finished.connect(finished)
        self._running.add(job)
        self.pool.start(job)
        return job

    @property
    def running(self) -> list[Job]:
        return list(self._running)

    def cancel_all(self) -> None:
        for job in list(self._running):
            job.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything and wait for the pool (at quit); False if work is still running."""
        self.cancel_all()
        return bool(self.pool.waitForDone(timeout_ms))
