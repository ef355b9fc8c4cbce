"""`load_key_settings`: the key commands' part of the config, checked like the whole file."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3vault.config.load import load_config, load_key_settings
from s3vault.errors import ConfigError, ExitCode


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        ("", {}),
        ("keyring: {service: team}\n", {}),
        ("keystore: {type: file, path: ~/ks, passphrase_env: PW}\n", {}),
        ("keystore: {type: keyring}\n", {"S3VAULT_KEYSTORE_TYPE": "file"}),
        ("", {"S3VAULT_KEYRING_SERVICE": "bench", "S3VAULT_KEYSTORE_PASSPHRASE_FILE": "pw"}),
    ],
)
def test_the_key_sections_are_those_of_the_whole_config(
    tmp_path: Path, text: str, environ: dict[str, str]
) -> None:
    path = write(tmp_path, text)
    whole = load_config(path, environ)
    keys = load_key_settings(path, environ)
    assert keys.keyring == whole.keyring
    assert keys.keystore == whole.keystore


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        ("keystore: {passphrase_env: A, passphrase_file: b}\n", {}),
        ("keystore: {type: vault}\n", {}),
        ("keyring: {service: 5, colour: red}\n", {}),
        ("keystore: 7\n", {}),
        ("folderz: []\n", {}),
        ("", {"S3VAULT_KEYSTORE_TYPE": "bogus"}),
    ],
)
def test_an_invalid_key_section_is_reported_as_the_whole_config_reports_it(
    tmp_path: Path, text: str, environ: dict[str, str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as whole:
        load_config(path, environ)
    with pytest.raises(ConfigError) as keys:
        load_key_settings(path, environ)
    assert keys.value.exit_code == ExitCode.USAGE
    assert keys.value.message == whole.value.message
    assert keys.value.hint == whole.value.hint


def test_other_sections_are_left_to_the_commands_that_read_them(tmp_path: Path) -> None:
    """The documented trade-off (docs/keys.md): a key command does not check the
    transfer settings; `config validate` and the commands that use them do."""
    path = write(tmp_path, "keyring: {service: team}\ntransfer: {part_size: 1}\n")
    assert load_key_settings(path, {}).keyring.service == "team"
    with pytest.raises(ConfigError, match=r"transfer\.part_size"):
        load_config(path, {})
