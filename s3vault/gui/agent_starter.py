"""Start the sync agent when none is running (and the config has folders), and restart
it after the folders changed; say so in the status bar and the activity list.

The agent is started like `s3vault agent` does (a detached process in its own session,
so it keeps syncing when the app quits), from a job: the start waits for the agent's
socket, which can take seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from s3vault.agent.client import wait_until_stopped
from s3vault.errors import ExitCode, S3VaultError
from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem

START_TIMEOUT = 60.0  # the CLI waits up to 30 s for the socket
STOP_TIMEOUT = 120.0  # a stop lets the reconcile in progress finish
NO_FOLDERS = "No folders to sync yet: the agent starts once you add one."
STARTED = "Started the sync agent"


class AgentStartError(S3VaultError):
    """The agent did not start; the message says why (from its log)."""


class AgentStarter(QObject):
    """``started()`` after an agent was started (or found running), ``failed(Problem)``
    when it could not be; ``say(text)`` shows a line in the status bar."""

    started = Signal()
    failed = Signal(object)

    def __init__(
        self,
        ctx: AppContext,
        say: Callable[..., None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        # say(text, lasting=False): a status line; lasting for what needs the user
        self.say = say if say is not None else (lambda _text, **_kw: None)
        self.starting = False

    def ensure_running(self) -> None:
        """Connect to the agent; if none answers, start one (when there are folders).

        Asked with a status request of its own: the link's `connected_changed` only
        fires on a change, so it cannot say "still not there"."""
        self.ctx.agent.connect_now()
        self.ctx.agent.request("status", self._probed)

    def _probed(self, reply: dict[str, object]) -> None:
        if not reply.get("ok"):
            self.start()

    def start(self) -> None:
        """Start the agent now (no-op while a start runs, or without folders)."""
        if self.starting:
            return
        if not self.ctx.config.folders:
            self.say(NO_FOLDERS, lasting=True)
            self.ctx.activity.add("agent", "sync agent", "not started: no folders to sync yet")
            return
        self._run_job("start the sync agent", lambda job: start_agent(self._config_path(), job))

    def restart_agent(self) -> None:
        """Stop the agent (after its reconcile in progress) and start it again: after
        folders were added or removed. Without folders it is only stopped."""
        if self.starting:
            return
        socket_path = self.ctx.agent.socket_path
        config_path = self._config_path()
        has_folders = bool(self.ctx.config.folders)

        def work(job: Job) -> str:
            wait_until_stopped(socket_path, timeout=STOP_TIMEOUT, check=job.check)
            if not has_folders:
                return "stopped"
            return start_agent(config_path, job, retries=10)

        def stopped(_reply: object) -> None:
            self._run_job("restart the sync agent", work)

        self.say("Restarting the sync agent…")
        self.starting = True
        self.ctx.agent.stop_agent(stopped)

    def _config_path(self) -> Path:
        return self.ctx.config_path.absolute()

    def _run_job(self, name: str, work: Callable[[Job], str]) -> None:
        self.starting = True
        self.say("Starting the sync agent…")
        self.ctx.jobs.start(name, work, on_done=self._done, on_failed=self._failed)

    def _done(self, outcome: str) -> None:
        self.starting = False
        if outcome == "stopped":
            self.say("Stopped the sync agent: no folders to sync")
            self.ctx.activity.add("agent", "sync agent", "stopped: no folders to sync", "done")
            return
        text = STARTED if outcome == "started" else "The sync agent is running"
        self.say(text)
        self.ctx.activity.add("agent", "sync agent", text, "done")
        self.ctx.agent.connect_now()
        self.started.emit()

    def _failed(self, problem: Problem) -> None:
        self.starting = False
        self.say(f"Could not start the sync agent: {problem.message}", lasting=True)
        self.ctx.activity.add("agent", "sync agent", problem.text(), "error")
        self.failed.emit(problem)


def start_agent(config_path: Path, job: Job | None = None, *, retries: int = 0) -> str:
    """Run `s3vault agent` (detached start); "started", or "running" if an agent was
    already there; AgentStartError with the agent's own words otherwise."""
    command = [sys.executable, "-m", "s3vault", "--config", os.fspath(config_path), "agent"]
    for attempt in range(retries + 1):
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if done.returncode == 0:
            return "started"
        if done.returncode == int(ExitCode.CONFLICT) and attempt < retries:
            # 8: an agent holds the lock (the old one of a restart, for a moment).
            if job is not None:
                job.check()
            time.sleep(0.5)
            continue
        if done.returncode == int(ExitCode.CONFLICT):
            return "running"
        raise AgentStartError(_why(done), hint="See `s3vault agent --foreground` for details.")
    raise AssertionError("unreachable")  # pragma: no cover


def _why(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = [
        line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()
    ]
    # The CLI prints the agent's error, then "the agent stopped at once (exit code N)".
    useful = [line.removeprefix("error: ") for line in lines if not line.startswith("Traceback")]
    useful = useful[-3:]
    return "; ".join(useful) or f"exit code {done.returncode}"
