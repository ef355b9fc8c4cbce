"""Run every bench/bench_*.py in turn (``make bench``), each in its own interpreter.

Arguments after ``--`` go to every benchmark, e.g. a quick pass:

    .venv/bin/python bench/run_all.py -- --size 64MiB --rss-size 256MiB --reps 1

Exits non-zero if a benchmark failed (crashed, could not start its services); a ratio
below its target is reported by the benchmark, not treated as a failure.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def run_one(script: Path, extra: list[str]) -> int:
    """Run one benchmark; on Ctrl-C let it stop its own services, then wait for it."""
    print(f"\n##### {script.name} {' '.join(extra)}".rstrip(), flush=True)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script), *extra])
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached the child too; give it time to clean up.
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        raise
    print(f"##### {script.name}: exit {code} after {time.monotonic() - began:.0f} s", flush=True)
    return code


def main() -> None:
    args = sys.argv[1:]
    extra = args[args.index("--") + 1 :] if "--" in args else args
    failed = []
    try:
        for script in benchmarks():
            if run_one(script, extra) != 0:
                failed.append(script.name)
    except KeyboardInterrupt:
        sys.exit(130)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
    print(f"\nall {len(benchmarks())} benchmark(s) done")


if __name__ == "__main__":
    main()
