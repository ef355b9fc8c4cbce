"""bench_sync's no-change cases 6-8: what a re-run with nothing to do costs.

6. 2,000 small files and 7. 4 x 64 MiB: a no-change ``s3vault sync`` against a
   no-change ``rclone sync`` to its crypt remote, alternating, after one initial sync
   of each (not compared). Case 7 is all fixed cost: start-up, state, one listing.
8. 20,000 tiny files: a no-change ``s3vault sync`` against *the floor*, the least any
   run can do: a child Python that stats every file (os.walk + os.stat) and lists the
   prefix natively (obstore, pages of 1000), timed the same way, alternating.

Each prints the time ratio s3vault / the other (below 1.0 s3vault is faster).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import RunFailed, human_size

if TYPE_CHECKING:
    from bench_sync import SyncBench

FLOOR_SCRIPT = Path(__file__).resolve().parent / "_floor.py"
NOCHANGE_SMALL_LIMIT = 0.5
NOCHANGE_LARGE_LIMIT = 1.0
FLOOR_LIMIT = 1.5


def initial_syncs(bench: SyncBench, tree_name: str, count: int, size: int) -> Path:
    """The tree, synced once by each tool (set-up, timed but not compared)."""
    from bench_sync import make_tree

    tree = bench.trees / tree_name
    bench.say(f"  creating {count} files of {human_size(size)} in {tree} ...")
    make_tree(tree, count, size)
    total = count * size
    first = bench.new_series(f"{tree_name}_initial_s3vault", "s3vault sync, initial", total)
    argv = bench.s3vault_sync(tree, bench.s3vault_prefix(tree_name, 0))
    report = bench.sync_report(
        bench.timed(first, argv, bench.env, count), f"initial sync of {tree_name}"
    )
    if report["uploaded"] != count:
        raise RunFailed(f"s3vault uploaded {report['uploaded']} of {count} files")
    rcl = bench.new_series(f"{tree_name}_initial_rclone", "rclone sync crypt, initial", total)
    argv = bench.rclone_sync(tree, bench.crypt_remote(tree_name, 0))
    bench.timed(rcl, argv, bench.rclone_env, count)
    return tree


def s3vault_again(bench: SyncBench, tree: Path, prefix: str, series: Any, count: int) -> None:
    result = bench.timed(series, bench.s3vault_sync(tree, prefix), bench.env, count)
    report = bench.sync_report(result, "no-change re-run")
    if report["uploaded"] or report["copied"] or report["deleted"] or report["planned"]:
        raise RunFailed(f"s3vault planned something on a no-change run: {report}")


def case_nochange_vs_rclone(
    bench: SyncBench, number: int, tree_name: str, count: int, size: int, limit: float
) -> None:
    from bench_sync import Pair

    title = f"no-change re-run, {count} x {human_size(size)}"
    bench.say(f"case {number}: {title}, {bench.plan.resync_reps} repetition(s)")
    tree = initial_syncs(bench, tree_name, count, size)
    s3v = bench.new_series(f"{tree_name}_s3vault", f"s3vault sync ({title})", count * size)
    rcl = bench.new_series(f"{tree_name}_rclone", f"rclone sync crypt ({title})", count * size)
    prefix = bench.s3vault_prefix(tree_name, 0)
    rclone_argv = bench.rclone_sync(tree, bench.crypt_remote(tree_name, 0))

    def run_s3vault() -> None:
        s3vault_again(bench, tree, prefix, s3v, count)

    def run_rclone() -> None:
        bench.timed(rcl, rclone_argv, bench.rclone_env, count)

    for rep in range(bench.plan.resync_reps):
        for run in (run_s3vault, run_rclone) if rep % 2 == 0 else (run_rclone, run_s3vault):
            run()
    bench.results.pairs[tree_name] = Pair(title, s3v, rcl, count, f"<= {limit}", limit)


def case_floor(bench: SyncBench, number: int, count: int, size: int) -> None:
    from bench_sync import BUCKET, Pair, make_tree

    tree_name = "floor"
    title = f"no-change re-run of {count} x {size} B vs the floor (stat walk + native listing)"
    bench.say(f"case {number}: {title}, {bench.plan.resync_reps} repetition(s)")
    tree = bench.trees / tree_name
    make_tree(tree, count, size)
    prefix = bench.s3vault_prefix(tree_name, 0)
    first = bench.new_series("floor_initial_s3vault", "s3vault sync, initial", count * size)
    report = bench.sync_report(
        bench.timed(first, bench.s3vault_sync(tree, prefix), bench.env, count), "floor set-up"
    )
    if report["uploaded"] != count:
        raise RunFailed(f"s3vault uploaded {report['uploaded']} of {count} files")
    s3v = bench.new_series("floor_s3vault", "s3vault sync, nothing changed", count * size)
    low = bench.new_series("floor_floor", "floor: os.walk+stat, obstore list", count * size)
    floor_argv = [sys.executable, str(FLOOR_SCRIPT), str(tree), BUCKET, prefix + "/", str(count)]

    def run_s3vault() -> None:
        s3vault_again(bench, tree, prefix, s3v, count)

    def run_floor() -> None:
        bench.timed(low, floor_argv, bench.env, count)

    for rep in range(bench.plan.resync_reps):
        for run in (run_s3vault, run_floor) if rep % 2 == 0 else (run_floor, run_s3vault):
            run()
    bench.results.pairs["floor"] = Pair(title, s3v, low, count, f"<= {FLOOR_LIMIT}", FLOOR_LIMIT)
