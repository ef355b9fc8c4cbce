"""The upload bandwidth limit: a token bucket on a fake clock, then through `s3vault sync`."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from s3vault.remote.throttle import MiB, Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_a_burst_passes_then_the_rate_holds() -> None:
    clock = FakeClock()
    throttle = Throttle(MiB, clock=clock, sleep=clock.sleep)
    assert throttle.take(MiB) == 0  # the first second's worth is there at once
    for _ in range(10):
        throttle.take(MiB // 2)
    assert clock.now == pytest.approx(5.0)  # 5 MiB more at 1 MiB/s


def test_a_request_larger_than_the_burst_waits_for_its_size() -> None:
    clock = FakeClock()
    throttle = Throttle(MiB, clock=clock, sleep=clock.sleep)
    assert throttle.take(8 * MiB) == pytest.approx(7.0)  # 1 MiB of burst, 7 s of debt
    assert throttle.take(MiB) == pytest.approx(1.0)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    throttle = Throttle(2 * MiB, clock=clock, sleep=clock.sleep)
    throttle.take(2 * MiB)
    clock.now += 3600  # an hour idle does not save an hour of bandwidth
    assert throttle.take(2 * MiB) == 0
    assert throttle.take(2 * MiB) == pytest.approx(1.0)


def test_threads_share_one_limit() -> None:
    clock = FakeClock()
    throttle = Throttle(MiB, clock=clock, sleep=clock.sleep)
    threads = [
        threading.Thread(target=lambda: [throttle.take(MiB // 4) for _ in range(8)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 8 MiB in all, 1 MiB of it from the burst: 7 s, however the threads interleave.
    assert clock.now == pytest.approx(7.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Throttle(0)


def test_sync_bwlimit_slows_the_upload(tmp_path: Path, bucket: str, run_cli) -> None:
    assert run_cli("key", "generate", "bw-key").returncode == 0
    root = tmp_path / "big"
    root.mkdir()
    for n in range(3):
        (root / f"part-{n}.bin").write_bytes(os.urandom(MiB))
    url = f"s3://{bucket}/bw"
    started = time.monotonic()
    r = run_cli("sync", str(root), url, "--key", "bw-key", "--bwlimit", "1MiB", "--json")
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["uploaded"] == 3
    # 3 MiB at 1 MiB/s with a 1 MiB burst cannot finish in under 2 s (a lower bound
    # only: a slow machine makes it longer, never shorter).
    assert elapsed >= 2.0


@pytest.mark.parametrize("value", ["fast", "-1MiB", "10Mbit"])
def test_sync_refuses_a_bad_bwlimit(tmp_path: Path, bucket: str, run_cli, value: str) -> None:
    r = run_cli("sync", str(tmp_path), f"s3://{bucket}/bw", "--key", "k", "--bwlimit", value)
    assert r.returncode == 2
    assert b"--bwlimit" in r.stderr and b"Traceback" not in r.stderr
