"""No key material anywhere s3vault writes or shows: logs, state, config, temp, processes.

One full workflow at debug log level (secrets_workflow.py), then every place is searched
for every master key (AES raw bytes; RSA as PKCS#8 and PKCS#1 DER, its d, p and q, and
the lines of its PEM), the data key of every object (from its envelope, opened with the
master keys or KMS) and the file keystore's passphrase, in every encoding a program
might print them in: raw, base64 (standard and URL-safe, padded or not, at any byte
alignment, so a key inside a longer encoded blob is found too), hex (lower and upper).
The exported key files are the one place meant to hold a key: they are only checked
for mode 0600.
"""

from __future__ import annotations

import base64
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_report import ReliabilityReport
from secrets_workflow import Workflow, core_limit, shared_workflow


@pytest.fixture
def flow(tmp_path_factory: pytest.TempPathFactory, s3: Any, kms_client: Any) -> Workflow:
    return shared_workflow(tmp_path_factory, s3, kms_client)


# -- the needles --------------------------------------------------------------------------


def encodings(secret: bytes) -> set[bytes]:
    """``secret`` as raw bytes, hex and base64 (any alignment: a substring of a longer
    encoding is found too)."""
    found = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found.add(encode(secret))
        found.add(encode(secret).rstrip(b"="))
        for shift in range(3):
            text = encode(b"\0" * shift + secret)
            start = -(-shift * 8 // 6)  # the first character made of secret bits only
            end = (shift + len(secret)) * 8 // 6
            found.add(text[start:end])
    return found


def needles(flow: Workflow, *, with_passphrase: bool = True) -> dict[bytes, str]:
    """Every encoding of every secret -> which secret it is."""
    out: dict[bytes, str] = {}
    for name, secret in flow.master_keys.items():
        out.update(dict.fromkeys(encodings(secret), f"master key {name}"))
    for key, secret in flow.data_keys.items():
        out.update(dict.fromkeys(encodings(secret), f"data key of {key}"))
    for name, pem in flow.pem_keys.items():
        for line in pem.splitlines():
            if len(line) >= 40 and not line.startswith("-----"):
                out[line.encode()] = f"PEM line of {name}"
    if with_passphrase:
        out.update(dict.fromkeys(encodings(flow.passphrase), "keystore passphrase"))
    return out


def hits(data: bytes, table: dict[bytes, str]) -> list[str]:
    return sorted({what for needle, what in table.items() if needle in data})


def scan(
    reliability: ReliabilityReport,
    place: str,
    items: Iterable[tuple[str, bytes]],
    table: dict[bytes, str],
) -> None:
    found, scanned = [], 0
    for where, data in items:
        scanned += 1
        found += [f"{where}: {what}" for what in hits(data, table)]
    reliability.secrets(place, scanned, len(found))
    assert scanned > 0, f"nothing to search in {place}"
    assert found == [], f"key material in {place}: {found}"


def files_under(*roots: Path, skip: Iterable[Path] = ()) -> Iterator[tuple[str, bytes]]:
    skipped = {p.resolve() for p in skip}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.resolve() in skipped or any(s in path.resolve().parents for s in skipped):
                continue
            if stat.S_ISREG(path.lstat().st_mode):
                yield str(path), path.read_bytes()


# -- the tests ----------------------------------------------------------------------------


def test_the_workflow_covered_every_key_kind_and_opened_every_data_key(flow: Workflow) -> None:
    assert {"aes-k", "imp-k", "file-k", "rsa-k pkcs8"} <= set(flow.master_keys)
    # 5 objects put (3 of them rotated), 5 from the one-shot sync, 6 from the agent.
    assert len(flow.data_keys) == 16
    assert len(set(flow.data_keys.values())) == 16
    assert all(len(k) == 32 for k in flow.data_keys.values())


def test_no_key_material_in_cli_output_at_debug_level(
    flow: Workflow, reliability: ReliabilityReport
) -> None:
    # The debug log was on: s3vault's records went to stderr.
    assert all(b" DEBUG s3vault.cli.main: s3vault " in done.stderr for done in flow.outputs)
    items = [
        (f"{done.args[3:6]} {stream}", getattr(done, stream))
        for done in flow.outputs
        for stream in ("stdout", "stderr")
    ]
    scan(reliability, "cli stdout and stderr (debug)", items, needles(flow))


def test_no_key_material_in_the_agent_log(flow: Workflow, reliability: ReliabilityReport) -> None:
    logs = list(files_under(*[p for p in flow.s3vault_dirs() if p.parent.name == "state"]))
    logs = [(where, data) for where, data in logs if where.endswith(".log")]
    assert logs and b"reconcile" in logs[0][1]
    scan(reliability, "agent log", logs, needles(flow))


def test_no_key_material_in_the_state_database(
    flow: Workflow, reliability: ReliabilityReport
) -> None:
    path = flow.xdg["XDG_STATE_HOME"] / "s3vault" / "state.db"
    items: list[tuple[str, bytes]] = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - our own names
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    items.append((table, data))
    assert len(tables) >= 3 and len(items) > 20
    items += list(files_under(*path.parent.glob("state.db*")))  # the files, WAL included
    scan(reliability, "state database", items, needles(flow))


def test_no_key_material_in_config_state_data_cache_and_runtime_dirs(
    flow: Workflow, reliability: ReliabilityReport
) -> None:
    # The file keystore is among them: sealed, it must not show a key either.
    assert (flow.xdg["XDG_DATA_HOME"] / "s3vault" / "keystore").exists()
    scan(reliability, "config file", files_under(flow.config), needles(flow))
    scan(reliability, "s3vault's own dirs", files_under(*flow.s3vault_dirs()), needles(flow))


def test_no_key_material_in_temp_dirs(flow: Workflow, reliability: ReliabilityReport) -> None:
    assert list(flow.tmpdir.iterdir()) == []  # s3vault left nothing in TMPDIR
    inputs = [flow.work / "imp.bin", flow.work / "exports"]  # meant to hold keys
    items = [
        *files_under(flow.tmpdir, Path("/dev/shm")),
        *files_under(flow.work, skip=inputs),
    ]
    scan(reliability, "temp dirs and work dir", items, needles(flow))


def test_no_key_material_in_argv_or_environment_of_any_s3vault_process(
    flow: Workflow, reliability: ReliabilityReport
) -> None:
    kinds = {_kind(s.cmdline) for s in flow.samples.values()}
    assert {"cli", "agent", "child run"} <= kinds, kinds
    argv = [(f"pid {s.pid}", s.cmdline) for s in flow.samples.values()]
    scan(reliability, "process argv", argv, needles(flow))
    # The passphrase is in the environment of the commands it was given to, by design
    # (passphrase_env): it is searched for everywhere else.
    environ = [(f"pid {s.pid}", s.environ) for s in flow.samples.values()]
    scan(reliability, "process environment", environ, needles(flow, with_passphrase=False))


def test_every_s3vault_process_runs_with_core_dumps_off(
    flow: Workflow, reliability: ReliabilityReport
) -> None:
    # Started with an unlimited core size (the workflow's preexec): 0 is their own doing.
    wrong = [
        f"pid {s.pid} {_kind(s.cmdline)}: {core_limit(s.limits)}"
        for s in flow.samples.values()
        if core_limit(s.limits) != ("0", "0")
    ]
    reliability.secrets("core dump limit of processes", len(flow.samples), len(wrong))
    assert wrong == []


def test_an_s3vault_process_is_not_dumpable() -> None:
    # PR_GET_DUMPABLE (3) after the start-up every s3vault process runs.
    probe = (
        "import ctypes; from s3vault.process import no_core_dumps; no_core_dumps(); "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True)
    assert done.stdout.strip() == b"0"


def test_exported_key_files_are_0600(flow: Workflow, reliability: ReliabilityReport) -> None:
    modes = {name: stat.S_IMODE(path.stat().st_mode) for name, path in flow.exports.items()}
    assert modes == dict.fromkeys(flow.exports, 0o600)


def _kind(cmdline: bytes) -> str:
    if b"s3vault.agent.child_run" in cmdline:
        return "child run"
    if b"agent\0--detached-child" in cmdline:
        return "agent"
    return "cli"
