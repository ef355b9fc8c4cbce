"""The test session's real services: the one place they are started and stopped.

- SeaweedFS (S3) and a private, unlocked gnome-keyring come from
  :mod:`s3vault.embedded`, what ``s3vault demo`` runs too;
- moto's server stands in for AWS KMS (:class:`MotoKMS` below: moto is a test
  dependency, the ``test`` extra, so it lives with the tests). Its S3 accepts any
  credentials, so the tests use SeaweedFS for S3.

:class:`SessionServices` starts them when the first test that needs them runs (tests
marked ``services``; pure tests start nothing), points clients at them through
``os.environ`` (inherited by every subprocess), records how long each took to be
ready, watches the keyring between tests, and stops everything by PID at the end of
the session. conftest.py only asks for them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import pytest

from s3vault.embedded import LocalServiceError
from s3vault.embedded.keyring_session import PrivateKeyring
from s3vault.embedded.ports import LOOPBACK, free_port
from s3vault.embedded.seaweed import LocalS3

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
# Local endpoints must never go through a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SessionServices:
    """SeaweedFS, moto's KMS and the private keyring of one test session.

    Each accessor starts its service on first use (a failure fails the asking test
    with the service's log, never skips it) and sets the variables that lead clients
    to it. :meth:`environment` starts all three. :meth:`stop` stops what was started,
    by PID; it is idempotent and also runs at exit, in this process only.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.startup_seconds: dict[str, float] = {}
        self.keyring_clients: int | None = None  # D-Bus connections to it, at the end
        self._s3: LocalS3 | None = None
        self._kms: MotoKMS | None = None
        self._keyring: PrivateKeyring | None = None
        self._keyring_alive_after = "its start"
        self._failed: dict[str, str] = {}  # a service that could not start: why
        self._owner = os.getpid()
        # Belt and braces: if the session dies before its finalizers run, atexit still
        # stops the services. Not in a forked child, though: it would stop the
        # parent's services by PID (Popen.wait in a child even "succeeds").
        atexit.register(self._stop_at_exit)

    # -- the services, started on first use --------------------------------------------

    def s3(self) -> LocalS3:
        if self._s3 is None:
            server = LocalS3(self.base / "seaweedfs")
            self._start("SeaweedFS", server)
            self._s3 = server
            for name in LocalS3.CONFLICTING_ENV:
                os.environ.pop(name, None)
            os.environ.update(server.env())
        return self._s3

    def kms(self) -> MotoKMS:
        if self._kms is None:
            server = MotoKMS(self.base / "moto.log")
            self._start("moto KMS", server)
            self._kms = server
            os.environ["AWS_ENDPOINT_URL_KMS"] = server.endpoint_url
        return self._kms

    def keyring(self) -> PrivateKeyring:
        if self._keyring is None:
            keyring = PrivateKeyring(parent=self.base)
            self._start("gnome-keyring", keyring)
            self._keyring = keyring
            keyring.apply_to_environ()
        return self._keyring

    def environment(self) -> dict[str, str]:
        """Start every service; the resulting environment (set in ``os.environ``)."""
        self.keyring()
        self.s3()
        self.kms()
        # Without credentials boto3 would otherwise probe for an EC2 instance role.
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        return dict(os.environ)

    def _start(self, name: str, service: LocalS3 | MotoKMS | PrivateKeyring) -> None:
        # Tried once per session: every test that needs it fails with the same reason.
        if name in self._failed:
            pytest.fail(self._failed[name], pytrace=False)
        started = time.monotonic()
        try:
            service.start()
        except LocalServiceError as e:
            self._failed[name] = f"{name} could not start: {e.message}\n{e.hint or ''}"
            pytest.fail(self._failed[name], pytrace=False)
        self.startup_seconds[name] = time.monotonic() - started

    # -- between tests ---------------------------------------------------------------------

    def check_keyring(self, test: pytest.Item, *, finished: bool) -> None:
        """Fail ``test`` loudly, and end the session after it, if the keyring is gone.

        Called before (``finished=False``) and after (``finished=True``) every test
        that uses services. Deliberately no restart: a fresh keyring would hide why
        the old one died (and every later test would run on a keyring that lost the
        session's keys). The message names the test and carries the daemon's exit
        status and the end of its log.
        """
        if self._keyring is None:
            return
        failure = self._keyring.failure()
        if failure is None:
            if finished:
                self._keyring_alive_after = test.nodeid
            return
        when = (
            f"during {test.nodeid}"
            if finished
            else f"after {self._keyring_alive_after}, before {test.nodeid}"
        )
        # Every later test would fail for the same reason: stop the run after this one.
        test.session.shouldfail = f"the session's keyring died {when}"
        pytest.fail(f"the session's keyring died {when}: {failure}", pytrace=False)

    def s3_back_up(self) -> None:
        """Tests may stop S3 to simulate an outage; the next test gets it back."""
        if self._s3 is not None and not self._s3.running:
            self._s3.start()

    # -- the end --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every service that was started, by PID (idempotent)."""
        keyring, kms, s3 = self._keyring, self._kms, self._s3
        self._keyring = self._kms = self._s3 = None
        if keyring is not None and keyring.failure() is None:
            self.keyring_clients = bus_connections(keyring.address or "")
        try:
            if kms is not None:
                kms.stop()
            if s3 is not None:
                s3.stop()
        finally:
            if keyring is not None:
                keyring.stop()

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner:
            self.stop()


def bus_connections(address: str) -> int | None:
    """How many connections a bus has accepted so far (its unique names count up).

    Each is a new client of gnome-keyring, and each new client risks its crash (see
    s3vault.embedded.keyring_session._open_secret_service): worth seeing per run.
    """
    from jeepney.io.blocking import open_dbus_connection

    try:
        with open_dbus_connection(bus=address) as conn:
            return int(str(conn.unique_name).rsplit(".", 1)[1]) - 1
    except (OSError, ValueError, IndexError):
        return None


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
