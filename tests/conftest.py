"""The test session: an isolated environment, and fixtures that ask for real services.

The services (SeaweedFS, moto's KMS, a private gnome-keyring) are started and
stopped in one place, ``tests/services.py``; this file only asks for them.

Pure tests start nothing. A test that uses a service fixture (``s3``, ``kms``,
``private_keyring``, ``session_env`` or anything built on them: ``bucket``,
``run_cli``, ``keyring_service``...) is marked ``services`` at collection, and a test
can also be marked ``@pytest.mark.services`` explicitly (one that starts services of
its own, or needs the session's environment). The first such test starts every
service, once per session (the machine has 2 cores), and every such test runs in the
session environment below. So ``pytest -m "not services"`` runs the pure
tests in seconds and starts no process; a full ``pytest`` starts everything and skips
nothing. Services are stopped by PID at the end, also after Ctrl-C or SIGTERM
(fixture finalizers). A service that cannot start fails the tests that need it with
the reason; nothing is ever skipped for a missing service.

For every test (autouse, session-wide), the environment is isolated: ``HOME`` and
``XDG_{CONFIG,DATA,STATE,CACHE}_HOME``, ``XDG_RUNTIME_DIR`` point into the session's
temp dir, so no test reads or writes the developer's config, state or keyring. Every
``AWS_*`` and ``S3VAULT_*`` variable of the developer is removed
(``S3VAULT_CRASH_SEED`` excepted), and so are ``PYTHON_KEYRING_BACKEND`` and
``DBUS_SESSION_BUS_ADDRESS``.

Once the services run, set for this process and every subprocess it starts:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (the SeaweedFS keys; moto accepts
any), ``AWS_ENDPOINT_URL_S3`` (SeaweedFS), ``AWS_ENDPOINT_URL_KMS`` (moto),
``AWS_DEFAULT_REGION=us-east-1``, ``AWS_EC2_METADATA_DISABLED=true`` (no instance
metadata probing when credentials are missing), ``NO_PROXY`` for loopback, and
``DBUS_SESSION_BUS_ADDRESS`` of the private, unlocked gnome-keyring. The keyring is
checked before and after every such test: if it died, that test fails with the
daemon's exit status and log, and the session stops there (no silent restart).

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
    S3 Encryption Client; see its README.md). Pure: starts no service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cli_run import CLI_TIMEOUT, UNPRIVILEGED, RunCli
from services import MotoKMS, SessionServices

from s3vault.embedded.keyring_session import PrivateKeyring
from s3vault.embedded.seaweed import LocalS3

pytest_plugins = ["gui_helpers"]  # fixtures of the desktop app's tests

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client

VECTORS_DIR = Path(__file__).parent / "vectors"
_KEPT_VARIABLES = ("S3VAULT_CRASH_SEED",)
SERVICE_FIXTURES = frozenset({"services", "s3", "kms", "private_keyring", "session_env"})
"""Fixtures that start services: a test using one (directly or through another
fixture) is marked ``services``."""
# The session's services, once the first test that needs them asked (for the summary).
_SERVICES: list[SessionServices] = []


# -- session plumbing -------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/reliability/conftest.py: options are read from the first
    # conftest only.
    parser.addoption(
        "--soak",
        action="store_true",
        help="run tests/reliability at soak scale (1,000 kills, 100,000 files, a 10 GiB "
        "file): hours, outside CI; see docs/reliability.md",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    # A SIGTERM (CI time-out, `kill`) would end Python without running finalizers and
    # leave the servers running; as KeyboardInterrupt it tears down like Ctrl-C does.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def _interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, _interrupt)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    times = {name: t for services in _SERVICES for name, t in services.startup_seconds.items()}
    if times:
        ready = ", ".join(f"{name} {secs:.2f} s" for name, secs in times.items())
        terminalreporter.write_line(f"test services ready in: {ready}")
    else:
        terminalreporter.write_line("test services: none started")
    for services in _SERVICES:
        if services.keyring_clients is not None:
            terminalreporter.write_line(
                f"the session's keyring bus saw {services.keyring_clients} client connections"
            )


@pytest.fixture(scope="session", autouse=True)
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
    # Qt without a display: the app's tests drive real widgets offscreen (a test that
    # needs a real X server and tray starts its own Xvfb, see tests/xdisplay.py).
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    loopback = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name)
        os.environ[name] = f"{current},{loopback}" if current else loopback
    try:
        yield base
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- the services (started by tests/services.py, on first use) --------------------------


@pytest.fixture(scope="session")
def services(_isolated_home: Path) -> Iterator[SessionServices]:
    testbed = SessionServices(_isolated_home)
    _SERVICES.append(testbed)
    try:
        yield testbed
    finally:
        testbed.stop()


@pytest.fixture(scope="session")
def s3(services: SessionServices) -> LocalS3:
    return services.s3()


@pytest.fixture(scope="session")
def kms(services: SessionServices) -> MotoKMS:
    return services.kms()


@pytest.fixture(scope="session")
def private_keyring(services: SessionServices) -> PrivateKeyring:
    return services.keyring()


@pytest.fixture(scope="session")
def session_env(services: SessionServices) -> dict[str, str]:
    """The session's environment, set in os.environ (restored by ``_isolated_home``)."""
    return services.environment()


@pytest.fixture(autouse=True)
def _services_for_marked_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``services`` runs in the full session environment, every service
    up; the keyring is checked before and after it, S3 brought back after an outage."""
    if request.node.get_closest_marker("services") is None:
        yield
        return
    services: SessionServices = request.getfixturevalue("services")
    request.getfixturevalue("session_env")
    services.check_keyring(request.node, finished=False)
    yield
    services.s3_back_up()
    services.check_keyring(request.node, finished=True)


# -- per-test resources -----------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_client(s3: LocalS3) -> S3Client:
    return s3.client()


@pytest.fixture(scope="session")
def kms_client(kms: MotoKMS, session_env: dict[str, str]) -> KMSClient:
    # session_env first: it sets the credentials boto3 reads (a session fixture is made
    # before the function-scoped one that would otherwise ask for it).
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
def keyring_service(private_keyring: PrivateKeyring, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"s3vault-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("S3VAULT_KEYRING_SERVICE", name)
    return name


@pytest.fixture
def run_cli(session_env: dict[str, str], keyring_service: str, tmp_path: Path) -> RunCli:
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
