"""The OS keyring locked, or its daemon gone, while s3vault needs a key.

On a keyring of these tests' own (a second PrivateKeyring: the session's keyring is
shared by every other test and must stay unlocked and alive). Every case ends in a
clean exit 6 (the keyring did not answer / is locked) with a message that says what
to do, no traceback, no plaintext written and no fallback to a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
import secretstorage
from fault_helpers import assert_clean_failure, leftovers
from jeepney.io.blocking import open_dbus_connection

from s3vault.embedded.keyring_session import PrivateKeyring
from s3vault.errors import ExitCode


@pytest.fixture
def own_keyring(session_env) -> Iterator[PrivateKeyring]:
    parent = tempfile.mkdtemp(prefix="s3vk-")
    with PrivateKeyring(parent) as keyring:
        yield keyring
    os.rmdir(parent)


def _lock_default_collection(address: str) -> None:
    """org.freedesktop.Secret.Service.Lock on the default collection, over D-Bus."""
    conn = open_dbus_connection(bus=address)
    try:
        collection = secretstorage.get_default_collection(conn)
        collection.lock()
        assert collection.is_locked()
    finally:
        conn.close()


def test_a_locked_or_dead_keyring_is_a_clean_exit_6_with_no_plaintext(
    own_keyring, run_cli, bucket, tmp_path, reliability
):
    env = own_keyring.env()
    assert run_cli("key", "generate", "k1", env=env).returncode == 0
    data = os.urandom(40_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    assert run_cli("put", str(src), f"s3://{bucket}/o", "--key", "k1", env=env).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    home = os.environ["HOME"]
    files_before = sorted(os.listdir(home))

    _lock_default_collection(own_keyring.address)
    r = run_cli("get", f"s3://{bucket}/o", str(out / "o.bin"), env=env)
    err = assert_clean_failure(r, ExitCode.UNREACHABLE)
    assert "locked" in err and "Unlock" in err
    assert leftovers(out) == []
    r = run_cli("put", str(src), f"s3://{bucket}/o2", "--key", "k1", env=env)
    assert_clean_failure(r, ExitCode.UNREACHABLE)
    reliability.fault("keyring locked", 2)

    pid = own_keyring.daemon_pid
    assert pid is not None
    os.kill(pid, 9)  # the daemon gone mid-session: its bus stays, nobody answers
    r = run_cli("get", f"s3://{bucket}/o", str(out / "o.bin"), env=env)
    err = assert_clean_failure(r, ExitCode.UNREACHABLE)
    assert "keyring" in err
    assert leftovers(out) == []
    r = run_cli("key", "generate", "k2", env=env)
    assert_clean_failure(r, ExitCode.UNREACHABLE)
    # No plaintext fallback: nothing new appeared where a file keyring would go.
    assert sorted(os.listdir(home)) == files_before
    assert "keyrings.alt" not in r.stderr.decode()
    reliability.fault("keyring daemon gone", 2)
