"""`s3vault key ...` through the real command line (`python -m s3vault`) and keyring."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_checks import fails, ok
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from s3vault.errors import ExitCode


def keys(run_cli: Any) -> dict[str, dict[str, Any]]:
    listed = json.loads(ok(run_cli("key", "list", "--json")).stdout)
    return {entry["name"]: entry for entry in listed}


@pytest.fixture(scope="module")
def rsa_pems() -> tuple[bytes, bytes]:
    """One RSA-2048 key as (PKCS#1 PEM, PKCS#8 PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pkcs8 = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pkcs1, pkcs8


# --- generate ---------------------------------------------------------------------------


def test_generate_and_list(run_cli: Any) -> None:
    out = ok(run_cli("key", "generate", "laptop")).stdout.decode()
    assert "laptop" in out
    assert "AES-256" in out
    assert "current" in out
    made = json.loads(ok(run_cli("key", "generate", "big", "--type", "rsa3072", "--json")).stdout)
    assert made["name"] == "big"
    assert (made["type"], made["bits"], made["result"], made["current"]) == (
        "rsa",
        3072,
        "created",
        False,
    )
    assert len(made["fingerprint"]) == 16
    listed = keys(run_cli)
    assert set(listed) == {"laptop", "big"}
    assert listed["laptop"]["current"] is True
    assert listed["big"]["fingerprint"] == made["fingerprint"]
    assert set(listed["big"]) == {
        "name",
        "type",
        "bits",
        "fingerprint",
        "created",
        "key_id",
        "current",
    }
    table = ok(run_cli("key", "list")).stdout.decode()
    assert "laptop" in table
    assert "big" in table
    assert "*" in table
    fails(run_cli("key", "generate", "laptop"), ExitCode.CONFLICT)
    fails(run_cli("key", "generate", "bad/name"), ExitCode.USAGE)
    fails(run_cli("key", "generate", "x", "--type", "rsa1024"), ExitCode.USAGE)


def test_every_key_command_has_an_example_in_its_help(run_cli: Any) -> None:
    for command in ("generate", "import", "export", "list", "delete", "use"):
        text = ok(run_cli("key", command, "--help")).stdout.decode()
        assert f"s3vault key {command}" in text, command


def test_list_with_no_keys(run_cli: Any) -> None:
    assert json.loads(ok(run_cli("key", "list", "--json")).stdout) == []
    assert "s3vault key generate" in ok(run_cli("key", "list")).stdout.decode()


# --- import -----------------------------------------------------------------------------


def test_import_aes_in_every_form(run_cli: Any, tmp_path: Path) -> None:
    secret = os.urandom(32)
    raw = tmp_path / "raw.key"
    raw.write_bytes(secret)
    r = ok(run_cli("key", "import", "from-file", "--type", "aes", "--file", raw))
    assert b"created" in r.stdout
    assert b"read as raw" in r.stdout
    b64 = base64.b64encode(secret) + b"\n"
    r = ok(run_cli("key", "import", "from-stdin", "--type", "aes", "--file", "-", input=b64))
    assert b"read as base64" in r.stdout
    r = ok(
        run_cli("key", "import", "hex", "--type", "aes", "--file", "-", input=secret.hex().encode())
    )
    assert b"read as hex" in r.stdout
    listed = keys(run_cli)
    # One secret in three forms: the same key, hence the same fingerprint.
    assert len({listed[n]["fingerprint"] for n in ("from-file", "from-stdin", "hex")}) == 1
    r = ok(run_cli("key", "import", "aes128", "--type", "aes", "--file", "-", input=os.urandom(16)))
    assert keys(run_cli)["aes128"]["bits"] == 128


def test_import_is_idempotent_and_conflicts_need_force(run_cli: Any) -> None:
    secret = base64.b64encode(os.urandom(32))
    args = ("key", "import", "k", "--type", "aes", "--file", "-")
    assert json.loads(ok(run_cli(*args, "--json", input=secret)).stdout)["result"] == "created"
    again = ok(run_cli(*args, input=secret))
    assert b"unchanged" in again.stdout
    assert json.loads(ok(run_cli(*args, "--json", input=secret)).stdout)["result"] == "unchanged"
    other = base64.b64encode(os.urandom(32))
    r = fails(run_cli(*args, input=other), ExitCode.CONFLICT)
    assert b"--force" in r.stderr
    r = fails(run_cli(*args, "--json", input=other), ExitCode.CONFLICT)
    assert json.loads(r.stdout)["error"]["exit_code"] == ExitCode.CONFLICT
    assert json.loads(ok(run_cli(*args, "--force", "--json", input=other)).stdout)["result"] == (
        "replaced"
    )
    exported = ok(run_cli("key", "export", "k", "--yes")).stdout
    assert exported.strip() == other


def test_import_rsa_pkcs1_then_pkcs8_is_unchanged(
    run_cli: Any, rsa_pems: tuple[bytes, bytes]
) -> None:
    pkcs1, pkcs8 = rsa_pems
    r = ok(run_cli("key", "import", "partner", "--type", "rsa", "--file", "-", input=pkcs1))
    assert b"RSA-2048" in r.stdout
    r = ok(run_cli("key", "import", "partner", "--type", "rsa", "--file", "-", input=pkcs8))
    assert b"unchanged" in r.stdout
    # Stored and exported as PKCS#8.
    assert ok(run_cli("key", "export", "partner", "--yes")).stdout == pkcs8


def test_import_kms(run_cli: Any, kms_key_id: str) -> None:
    r = ok(run_cli("key", "import", "prod", "--type", "kms", "--key-id", kms_key_id, "--json"))
    assert json.loads(r.stdout)["key_id"] == kms_key_id
    ok(run_cli("key", "import", "prod", "--type", "kms", "--key-id", kms_key_id))
    listed = keys(run_cli)["prod"]
    assert (listed["type"], listed["key_id"], listed["bits"]) == ("kms", kms_key_id, None)
    fails(
        run_cli("key", "import", "prod", "--type", "kms", "--key-id", "alias/other"),
        ExitCode.CONFLICT,
    )
    # No secret: exported without a question.
    assert ok(run_cli("key", "export", "prod")).stdout == f"{kms_key_id}\n".encode()


@pytest.mark.parametrize(
    ("args", "stdin", "code"),
    [
        (("--type", "kms"), None, ExitCode.USAGE),
        (("--type", "kms", "--key-id", "a", "--file", "-"), b"x", ExitCode.USAGE),
        (("--type", "aes"), None, ExitCode.USAGE),
        (("--type", "aes", "--file", "-", "--key-id", "a"), b"x", ExitCode.USAGE),
        (("--type", "aes", "--file", "-"), b"not a key", ExitCode.USAGE),
        (("--type", "aes", "--file", "-"), b"", ExitCode.USAGE),
        (("--type", "aes", "--file", "missing.key"), None, ExitCode.NOT_FOUND),
        (("--type", "rsa", "--file", "-"), b"-----BEGIN PRIVATE KEY-----\nx\n", ExitCode.USAGE),
        (("--type", "kms", "--key-id", "has space"), None, ExitCode.USAGE),
        (("--type", "des", "--file", "-"), b"x", ExitCode.USAGE),
    ],
)
def test_import_errors(run_cli: Any, args: tuple[str, ...], stdin: bytes | None, code: int) -> None:
    fails(run_cli("key", "import", "k", *args, input=stdin), ExitCode(code))


# --- export -----------------------------------------------------------------------------


def test_export_asks_unless_yes_and_warns(run_cli: Any) -> None:
    secret = os.urandom(32)
    ok(run_cli("key", "import", "k", "--type", "aes", "--file", "-", input=secret))
    r = fails(run_cli("key", "export", "k"), ExitCode.USAGE)  # no terminal to ask on
    assert b"--yes" in r.stderr
    assert r.stdout == b""
    r = ok(run_cli("key", "export", "k", "--yes"))
    assert r.stdout == base64.b64encode(secret) + b"\n"
    assert b"warning" in r.stderr
    assert b"secret" in r.stderr
    fails(run_cli("key", "export", "nope", "--yes"), ExitCode.KEY_MISSING)


def test_export_to_a_file_is_private(run_cli: Any, tmp_path: Path, rsa_pems: Any) -> None:
    ok(run_cli("key", "import", "r", "--type", "rsa", "--file", "-", input=rsa_pems[0]))
    target = tmp_path / "r.pem"
    r = ok(run_cli("key", "export", "r", "--file", target, "--yes"))
    assert r.stdout == b""
    assert target.read_bytes() == rsa_pems[1]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # An existing file is not overwritten without --yes (asked first: no terminal here)...
    old = tmp_path / "old.pem"
    old.write_bytes(b"keep me")
    old.chmod(0o644)
    fails(run_cli("key", "export", "r", "--file", old), ExitCode.USAGE)
    assert old.read_bytes() == b"keep me"
    # ...nor for a KMS key, which asks nothing.
    ok(run_cli("key", "import", "kms", "--type", "kms", "--key-id", "alias/x"))
    fails(run_cli("key", "export", "kms", "--file", old), ExitCode.CONFLICT)
    # With --yes the file is replaced, and it ends up 0600 even if it was 0644.
    ok(run_cli("key", "export", "r", "--file", old, "--yes"))
    assert old.read_bytes() == rsa_pems[1]
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pem", "r.pem"]


# --- delete, use --------------------------------------------------------------------------


def test_delete_and_use(run_cli: Any) -> None:
    for name in ("one", "two", "three"):
        ok(run_cli("key", "generate", name))
    assert [n for n, e in keys(run_cli).items() if e["current"]] == ["one"]
    ok(run_cli("key", "use", "two"))
    assert [n for n, e in keys(run_cli).items() if e["current"]] == ["two"]
    fails(run_cli("key", "use", "four"), ExitCode.KEY_MISSING)
    r = fails(run_cli("key", "delete", "three"), ExitCode.USAGE)  # needs --yes without a tty
    assert b"--yes" in r.stderr
    assert "three" in keys(run_cli)
    ok(run_cli("key", "delete", "three", "--yes"))
    assert set(keys(run_cli)) == {"one", "two"}
    r = ok(run_cli("key", "delete", "two", "--yes"))
    assert b"s3vault key use" in r.stdout
    assert [n for n, e in keys(run_cli).items() if e["current"]] == []
    fails(run_cli("key", "delete", "two", "--yes"), ExitCode.KEY_MISSING)


# --- secrets stay secret ----------------------------------------------------------------


def s3vault_processes() -> dict[int, bytes]:
    """Command lines of every running `python -m s3vault` (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"s3vault" in cmdline:
            found[int(entry.name)] = cmdline
    return found


def test_no_secret_in_argv_or_in_any_output_but_export(
    run_cli: Any, tmp_path: Path, keyring_service: str, rsa_pems: Any
) -> None:
    secret = os.urandom(32)
    forms = [secret, secret.hex().encode(), base64.b64encode(secret)]

    # While `import` waits for its stdin, its argv (visible to every user) holds no secret.
    proc = subprocess.Popen(
        [sys.executable, "-m", "s3vault", "key", "import", "k", "--type", "aes", "--file", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "S3VAULT_KEYRING_SERVICE": keyring_service},
    )
    try:
        deadline = time.monotonic() + 30
        while proc.pid not in s3vault_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        running = s3vault_processes()
        assert proc.pid in running
        for cmdline in running.values():
            assert not any(form in cmdline for form in forms)
        out, err = proc.communicate(base64.b64encode(secret), timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    outputs = [out, err]

    pem_body = b"".join(rsa_pems[1].splitlines()[1:-1])
    for args, stdin in [
        (("key", "import", "k", "--type", "aes", "--file", "-"), forms[1]),  # unchanged
        (("key", "import", "k", "--type", "aes", "--file", "-", "--json"), forms[2]),
        (("key", "import", "k", "--type", "aes", "--file", "-"), os.urandom(32)),  # conflict
        (("key", "import", "k", "--type", "aes", "--file", "-", "--json"), os.urandom(32)),
        (("key", "import", "r", "--type", "rsa", "--file", "-"), rsa_pems[0]),
        (("key", "import", "r", "--type", "aes", "--file", "-"), rsa_pems[0]),  # wrong type
        (
            (
                "key",
                "list",
            ),
            None,
        ),
        (("key", "list", "--json"), None),
        (("key", "use", "r"), None),
        (("key", "export", "k"), None),  # refused: no --yes
        (("key", "generate", "k"), None),  # conflict
        (("key", "delete", "r", "--yes"), None),
    ]:
        result = run_cli(*args, input=stdin)
        outputs += [result.stdout, result.stderr]
    for output in outputs:
        assert not any(form in output for form in forms)
        assert pem_body[:64] not in output
    # export is the one way out.
    assert ok(run_cli("key", "export", "k", "--yes")).stdout.strip() == forms[2]
