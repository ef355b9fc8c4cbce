"""Start-up: what one `s3vault` invocation costs before it does anything, and what it imports.

Every command runs as a child process, as a script, an Ansible loop or the tray runs
it: `s3vault --help`, `key list` on the OS keyring and on the file keystore, `status`
with no agent and with one running, `status --json`, and a one-file `put` of 1 KiB
next to boto3's `upload_file` of the same file (a small worker in this file that
imports only boto3). Baselines in the same run: `python -c pass` (the interpreter's own
start) and `secret-tool lookup` (one keyring read without Python). Prints medians,
ratios to `python -c pass`, a budget column (150 ms for `status` and `key list`: OK or
MISS), and for each command the imports that cost most (`python -X importtime`), so a
regression shows which module brought it. Asserts nothing about time.

The file keystore's `key list` decrypts the keystore, which costs one Argon2id run
(64 MiB, 3 passes) by design; its row is also shown without that cost (measured alone
in this run), and the budget applies to that figure.

    .venv/bin/python bench/bench_startup.py --reps 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BenchServices,
    KiB,
    RunFailed,
    dump_json,
    format_table,
    machine_facts,
    make_random_file,
    run_measured,
    s3vault_cli,
    sigterm_as_interrupt,
    work_dir,
)
from bench_keys import derive_seconds

BUDGET_S = 0.150
BUCKET = "bench-startup"
KEY = "bench"
PROBE_SIZE = 1 * KiB
IDLE_TIMEOUT_S = 120.0

# The boto3 side of the one-file put: `python -c BOTO3_PUT PATH BUCKET KEY`, a program
# that imports boto3 and nothing of the benchmark's (path-style, environment's endpoint
# and keys), as a script using boto3 would.
BOTO3_PUT = """
import sys
import boto3
from botocore.config import Config
client = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
client.upload_file(sys.argv[1], sys.argv[2], sys.argv[3])
"""


# ==== measuring ============================================================================


@dataclass
class Case:
    """One command line, timed ``reps`` times; its imports read once."""

    name: str
    argv: list[str]
    env: dict[str, str]
    budget: bool = False
    """Whether the 150 ms budget applies."""
    expect: int = 0
    """Its exit code (status without an agent: 6)."""
    importtime_argv: list[str] | None = None
    seconds: list[float] = field(default_factory=list)
    top_imports: list[tuple[str, float]] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def run_once(self, cwd: Path, *, timed: bool = True) -> None:
        result = run_measured(self.argv, self.env, cwd=cwd, check=False)
        if result.returncode != self.expect:
            tail = result.stderr.decode("utf-8", "replace")[-2000:]
            raise RunFailed(f"{self.name}: exit {result.returncode}, not {self.expect}:\n{tail}")
        if timed:
            self.seconds.append(result.seconds)


def top_imports(stderr: str, count: int) -> list[tuple[str, float]]:
    """The outermost imports (not nested in another) by cumulative time, from
    ``-X importtime``'s report: ``import time: self | cumulative | name``."""
    found: list[tuple[str, float]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _self, cumulative, name = line[len("import time:") :].split("|")
        if name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # nested (indented) or the header line
        found.append((name.strip(), int(cumulative) / 1e6))
    return sorted(found, key=lambda item: -item[1])[:count]


def read_imports(case: Case, cwd: Path, count: int) -> None:
    if case.importtime_argv is None:
        return
    done = subprocess.run(
        case.importtime_argv,
        env=case.env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    case.top_imports = top_imports(done.stderr.decode("utf-8", "replace"), count)


# ==== the agent ============================================================================


class Agent:
    """``s3vault agent --foreground`` on one empty folder; stopped by its PID."""

    def __init__(self, cli: str, env: dict[str, str], workdir: Path, endpoint: str) -> None:
        folder = workdir / "synced"
        folder.mkdir()
        config = workdir / "agent.yaml"
        config.write_text(
            json.dumps(
                {
                    "s3": {"endpoint_url": endpoint, "region": env["AWS_DEFAULT_REGION"]},
                    "folders": [{"path": str(folder), "bucket": BUCKET, "key": KEY}],
                    "agent": {"rescan_interval": "1h"},
                }
            )
        )
        self.cli = cli
        self.env = {**env, "S3VAULT_CONFIG": str(config)}
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.cli, "agent", "--foreground"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RunFailed(f"the agent exited:\n{self.log.read_text()[-2000:]}")
            done = run_measured([self.cli, "status", "--json"], self.env, check=False)
            if done.returncode == 0:
                status = json.loads(done.stdout)
                if status["state"] == "idle" and status["reconciles"] >= 1:
                    return
            time.sleep(0.3)
        raise RunFailed(f"the agent was not idle after {IDLE_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ==== the benchmark ========================================================================


def cases(
    cli: str, env: dict[str, str], file_env: dict[str, str], agent_env: dict[str, str], tiny: Path
) -> tuple[list[Case], list[Case]]:
    """The cases without an agent, and those with one running."""
    py = sys.executable

    def s3vault(name: str, *args: str, e: dict[str, str] = env, **kw: Any) -> Case:
        timing = [py, "-X", "importtime", "-m", "s3vault", *args]
        return Case(name, [cli, *args], e, importtime_argv=timing, **kw)

    lookup = ["secret-tool", "lookup", "service", env["S3VAULT_KEYRING_SERVICE"]]
    lookup += ["username", "__index__"]
    put = ["put", str(tiny), f"s3://{BUCKET}/tiny", "--key", KEY]
    worker = [py, "-c", BOTO3_PUT, str(tiny), BUCKET, "tiny-plain"]
    without = [
        Case("python -c pass", [py, "-c", "pass"], env),
        Case("secret-tool lookup", lookup, env),
        s3vault("s3vault --help", "--help"),
        s3vault("key list (keyring)", "key", "list", budget=True),
        s3vault("key list (file store)", "key", "list", e=file_env),
        s3vault("status (no agent)", "status", budget=True, expect=6),
        s3vault("put 1 KiB", *put),
        Case(
            "boto3 upload_file 1 KiB",
            worker,
            env,
            importtime_argv=[py, "-X", "importtime", *worker[1:]],
        ),
    ]
    with_agent = [
        s3vault("status (agent running)", "status", e=agent_env, budget=True),
        s3vault("status --json (agent)", "status", "--json", e=agent_env, budget=True),
    ]
    return without, with_agent


def run(args: argparse.Namespace) -> dict[str, Any]:
    cli = str(s3vault_cli())
    with work_dir(args.tmpdir, "s3vb-start-") as workdir, BenchServices(workdir) as services:
        assert services.s3 is not None
        services.s3.create_bucket(BUCKET)
        runtime = workdir / "run"  # the agent's socket: not the developer's
        runtime.mkdir(mode=0o700)
        env = {**services.child_env(), "XDG_RUNTIME_DIR": str(runtime)}
        # Bytecode caches as an installed s3vault has them (pip compiles on install):
        # written on the untimed first run into the work dir, never into the tree. With
        # PYTHONDONTWRITEBYTECODE (set in some shells) every run would compile s3vault.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        file_env = dict(
            env,
            S3VAULT_KEYSTORE_TYPE="file",
            S3VAULT_KEYSTORE_PATH=str(workdir / "keystore"),
            S3VAULT_KEYSTORE_PASSPHRASE_ENV="BENCH_PASSPHRASE",
            BENCH_PASSPHRASE=uuid.uuid4().hex,
        )
        for e in (env, file_env):
            run_measured([cli, "key", "generate", KEY], e)
        tiny = make_random_file(workdir / "tiny.bin", PROBE_SIZE)
        agent = Agent(cli, env, workdir, services.s3.endpoint_url)
        without, with_agent = cases(cli, env, file_env, agent.env, tiny)
        for case in without:
            case.run_once(workdir, timed=False)  # writes the bytecode caches
            read_imports(case, workdir, args.top)
        for _ in range(args.reps):  # round robin: noise spreads over every case alike
            for case in without:
                case.run_once(workdir)
        agent.start()
        try:
            for case in with_agent:
                case.run_once(workdir, timed=False)
                read_imports(case, workdir, args.top)
            for _ in range(args.reps):
                for case in with_agent:
                    case.run_once(workdir)
        finally:
            agent.stop()
        derive = derive_seconds(max(args.reps, 3))
    every = without + with_agent
    python = every[0].median_s
    return {
        "machine": machine_facts(),
        "reps": args.reps,
        "budget_s": BUDGET_S,
        "argon2id_derive_s": round(derive, 4),
        "cases": [
            {
                "name": c.name,
                "seconds": [round(s, 4) for s in c.seconds],
                "median_s": round(c.median_s, 4),
                "vs_python": round(c.median_s / python, 2),
                "budget": (("OK" if c.median_s <= BUDGET_S else "MISS") if c.budget else None),
                "top_imports": [[name, round(s, 4)] for name, s in c.top_imports],
            }
            for c in every
        ],
        "file_store_key_list_without_derive_s": round(
            next(c for c in every if c.name == "key list (file store)").median_s - derive, 4
        ),
    }


def print_text(result: dict[str, Any], out: Any) -> None:
    py = result["cases"][0]["median_s"]
    derive = result["argon2id_derive_s"]
    rows = []
    for case in result["cases"]:
        rows.append(
            [
                case["name"],
                f"{case['median_s'] * 1000:.0f} ms",
                f"{case['vs_python']:.1f}",
                case["budget"] or "",
            ]
        )
        if case["name"] == "key list (file store)":
            without = result["file_store_key_list_without_derive_s"]
            verdict = "OK" if without <= result["budget_s"] else "MISS"
            rows.append(
                [
                    "  without its Argon2id",
                    f"{without * 1000:.0f} ms",
                    f"{without / py:.1f}",
                    verdict,
                ]
            )
    print(
        f"median of {result['reps']}; Argon2id derive alone {derive * 1000:.0f} ms; "
        f"budget {result['budget_s'] * 1000:.0f} ms (status, key list); "
        f"load average {result['machine']['load_average']}",
        file=out,
    )
    print(format_table(["command", "wall", "vs python", "budget"], rows), file=out)
    print("\ntop imports (python -X importtime, outermost, cumulative):", file=out)
    for case in result["cases"]:
        if case["top_imports"]:
            text = ", ".join(f"{name} {s * 1000:.0f}" for name, s in case["top_imports"])
            print(f"  {case['name']}: {text} (ms)", file=out)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--top", type=int, default=6, help="imports listed per command")
    parser.add_argument("--tmpdir", type=Path, help="parent of the work directory")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, report on stderr")
    # run_all.py passes every benchmark the same options (--size...): not ours, ignored.
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"bench_startup.py: ignoring {' '.join(ignored)}", file=sys.stderr)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sigterm_as_interrupt()
    result = run(args)
    if args.json:
        print_text(result, sys.stderr)
        print(dump_json(result))
    else:
        print_text(result, sys.stdout)


if __name__ == "__main__":
    main()
