"""Real services for the whole test session, and the fixtures that hand them out.

Started once per session (the machine has 2 cores), stopped by PID at the end, also
after Ctrl-C or SIGTERM (fixture finalizers). A service that cannot start fails the
tests that need it with the reason; nothing is ever skipped for a missing service.

Session set-up, before any test (autouse):

- The environment is isolated: ``HOME`` and ``XDG_{CONFIG,DATA,STATE,CACHE}_HOME``,
  ``XDG_RUNTIME_DIR`` point into the session's temp dir, so no test reads or writes the
  developer's config, state or keyring. Every ``AWS_*`` and ``S3VAULT_*`` variable of
  the developer is removed (``S3VAULT_CRASH_SEED`` excepted), and so is
  ``PYTHON_KEYRING_BACKEND``.
- Then set, for this process and every subprocess it starts:
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (the SeaweedFS keys; moto accepts
  any), ``AWS_ENDPOINT_URL_S3`` (SeaweedFS), ``AWS_ENDPOINT_URL_KMS`` (moto),
  ``AWS_DEFAULT_REGION=us-east-1``, ``AWS_EC2_METADATA_DISABLED=true`` (no instance
  metadata probing when credentials are missing), ``NO_PROXY`` for loopback, and
  ``DBUS_SESSION_BUS_ADDRESS`` of a private, unlocked gnome-keyring.

Fixtures:

``s3`` (session)
    :class:`s3vault.embedded.seaweed.LocalS3`: ``endpoint_url``, ``access_key``,
    ``secret_key``, ``client()``, ``create_bucket()``; ``stop()``/``start()`` simulate an
    outage (same ports, keys and data). A test that leaves it stopped gets it restarted.
``kms`` (session)
    :class:`services.MotoKMS`: ``endpoint_url``. In-memory state: make keys per test.
``private_keyring`` (session)
    :class:`s3vault.embedded.keyring_session.PrivateKeyring` already applied to os.environ.
``session_env`` (session)
    A copy of the environment the session set up (what subprocesses inherit).
``s3_client`` / ``kms_client`` (session)
    boto3 clients for SeaweedFS (path-style) and moto's KMS.
``bucket`` (function)
    Name of a new, empty bucket; deleted with its contents after the test.
``kms_key_id`` (function)
    KeyId of a new symmetric KMS key in moto.
``keyring_service`` (function)
    A unique keyring service name, also set as ``S3VAULT_KEYRING_SERVICE`` for the test
    (via monkeypatch), so keys made by one test are invisible to the others.
``run_cli`` (function)
    ``run_cli(*args, input=None, env=None, cwd=None, timeout=300, unprivileged=False)``
    runs ``python -m s3vault *args`` with the session environment plus the test's
    monkeypatched variables plus ``env`` (a value of None removes a variable); returns
    ``subprocess.CompletedProcess`` with ``stdout``/``stderr`` as bytes. Uses
    ``keyring_service``. Runs in the test's ``tmp_path`` unless ``cwd`` is given.
    ``unprivileged``: file permissions apply to it even when the tests run as root
    (see `UNPRIVILEGED`).
``vectors_dir`` (session)
    Path of the test vectors, ``tests/vectors`` (objects written by the official Ruby
    S3 Encryption Client; see its README.md).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from services import MotoKMS

from s3vault.embedded import LocalServiceError
from s3vault.embedded.keyring_session import PrivateKeyring
from s3vault.embedded.seaweed import LocalS3

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client

CLI_TIMEOUT = 300.0
VECTORS_DIR = Path(__file__).parent / "vectors"
_KEPT_VARIABLES = ("S3VAULT_CRASH_SEED",)
# How long each service took to become ready, shown at the end of the run.
_STARTUP_SECONDS: dict[str, float] = {}


# -- session plumbing -------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    # A SIGTERM (CI time-out, `kill`) would end Python without running finalizers and
    # leave the servers running; as KeyboardInterrupt it tears down like Ctrl-C does.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def _interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, _interrupt)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STARTUP_SECONDS:
        times = ", ".join(f"{name} {secs:.2f} s" for name, secs in _STARTUP_SECONDS.items())
        terminalreporter.write_line(f"test services ready in: {times}")


def _start(name: str, service: Any) -> None:
    """Start a service, timing it; a failure fails the test loudly, never skips it."""
    # Belt and braces: if the session dies before the finalizers run, atexit still
    # stops the service (stop() is idempotent).
    atexit.register(service.stop)
    started = time.monotonic()
    try:
        service.start()
    except LocalServiceError as e:
        pytest.fail(f"{name} could not start: {e.message}\n{e.hint or ''}", pytrace=False)
    _STARTUP_SECONDS[name] = time.monotonic() - started


@pytest.fixture(scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point HOME and the XDG dirs into a temp dir and drop the developer's settings."""
    saved = dict(os.environ)
    base = tmp_path_factory.mktemp("session")
    for name, sub in (
        ("HOME", "home"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "runtime"),
    ):
        path = base / sub
        path.mkdir(mode=0o700)
        os.environ[name] = str(path)
    for name in list(os.environ):
        if name in _KEPT_VARIABLES:
            continue
        if name.startswith(("AWS_", "S3VAULT_")) or name in (
            "PYTHON_KEYRING_BACKEND",
            "DBUS_SESSION_BUS_ADDRESS",
        ):
            del os.environ[name]
    loopback = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name)
        os.environ[name] = f"{current},{loopback}" if current else loopback
    try:
        yield base
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def private_keyring(_isolated_home: Path) -> Iterator[PrivateKeyring]:
    keyring = PrivateKeyring(parent=_isolated_home)
    _start("gnome-keyring", keyring)
    keyring.apply_to_environ()
    try:
        yield keyring
    finally:
        keyring.stop()


@pytest.fixture(scope="session")
def s3(_isolated_home: Path) -> Iterator[LocalS3]:
    server = LocalS3(_isolated_home / "seaweedfs")
    _start("SeaweedFS", server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kms(_isolated_home: Path) -> Iterator[MotoKMS]:
    server = MotoKMS(_isolated_home / "moto.log")
    _start("moto KMS", server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def session_env(
    _isolated_home: Path, private_keyring: PrivateKeyring, s3: LocalS3, kms: MotoKMS
) -> dict[str, str]:
    """The session's environment, set in os.environ (restored by ``_isolated_home``)."""
    for name in LocalS3.CONFLICTING_ENV:
        os.environ.pop(name, None)
    os.environ.update(s3.env())
    os.environ["AWS_ENDPOINT_URL_KMS"] = kms.endpoint_url
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    return dict(os.environ)


@pytest.fixture(autouse=True)
def _keyring_running_after_test(private_keyring: PrivateKeyring) -> Iterator[None]:
    """A keyring daemon that died fails the test it died in, loudly, with its log.

    The session then goes on with a fresh (empty) keyring instead of failing every
    later test for the same reason.
    """
    yield
    failure = private_keyring.failure()
    if failure is None:
        return
    try:
        private_keyring.restart()
    except LocalServiceError as e:
        failure += f"\nRestarting it failed too: {e.message}"
    pytest.fail(f"the session's keyring stopped during this test: {failure}", pytrace=False)


@pytest.fixture(autouse=True)
def _s3_running_after_test(s3: LocalS3) -> Iterator[None]:
    """Tests may stop S3 to simulate an outage; the next test gets it back."""
    yield
    if not s3.running:
        s3.start()


# -- per-test resources -----------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_client(s3: LocalS3) -> S3Client:
    return s3.client()


@pytest.fixture(scope="session")
def kms_client(kms: MotoKMS) -> KMSClient:
    import boto3

    return boto3.client("kms", endpoint_url=kms.endpoint_url, region_name=kms.region)


@pytest.fixture
def bucket(s3: LocalS3, s3_client: S3Client) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:24]}"
    s3.create_bucket(name)
    yield name
    from botocore.exceptions import ClientError

    if not s3.running:
        s3.start()  # the test simulated an outage and left it so
    try:
        # SeaweedFS deletes a non-empty bucket with its objects (and versions) in one go.
        s3_client.delete_bucket(Bucket=name)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise


@pytest.fixture
def kms_key_id(kms_client: KMSClient) -> str:
    key = kms_client.create_key(
        Description="s3vault test key", KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT"
    )
    return key["KeyMetadata"]["KeyId"]


@pytest.fixture
def keyring_service(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"s3vault-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("S3VAULT_KEYRING_SERVICE", name)
    return name


UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)
"""A command prefix under which root, too, obeys file permissions: without these two
capabilities a process cannot write a folder or read a file its mode forbids (a
permission-denied case is then a real one, as for a user)."""


class RunCli(Protocol):
    """Type of the ``run_cli`` fixture, for annotations in test modules."""

    def __call__(
        self,
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = CLI_TIMEOUT,
        unprivileged: bool = False,
    ) -> subprocess.CompletedProcess[bytes]: ...


@pytest.fixture
def run_cli(keyring_service: str, tmp_path: Path) -> RunCli:
    def run(
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = CLI_TIMEOUT,
        unprivileged: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        # os.environ here is the session env plus this test's monkeypatched variables.
        child_env = dict(os.environ)
        for name, value in (env or {}).items():
            if value is None:
                child_env.pop(name, None)
            else:
                child_env[name] = value
        prefix = UNPRIVILEGED if unprivileged else []
        return subprocess.run(
            [*prefix, sys.executable, "-m", "s3vault", *(os.fspath(a) for a in args)],
            input=input,
            # No input given: the CLI must not wait for a terminal that is not there.
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=child_env,
            cwd=cwd or tmp_path,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    if not (VECTORS_DIR / "manifest.json").is_file():
        pytest.fail(f"Test vectors not found at {VECTORS_DIR}.", pytrace=False)
    return VECTORS_DIR
