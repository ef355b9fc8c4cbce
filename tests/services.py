"""Test-only services: a moto server standing in for AWS KMS.

moto is a test dependency (the ``test`` extra), so this lives with the tests rather
than in ``s3vault.embedded``. moto keeps its state in memory: keys must be created after
every start. Its S3 accepts any credentials, so the tests use SeaweedFS for S3.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from s3vault.embedded import LocalServiceError
from s3vault.embedded.ports import LOOPBACK, free_port

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
# Local endpoints must never go through a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_moto_server() -> Path:
    """``moto_server`` beside our Python (the venv's bin/), else on PATH."""
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.is_file():
        return candidate
    found = shutil.which("moto_server")
    if found:
        return Path(found)
    raise LocalServiceError(
        "moto_server was not found.", hint="Install the test extra: pip install -e '.[test]'"
    )


class MotoKMS:
    """``moto_server`` on 127.0.0.1, used as the KMS endpoint (:attr:`endpoint_url`).

    Context manager, or :meth:`start` / :meth:`stop` (stop by PID: SIGTERM, then
    SIGKILL). Output goes to ``log_path``. moto accepts any credentials and checks
    nothing but the request shape, and a disabled key still decrypts (unlike AWS).
    """

    region = "us-east-1"

    def __init__(self, log_path: Path, *, start_timeout: float = _START_TIMEOUT) -> None:
        self.log_path = Path(log_path)
        self.start_timeout = start_timeout
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> MotoKMS:
        """Start moto and wait until ``GET /moto-api/`` answers 200. Idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        argv = [str(find_moto_server()), "-H", LOOPBACK, "-p", str(self.port)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches pytest, whose finalizer stops it
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LocalServiceError(
                    f"moto_server exited with code {self._proc.returncode} while starting.",
                    hint=self._log_tail(),
                )
            try:
                with _NO_PROXY.open(f"{self.endpoint_url}/moto-api/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last_error = e
            time.sleep(0.05)
        raise LocalServiceError(
            f"moto_server did not answer at {self.endpoint_url} within "
            f"{self.start_timeout:.0f} s (last error: {last_error}).",
            hint=self._log_tail(),
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return f"Last lines of {self.log_path}:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop moto by PID (SIGTERM, SIGKILL after ``timeout`` s). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> MotoKMS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
