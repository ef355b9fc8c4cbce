"""Desktop app benchmark: how long the UI thread stalls while the app works, and its RSS.

On a local SeaweedFS with a private gnome-keyring (started here, stopped by PID at the
end, also on Ctrl-C), a child process seeds a bucket (a prefix of N objects, 100,000 by
default, and a prefix of R objects to rotate, 1,000 by default); then the app runs in
another child (Qt's offscreen platform, the real widgets and models) and does what a
user would:

- opens the big prefix in the bucket browser, then pages through every row;
- uploads a dropped file of SIZE (1 GiB by default);
- re-wraps the R objects to another key from the rotate dialog.

A 5 ms timer on the UI thread measures each stall: how late a tick comes is how long
the UI thread could not answer the user. The same meter over the idle app (same
duration) is the baseline of this machine in this run; the goal is a longest stall
under 50 ms, printed as a ratio (stall / 50 ms, lower is better). RSS is the app
process's: idle with the window open, and with the big prefix open, all rows loaded.

    .venv/bin/python bench/bench_gui.py                           # 100,000 objects, 1 GiB
    .venv/bin/python bench/bench_gui.py --objects 20000 --size 256MiB --rotate 200
    .venv/bin/python bench/bench_gui.py --json | jq .rows

This is a measurement, not a test: it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BenchServices,
    GiB,
    check_free_space,
    dump_json,
    format_table,
    human_size,
    machine_facts,
    make_random_file,
    parse_size,
    sigterm_as_interrupt,
    work_dir,
)

BUCKET = "bench-gui"
BIG_PREFIX = "big/"
ROTATE_PREFIX = "rotate/"
KEY = "bench"
NEW_KEY = "bench-2027"
GOAL_MS = 50.0
TICK_MS = 5
STEP_TIMEOUT = 1800.0


# ---- the parent: services, seeding, the measured child --------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects in the big prefix")
    parser.add_argument("--rotate", type=int, default=1000, help="objects to rotate")
    parser.add_argument("--size", type=parse_size, default=GiB, help="size of the dropped file")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the work directory goes")
    parser.add_argument("--child", choices=("seed", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "seed":
        _seed(args.objects, args.rotate)
        return
    if args.child == "measure":
        print(json.dumps(_measure(args.config, args.size)))
        return
    sigterm_as_interrupt()
    with work_dir(args.tmpdir, "s3v-bench-gui-") as work:
        check_free_space(work, args.size * 2, "the dropped file and SeaweedFS's copy")
        with BenchServices(work, keyring_service="bench-gui") as services:
            env = services.child_env()
            env.update(QT_QPA_PLATFORM="offscreen", S3VAULT_RUNTIME_DIR=str(work / "run"))
            config = work / "config.yaml"
            config.write_text(
                f"version: 1\ns3: {{addressing_style: path}}\nbuckets: [{BUCKET}]\n"
                f"defaults: {{key: {KEY}}}\n",
                encoding="utf-8",
            )
            env["S3VAULT_CONFIG"] = str(config)
            began = time.monotonic()
            _child(["--child", "seed", "--objects", str(args.objects), "--rotate",
                    str(args.rotate)], env)
            seeded = time.monotonic() - began
            big = make_random_file(work / "dropped.bin", args.size)
            env["BENCH_DROPPED_FILE"] = str(big)
            env["BENCH_OBJECTS"] = f"{args.objects:,}"
            out = _child(["--child", "measure", "--config", str(config), "--size",
                          str(args.size)], env)
            result = json.loads(out.strip().splitlines()[-1])
    result.update(
        objects=args.objects,
        rotate=args.rotate,
        size=args.size,
        seed_seconds=round(seeded, 1),
        goal_ms=GOAL_MS,
        machine=machine_facts(),
    )
    if args.json:
        print(dump_json(result))
    else:
        _print(result)


def _child(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_gui child {args[1]} failed with exit status {done.returncode}")
    return done.stdout


def _print(result: dict[str, Any]) -> None:
    rows = [
        [
            row["name"],
            f"{row['seconds']:.1f}",
            f"{row['stall_ms']:.0f}",
            f"{row['stall_ms'] / GOAL_MS:.2f}",
            f"{row['baseline_ms']:.0f}",
        ]
        for row in result["rows"]
    ]
    print(
        f"UI-thread stalls (5 ms timer), {result['objects']:,} objects, "
        f"{human_size(result['size'])} dropped, {result['rotate']:,} rotated "
        f"(seeded in {result['seed_seconds']} s)"
    )
    print(
        format_table(
            ["while", "seconds", "longest stall ms", "stall / 50 ms goal", "idle baseline ms"],
            rows,
        )
    )
    rss = result["rss_mb"]
    print(
        f"RSS: idle {rss['idle']:.0f} MB; with the {result['objects']:,}-object prefix open "
        f"{rss['first_page']:.0f} MB, all rows loaded {rss['all_rows']:.0f} MB"
    )
    for note in result.get("notes", []):
        print(f"note: {note}")


# ---- child 1: seeding ---------------------------------------------------------------


def _seed(objects: int, rotate: int) -> None:
    """Keys, the bucket, N small sealed objects (native path), R objects to rotate."""
    from s3vault.config.load import load_config
    from s3vault.keys.material import generate_key
    from s3vault.keys.store import KeyStore
    from s3vault.vault import SealedOutcome, SealedPut
    from s3vault.vault.factory import build_vault

    config = load_config()
    store = KeyStore(config.keyring.service)
    for name in (KEY, NEW_KEY):
        store.put(generate_key(name))
    store.set_current(KEY)
    vault = build_vault(config, keystore_factory=lambda: store)
    vault.remote.client.create_bucket(Bucket=BUCKET)
    failures: list[str] = []

    def done(outcome: SealedOutcome) -> None:
        if outcome.error is not None:
            failures.append(outcome.error.message)

    def puts(prefix: str, count: int) -> Any:
        for i in range(count):
            key = f"{prefix}{i // 1000:03d}-{i:06d}.txt"
            yield SealedPut(BUCKET, vault.seal(f"object {i}\n".encode(), key, key_name=KEY))

    with vault.remembering_keys():  # one keyring read, not one per object
        vault.put_sealed_many(puts(BIG_PREFIX, objects), done)
        vault.put_sealed_many(puts(ROTATE_PREFIX, rotate), done)
    if failures:
        raise SystemExit(f"seeding failed for {len(failures)} objects: {failures[0]}")


# ---- child 2: the app, measured ------------------------------------------------------


@dataclass
class Row:
    name: str
    seconds: float
    stall_ms: float
    baseline_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 2),
            "stall_ms": round(self.stall_ms, 1),
            "baseline_ms": round(self.baseline_ms, 1),
            "stall_over_goal": round(self.stall_ms / GOAL_MS, 3),
        }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _measure(config_path: Path, size: int) -> dict[str, Any]:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from s3vault.gui.context import AppContext
    from s3vault.gui.gc_policy import IdleCollector
    from s3vault.gui.main_window import MainWindow

    app = QApplication([])  # noqa: F841 (kept alive for the whole measurement)

    class StallMeter:
        """The longest gap between ticks of a 5 ms timer, minus the 5 ms."""

        def __init__(self) -> None:
            self.clock = QElapsedTimer()
            self.timer = QTimer()
            self.timer.setTimerType(Qt.TimerType.PreciseTimer)
            self.timer.setInterval(TICK_MS)
            self.timer.timeout.connect(self._tick)
            self.worst = 0.0
            self.last = 0

        def start(self) -> None:
            self.worst = 0.0
            self.clock.start()
            self.last = self.clock.elapsed()
            self.timer.start()

        def _tick(self) -> None:
            now = self.clock.elapsed()
            self.worst = max(self.worst, now - self.last - TICK_MS)
            self.last = now

        def stop(self) -> float:
            self.timer.stop()
            self._tick()
            return self.worst

    meter = StallMeter()

    def run_until(finished: Callable[[], bool], timeout: float) -> bool:
        """Run the event loop until ``finished()`` (checked every 20 ms) or ``timeout``.

        A real QEventLoop, not processEvents(): PySide6 6.12 on Python 3.11 drops a
        reference to None on every processEvents() call, and a few thousand calls
        crash the interpreter ("deallocating None").
        """
        loop = QEventLoop()
        began = time.monotonic()
        check = QTimer()
        check.setInterval(20)

        def poll() -> None:
            if finished() or time.monotonic() - began > timeout:
                loop.quit()

        check.timeout.connect(poll)
        check.start()
        QTimer.singleShot(0, poll)
        loop.exec()
        check.stop()
        return finished()

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        run_until(lambda: time.monotonic() >= end, seconds + 1)

    def measured(name: str, start: Callable[[], None], finished: Callable[[], bool]) -> Row:
        meter.start()
        began = time.monotonic()
        start()
        if not run_until(finished, STEP_TIMEOUT):
            raise SystemExit(f"{name}: not finished after {STEP_TIMEOUT:.0f} s")
        seconds = time.monotonic() - began
        stall = meter.stop()
        # The baseline: the same meter over the idle app, as long (at most 10 s).
        meter.start()
        spin(min(seconds, 10.0))
        return Row(name, seconds, stall, meter.stop())

    ctx = AppContext(config_path)
    window = MainWindow(ctx)
    IdleCollector(ctx.jobs)  # as the app runs it (s3vault/gui/gc_policy.py)
    ctx.jobs.start("prepare the S3 client", lambda job: ctx.warm_up())  # as the app does
    window.show()
    spin(2.0)
    rss = {"idle": _rss_mb()}
    rows: list[Row] = []
    notes: list[str] = []

    rows += _browse(window, measured, rss, spin)
    rows.append(_upload(window, ctx, measured, Path(os.environ["BENCH_DROPPED_FILE"])))
    rows.append(_rotate(window, ctx, measured, spin))
    ctx.jobs.shutdown(60_000)
    return {"rows": [r.to_json() for r in rows], "rss_mb": rss, "notes": notes}


Measured = Callable[[str, Callable[[], None], Callable[[], bool]], Row]


def _browse(window: Any, measured: Measured, rss: dict[str, float], spin: Any) -> list[Row]:
    """Open the big prefix (until its first page shows), then load every row."""
    browser = window.browser
    window.show_view(browser)
    model = browser.model
    first = measured(
        f"opening a prefix of {os.environ['BENCH_OBJECTS']} objects",
        lambda: browser.open_location(BUCKET, BIG_PREFIX),
        lambda: model.rowCount() > 0 and not model.loading,
    )
    rss["first_page"] = _rss_mb()

    def all_loaded() -> bool:
        # What a view scrolled to its end does: ask for the next page when none is
        # in flight; rows arrive (and are inserted) when their page does.
        if model.canFetchMore():
            model.fetchMore()
        return bool(model.complete)

    every = measured("paging through every row", lambda: None, all_loaded)
    if model.problem is not None:
        raise SystemExit(f"listing failed: {model.problem.message}")
    rss["all_rows"] = _rss_mb()
    return [first, every]


def _upload(window: Any, ctx: Any, measured: Measured, path: Path) -> Row:
    from s3vault.gui.uploads import start_upload

    session: list[Any] = []

    def start() -> None:
        session.append(
            start_upload(
                window, ctx, [path], BUCKET, "dropped/", ask=lambda p, q, answer: answer("replace")
            )
        )

    def finished() -> bool:
        s = session[0] if session else None
        return s is not None and s.summary is not None and not s.running

    row = measured(f"uploading a dropped {human_size(path.stat().st_size)} file", start, finished)
    summary = session[0].summary
    if summary.failed:
        raise SystemExit(f"the dropped file did not upload: {summary.text()}")
    return row


def _rotate(window: Any, ctx: Any, measured: Measured, spin: Any) -> Row:
    from s3vault.gui.rotate_dialog import RotateDialog

    dialog = RotateDialog(ctx, BUCKET, [], ROTATE_PREFIX, window)
    dialog.show()
    deadline = time.monotonic() + 60
    while not dialog.count_button.isEnabled() and time.monotonic() < deadline:
        spin(0.05)
    dialog.key_combo.setCurrentIndex(dialog.key_combo.findData(NEW_KEY))
    counted: list[Any] = []
    dialog.counted.connect(counted.append)
    dialog.count_button.click()
    while not counted and time.monotonic() < deadline + 600:
        spin(0.05)
    ended: list[Any] = []
    dialog.run_finished.connect(ended.append)
    count = len(counted[0].rotated)  # a dry run lists what it would rotate
    return measured(
        f"re-wrapping {count} objects to another key",
        dialog.rotate_button.click,
        lambda: bool(ended),
    )


if __name__ == "__main__":
    main()
