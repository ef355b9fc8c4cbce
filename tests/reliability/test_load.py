"""Load: many files and one big sparse file through `s3vault sync`, the big one back by `get`.

Measured of each s3vault process (not of pytest): the wall time, the peak RSS (the
kernel's high-water mark, VmHWM) and the peak number of open file descriptors
(/proc/PID/fd, polled). Checked: every object decrypts to its file's bytes, the big
one through the CLI's `get`; the open descriptors stay
bounded, and a second sync (nothing to do) opens no more than the first: no leak.
(The check that every small object decrypts to its file's bytes runs in-process,
many at once: a `restore` of 2,000 files, one after the other, takes ~20 s here.)
No timed assertion: the figures go to the report.

CI: 1,000 files and a 32 MiB sparse file. --soak: 100,000 files and a 10 GiB one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from crash_helpers import MiB, file_sha, sha
from rotation_helpers import CachingKeyStore

from s3vault.config.load import load_config
from s3vault.vault.factory import build_vault

GiB = 1024 * MiB
FD_BOUND = 256  # far above what a run needs (a few dozen), far below a leak per file


@dataclass
class Measured:
    seconds: float
    peak_rss_mib: float
    peak_fds: int
    returncode: int
    stdout: bytes
    stderr: bytes


def measure(argv: list[str], env: dict[str, str]) -> Measured:
    """Run ``argv``; its time, peak RSS and peak open fds (polled every 10 ms).

    The peak RSS is the kernel's high-water mark of the process (VmHWM), read until
    it exits: wait4's ru_maxrss would count the forked copy of pytest before exec.
    """
    started = time.monotonic()
    out = Path(os.environ.get("TMPDIR", "/tmp"))
    with (
        open(out / f"s3vault-load-{os.getpid()}.out", "w+b") as stdout,
        open(out / f"s3vault-load-{os.getpid()}.err", "w+b") as stderr,
    ):
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
        peak_fds = peak_rss_kib = 0
        done = threading.Event()

        def poll() -> None:
            nonlocal peak_fds, peak_rss_kib
            while not done.is_set():
                with contextlib.suppress(OSError, ValueError, StopIteration):  # a zombie: no VmHWM
                    peak_fds = max(peak_fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                    hwm = next(ln for ln in status.splitlines() if ln.startswith("VmHWM:"))
                    peak_rss_kib = max(peak_rss_kib, int(hwm.split()[1]))
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, _ = os.wait4(proc.pid, 0)
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        stdout.seek(0)
        stderr.seek(0)
        result = Measured(
            seconds, peak_rss_kib / 1024, peak_fds, proc.returncode, stdout.read(), stderr.read()
        )
        os.unlink(stdout.name)
        os.unlink(stderr.name)
    return result


def write_files(root: Path, count: int) -> None:
    for n in range(count):
        d = root / f"d{n % 100:02d}" / f"e{n // 100 % 10}"
        if n < 1000:
            d.mkdir(parents=True, exist_ok=True)
        # Content that differs per file and is cheap to make: the index, repeated.
        (d / f"f{n}.txt").write_bytes(f"{n:08d}".encode() * (1 + n % 64))


def write_sparse(path: Path, size: int) -> None:
    """A sparse file of ``size`` bytes with some data at a few places (not all zeros)."""
    with path.open("wb") as f:
        f.truncate(size)
        for at in (0, size // 3, size // 2, size - 4096):
            f.seek(at)
            f.write(os.urandom(4096))


def test_many_files_and_a_big_sparse_one_sync_and_get_bit_identical_with_bounded_fds(
    run_cli, session_env, keyring_service, bucket, tmp_path, soak, reliability
):
    files, big = (100_000, 10 * GiB) if soak else (1_000, 32 * MiB)
    scale = f"{files:,} files + {big // MiB:,} MiB"
    assert run_cli("key", "generate", "load-key").returncode == 0
    folder = tmp_path / "folder"
    write_files(folder, files)
    write_sparse(folder / "big.bin", big)
    env = dict(session_env, S3VAULT_KEYRING_SERVICE=keyring_service)
    cli = [sys.executable, "-m", "s3vault"]
    target = f"s3://{bucket}/load"

    first = measure([*cli, "sync", str(folder), target, "--key", "load-key", "--json"], env)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    assert json.loads(first.stdout)["uploaded"] == files + 1
    again = measure([*cli, "sync", str(folder), target, "--key", "load-key", "--json"], env)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert json.loads(again.stdout)["uploaded"] == 0
    copy = tmp_path / "big.bin"
    back = measure([*cli, "get", f"{target}/big.bin", str(copy), "--json"], env)
    assert back.returncode == 0, back.stderr.decode()[-2000:]
    assert file_sha(copy) == file_sha(folder / "big.bin"), "the big file came back different"
    checked = big

    # Every other object decrypts to its file's bytes (in-process, many at once).
    store = CachingKeyStore(keyring_service)
    vault = build_vault(load_config(None), keystore_factory=lambda: store)
    small = [p for p in folder.rglob("*.txt")]

    def same(path: Path) -> int:
        out = io.BytesIO()
        vault.get(bucket, f"load/{path.relative_to(folder).as_posix()}", out)
        data = path.read_bytes()
        assert sha(out.getvalue()) == sha(data), f"{path} does not decrypt to its bytes"
        return len(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        checked += sum(pool.map(same, small))
    assert len(small) == files
    for run in (first, again, back):
        assert run.peak_fds < FD_BOUND, f"{run.peak_fds} open files"
    assert again.peak_fds <= first.peak_fds, "the second sync opened more files: a leak?"

    reliability.data(checked, 0)
    for what, run in (
        ("sync", first),
        ("sync again (no change)", again),
        ("get of the big file", back),
    ):
        reliability.figure(
            f"load {scale}: {what}",
            f"{run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB, "
            f"peak {run.peak_fds} open fds",
        )
