"""Shared plumbing for the benchmarks in bench/: services, sizes, files, measured runs.

A benchmark starts its own services in a temporary directory (:class:`BenchServices`:
SeaweedFS, a private gnome-keyring and, when asked, moto's KMS), runs every client it
compares as a child process (:func:`run_measured`: wall time and peak RSS through
``os.wait4``) with one explicit environment (:meth:`BenchServices.child_env`), and stops
the services by PID in a ``finally`` (also on Ctrl-C and SIGTERM, see
:func:`sigterm_as_interrupt`).

Benchmarks are scripts, not tests: they print numbers and ratios, they assert nothing
about timing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
"""bin/ of the Python running the benchmark (the project's .venv under `make bench`)."""

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kib": KiB,
    "kb": 1000,
    "m": MiB,
    "mib": MiB,
    "mb": 1000**2,
    "g": GiB,
    "gib": GiB,
    "gb": 1000**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_WRITE_CHUNK = 8 * MiB
_TIME_V = Path("/usr/bin/time")
_MAXRSS_RE = re.compile(rb"Maximum resident set size \(kbytes\):\s*(\d+)")

if TYPE_CHECKING:
    from services import MotoKMS

    from s3vault.embedded.keyring_session import PrivateKeyring
    from s3vault.embedded.seaweed import LocalS3


# -- sizes ------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``"64MiB"``, ``"1GiB"``, ``"256M"`` (binary), ``"1GB"`` (decimal) or bytes → bytes."""
    match = _SIZE_RE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 64MiB, 1GiB, 500MB, 1048576)")
    return int(float(match.group(1)) * _UNITS[unit])


def human_size(n: float) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def mib_per_s(size: int, seconds: float) -> float:
    return size / MiB / seconds if seconds > 0 else float("inf")


# -- files and disk -----------------------------------------------------------------------


class DiskSpaceError(SystemExit):
    """Not enough free space for the benchmark: exits with a clear message."""


def check_free_space(where: Path, needed: int, what: str) -> int:
    """Exit with a clear message unless ``where`` has ``needed`` bytes free; return free."""
    free = shutil.disk_usage(where).free
    if free < needed:
        raise DiskSpaceError(
            f"Not enough disk space in {where} for {what}: it needs about "
            f"{human_size(needed)}, only {human_size(free)} is free.\n"
            "Use smaller sizes (e.g. --size 256MiB --rss-size 512MiB) or point --tmpdir "
            "at a larger disk."
        )
    return free


def make_random_file(path: Path, size: int, chunk: int = _WRITE_CHUNK) -> Path:
    """Write ``size`` random bytes to ``path`` chunk by chunk (constant memory)."""
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n
    return path


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def settle() -> None:
    """Flush dirty pages before a timed run, so no run pays for its predecessor's writes."""
    os.sync()


# -- measured child processes -------------------------------------------------------------


class RunFailed(RuntimeError):
    """A measured command exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    seconds: float
    max_rss_kib: int
    returncode: int
    stdout: bytes
    stderr: bytes
    cpu_seconds: float = 0.0
    """User + system CPU time of the child (and of any children it waited for)."""
    server_cpu_seconds: float | None = None
    """CPU time the watched server process (SeaweedFS) used meanwhile, when one was given."""
    machine_cpu_seconds: float | None = None
    """Busy CPU time of the whole machine meanwhile (all processes, all CPUs)."""

    @property
    def other_cpu_seconds(self) -> float | None:
        """Machine CPU time used by neither the client nor the server: other processes
        competing for the CPUs (plus some kernel work), i.e. the noise of this run."""
        if self.machine_cpu_seconds is None:
            return None
        return max(
            0.0, self.machine_cpu_seconds - self.cpu_seconds - (self.server_cpu_seconds or 0.0)
        )

    @property
    def max_rss_mb(self) -> float:
        """Peak resident set size in MB (10^6 bytes), as ``/usr/bin/time`` counts KiB."""
        return self.max_rss_kib * KiB / 1e6

    def check(self) -> RunResult:
        if self.returncode != 0:
            tail = self.stderr.decode("utf-8", "replace")[-3000:]
            raise RunFailed(f"{' '.join(self.argv)} exited with {self.returncode}:\n{tail}")
        return self


def _read_back(stream: IO[bytes]) -> bytes:
    stream.seek(0)
    return stream.read()


def process_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a running process from /proc (Linux), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")" that ends the command name: field 3 is at index 0, so utime (14)
    # and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """Busy CPU time of the whole machine since boot, all CPUs (/proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _delta(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


def run_measured(
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    check: bool = True,
    server_pid: int | None = None,
) -> RunResult:
    """Run ``argv`` to completion: wall time, peak RSS and CPU time (``os.wait4``).

    With ``server_pid``, also the CPU time that process (the S3 server) used during
    the run. Output goes to temporary files (no pipe can fill up and stall the child).
    On Ctrl-C the child is killed by its PID and reaped before the interrupt goes on.
    """
    args = tuple(os.fspath(a) for a in argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        server_before = process_cpu_seconds(server_pid)
        machine_before = machine_busy_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
        server_after = process_cpu_seconds(server_pid)
        machine_after = machine_busy_seconds()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        result = RunResult(
            argv=args,
            seconds=seconds,
            max_rss_kib=int(usage.ru_maxrss),  # KiB on Linux
            returncode=proc.returncode,
            stdout=_read_back(out),
            stderr=_read_back(err),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            server_cpu_seconds=_delta(server_before, server_after),
            machine_cpu_seconds=_delta(machine_before, machine_after),
        )
    return result.check() if check else result


def run_peak_rss(
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    server_pid: int | None = None,
) -> tuple[RunResult, str]:
    """Run ``argv`` for its peak RSS: under ``/usr/bin/time -v`` when installed (its
    "Maximum resident set size"), else :func:`run_measured`'s ``os.wait4``.

    Returns the result (``max_rss_kib`` from the method used) and the method's name.
    """
    if not (_TIME_V.is_file() and os.access(_TIME_V, os.X_OK)):
        return run_measured(argv, env, cwd=cwd, server_pid=server_pid), "os.wait4 ru_maxrss"
    result = run_measured([str(_TIME_V), "-v", *argv], env, cwd=cwd, server_pid=server_pid)
    match = _MAXRSS_RE.search(result.stderr)
    if match is None:
        raise RunFailed(f"/usr/bin/time -v printed no maximum RSS:\n{result.stderr[-2000:]!r}")
    rss = int(match.group(1))
    return dataclasses.replace(result, max_rss_kib=rss), "/usr/bin/time -v"


# -- statistics and output ----------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one thing (seconds and peak RSS per run)."""

    name: str
    size: int
    seconds: list[float] = field(default_factory=list)
    max_rss_kib: list[int] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    server_cpu_seconds: list[float] = field(default_factory=list)
    other_cpu_seconds: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, result: RunResult) -> RunResult:
        self.seconds.append(result.seconds)
        self.max_rss_kib.append(result.max_rss_kib)
        self.cpu_seconds.append(result.cpu_seconds)
        if result.server_cpu_seconds is not None:
            self.server_cpu_seconds.append(result.server_cpu_seconds)
        if result.other_cpu_seconds is not None:
            self.other_cpu_seconds.append(result.other_cpu_seconds)
        return result

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_mib_s(self) -> float:
        return mib_per_s(self.size, self.median_s)

    @property
    def median_cpu_s(self) -> float | None:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else None

    @property
    def median_server_cpu_s(self) -> float | None:
        return statistics.median(self.server_cpu_seconds) if self.server_cpu_seconds else None

    @property
    def median_other_cpu_s(self) -> float | None:
        return statistics.median(self.other_cpu_seconds) if self.other_cpu_seconds else None

    @property
    def peak_rss_mb(self) -> float:
        return max(self.max_rss_kib, default=0) * KiB / 1e6

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size_bytes": self.size,
            "seconds": [round(s, 4) for s in self.seconds],
            "median_seconds": round(self.median_s, 4),
            "median_mib_per_s": round(self.median_mib_s, 2),
            "mib_per_s": [round(mib_per_s(self.size, s), 2) for s in self.seconds],
            "max_rss_mb": [round(k * KiB / 1e6, 1) for k in self.max_rss_kib],
            "client_cpu_seconds": [round(c, 3) for c in self.cpu_seconds],
            "server_cpu_seconds": [round(c, 3) for c in self.server_cpu_seconds],
            "other_cpu_seconds": [round(c, 3) for c in self.other_cpu_seconds],
            "note": self.note,
        }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def machine_facts() -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for dist in ("s3vault", "boto3", "botocore", "s3transfer", "cryptography"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


# -- services -------------------------------------------------------------------------------


def sigterm_as_interrupt() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so ``finally`` blocks stop the services."""

    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)


def _import_services() -> type[MotoKMS]:
    """MotoKMS lives with the tests (moto is a test dependency)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from services import MotoKMS

    return MotoKMS


_DROPPED_ENV_PREFIXES = ("AWS_", "S3VAULT_")
_DROPPED_ENV = ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND", "PYTHONPATH")


class BenchServices:
    """SeaweedFS + a private keyring (+ moto KMS) in ``workdir``, for one benchmark run.

    ``with BenchServices(workdir, kms=True) as svc:`` starts them (the keyring first: it
    is the quickest to fail on a machine without the apt packages) and stops each one
    by its PID on the way out, whatever happened. :meth:`child_env` is the complete
    environment for the clients under test.
    """

    def __init__(self, workdir: Path, *, kms: bool = False, keyring_service: str = "bench"):
        self.workdir = workdir
        self.want_kms = kms
        self.keyring_service = keyring_service
        self.s3: LocalS3 | None = None
        self.keyring: PrivateKeyring | None = None
        self.kms: MotoKMS | None = None
        self.startup_seconds: dict[str, float] = {}

    def start(self) -> BenchServices:
        from s3vault.embedded.keyring_session import PrivateKeyring
        from s3vault.embedded.seaweed import LocalS3

        self.keyring = self._timed("gnome-keyring", PrivateKeyring(parent=self.workdir).start)
        self.s3 = self._timed("SeaweedFS", LocalS3(self.workdir / "seaweedfs").start)
        if self.want_kms:
            moto = _import_services()(self.workdir / "moto.log")
            self.kms = moto  # assigned before start(): stop() must see it if start fails
            self._timed("moto KMS", moto.start)
        return self

    def _timed(self, name: str, start: Callable[[], Any]) -> Any:
        began = time.monotonic()
        started = start()
        self.startup_seconds[name] = round(time.monotonic() - began, 2)
        return started

    def stop(self) -> None:
        """Stop every service that was started, by PID, even if one stop fails."""
        services: list[Any] = [self.kms, self.s3, self.keyring]
        self.kms = self.s3 = self.keyring = None
        errors: list[BaseException] = []
        for service in services:
            if service is None:
                continue
            try:
                service.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> BenchServices:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int | None]:
        return {
            "seaweedfs": self.s3.pid if self.s3 else None,
            "keyring": self.keyring.daemon_pid if self.keyring else None,
            "dbus": self.keyring.dbus_pid if self.keyring else None,
            "moto": self.kms.pid if self.kms else None,
        }

    def child_env(self) -> dict[str, str]:
        """The environment of every client under test, set explicitly.

        The developer's AWS_* and S3VAULT_* variables are dropped (AWS_CA_BUNDLE and
        AWS_PROFILE among them), config and credential files point at nothing, and the
        endpoints, keys, region, keyring service and D-Bus address are set.
        """
        assert self.s3 is not None and self.keyring is not None
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_DROPPED_ENV_PREFIXES) and k not in _DROPPED_ENV
        }
        home = self.workdir / "home"
        for sub in ("", "config", "cache", "data", "state"):
            (home / sub).mkdir(mode=0o700, exist_ok=True)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_CACHE_HOME=str(home / "cache"),
            XDG_DATA_HOME=str(home / "data"),
            XDG_STATE_HOME=str(home / "state"),
            AWS_CONFIG_FILE=str(home / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            S3VAULT_KEYRING_SERVICE=self.keyring_service,
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        env.update(self.s3.env())  # keys, AWS_ENDPOINT_URL_S3, AWS_DEFAULT_REGION
        env.update(self.keyring.env())  # DBUS_SESSION_BUS_ADDRESS
        if self.kms is not None:
            env["AWS_ENDPOINT_URL_KMS"] = self.kms.endpoint_url
        return env


@contextlib.contextmanager
def work_dir(parent: Path | None, prefix: str) -> Iterator[Path]:
    """A temporary directory (short path: the keyring's unix socket lives in it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def s3vault_cli() -> Path:
    """The ``s3vault`` entry script beside our Python (the venv's)."""
    script = VENV_BIN / "s3vault"
    if not script.is_file():
        raise SystemExit(f"{script} not found: install the project (pip install -e '.[test]').")
    return script
