"""Transfer benchmark: s3vault put/get against plain boto3 and the official S3EC client.

Everything runs on one local SeaweedFS endpoint started here, in a temporary directory,
with a private gnome-keyring (s3vault's AES master key) and moto's KMS (the KMS part);
they are stopped by PID at the end, also on Ctrl-C.

Every client runs as a child process, so each one pays its interpreter start-up and
imports (the ``s3vault`` CLI on one side; a small worker in this file that imports
boto3 on the other). Runs of the two sides alternate, and the order flips every
repetition, so drift of the machine (page cache, SeaweedFS compaction, CPU frequency)
spreads over both. The page cache is flushed (``sync``) before every timed run.

    .venv/bin/python bench/bench_transfer.py                    # 1 GiB, 3 reps, 2 GiB RSS
    .venv/bin/python bench/bench_transfer.py --size 64MiB --rss-size 256MiB --reps 1
    .venv/bin/python bench/bench_transfer.py --json | jq .ratios

This is a measurement, not a test: it asserts nothing about timing, it prints ratios.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from _common import (
    BenchServices,
    GiB,
    KiB,
    MiB,
    RunResult,
    Series,
    check_free_space,
    dump_json,
    format_table,
    human_size,
    machine_facts,
    make_random_file,
    mib_per_s,
    parse_size,
    remove_quietly,
    run_measured,
    run_peak_rss,
    s3vault_cli,
    settle,
    sigterm_as_interrupt,
    work_dir,
)

BUCKET = "bench"
AES_KEY = "bench"
KMS_KEY = "benchkms"
TARGET_RATIO = 0.8
TARGET_RSS_MB = 200.0
STARTUP_PROBE_SIZE = 1 * KiB
WORKER = "_worker"
THIS = Path(__file__).resolve()


# ==== workers: run in child processes (python bench_transfer.py _worker NAME ...) ====


def _plain_s3_client() -> Any:
    """boto3's S3 client from the environment (endpoint, keys, region), path-style."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}))


def _worker_boto3_put(path: str, bucket: str, key: str) -> float:
    from boto3.s3.transfer import TransferConfig

    client = _plain_s3_client()
    began = time.perf_counter()
    client.upload_file(path, bucket, key, Config=TransferConfig())  # boto3's defaults
    return time.perf_counter() - began


def _worker_boto3_get(bucket: str, key: str, path: str, fsync: str = "no") -> float:
    from boto3.s3.transfer import TransferConfig

    client = _plain_s3_client()
    began = time.perf_counter()
    client.download_file(bucket, key, path, Config=TransferConfig())
    if fsync == "fsync":  # what s3vault does before it renames its verified file into place
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.perf_counter() - began


def _worker_official_put(path: str, bucket: str, key: str, kms_key_id: str, how: str) -> float:
    """The official S3 Encryption Client (V3, KMS keyring) on a separate boto3 client."""
    import boto3
    from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
    from s3_encryption.materials.kms_keyring import KmsKeyring

    keyring = KmsKeyring(kms_client=boto3.client("kms"), kms_key_id=kms_key_id)
    client = S3EncryptionClient(_plain_s3_client(), S3EncryptionClientConfig(keyring=keyring))
    began = time.perf_counter()
    if how == "put_object":
        with open(path, "rb") as body:  # put_object reads the whole body into memory
            client.put_object(Bucket=bucket, Key=key, Body=body)
    else:
        client.upload_file(path, bucket, key)  # sequential encrypted multipart
    return time.perf_counter() - began


_WORKERS: dict[str, Callable[..., float]] = {
    "boto3-put": _worker_boto3_put,
    "boto3-get": _worker_boto3_get,
    "official-put": _worker_official_put,
}


def run_worker(argv: Sequence[str]) -> None:
    """Run one worker; print its in-process transfer time as JSON on stdout."""
    name, *args = argv
    seconds = _WORKERS[name](*args)
    print(json.dumps({"transfer_s": seconds}))


# ==== the benchmark ====================================================================


@dataclass(frozen=True)
class Plan:
    size: int
    rss_size: int
    official_size: int
    reps: int

    def disk_needed(self) -> int:
        """Local files plus what SeaweedFS keeps (it reclaims overwritten objects only
        on vacuum, so every upload adds its size), plus 1 GiB of slack."""
        local = 2 * self.size + 2 * self.rss_size + self.official_size
        stored = self.reps * (2 * self.size + 3 * self.official_size) + self.rss_size
        return local + stored + GiB


class TransferBench:
    """The measurements of one run; every ``run_*`` method fills :attr:`series`."""

    def __init__(
        self,
        services: BenchServices,
        workdir: Path,
        plan: Plan,
        log: TextIO,
        load_before: tuple[float, float, float],
    ) -> None:
        self.services = services
        self.workdir = workdir
        self.plan = plan
        self.log = log
        self.env = services.child_env()
        self.cli = str(s3vault_cli())
        self.series: dict[str, Series] = {}
        self.rss_method = ""
        self.kms_key_id = ""
        self.load_before = load_before
        assert services.s3 is not None
        self.server_pid = services.s3.pid

    # ---- helpers ----------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether other work competed for the CPUs: a 1-minute load above half of them
        before the run, or other processes taking over 10 % of the timed runs' CPU."""
        cpus = os.cpu_count() or 1
        other = sum(sum(s.other_cpu_seconds) for s in self.series.values())
        timed = sum(sum(s.seconds) for s in self.series.values() if s.other_cpu_seconds)
        return self.load_before[0] > cpus / 2 or (timed > 0 and other / (timed * cpus) > 0.1)

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)

    def s3vault(self, *args: str | Path) -> list[str]:
        return [self.cli, *(str(a) for a in args)]

    def worker(self, *args: str | Path) -> list[str]:
        return [sys.executable, str(THIS), WORKER, *(str(a) for a in args)]

    def new_series(self, key: str, name: str, size: int, note: str = "") -> Series:
        self.series[key] = Series(name=name, size=size, note=note)
        return self.series[key]

    def timed(self, series: Series, argv: list[str], *, inner: Series | None = None) -> RunResult:
        """One timed run (after a sync), added to ``series``; a worker's own transfer
        time goes to ``inner``."""
        settle()
        result = run_measured(argv, self.env, cwd=self.workdir, server_pid=self.server_pid)
        series.add(result)
        if inner is not None:
            inner.seconds.append(float(json.loads(result.stdout)["transfer_s"]))
        self.say(
            f"  {series.name:<44} {result.seconds:7.2f} s  "
            f"{mib_per_s(series.size, result.seconds):8.1f} MiB/s  "
            f"RSS {result.max_rss_mb:6.1f} MB  CPU {result.cpu_seconds:5.2f} s  "
            f"server CPU {result.server_cpu_seconds or 0:5.2f} s  "
            f"other CPU {result.other_cpu_seconds or 0:5.2f} s"
        )
        return result

    def alternate(self, rep: int, *runs: Callable[[], object]) -> None:
        """Run ``runs`` in order on even repetitions, reversed on odd ones."""
        for run in runs if rep % 2 == 0 else reversed(runs):
            run()

    # ---- set-up -----------------------------------------------------------------------

    def set_up(self) -> None:
        assert self.services.s3 is not None and self.services.kms is not None
        self.services.s3.create_bucket(BUCKET)
        run_measured(self.s3vault("key", "generate", AES_KEY), self.env)
        import boto3

        kms = boto3.client(
            "kms",
            endpoint_url=self.services.kms.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],  # moto takes any
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        self.kms_key_id = kms.create_key(Description="s3vault bench")["KeyMetadata"]["KeyId"]
        run_measured(
            self.s3vault("key", "import", KMS_KEY, "--type", "kms", "--key-id", self.kms_key_id),
            self.env,
        )

    # ---- benchmarks ---------------------------------------------------------------------

    def run_startup(self) -> None:
        """A 1 KiB put on each side: the fixed cost of one invocation (start-up, imports,
        key lookup, one request), to read the big-file numbers against."""
        self.say(f"start-up probe: put of {human_size(STARTUP_PROBE_SIZE)}")
        tiny = make_random_file(self.workdir / "tiny.bin", STARTUP_PROBE_SIZE)
        s3v = self.new_series("startup_s3vault", "s3vault put (1 KiB)", STARTUP_PROBE_SIZE)
        b3 = self.new_series("startup_boto3", "boto3 upload_file (1 KiB)", STARTUP_PROBE_SIZE)
        put_tiny = self.s3vault("put", tiny, f"s3://{BUCKET}/tiny", "--key", AES_KEY)
        b3_tiny = self.worker("boto3-put", tiny, BUCKET, "tiny-plain")
        for rep in range(self.plan.reps):
            self.alternate(rep, lambda: self.timed(s3v, put_tiny), lambda: self.timed(b3, b3_tiny))

    def run_put(self, source: Path) -> None:
        size = self.plan.size
        self.say(f"put: {human_size(size)}, {self.plan.reps} repetition(s)")
        s3v = self.new_series("put_s3vault", f"s3vault put ({human_size(size)})", size)
        b3 = self.new_series("put_boto3", f"boto3 upload_file ({human_size(size)})", size)
        b3_inner = self.new_series(
            "put_boto3_inner", "  boto3 upload_file, in-process only", size, note="no start-up"
        )
        put = self.s3vault("put", source, f"s3://{BUCKET}/obj", "--key", AES_KEY)
        plain = self.worker("boto3-put", source, BUCKET, "plain")
        for rep in range(self.plan.reps):
            self.alternate(
                rep, lambda: self.timed(s3v, put), lambda: self.timed(b3, plain, inner=b3_inner)
            )

    def store_objects(self, source: Path) -> None:
        """The objects `run_get` reads, stored untimed (for a run without the put section)."""
        self.say("storing the objects to get (untimed)")
        run_measured(
            self.s3vault("put", source, f"s3://{BUCKET}/obj", "--key", AES_KEY), self.env
        ).check()
        run_measured(self.worker("boto3-put", source, BUCKET, "plain"), self.env).check()

    def run_get(self, source: Path) -> None:
        size = self.plan.size
        self.say(f"get: {human_size(size)}, {self.plan.reps} repetition(s)")
        s3v = self.new_series("get_s3vault", f"s3vault get ({human_size(size)})", size)
        b3 = self.new_series("get_boto3", f"boto3 download_file ({human_size(size)})", size)
        b3_inner = self.new_series(
            "get_boto3_inner", "  boto3 download_file, in-process only", size, note="no start-up"
        )
        b3_sync = self.new_series(
            "get_boto3_fsync",
            "  boto3 download_file + fsync (reference)",
            size,
            note="s3vault fsyncs its verified file before the rename; plain boto3 does not",
        )
        s3v_out, b3_out = self.workdir / "get-s3vault.bin", self.workdir / "get-boto3.bin"
        get = self.s3vault("get", f"s3://{BUCKET}/obj", s3v_out)
        plain = self.worker("boto3-get", BUCKET, "plain", b3_out)
        synced = self.worker("boto3-get", BUCKET, "plain", b3_out, "fsync")

        def fresh(target: Path, series: Series, argv: list[str], inner: Series | None) -> None:
            remove_quietly(target)
            self.timed(series, argv, inner=inner)

        for rep in range(self.plan.reps):
            self.alternate(
                rep,
                lambda: fresh(s3v_out, s3v, get, None),
                lambda: fresh(b3_out, b3, plain, b3_inner),
                lambda: fresh(b3_out, b3_sync, synced, None),
            )
            if rep == 0:
                self._verify(source, s3v_out, b3_out)
        remove_quietly(s3v_out)
        remove_quietly(b3_out)

    def _verify(self, source: Path, *copies: Path) -> None:
        for copy in copies:
            if not filecmp.cmp(source, copy, shallow=False):
                raise SystemExit(f"{copy} differs from {source}: the benchmark is invalid")

    def run_rss(self) -> None:
        size = self.plan.rss_size
        self.say(f"peak RSS: put and get of {human_size(size)}")
        source = make_random_file(self.workdir / "rss.bin", size)
        out = self.workdir / "rss-out.bin"
        try:
            for key, argv in (
                ("rss_put", self.s3vault("put", source, f"s3://{BUCKET}/rss", "--key", AES_KEY)),
                ("rss_get", self.s3vault("get", f"s3://{BUCKET}/rss", out)),
            ):
                verb = key.removeprefix("rss_")
                series = self.new_series(key, f"s3vault {verb} ({human_size(size)})", size)
                settle()
                result, self.rss_method = run_peak_rss(
                    argv, self.env, cwd=self.workdir, server_pid=self.server_pid
                )
                series.add(result)
                self.say(
                    f"  {series.name:<44} {result.seconds:7.2f} s  "
                    f"peak RSS {result.max_rss_mb:6.1f} MB ({self.rss_method})"
                )
            self._verify(source, out)
        finally:
            remove_quietly(source)
            remove_quietly(out)

    def run_official(self) -> None:
        size = self.plan.official_size
        self.say(f"KMS: official S3EC vs s3vault, {human_size(size)}")
        source = make_random_file(self.workdir / "kms.bin", size)
        s3v = self.new_series("kms_s3vault", f"s3vault put --key kms ({human_size(size)})", size)
        off = self.new_series(
            "kms_official_put_object",
            f"official put_object ({human_size(size)})",
            size,
            note="reads the whole object into memory, one PutObject",
        )
        off_mp = self.new_series(
            "kms_official_upload_file",
            f"official upload_file ({human_size(size)})",
            size,
            note="encrypted multipart, parts sent one after the other",
        )
        put = self.s3vault("put", source, f"s3://{BUCKET}/kms", "--key", KMS_KEY)
        official = self.worker(
            "official-put", source, BUCKET, "kms-official", self.kms_key_id, "put_object"
        )
        official_mp = self.worker(
            "official-put", source, BUCKET, "kms-official-mp", self.kms_key_id, "upload_file"
        )
        try:
            for rep in range(self.plan.reps):
                self.alternate(
                    rep,
                    lambda: self.timed(s3v, put),
                    lambda: self.timed(off, official),
                    lambda: self.timed(off_mp, official_mp),
                )
        finally:
            remove_quietly(source)


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


# ==== report ===========================================================================


def ratio(s3vault: Series, other: Series) -> float:
    """Throughput of s3vault over the other's (medians): the other's time / s3vault's."""
    return other.median_s / s3vault.median_s


def ratios(series: dict[str, Series]) -> dict[str, float]:
    pairs = {
        "put": ("put_s3vault", "put_boto3"),
        "get": ("get_s3vault", "get_boto3"),
        "get_vs_fsync_download": ("get_s3vault", "get_boto3_fsync"),
        "kms_put_vs_official_put_object": ("kms_s3vault", "kms_official_put_object"),
        "kms_put_vs_official_upload_file": ("kms_s3vault", "kms_official_upload_file"),
    }
    return {
        name: round(ratio(series[a], series[b]), 3)
        for name, (a, b) in pairs.items()
        if a in series and b in series
    }


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(s: Series) -> list[str]:
    runs = " ".join(f"{x:.2f}" for x in s.seconds)
    rss = f"{s.peak_rss_mb:.0f}" if s.max_rss_kib else "-"
    speed = f"{s.median_mib_s:.1f}" if s.size >= MiB else "-"
    cpu = _opt(s.median_cpu_s, ".2f")
    server = _opt(s.median_server_cpu_s, ".2f")
    other = _opt(s.median_other_cpu_s, ".2f")
    return [s.name, f"{s.median_s:.2f}", speed, runs, rss, cpu, server, other]


def report_text(bench: TransferBench, results: dict[str, float], wall: float) -> str:
    s = bench.series
    headers = [
        "measurement",
        "median s",
        "MiB/s",
        "all runs (s)",
        "peak RSS MB",
        "client CPU s",
        "server CPU s",
        "other CPU s",
    ]
    sections = [
        ("start-up (fixed cost per invocation)", ["startup_s3vault", "startup_boto3"]),
        ("put", ["put_s3vault", "put_boto3", "put_boto3_inner"]),
        ("get", ["get_s3vault", "get_boto3", "get_boto3_inner", "get_boto3_fsync"]),
        ("peak RSS", ["rss_put", "rss_get"]),
        (
            "KMS: official S3 Encryption Client vs s3vault",
            ["kms_s3vault", "kms_official_put_object", "kms_official_upload_file"],
        ),
    ]
    lines = [
        f"s3vault transfer benchmark: {human_size(bench.plan.size)} x {bench.plan.reps} reps, "
        f"RSS on {human_size(bench.plan.rss_size)}, KMS on {human_size(bench.plan.official_size)}"
        f"; {machine_facts()['cpus']} CPUs; total {wall:.0f} s",
        "Every client is a child process (interpreter start-up included on both sides);"
        " medians over the repetitions.",
        "CPU columns (medians): user+sys of the client process, of the SeaweedFS server, and"
        " of everything else on the machine during the run (other = noise).",
        f"Load average before the run {bench.load_before}"
        + ("  (the machine was busy: wall times are noisy)" if bench.busy() else ""),
        "",
    ]
    for title, keys in sections:
        rows = [_row(s[k]) for k in keys if k in s and s[k].seconds]
        if rows:
            lines += [f"== {title}", format_table(headers, rows), ""]
    lines += [f"peak RSS measured with {bench.rss_method}", "", *summary_lines(bench, results)]
    return "\n".join(lines)


def _verdict(ok: bool, miss: str = "BELOW TARGET") -> str:
    return "OK" if ok else miss


def summary_lines(bench: TransferBench, results: dict[str, float]) -> list[str]:
    s = bench.series
    lines = []
    if "kms_put_vs_official_put_object" in results:
        off, mine = s["kms_official_put_object"], s["kms_s3vault"]
        lines.append(
            f"official put_object {off.median_s:.2f} s (peak RSS {off.peak_rss_mb:.0f} MB) vs "
            f"s3vault put {mine.median_s:.2f} s (peak RSS {mine.peak_rss_mb:.0f} MB), "
            f"{human_size(off.size)} with KMS"
        )
        lines.append(
            "kms put ratio (s3vault/official put_object throughput): "
            f"{results['kms_put_vs_official_put_object']:.2f}"
        )
        lines.append(
            "kms put ratio (s3vault/official upload_file throughput): "
            f"{results['kms_put_vs_official_upload_file']:.2f}"
        )
    for verb in ("put", "get"):
        key = f"rss_{verb}"
        if key in s:
            mb = s[key].peak_rss_mb
            lines.append(
                f"s3vault {verb} peak RSS ({human_size(s[key].size)}): {mb:.0f} MB "
                f"(target < {TARGET_RSS_MB:.0f} MB: {_verdict(mb < TARGET_RSS_MB, 'OVER TARGET')})"
            )
    if "get_vs_fsync_download" in results:
        lines.append(
            "get ratio vs boto3 download + fsync (s3vault/boto3 throughput): "
            f"{results['get_vs_fsync_download']:.2f}"
        )
    for verb in ("put", "get"):
        if verb in results:
            value = results[verb]
            lines.append(
                f"{verb} ratio (s3vault/boto3 throughput): {value:.2f} "
                f"(target >= {TARGET_RATIO}: {_verdict(value >= TARGET_RATIO)})"
            )
    return lines


def report_json(bench: TransferBench, results: dict[str, float], wall: float) -> dict[str, Any]:
    s = bench.series
    return {
        "benchmark": "transfer",
        "plan": {
            "size_bytes": bench.plan.size,
            "rss_size_bytes": bench.plan.rss_size,
            "official_size_bytes": bench.plan.official_size,
            "reps": bench.plan.reps,
        },
        "machine": machine_facts(),
        "service_startup_seconds": bench.services.startup_seconds,
        "rss_method": bench.rss_method,
        "load_average_before": bench.load_before,
        "busy": bench.busy(),
        "series": {k: v.to_json() for k, v in s.items()},
        "ratios": results,
        "peak_rss_mb": {k: round(s[k].peak_rss_mb, 1) for k in ("rss_put", "rss_get") if k in s},
        "targets": {"ratio_min": TARGET_RATIO, "rss_max_mb": TARGET_RSS_MB},
        "wall_seconds": round(wall, 1),
    }


# ==== main =============================================================================


PARTS = ("startup", "put", "get", "rss", "kms")


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"sections are {','.join(PARTS)}, not {text!r}")
    return parts


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=parse_size, default=GiB, help="put/get file size (1GiB)")
    p.add_argument("--rss-size", type=parse_size, default=2 * GiB, help="RSS file size (2GiB)")
    p.add_argument(
        "--official-size", type=parse_size, default=256 * MiB, help="KMS comparison size (256MiB)"
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions of each timed run (3)")
    p.add_argument("--tmpdir", type=Path, default=None, help="parent of the work dir (TMPDIR)")
    p.add_argument(
        "--only",
        type=_parts,
        default=PARTS,
        help=f"comma-separated sections to run, of {','.join(PARTS)} (all)",
    )
    p.add_argument(
        "--json", action="store_true", help="JSON on stdout; the readable report on stderr"
    )
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if min(args.size, args.rss_size, args.official_size) < MiB:
        p.error("sizes must be at least 1MiB")
    return args


def run(args: argparse.Namespace) -> None:
    out = sys.stderr if args.json else sys.stdout
    plan = Plan(args.size, args.rss_size, args.official_size, args.reps)
    began = time.monotonic()
    load_before = _load()
    with work_dir(args.tmpdir, "s3vault-bench-") as workdir:
        free = check_free_space(workdir, plan.disk_needed(), "the transfer benchmark")
        print(
            f"work dir {workdir}: {human_size(free)} free, "
            f"about {human_size(plan.disk_needed())} needed",
            file=sys.stderr,
        )
        with BenchServices(workdir, kms=True) as services:
            print(f"services up {services.startup_seconds}, PIDs {services.pids}", file=sys.stderr)
            bench = TransferBench(services, workdir, plan, sys.stderr, load_before)
            bench.set_up()
            source = make_random_file(workdir / "source.bin", plan.size)
            if "startup" in args.only:
                bench.run_startup()
            if "put" in args.only:
                bench.run_put(source)
            elif "get" in args.only:
                bench.store_objects(source)
            if "get" in args.only:
                bench.run_get(source)
            remove_quietly(source)
            if "rss" in args.only:
                bench.run_rss()
            if "kms" in args.only:
                bench.run_official()
    wall = time.monotonic() - began
    results = ratios(bench.series)
    print(report_text(bench, results, wall), file=out, flush=True)
    if args.json:
        print(dump_json(report_json(bench, results, wall)), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [WORKER]:
        run_worker(argv[1:])
        return
    sigterm_as_interrupt()
    try:
        run(parse_args(argv))
    except KeyboardInterrupt:
        print("interrupted: services stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
