"""Key stores: what a key command costs on the OS keyring and on the file keystore.

On a private gnome-keyring (started here) and a file keystore in the same work dir,
for each store: the wall time of `s3vault key list` (one process, as a script, an
Ansible loop or the tray pays it), of `s3vault key generate` in 12 processes at once
(the parallel provisioning the write lock serialises: every key must be listed after),
and of the file keystore's Argon2id derivation alone. Baselines in the same run:
`python -c pass` (the interpreter's start) and `secret-tool lookup` (one keyring read
without Python). Prints medians and ratios; asserts nothing about time.

    .venv/bin/python bench/bench_keys.py --reps 5
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
from pathlib import Path
from typing import Any

from _common import (
    BenchServices,
    dump_json,
    format_table,
    machine_facts,
    run_measured,
    s3vault_cli,
    sigterm_as_interrupt,
    work_dir,
)

PARALLEL = 12


def median_wall(argv: Sequence[str], env: dict[str, str], reps: int) -> float:
    return statistics.median(run_measured(argv, env).seconds for _ in range(reps))


def parallel_generate(cli: str, env: dict[str, str]) -> tuple[float, int]:
    """Wall time of PARALLEL `key generate` at once, and how many keys `key list` shows."""
    prefix = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [cli, "key", "generate", f"p{prefix}-{i}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(PARALLEL)
    ]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"key generate failed in parallel: exit codes {codes}")
    listed = json.loads(run_measured([cli, "key", "list", "--json"], env).stdout)
    return seconds, sum(1 for k in listed if k["name"].startswith(f"p{prefix}-"))


def derive_seconds(reps: int) -> float:
    """One Argon2id run with the file keystore's parameters, the median of ``reps``."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    from s3vault.keys.sealed_file import KDF_PARAMS

    def once() -> float:
        began = time.perf_counter()
        Argon2id(
            salt=b"s" * 16,
            length=64,
            iterations=KDF_PARAMS["iterations"],
            lanes=KDF_PARAMS["lanes"],
            memory_cost=KDF_PARAMS["memory_cost"],
        ).derive(b"a passphrase")
        return time.perf_counter() - began

    return statistics.median(once() for _ in range(reps))


def run(args: argparse.Namespace) -> dict[str, Any]:
    cli = str(s3vault_cli())
    with work_dir(args.tmpdir, "s3vb-keys-") as workdir, BenchServices(workdir) as services:
        keyring_env = services.child_env()
        file_env = dict(
            keyring_env,
            S3VAULT_KEYSTORE_TYPE="file",
            S3VAULT_KEYSTORE_PATH=str(workdir / "keystore"),
            S3VAULT_KEYSTORE_PASSPHRASE_ENV="BENCH_PASSPHRASE",
            BENCH_PASSPHRASE=uuid.uuid4().hex,
        )
        for env in (keyring_env, file_env):
            run_measured([cli, "key", "generate", "bench"], env)
        # What `secret-tool lookup` reads: the entry our keyring store keeps the index in.
        lookup = ["secret-tool", "lookup", "service", services.keyring_service]
        lookup += ["username", "__index__"]
        result: dict[str, Any] = {
            "machine": machine_facts(),
            "reps": args.reps,
            "python_start_s": median_wall([sys.executable, "-c", "pass"], keyring_env, args.reps),
            "secret_tool_lookup_s": median_wall(lookup, keyring_env, args.reps),
            "argon2id_derive_s": derive_seconds(args.reps),
            "stores": {},
        }
        for name, env in (("keyring", keyring_env), ("file", file_env)):
            listing = median_wall([cli, "key", "list"], env, args.reps)
            seconds, listed = parallel_generate(cli, env)
            result["stores"][name] = {
                "key_list_s": listing,
                "parallel_generate_s": seconds,
                "parallel_listed": listed,
            }
    return result


def print_text(result: dict[str, Any], out: Any) -> None:
    py, lookup = result["python_start_s"], result["secret_tool_lookup_s"]
    rows = []
    for name, s in result["stores"].items():
        rows.append(
            [
                name,
                f"{s['key_list_s'] * 1000:.0f} ms",
                f"{s['key_list_s'] / py:.1f}",
                f"{s['key_list_s'] / lookup:.1f}",
                f"{s['parallel_generate_s']:.2f} s",
                f"{s['parallel_listed']}/{PARALLEL}",
            ]
        )
    print(
        f"baselines: python -c pass {py * 1000:.0f} ms, secret-tool lookup "
        f"{lookup * 1000:.0f} ms; Argon2id derive {result['argon2id_derive_s'] * 1000:.0f} ms "
        f"(median of {result['reps']})",
        file=out,
    )
    headers = [
        "store",
        "key list",
        "vs python",
        "vs secret-tool",
        f"{PARALLEL} generate at once",
        "listed after",
    ]
    print(format_table(headers, rows), file=out)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per timing (median)")
    parser.add_argument("--tmpdir", type=Path, help="parent of the work directory")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, report on stderr")
    return parser.parse_args(argv)


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
