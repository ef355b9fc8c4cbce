"""Key-store writes are serialised across processes: parallel `key` commands lose nothing.

Before the lock file, 12 `key generate` at once left most keys out of `key list` (each
process read the index, added its key and wrote the index back over the others').
Both stores are run for real: the session's gnome-keyring and the encrypted file.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess

import platformdirs
import pytest
from cli_run import RunCli

from s3vault.config.load import load_config
from s3vault.errors import KeyMissingError
from s3vault.keys.file_storage import FileStorage
from s3vault.keys.lock import keyring_lock_path
from s3vault.keys.material import generate_key
from s3vault.keys.open import keystore_from_config
from s3vault.keys.passphrase import PassphraseSource
from s3vault.keys.store import KeyStore

PROCESSES = 12
PASSPHRASE_VARIABLE = "S3VAULT_TEST_PASSPHRASE"


def file_store_env(path: Path) -> dict[str, str]:
    return {
        "S3VAULT_KEYSTORE_TYPE": "file",
        "S3VAULT_KEYSTORE_PATH": str(path),
        "S3VAULT_KEYSTORE_PASSPHRASE_ENV": PASSPHRASE_VARIABLE,
        PASSPHRASE_VARIABLE: "correct horse battery staple",
    }


@pytest.fixture(params=["keyring", "file"])
def store(
    request: pytest.FixtureRequest,
    keyring_service: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> KeyStore:
    """The store the CLI uses in this test (its environment is set for `run_cli` too)."""
    if request.param == "file":
        for name, value in file_store_env(tmp_path / "keys" / "keystore").items():
            monkeypatch.setenv(name, value)
    return keystore_from_config(load_config())


def in_parallel(
    jobs: list[tuple[str, ...]], run: Callable[..., CompletedProcess[bytes]]
) -> list[CompletedProcess[bytes]]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(lambda args: run(*args), jobs))


def listed(run_cli: RunCli) -> list[str]:
    result = run_cli("key", "list", "--json")
    assert result.returncode == 0, result.stderr
    return sorted(info["name"] for info in json.loads(result.stdout))


def test_parallel_generates_and_deletes_lose_no_update(run_cli: RunCli, store: KeyStore) -> None:
    names = [f"k{i:02d}" for i in range(PROCESSES)]
    results = in_parallel([("key", "generate", name, "--json") for name in names], run_cli)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr for r in results]
    assert listed(run_cli) == names

    # Deletes of half the keys and generates of as many new ones, all at once.
    gone, kept = names[: PROCESSES // 2], names[PROCESSES // 2 :]
    fresh = [f"n{i:02d}" for i in range(PROCESSES // 2)]
    jobs = [("key", "delete", name, "--yes") for name in gone]
    jobs += [("key", "generate", name) for name in fresh]
    results = in_parallel(jobs, run_cli)
    assert [r.returncode for r in results] == [0] * len(jobs), [r.stderr for r in results]
    assert listed(run_cli) == sorted(kept + fresh)
    for name in gone:  # the secret went too, not only the index entry
        with pytest.raises(KeyMissingError):
            store.get(name)
    assert all(store.get(name).name == name for name in kept + fresh)


def test_threads_of_one_process_lose_no_update_on_the_file_store(tmp_path: Path) -> None:
    """The lock excludes threads too (the desktop app writes from worker threads)."""
    source = PassphraseSource(env="PW", environ={"PW": "threads"})
    store = KeyStore(storage=FileStorage(tmp_path / "keystore", source))
    keys = [generate_key(f"t{i}", "aes256") for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(store.put, keys)) == {"created"}
    assert store.names() == sorted(key.name for key in keys)


def test_lock_files_are_private(run_cli: RunCli, keyring_service: str, tmp_path: Path) -> None:
    assert run_cli("key", "generate", "a").returncode == 0
    lock = keyring_lock_path(keyring_service)
    assert lock.parent == Path(platformdirs.user_state_dir("s3vault")) / "locks"
    assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600

    keystore = tmp_path / "keys" / "keystore"
    assert run_cli("key", "generate", "a", env=file_store_env(keystore)).returncode == 0
    beside = keystore.with_name("keystore.lock")
    assert stat.S_IMODE(beside.stat().st_mode) == 0o600


def test_odd_service_names_get_distinct_lock_files() -> None:
    assert keyring_lock_path("a/b") != keyring_lock_path("a_b")
    assert "/" not in keyring_lock_path("../../etc/x").name
