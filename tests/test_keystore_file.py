"""The file keystore: one passphrase-encrypted file for machines without a Secret Service.

In-process tests use `FileStorage` directly (no service); CLI tests run `s3vault` with
``S3VAULT_KEYSTORE_*`` variables, the passphrase always in the environment or a file,
never in argv.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import RunCli
from cryptography.hazmat.primitives import serialization

from s3vault.config.model import KeystoreSettings
from s3vault.errors import ConfigError, ExitCode, IntegrityError
from s3vault.keys.file_storage import FileStorage
from s3vault.keys.material import AesKey, RsaKey, generate_key
from s3vault.keys.passphrase import PassphraseSource
from s3vault.keys.sealed_file import WrongPassphraseError
from s3vault.keys.store import KeyStore

PASSPHRASE = "correct horse battery staple"
VARIABLE = "S3VAULT_TEST_PASSPHRASE"


def open_store(path: Path, passphrase: str = PASSPHRASE, variable: str = "PW") -> KeyStore:
    """The store at ``path``. A process reads a source's passphrase once per file: a
    test that changes the passphrase names another ``variable``."""
    source = PassphraseSource(env=variable, environ={variable: passphrase})
    return KeyStore(storage=FileStorage(path, source))


@pytest.fixture
def file_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI (run_cli) uses a file keystore under tmp_path; its path."""
    path = tmp_path / "private" / "keystore"
    monkeypatch.setenv("S3VAULT_KEYSTORE_TYPE", "file")
    monkeypatch.setenv("S3VAULT_KEYSTORE_PATH", str(path))
    monkeypatch.setenv("S3VAULT_KEYSTORE_PASSPHRASE_ENV", VARIABLE)
    monkeypatch.setenv(VARIABLE, PASSPHRASE)
    return path


# --- the file ----------------------------------------------------------------------


def test_keys_round_trip_and_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "keystore"
    store = open_store(path)
    assert store.names() == []  # no file yet: empty, nothing created
    assert not path.exists()
    aes = generate_key("aes", "aes256")
    assert store.put(aes) == "created"
    assert store.put(aes) == "unchanged"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    again = open_store(path)  # another store object (the derived key is cached, by salt)
    assert again.current() == "aes"
    got = again.get("aes")
    assert isinstance(got, AesKey) and got.secret == aes.secret  # type: ignore[union-attr]
    assert "the keystore file" in again.where


def test_the_file_holds_no_key_material_in_any_encoding(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    store = open_store(path)
    aes = generate_key("aes", "aes256")
    rsa = generate_key("rsa", "rsa2048")
    assert isinstance(aes, AesKey) and isinstance(rsa, RsaKey)
    store.put(aes)
    store.put(rsa)
    data = path.read_bytes()

    der = rsa.pkcs8_der()
    pem = rsa.private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    secrets = [aes.secret, der[40:72], der[-32:]]  # the AES key, slices of the RSA key
    forms: list[bytes] = []
    for secret in secrets:
        forms += [secret, secret.hex().encode(), secret.hex().upper().encode()]
    for whole in (aes.secret, der):
        encoded = base64.b64encode(whole)
        forms += [encoded[:40], encoded[-40:]]  # aligned at the start and at the end
        forms.append(base64.urlsafe_b64encode(whole)[:40])
    pem_lines = pem.decode().splitlines()
    forms += [b"PRIVATE KEY", pem_lines[3].encode(), pem_lines[-3].encode()]
    found = [form for form in forms if form in data]
    assert found == []
    # What the file does say: its format, the KDF and its parameters (nothing secret).
    header = json.loads(data.split(b"\n", 1)[0])
    assert header["format"] == "s3vault-keystore"
    assert header["kdf"]["name"] == "argon2id"
    assert header["cipher"] == "AES-256-GCM"


def test_every_write_uses_a_fresh_nonce(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    store = open_store(path)
    store.put(generate_key("a", "aes256"))
    first = json.loads(path.read_bytes().split(b"\n", 1)[0])["nonce"]
    store.put(generate_key("b", "aes256"))
    second = json.loads(path.read_bytes().split(b"\n", 1)[0])["nonce"]
    assert first != second


def test_a_wrong_passphrase_is_refused_and_a_damaged_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    open_store(path).put(generate_key("a", "aes256"))
    with pytest.raises(WrongPassphraseError) as wrong:
        open_store(path, "not the passphrase", variable="OTHER").names()
    assert wrong.value.exit_code == ExitCode.KEY_MISSING

    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # one bit of the ciphertext
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="is damaged: its content does not authenticate"):
        open_store(path).names()
    path.write_bytes(bytes(data[:30]))  # truncated inside the header
    with pytest.raises(IntegrityError, match="is damaged: its header is unreadable"):
        open_store(path).names()


def test_an_edited_header_does_not_authenticate(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    open_store(path).put(generate_key("a", "aes256"))
    header, rest = path.read_bytes().split(b"\n", 1)
    fields = json.loads(header)
    fields["cipher"] = "AES-256-GCM "  # bound as associated data
    path.write_bytes(json.dumps(fields).encode() + b"\n" + rest)
    with pytest.raises(IntegrityError, match="damaged"):
        open_store(path).names()


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        open_store(tmp_path / "keystore", "").put(generate_key("a", "aes256"))
    assert not (tmp_path / "keystore").exists()


WRITER = """
import sys
from pathlib import Path
from s3vault.keys.file_storage import FileStorage
from s3vault.keys.material import generate_key
from s3vault.keys.passphrase import PassphraseSource
from s3vault.keys.store import KeyStore

store = KeyStore(storage=FileStorage(Path(sys.argv[1]), PassphraseSource(env="PW")))
keys = [generate_key(f"k{i}", "rsa2048" if i == 0 else "aes256") for i in range(6)]
print("ready", flush=True)
i = 0
while True:
    key = keys[i % len(keys)]
    if key.name in store.names():
        store.delete(key.name)
    else:
        store.put(key)
    i += 1
"""


def test_a_writer_killed_at_any_time_leaves_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    open_store(path).put(generate_key("base", "aes256"))
    env = {**os.environ, "PW": PASSPHRASE}
    chooser = random.Random(11)
    seen: set[tuple[str, ...]] = set()
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        try:
            child.wait(timeout=chooser.uniform(0.05, 0.6))
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        child.stdout.close()
        store = open_store(path)  # opens: the old content or the new, never a mix
        names = store.names()
        assert "base" in names
        for name in names:  # every listed key is whole
            assert store.get(name).name == name
        seen.add(tuple(names))
    assert len(seen) > 1, "the writer never got to change the file"
    open_store(path).put(generate_key("after", "aes256"))  # and a stray temp file goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keystore", "keystore.lock"]


# --- passphrase sources ---------------------------------------------------------------


def test_each_passphrase_source_opens_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    open_store(path).put(generate_key("a", "aes256"))

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "s3vault-passphrase").write_text(PASSPHRASE + "\n")  # newline stripped
    by_file = PassphraseSource(
        file=Path("s3vault-passphrase"), environ={"CREDENTIALS_DIRECTORY": str(credentials)}
    )
    script = tmp_path / "print-passphrase"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{PASSPHRASE}'\n")
    script.chmod(0o700)
    by_command = PassphraseSource(command=f"{script} --unused-argument")
    by_prompt = PassphraseSource(ask=lambda prompt, new: PASSPHRASE)
    for source in (by_file, by_command, by_prompt):
        assert KeyStore(storage=FileStorage(path, source)).names() == ["a"]


def test_passphrase_source_failures_are_clear(tmp_path: Path) -> None:
    where = "the keystore file X"
    with pytest.raises(ConfigError, match="failed with exit status 1"):
        PassphraseSource(command="false").read(where=where, new=False)
    with pytest.raises(ConfigError, match="cannot be run"):
        PassphraseSource(command=str(tmp_path / "missing")).read(where=where, new=False)
    with pytest.raises(ConfigError, match=r"NOT_SET.*is not set"):
        PassphraseSource(env="NOT_SET", environ={}).read(where=where, new=False)
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        PassphraseSource(file=Path("absent"), environ={}).read(where=where, new=False)
    with pytest.raises(ConfigError) as none:
        PassphraseSource(ask=lambda prompt, new: None).read(where=where, new=True)
    for setting in ("passphrase_env", "passphrase_file", "passphrase_command"):
        assert setting in str(none.value)


def test_at_most_one_passphrase_source_is_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most one passphrase source"):
        KeystoreSettings(type="file", passphrase_env="A", passphrase_command="cat x")
    settings = KeystoreSettings(type="file")
    assert settings.file_path().name == "keystore"


# --- the CLI --------------------------------------------------------------------------


def test_cli_wrong_passphrase_is_exit_5_without_a_traceback(
    run_cli: RunCli, file_env: Path
) -> None:
    assert run_cli("key", "generate", "a").returncode == 0
    result = run_cli("key", "list", env={VARIABLE: "a wrong passphrase"})
    stderr = result.stderr.decode()
    assert result.returncode == ExitCode.KEY_MISSING, stderr
    assert f"the passphrase does not open the keystore file {file_env}" in stderr
    assert "Traceback" not in stderr and "a wrong passphrase" not in stderr


def test_cli_damaged_file_is_exit_4(run_cli: RunCli, file_env: Path) -> None:
    assert run_cli("key", "generate", "a").returncode == 0
    file_env.write_bytes(file_env.read_bytes()[:-1])
    result = run_cli("key", "list")
    assert result.returncode == ExitCode.INTEGRITY, result.stderr
    assert b"is damaged" in result.stderr


def test_cli_passphrase_command_failure_is_a_clean_error(run_cli: RunCli, file_env: Path) -> None:
    result = run_cli(
        "key",
        "generate",
        "a",
        env={
            "S3VAULT_KEYSTORE_PASSPHRASE_ENV": None,
            "S3VAULT_KEYSTORE_PASSPHRASE_COMMAND": "false",
        },
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert b"the passphrase command false" in result.stderr
    assert b"Traceback" not in result.stderr
    assert not file_env.exists()


def test_cli_without_a_passphrase_source_or_terminal_names_the_settings(
    run_cli: RunCli, file_env: Path
) -> None:
    result = run_cli("key", "generate", "a", env={"S3VAULT_KEYSTORE_PASSPHRASE_ENV": None})
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert b"keystore.passphrase_file" in result.stderr
    assert b"keystore.passphrase_command" in result.stderr


def test_cli_put_get_and_sync_work_on_the_file_store(
    run_cli: RunCli, file_env: Path, bucket: str, tmp_path: Path
) -> None:
    assert run_cli("key", "generate", "laptop").returncode == 0
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"kept in a file keystore\n")
    assert run_cli("put", plain, f"s3://{bucket}/one.txt").returncode == 0
    result = run_cli("get", f"s3://{bucket}/one.txt", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.read_bytes()

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"a")
    (folder / "sub" / "b.txt").write_bytes(b"b" * 1000)
    result = run_cli("sync", folder, f"s3://{bucket}/synced", "--json")
    assert result.returncode == 0, result.stderr
    got = run_cli("get", f"s3://{bucket}/synced/sub/b.txt", "-")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"b" * 1000
    info = run_cli("inspect", f"s3://{bucket}/synced/a.txt", "--json")
    assert info.returncode == 0, info.stderr
    assert "laptop" in info.stdout.decode()
