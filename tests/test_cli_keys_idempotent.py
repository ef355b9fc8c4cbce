"""`s3vault key ...` for config management (`changed` in --json, --if-missing,
--missing-ok) and the recovery kit, through the real command line and keyring."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from cli_checks import fails, ok

from s3vault.errors import ExitCode


def as_json(result: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    value = json.loads(ok(result).stdout)
    assert isinstance(value, dict)
    return value


def listed(run_cli: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    keys = json.loads(ok(run_cli("key", "list", "--json", **kwargs)).stdout)
    return {entry["name"]: entry for entry in keys}


def other_service() -> dict[str, str]:
    """A second, empty keyring service: where a kit is restored in these tests."""
    return {"S3VAULT_KEYRING_SERVICE": f"s3vault-test-{uuid.uuid4().hex[:12]}"}


SUMMARY_FIELDS = {"name", "type", "bits", "fingerprint", "key_id", "current", "result", "changed"}


# --- changed ------------------------------------------------------------------------------


def test_generate_if_missing_changes_once_and_refuses_another_type(run_cli: Any) -> None:
    first = as_json(run_cli("key", "generate", "host", "--if-missing", "--json"))
    assert set(first) == SUMMARY_FIELDS
    assert (first["changed"], first["result"], first["type"], first["bits"]) == (
        True,
        "created",
        "aes",
        256,
    )
    again = as_json(run_cli("key", "generate", "host", "--if-missing", "--json"))
    assert (again["changed"], again["result"]) == (False, "unchanged")
    assert again["fingerprint"] == first["fingerprint"]
    r = ok(run_cli("key", "generate", "host", "--if-missing"))
    assert b"unchanged" in r.stdout
    # Without --if-missing a taken name stays an error.
    fails(run_cli("key", "generate", "host"), ExitCode.CONFLICT)
    # Another type under that name: a conflict, unless --force replaces it (warned).
    r = fails(
        run_cli("key", "generate", "host", "--type", "rsa2048", "--if-missing"), ExitCode.CONFLICT
    )
    assert b"not RSA-2048" in r.stderr
    assert b"--force" in r.stderr
    assert listed(run_cli)["host"]["fingerprint"] == first["fingerprint"]
    replaced = run_cli("key", "generate", "host", "--type", "rsa2048", "--if-missing", "--force")
    assert b"warning: replacing key 'host' (AES-256" in replaced.stderr
    assert b"replaced key host (RSA-2048)" in ok(replaced).stdout
    assert listed(run_cli)["host"]["type"] == "rsa"


def test_import_from_stdin_and_file_is_changed_once(run_cli: Any, tmp_path: Path) -> None:
    secret = base64.b64encode(os.urandom(32))
    args = ("key", "import", "k", "--type", "aes", "--file", "-", "--json")
    first = as_json(run_cli(*args, input=secret))
    assert set(first) == SUMMARY_FIELDS
    assert (first["changed"], first["result"]) == (True, "created")
    again = as_json(run_cli(*args, input=secret))
    assert (again["changed"], again["result"]) == (False, "unchanged")
    other = base64.b64encode(os.urandom(32))
    fails(run_cli(*args, input=other), ExitCode.CONFLICT)
    forced = run_cli(*args, "--force", input=other)
    assert (as_json(forced)["changed"], as_json(forced)["result"]) == (True, "replaced")
    assert f"fingerprint {first['fingerprint']}".encode() in forced.stderr  # what is lost
    assert secret not in forced.stderr + forced.stdout
    # A key file: the same rules.
    path = tmp_path / "file.key"
    path.write_bytes(secret)
    file_args = ("key", "import", "f", "--type", "aes", "--file", path, "--json")
    assert as_json(run_cli(*file_args))["changed"] is True
    assert as_json(run_cli(*file_args))["changed"] is False


def test_import_kms_is_changed_once(run_cli: Any, kms_key_id: str) -> None:
    args = ("key", "import", "prod", "--type", "kms", "--key-id")
    first = as_json(run_cli(*args, kms_key_id, "--json"))
    assert (first["changed"], first["key_id"], first["bits"]) == (True, kms_key_id, None)
    assert as_json(run_cli(*args, kms_key_id, "--json"))["changed"] is False
    fails(run_cli(*args, "alias/other", "--json"), ExitCode.CONFLICT)
    assert as_json(run_cli(*args, "alias/other", "--force", "--json"))["changed"] is True
    assert listed(run_cli)["prod"]["key_id"] == "alias/other"


def test_use_is_changed_only_when_it_switches(run_cli: Any) -> None:
    ok(run_cli("key", "generate", "one"))
    ok(run_cli("key", "generate", "two"))
    same = as_json(run_cli("key", "use", "one", "--json"))
    assert (same["changed"], same["result"], same["previous"], same["current"]) == (
        False,
        "unchanged",
        "one",
        True,
    )
    switched = as_json(run_cli("key", "use", "two", "--json"))
    assert (switched["changed"], switched["result"], switched["previous"]) == (
        True,
        "switched",
        "one",
    )
    assert set(switched) == SUMMARY_FIELDS | {"previous"}
    assert b"already the current key" in ok(run_cli("key", "use", "two")).stdout
    fails(run_cli("key", "use", "three", "--json"), ExitCode.KEY_MISSING)


def test_delete_missing_ok_is_unchanged_for_a_missing_key(run_cli: Any) -> None:
    made = as_json(run_cli("key", "generate", "old", "--json"))
    gone = as_json(run_cli("key", "delete", "old", "--yes", "--missing-ok", "--json"))
    assert gone == {
        "name": "old",
        "type": "aes",
        "bits": 256,
        "fingerprint": made["fingerprint"],
        "key_id": None,
        "was_current": True,
        "result": "deleted",
        "changed": True,
    }
    # Missing: no question asked (no --yes), exit 0, nothing changed.
    again = as_json(run_cli("key", "delete", "old", "--missing-ok", "--json"))
    assert (again["changed"], again["result"], again["fingerprint"]) == (False, "missing", None)
    assert b"unchanged" in ok(run_cli("key", "delete", "old", "--missing-ok")).stdout
    fails(run_cli("key", "delete", "old", "--yes"), ExitCode.KEY_MISSING)
    assert listed(run_cli) == {}


# --- the recovery kit ---------------------------------------------------------------------


def test_a_recovery_kit_restores_each_kind_of_key_in_another_keyring(
    run_cli: Any, tmp_path: Path, kms_key_id: str
) -> None:
    ok(run_cli("key", "generate", "aes-key"))
    ok(run_cli("key", "generate", "rsa-key", "--type", "rsa2048"))
    ok(run_cli("key", "import", "kms-key", "--type", "kms", "--key-id", kms_key_id))
    fails(run_cli("key", "export", "aes-key", "--recovery"), ExitCode.USAGE)  # asks first
    original = listed(run_cli)
    elsewhere = other_service()
    for name in ("aes-key", "rsa-key", "kms-key"):
        exported = ok(run_cli("key", "export", name, "--recovery", "--yes"))
        kit = exported.stdout
        assert kit.startswith(b"s3vault recovery kit v1\n")
        assert f"fingerprint: {original[name]['fingerprint']}".encode() in kit
        assert f"created: {original[name]['created']}".encode() in kit
        restored = as_json(
            run_cli("key", "import", "--recovery", "--json", input=kit, env=elsewhere)
        )
        assert (restored["name"], restored["changed"]) == (name, True)
        assert restored["fingerprint"] == original[name]["fingerprint"]
        if name == "aes-key":
            again = run_cli("key", "import", "--recovery", "--json", input=kit, env=elsewhere)
            assert as_json(again)["changed"] is False
    # The same keys, and each made when the original was (the kit's created line).
    assert {
        n: (e["fingerprint"], e["created"]) for n, e in listed(run_cli, env=elsewhere).items()
    } == {n: (e["fingerprint"], e["created"]) for n, e in original.items()}
    # To a private file, and back from it under another name.
    path = tmp_path / "aes-key.kit"
    ok(run_cli("key", "export", "aes-key", "--recovery", "--file", path, "--yes"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    r = ok(run_cli("key", "import", "copy", "--recovery", "--file", path, env=elsewhere))
    assert b"created key copy (AES-256, from a recovery kit)" in r.stdout
    assert (
        listed(run_cli, env=elsewhere)["copy"]["fingerprint"] == original["aes-key"]["fingerprint"]
    )
    # The restored key is the key: its plain export is the same.
    plain = ok(run_cli("key", "export", "aes-key", "--yes")).stdout
    assert ok(run_cli("key", "export", "copy", "--yes", env=elsewhere)).stdout == plain
    assert plain.strip() not in r.stdout + r.stderr


def test_one_mistyped_character_in_a_kit_stores_nothing(run_cli: Any) -> None:
    ok(run_cli("key", "generate", "k"))
    kit = ok(run_cli("key", "export", "k", "--recovery", "--yes")).stdout.decode()
    line = next(ln for ln in kit.splitlines() if ln.startswith("3: "))
    groups = line[3:].split(" ")
    typo = groups[1][:2] + ("Q" if groups[1][2] != "Q" else "R") + groups[1][3:]
    bad = kit.replace(line, f"3: {groups[0]} {typo} {' '.join(groups[2:])}")
    elsewhere = other_service()
    restore = ("key", "import", "--recovery")
    r = fails(run_cli(*restore, input=bad.encode(), env=elsewhere), ExitCode.USAGE)
    assert b"line 3, group 2 does not check: retype it" in r.stderr
    assert not any(g.encode() in r.stderr + r.stdout for g in groups)
    r = fails(run_cli(*restore, "--json", input=bad.encode(), env=elsewhere), ExitCode.USAGE)
    assert json.loads(r.stdout)["error"]["exit_code"] == 2
    assert listed(run_cli, env=elsewhere) == {}
    # Other material under the kit's name: the usual conflict.
    ok(run_cli("key", "generate", "k", env=elsewhere))
    fails(run_cli(*restore, input=kit.encode(), env=elsewhere), ExitCode.CONFLICT)
    fails(run_cli(*restore, "--type", "aes", input=kit.encode()), ExitCode.USAGE)
    fails(run_cli("key", "import", "k", input=kit.encode()), ExitCode.USAGE)  # no --type


def test_a_kit_typed_at_a_terminal_is_checked_line_by_line(
    run_cli: Any, keyring_service: str, tmp_path: Path
) -> None:
    made = as_json(run_cli("key", "generate", "typed", "--json"))
    kit = ok(run_cli("key", "export", "typed", "--recovery", "--yes")).stdout.decode()
    lines = kit.splitlines()
    second = next(i for i, ln in enumerate(lines) if ln.startswith("2: "))
    wrong = lines[second][:4] + ("Q" if lines[second][4] != "Q" else "R") + lines[second][5:]
    typed = [*lines[:second], wrong, *lines[second:]]  # line 2 wrong, then retyped
    elsewhere = other_service()
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "s3vault", "key", "import", "--recovery", "--json"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, **elsewhere},
    )
    os.close(secondary)
    try:
        os.write(primary, "".join(f"{ln.lower()}\n" for ln in typed).encode())
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert proc.returncode == 0, err.decode()
    assert b"line 2, group 1 does not check: retype it" in err
    assert json.loads(out)["fingerprint"] == made["fingerprint"]
    groups = re.findall(r"\b[A-Z2-7]{5}\b", "\n".join(ln for ln in lines if ln[:1].isdigit()))
    assert not any(g.encode() in out + err for g in groups)  # never echoed back
