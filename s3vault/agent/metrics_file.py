"""The agent's Prometheus textfile (`agent.metrics_file`): rewritten after every sync
run and every `INTERVAL` seconds while idle, atomically, from its own thread.

node_exporter's textfile collector may read the file at any moment, so it is written
to a temporary file in the same folder and renamed over the old one: a reader sees
the old text or the new, never half of one. The temporary name does not end in
``.prom``, so the collector never reads it. 0644: it holds counts and folder ids only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from s3vault.agent.metrics import queue_length, render_metrics
from s3vault.agent.status import AgentStatus

log = logging.getLogger(__name__)

INTERVAL = 30.0  # seconds between writes while idle: fresh within one scrape interval


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (temp file in the same folder, fsync, rename)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; the collector runs as another user
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


class MetricsFile:
    """Writes the metrics of ``status`` to ``path`` until `stop`.

    ``waiting`` counts the changed paths the agent holds and has not synced yet.
    A write that fails (a missing folder, a full disk) is logged, once per new
    reason, and never stops the agent.
    """

    def __init__(
        self,
        path: Path,
        status: AgentStatus,
        waiting: Callable[[], int],
        *,
        interval: float = INTERVAL,
    ) -> None:
        self.path = path
        self.status = status
        self.waiting = waiting
        self.interval = interval
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_problem: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-file", daemon=True)
        self._thread.start()

    def request_write(self) -> None:
        """Ask for a write soon (after a sync run); returns at once."""
        self._due.set()

    def stop(self) -> None:
        """Stop the thread, then leave the file saying ``s3vault_up 0``."""
        self._stopping.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.write(up=False)

    def write(self, *, up: bool = True) -> None:
        snapshot = self.status.snapshot()
        text = render_metrics(
            snapshot,
            self.status.totals(),
            queue_length=queue_length(snapshot, self.waiting()),
            up=up,
        )
        try:
            write_atomically(self.path, text)
        except OSError as exc:
            problem = f"cannot write the metrics file {self.path}: {exc.strerror or exc}"
            if problem != self._last_problem:
                log.warning("%s", problem)
            self._last_problem = problem
        else:
            self._last_problem = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.write()
            self._due.wait(self.interval)
            self._due.clear()
