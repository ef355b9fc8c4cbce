"""Start-up: the quick commands import only what they need (bench/bench_startup.py times them).

Each case runs a command in a fresh interpreter and looks at `sys.modules` afterwards:
assertions on which modules were loaded, never on time. A regression (a module-level
import of boto3 in a module `key list` reaches, a package `__init__` that re-exports a
heavy module) fails here with the module's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from s3vault.cli.main import COMMANDS, cli
from s3vault.errors import ExitCode
from s3vault.keys import backend as keys_backend
from s3vault.keys.backend import keyring_config_file, secret_service_backend
from s3vault.keys.secret_service import SecretServiceKeyring

# Loads the CLI, runs one command in-process, prints the loaded modules (stdout: JSON
# on its last line; the command's own output comes before).
_PROBE = """
import json, sys
from s3vault.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

HEAVY = {"boto3", "botocore", "s3transfer", "obstore", "PySide6", "watchdog", "sqlite3"}


def loaded(*args: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    """The exit code of ``s3vault ARGS`` and the top-level packages it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        check=True,
        timeout=120,
    )
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return report["code"], {name.split(".")[0] for name in report["modules"]} | set(
        report["modules"]
    )


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    code, modules = loaded("--help")
    assert code in (0, None)
    assert not modules & (HEAVY | {"pydantic", "keyring", "cryptography", "yaml"})
    assert not {m for m in modules if m.startswith("s3vault.cli.") and "commands" in m}


def test_status_without_an_agent_imports_no_config_keys_or_s3(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    code, modules = loaded("status", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert code == ExitCode.UNREACHABLE  # no agent: the documented exit code
    assert not modules & (HEAVY | {"pydantic", "keyring", "cryptography", "yaml"})
    assert "s3vault.keys" not in modules and "s3vault.vault" not in modules


def test_key_list_on_the_keyring_imports_neither_s3_nor_the_keyring_library(
    keyring_service: str, session_env: dict[str, str]
) -> None:
    code, modules = loaded(
        "key", "list", "--json", env={"S3VAULT_KEYRING_SERVICE": keyring_service}
    )
    assert code in (0, None)
    # The Secret Service is reached through secretstorage, without keyring's discovery.
    assert "secretstorage" in modules
    assert not modules & (HEAVY | {"keyring", "filelock"})
    assert "s3vault.vault" not in modules and "s3vault.keys.provider" not in modules


def test_key_list_on_the_file_keystore_imports_no_s3_and_no_keyring(tmp_path: Path) -> None:
    code, modules = loaded(
        "key",
        "list",
        env={"S3VAULT_KEYSTORE_TYPE": "file", "S3VAULT_KEYSTORE_PATH": str(tmp_path / "ks")},
    )
    assert code in (0, None)  # no file yet: no keys, no passphrase needed
    assert not modules & (HEAVY | {"keyring", "secretstorage", "jeepney"})


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_summary_of_each_command_is_its_own(name: str) -> None:
    """`s3vault --help` lists COMMANDS' summaries without importing the commands: they
    must say what the commands themselves say."""
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and not command.hidden
    assert COMMANDS[name].summary == command.get_short_help_str(limit=10_000)


# --- choosing the Secret Service without keyring's discovery ---------------------------


@pytest.mark.parametrize("xdg", [True, False])
def test_keyring_config_file_is_where_keyring_reads_it(
    xdg: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.util import platform_

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    else:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert keyring_config_file() == Path(platform_.config_root()) / "keyringrc.cfg"


@pytest.mark.services  # a Secret Service on the session bus
@pytest.mark.parametrize(
    "choice", ["PYTHON_KEYRING_BACKEND", "KEYRING_PROPERTY_SCHEME", "config file", "none"]
)
def test_a_keyring_backend_the_user_chose_is_not_bypassed(
    choice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    if "keyring.core" in sys.modules:  # a backend another test made keyring choose
        monkeypatch.setattr(sys.modules["keyring.core"], "_keyring_backend", None)
    if choice == "config file":
        keyring_config_file().parent.mkdir(parents=True)
        keyring_config_file().write_text(
            "[backend]\ndefault-keyring=keyring.backends.null.Keyring\n"
        )
    elif choice != "none":
        monkeypatch.setenv(choice, "keyring.backends.null.Keyring")
    chosen = secret_service_backend()
    if choice == "none":
        assert isinstance(chosen, SecretServiceKeyring)
    else:
        assert chosen is None  # keyring's own choice decides (and plaintext is refused)


def test_no_secret_service_on_the_bus_leaves_the_choice_to_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    assert keys_backend.secret_service_backend() is None


@pytest.mark.services
def test_our_items_have_the_attributes_keyrings_backend_gives_them(keyring_service: str) -> None:
    """Entries written before (by keyring's own backend) and after must be the same."""
    ours = SecretServiceKeyring()
    ours.set_password(keyring_service, "compat", "value")
    collection = ours.get_preferred_collection()
    [item] = collection.search_items({"service": keyring_service, "username": "compat"})
    # What keyring.backends.SecretService.Keyring.set_password stores (secretstorage
    # adds the xdg:schema attribute to both).
    attributes = item.get_attributes()
    attributes.pop("xdg:schema", None)
    assert attributes == {
        "service": keyring_service,
        "username": "compat",
        "application": "Python keyring library",
    }
    assert item.get_label() == f"Password for 'compat' on '{keyring_service}'"
    # And an item made as keyring makes it is read by ours.
    collection.create_item(
        "Password for 'made' on 'x'",
        {"service": keyring_service, "username": "made", "application": "Python keyring library"},
        b"secret",
    )
    assert ours.get_password(keyring_service, "made") == "secret"
    ours.delete_password(keyring_service, "made")
    ours.delete_password(keyring_service, "compat")
    assert ours.get_password(keyring_service, "compat") is None
