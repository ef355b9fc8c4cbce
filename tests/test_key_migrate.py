"""`s3vault key migrate`: keys move between the keyring and the file keystore, whole.

Runs against the session's gnome-keyring (the test's own service) and a file keystore
under tmp_path; the passphrase is in the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import RunCli

from s3vault.errors import ExitCode

VARIABLE = "S3VAULT_TEST_PASSPHRASE"
FILE: dict[str, str | None] = {"S3VAULT_KEYSTORE_TYPE": "file"}
KEYRING: dict[str, str | None] = {"S3VAULT_KEYSTORE_TYPE": None}


@pytest.fixture(autouse=True)
def file_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the file keystore is and its passphrase (the store in use stays the keyring
    unless a command sets S3VAULT_KEYSTORE_TYPE=file)."""
    path = tmp_path / "keystore"
    monkeypatch.setenv("S3VAULT_KEYSTORE_PATH", str(path))
    monkeypatch.setenv("S3VAULT_KEYSTORE_PASSPHRASE_ENV", VARIABLE)
    monkeypatch.setenv(VARIABLE, "migration passphrase")
    return path


def ok(run_cli: RunCli, *args: str, env: dict[str, str | None]) -> Any:
    result = run_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def key_list(run_cli: RunCli, env: dict[str, str | None]) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = ok(run_cli, "key", "list", env=env)
    return listed


def migrate(run_cli: RunCli, to: str, *extra: str, env: dict[str, str | None]) -> Any:
    return ok(run_cli, "key", "migrate", "--to", to, *extra, env=env)


def test_keys_go_to_the_file_and_back_with_created_and_current(run_cli: RunCli) -> None:
    ok(run_cli, "key", "generate", "aes-key", env=KEYRING)
    ok(run_cli, "key", "generate", "rsa-key", "--type", "rsa2048", env=KEYRING)
    assert run_cli("key", "use", "rsa-key").returncode == 0
    before = key_list(run_cli, KEYRING)
    assert [k["current"] for k in before] == [False, True]

    there = migrate(run_cli, "file", env=KEYRING)
    assert there == {
        "from": "keyring",
        "to": "file",
        "keys": [
            {"name": "aes-key", "result": "created"},
            {"name": "rsa-key", "result": "created"},
        ],
        "changed": True,
        "kept": False,
    }
    assert key_list(run_cli, FILE) == before  # names, created, fingerprints, current
    assert key_list(run_cli, KEYRING) == []
    # A re-run (the config not switched yet) finds nothing left to move.
    assert migrate(run_cli, "file", env=KEYRING)["changed"] is False
    # And one after the switch has nothing to do.
    assert migrate(run_cli, "file", env=FILE) == {
        "from": "file",
        "to": "file",
        "keys": [],
        "changed": False,
        "kept": False,
    }

    back = migrate(run_cli, "keyring", env=FILE)
    assert [k["result"] for k in back["keys"]] == ["created", "created"]
    assert key_list(run_cli, KEYRING) == before
    assert key_list(run_cli, FILE) == []
    assert migrate(run_cli, "keyring", env=FILE)["changed"] is False


def test_keep_leaves_the_source_and_a_rerun_is_unchanged(run_cli: RunCli) -> None:
    ok(run_cli, "key", "generate", "a", env=KEYRING)
    first = migrate(run_cli, "file", "--keep", env=KEYRING)
    assert first["kept"] is True and first["changed"] is True
    again = migrate(run_cli, "file", "--keep", env=KEYRING)
    assert again["keys"] == [{"name": "a", "result": "unchanged"}]
    assert again["changed"] is False
    assert [k["name"] for k in key_list(run_cli, KEYRING)] == ["a"]
    assert [k["name"] for k in key_list(run_cli, FILE)] == ["a"]


def test_other_material_under_a_name_is_a_conflict_unless_forced(
    run_cli: RunCli, file_settings: Path
) -> None:
    ok(run_cli, "key", "generate", "a", env=KEYRING)
    ok(run_cli, "key", "generate", "b", env=KEYRING)
    ok(run_cli, "key", "generate", "a", env=FILE)  # another key named a
    refused = run_cli("key", "migrate", "--to", "file", env=KEYRING)
    assert refused.returncode == ExitCode.CONFLICT, refused.stderr
    assert b"already has other keys under these names: a" in refused.stderr
    assert [k["name"] for k in key_list(run_cli, FILE)] == ["a"]  # nothing written
    assert len(key_list(run_cli, KEYRING)) == 2  # nothing removed

    keyring_a = key_list(run_cli, KEYRING)[0]["fingerprint"]
    forced = migrate(run_cli, "file", "--force", env=KEYRING)
    assert forced["keys"] == [
        {"name": "a", "result": "replaced"},
        {"name": "b", "result": "created"},
    ]
    assert key_list(run_cli, FILE)[0]["fingerprint"] == keyring_a


def test_human_output_says_which_setting_to_change(run_cli: RunCli) -> None:
    ok(run_cli, "key", "generate", "a", env=KEYRING)
    result = run_cli("key", "migrate", "--to", "file")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "created: key a in the keystore file" in out
    assert "S3VAULT_KEYSTORE_TYPE=file" in out
