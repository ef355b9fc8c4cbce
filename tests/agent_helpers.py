"""Start and stop real `python -m s3vault agent --foreground` processes in tests.

Each agent gets its own short runtime dir (a Unix socket path is limited to ~107
bytes, and pytest's tmp paths can be long) and its own state dir; a fixture's
finalizer stops every agent it started, by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

START_TIMEOUT = 30.0
SYNC_TIMEOUT = 30.0  # generous: the test machine has 2 cores shared by parallel runs


def wait_for(
    predicate: Callable[[], T], what: str = "condition", timeout: float = SYNC_TIMEOUT
) -> T:
    """The first truthy value of ``predicate()`` (polled every 0.1 s); AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class AgentProcs:
    """The agent processes of one test and the environment they run in."""

    config: Path
    env: dict[str, str]
    runtime: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.runtime / "s3vault" / "agent.sock"

    def start(self, *extra_env: tuple[str, str], wait: bool = True) -> subprocess.Popen[bytes]:
        env = dict(self.env, **dict(extra_env))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s3vault",
                "--config",
                str(self.config),
                "agent",
                "--foreground",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        if wait:
            self.wait_ready(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        from s3vault.agent.client import AgentClient
        from s3vault.errors import UnreachableError

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"agent exited {proc.returncode}: {err.decode()}")
            try:
                with AgentClient(self.socket, timeout=5):
                    return
            except UnreachableError:
                time.sleep(0.1)
        raise AssertionError("agent socket did not appear")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "s3vault", "--config", str(self.config), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def agent_procs(config: Path, base_env: dict[str, str]) -> Iterator[AgentProcs]:
    """A fresh runtime and state dir; yields AgentProcs, stops its agents afterwards."""
    root = Path(tempfile.mkdtemp(prefix="s3va-"))
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    env = dict(base_env, XDG_RUNTIME_DIR=str(runtime), XDG_STATE_HOME=str(root / "state"))
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    procs = AgentProcs(config, env, runtime)
    try:
        yield procs
    finally:
        procs.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def write_config(path: Path, folder: Path, bucket: str, *, rescan: str = "1h") -> Path:
    path.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: sync, key: agent-key}}\n"
        f"agent: {{debounce_ms: 200, rescan_interval: {rescan}, workers: 2}}\n"
    )
    return path


def environ() -> dict[str, str]:
    return dict(os.environ)
