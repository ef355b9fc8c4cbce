"""KeyStore against the session's real gnome-keyring (Secret Service over D-Bus)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keyring
import pytest
from cryptography.hazmat.primitives import serialization
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from services import bus_connections

from s3vault.embedded.keyring_session import PrivateKeyring
from s3vault.errors import (
    ConflictError,
    ExitCode,
    IntegrityError,
    KeyMissingError,
    KeyringUnavailableError,
    RefusedError,
    UsageError,
)
from s3vault.keys.backend import usable_backend
from s3vault.keys.keyring_storage import PART_CHARS
from s3vault.keys.material import (
    AesKey,
    KmsKey,
    RsaKey,
    generate_key,
    parse_aes,
    parse_rsa,
    validate_name,
)
from s3vault.keys.secret_service import SecretServiceKeyring
from s3vault.keys.store import INDEX, KeyStore


@pytest.fixture(scope="module")
def rsa4096() -> RsaKey:
    key = generate_key("big", "rsa4096")
    assert isinstance(key, RsaKey)
    return key


@pytest.fixture(scope="module")
def rsa2048() -> RsaKey:
    key = generate_key("rsa", "rsa2048")
    assert isinstance(key, RsaKey)
    return key


@pytest.fixture
def store(keyring_service: str) -> KeyStore:
    return KeyStore(keyring_service)


def entries(service: str) -> list[str]:
    """Every keyring entry (its username) under ``service``, read with secretstorage
    (on the store's kept connection: a new one may crash gnome-keyring 42)."""
    collection = SecretServiceKeyring().get_preferred_collection()
    items = collection.search_items({"service": service})
    return sorted(item.get_attributes()["username"] for item in items)


def test_the_session_keyring_is_a_real_secret_service(store: KeyStore) -> None:
    # Ours (keys/secret_service.py), chosen without keyring's backend discovery.
    assert isinstance(store.backend, SecretServiceKeyring)
    store.put(AesKey("real", os.urandom(32)))
    assert "real" in entries(store.service)  # an item of the Secret Service itself


def test_the_store_keeps_one_connection_to_the_secret_service(
    keyring_service: str, private_keyring: PrivateKeyring
) -> None:
    # keyring's own backend opens a D-Bus connection per call, each a new client of
    # gnome-keyring, which version 42 may crash on (s3vault/keys/secret_service.py).
    address = private_keyring.address or ""
    first = KeyStore(keyring_service)
    for i in range(10):
        first.put(AesKey(f"conn-{i}", os.urandom(32)))
    # Several stores, as a process makes them; choosing the backend is done once each.
    stores = [KeyStore(keyring_service) for _ in range(8)]
    assert all(isinstance(s.backend, SecretServiceKeyring) for s in stores)
    before = bus_connections(address)
    assert before is not None

    def read(n: int) -> None:
        for i in range(20):
            name = f"conn-{(n + i) % 10}"
            assert stores[n].get(name).name == name

    # Reads from many threads, as a bulk rotation's or the sync engine's workers do.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, range(8)))
    after = bus_connections(address)
    assert after is not None
    # 160 reads, and no new connection: only the one that counted.
    assert after - before == 1


_CHOOSE_WHILE_READING = """
import sys, threading
from s3vault.keys.secret_service import SecretServiceKeyring
from s3vault.keys.store import KeyStore

service = sys.argv[1]
reader = KeyStore(service)
reader.get("probe")  # its backend chosen: it reads while the others choose
done = threading.Event()
reads = []

def keep_reading():
    while not done.is_set():
        reads.append(reader.get("probe").name)

def choose():
    for _ in range(200):
        assert isinstance(KeyStore(service).backend, SecretServiceKeyring)

threads = [threading.Thread(target=f, daemon=True) for f in (keep_reading, choose)]
for t in threads:
    t.start()
threads[1].join(timeout=20)
done.set()
threads[0].join(timeout=20)
assert "keyring" not in sys.modules  # the quick path, not keyring's discovery
print("hung" if any(t.is_alive() for t in threads) else f"ok {len(reads)} {set(reads)}")
"""


def test_stores_choosing_their_backend_while_others_read_never_cross_replies(
    keyring_service: str,
) -> None:
    # Choosing the backend probes the Secret Service over the process's one D-Bus
    # connection; done outside the lock that serialises calls, a probe and another
    # thread's read shared the connection, a reply went to the wrong thread and both
    # waited forever (a sync of a few files hung). A fresh process, as the CLI is:
    # one that imported `keyring` chooses through keyring instead.
    KeyStore(keyring_service).put(AesKey("probe", os.urandom(32)))
    r = subprocess.run(
        [sys.executable, "-c", _CHOOSE_WHILE_READING, keyring_service],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr
    verdict, count, names = r.stdout.split(maxsplit=2)
    assert verdict == "ok", "a keyring call never returned"
    assert int(count) > 0 and names.strip() == "{'probe'}"


def test_a_lost_connection_is_made_again(store: KeyStore) -> None:
    store.put(AesKey("before", os.urandom(32)))
    address = os.environ["DBUS_SESSION_BUS_ADDRESS"]
    SecretServiceKeyring._connections[address].close()  # as when the daemon restarts
    with pytest.raises(KeyringUnavailableError):
        store.get("before")
    # The failed call dropped the broken connection: the next one opens a new one.
    assert store.get("before").name == "before"


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 24, 32])
def test_aes_round_trip(store: KeyStore, size: int) -> None:
    key = AesKey("aes", os.urandom(size))
    assert store.put(key) == "created"
    got = store.get("aes")
    assert isinstance(got, AesKey)
    assert got.secret == key.secret
    assert got.bits == size * 8


def test_rsa_round_trip(store: KeyStore, rsa2048: RsaKey) -> None:
    assert store.put(rsa2048) == "created"
    got = store.get("rsa")
    assert isinstance(got, RsaKey)
    assert got.pkcs8_der() == rsa2048.pkcs8_der()
    assert got.bits == 2048
    # An RSA-2048 record (~1.7 KB) is already over one entry's limit.
    assert entries(store.service) == [INDEX, "rsa", "rsa#a1", "rsa#a2"]


def test_rsa_4096_is_split_into_parts_and_joined(store: KeyStore, rsa4096: RsaKey) -> None:
    assert store.put(rsa4096) == "created"
    names = entries(store.service)
    parts = [n for n in names if n.startswith("big#")]
    assert len(parts) >= 3
    for name in [*parts, "big", INDEX]:
        # Each entry fits the Windows credential limit of 1,280 UTF-16 characters.
        value = keyring.get_password(store.service, name)
        assert value is not None
        assert len(value) <= PART_CHARS
    head = json.loads(keyring.get_password(store.service, "big") or "")
    assert head["parts"] == len(parts)
    got = store.get("big")
    assert isinstance(got, RsaKey)
    assert got.pkcs8_der() == rsa4096.pkcs8_der()
    assert got.bits == 4096


def test_kms_round_trip(store: KeyStore) -> None:
    arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert store.put(KmsKey("prod", arn)) == "created"
    got = store.get("prod")
    assert got == KmsKey("prod", arn)
    [info] = store.list()
    assert (info.type, info.key_id, info.bits) == ("kms", arn, None)


def test_secrets_never_in_repr(vectors_dir: Path) -> None:
    aes = AesKey("a", b"\x11" * 32)
    assert "secret" not in repr(aes)
    assert "11" * 4 not in repr(aes)
    rsa = parse_rsa("r", (vectors_dir / "keys/rsa2048-a.pem").read_bytes())
    assert "PRIVATE" not in repr(rsa)
    assert repr(rsa) == "RsaKey(name='r')"


# --- idempotence, conflicts, force ---------------------------------------------------


def test_put_same_material_is_unchanged(store: KeyStore) -> None:
    key = AesKey("k", os.urandom(32))
    assert store.put(key) == "created"
    created = store.list()[0].created
    before = {n: keyring.get_password(store.service, n) for n in entries(store.service)}
    assert store.put(AesKey("k", key.secret)) == "unchanged"
    after = {n: keyring.get_password(store.service, n) for n in entries(store.service)}
    assert before == after  # nothing was rewritten
    assert store.list()[0].created == created


def test_rsa_pkcs1_and_pkcs8_of_one_key_are_the_same_key(store: KeyStore, rsa2048: RsaKey) -> None:
    pkcs1 = rsa2048.private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert b"BEGIN RSA PRIVATE KEY" in pkcs1
    assert store.put(parse_rsa("rsa", pkcs1)) == "created"
    assert store.put(rsa2048) == "unchanged"


def test_other_material_under_a_taken_name_is_a_conflict(store: KeyStore) -> None:
    first = AesKey("k", os.urandom(32))
    second = AesKey("k", os.urandom(32))
    store.put(first)
    with pytest.raises(ConflictError) as raised:
        store.put(second)
    assert raised.value.exit_code == ExitCode.CONFLICT
    assert second.secret.hex() not in str(raised.value)
    assert store.get("k") == first
    assert store.put(second, force=True) == "replaced"
    assert store.get("k") == second
    # Another type under the same name is other material too.
    with pytest.raises(ConflictError):
        store.put(KmsKey("k", "alias/x"))


def test_replacing_a_split_key_leaves_no_stale_parts(
    store: KeyStore, rsa4096: RsaKey, rsa2048: RsaKey
) -> None:
    def parts() -> list[str]:
        return [n for n in entries(store.service) if n.startswith("big#")]

    store.put(rsa4096)
    assert parts() == ["big#a1", "big#a2", "big#a3", "big#a4"]
    # The new parts go to the other slot; the old slot is cleared after the switch.
    assert store.put(RsaKey("big", rsa2048.private_pem), force=True) == "replaced"
    assert parts() == ["big#b1", "big#b2"]
    assert store.put(AesKey("big", os.urandom(32)), force=True) == "replaced"
    assert parts() == []
    assert store.put(rsa4096, force=True) == "replaced"
    assert store.put(RsaKey("big", rsa4096.private_pem)) == "unchanged"
    assert parts() == ["big#a1", "big#a2", "big#a3", "big#a4"]
    got = store.get("big")
    assert isinstance(got, RsaKey)
    assert got.pkcs8_der() == rsa4096.pkcs8_der()


# --- delete, index, current ----------------------------------------------------------


def test_delete_removes_every_entry(store: KeyStore, rsa4096: RsaKey) -> None:
    store.put(rsa4096)
    store.put(AesKey("small", os.urandom(32)))
    store.delete("big")
    assert entries(store.service) == [INDEX, "small"]
    assert store.names() == ["small"]
    with pytest.raises(KeyMissingError) as raised:
        store.get("big")
    assert "s3vault key list" in (raised.value.hint or "")
    with pytest.raises(KeyMissingError):
        store.delete("big")


def test_index_lists_keys_without_reading_secrets(store: KeyStore, rsa2048: RsaKey) -> None:
    aes = AesKey("b-aes", os.urandom(16))
    store.put(aes)
    store.put(rsa2048)
    store.put(KmsKey("a-kms", "alias/s3vault"))
    infos = {info.name: info for info in store.list()}
    assert store.names() == ["a-kms", "b-aes", "rsa"]
    assert infos["b-aes"].fingerprint == aes.fingerprint
    assert infos["b-aes"].bits == 128
    assert infos["rsa"].fingerprint == rsa2048.fingerprint
    assert infos["a-kms"].key_id == "alias/s3vault"
    index = keyring.get_password(store.service, INDEX) or ""
    assert aes.secret.hex() not in index
    assert json.loads(index)["keys"]["b-aes"]["type"] == "aes"


def test_first_key_becomes_current_and_use_changes_it(store: KeyStore) -> None:
    assert store.current() is None
    store.put(AesKey("one", os.urandom(32)))
    store.put(AesKey("two", os.urandom(32)))
    assert store.current() == "one"
    store.set_current("two")
    assert store.current() == "two"
    assert [i.name for i in store.list() if i.current] == ["two"]
    with pytest.raises(KeyMissingError):
        store.set_current("three")
    store.delete("two")
    assert store.current() is None  # never a silent switch to another key


def test_index_is_repaired_by_putting_the_same_key(store: KeyStore) -> None:
    key = AesKey("k", os.urandom(32))
    store.put(key)
    keyring.delete_password(store.service, INDEX)  # as if a write was interrupted
    assert store.names() == []
    assert store.get("k") == key  # the key itself is intact
    assert store.put(key) == "unchanged"
    assert store.names() == ["k"]
    assert store.current() == "k"


def test_a_large_index_is_split_too(store: KeyStore) -> None:
    for i in range(10):
        store.put(KmsKey(f"kms-key-number-{i:02}", f"alias/a-fairly-long-alias-name-{i:02}"))
    index_parts = [n for n in entries(store.service) if n.startswith(f"{INDEX}#")]
    assert index_parts
    assert len(store.list()) == 10
    for i in range(10):
        store.delete(f"kms-key-number-{i:02}")
    assert entries(store.service) == [INDEX]


# --- damage ---------------------------------------------------------------------------


def test_a_missing_part_is_detected(store: KeyStore, rsa4096: RsaKey) -> None:
    store.put(rsa4096)
    part = sorted(n for n in entries(store.service) if n.startswith("big#"))[1]
    keyring.delete_password(store.service, part)
    with pytest.raises(IntegrityError) as raised:
        store.get("big")
    assert "part 2 of" in raised.value.message
    assert "missing" in raised.value.message
    # Not silently overwritten without --force; replaced with it.
    with pytest.raises(IntegrityError):
        store.put(rsa4096)
    assert store.put(rsa4096, force=True) == "replaced"
    got = store.get("big")
    assert isinstance(got, RsaKey)
    assert got.pkcs8_der() == rsa4096.pkcs8_der()


def test_an_altered_part_is_detected(store: KeyStore, rsa4096: RsaKey) -> None:
    store.put(rsa4096)
    part = sorted(n for n in entries(store.service) if n.startswith("big#"))[0]
    text = keyring.get_password(store.service, part) or ""
    keyring.set_password(store.service, part, text[:-1] + ("A" if text[-1] != "A" else "B"))
    with pytest.raises(IntegrityError) as raised:
        store.get("big")
    assert "checksum" in raised.value.message
    store.delete("big")
    assert entries(store.service) == [INDEX]


def test_a_garbled_entry_is_an_integrity_error_without_its_content(store: KeyStore) -> None:
    keyring.set_password(store.service, "k", '{"v":1,"type":"aes","secret":"c2VjcmV0"}')
    with pytest.raises(IntegrityError) as raised:
        store.get("k")
    assert "c2VjcmV0" not in str(raised.value)


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", ".hidden", "__index__", "a#b", "a/b", "a b", "x" * 65, "é", "kms:alias/x"]
)
def test_invalid_names_are_refused(store: KeyStore, name: str) -> None:
    with pytest.raises(UsageError):
        validate_name(name)
    with pytest.raises(UsageError):
        store.put(KmsKey(name, "alias/x"))
    with pytest.raises(UsageError):
        store.get(name)


@pytest.mark.parametrize("name", ["a", "laptop-2026", "A.b_c-9", "x" * 64, "-dash", "_u"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


# --- key material parsing ---------------------------------------------------------------


def test_aes_input_forms() -> None:
    secret = bytes(range(32))
    other = b"\xfb" * 32  # its base64 has '+' and '/', its urlsafe form '-' and '_'
    b64 = base64.b64encode(secret)
    for data, expected, form in [
        (secret, secret, "raw"),
        (secret.hex().encode() + b"\n", secret, "hex"),
        (secret.hex().upper().encode(), secret, "hex"),
        (b64 + b"\n", secret, "base64"),
        (b"  " + b64[:20] + b"\n " + b64[20:] + b"\r\n", secret, "base64"),
        (base64.b64encode(other), other, "base64"),
        (base64.urlsafe_b64encode(other), other, "base64"),
        (bytes(range(16)).hex().encode(), bytes(range(16)), "hex"),
        (base64.b64encode(bytes(range(24))), bytes(range(24)), "base64"),
    ]:
        key, got_form = parse_aes("k", data)
        assert (key.secret, got_form) == (expected, form)
    for bad in (b"too short", os.urandom(31), b"zz" * 32, base64.b64encode(bytes(20))):
        with pytest.raises(UsageError):
            parse_aes("k", bad)


def test_rsa_input_is_checked() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(RefusedError):
        parse_rsa("r", pem)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(UsageError):
        parse_rsa("r", ec_pem)
    with pytest.raises(UsageError) as raised:
        parse_rsa("r", b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    assert "not a key" not in str(raised.value)
    encrypted = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(UsageError, match="passphrase"):
        parse_rsa("r", encrypted)


def test_fingerprints_do_not_hash_the_raw_aes_secret() -> None:
    import hashlib

    key = AesKey("k", os.urandom(32))
    assert len(key.fingerprint) == 16
    assert key.fingerprint not in hashlib.sha256(key.secret).hexdigest()


# --- refusing what is not an OS keyring ------------------------------------------------


class _FileBackend(KeyringBackend):
    """Stands for any third-party backend (keyrings.alt's files and the like)."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise AssertionError("must not be used")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("must not be used")

    def delete_password(self, service: str, username: str) -> None:
        raise AssertionError("must not be used")


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(), _FileBackend()])
def test_unusable_backends_are_refused(keyring_service: str, backend: KeyringBackend) -> None:
    store = KeyStore(keyring_service, backend=backend)  # building it touches nothing
    with pytest.raises(KeyringUnavailableError) as raised:
        store.names()
    error = raised.value
    assert error.exit_code == ExitCode.UNREACHABLE
    assert "gnome-keyring-daemon --unlock" in (error.hint or "")
    assert "kms" in (error.hint or "").lower()


def test_the_fail_backend_chosen_by_keyring_is_refused(keyring_service: str) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(KeyringUnavailableError, match="no OS keyring service is running"):
            KeyStore(keyring_service).get("k")
    finally:
        keyring.set_keyring(previous)


@pytest.mark.services  # the Secret Service must be on the session bus
def test_a_chainer_is_narrowed_to_the_os_keyring() -> None:
    assert isinstance(usable_backend(chainer.ChainerBackend()), SecretServiceKeyring)


def test_no_dbus_is_a_clear_error(run_cli, tmp_path: Path) -> None:
    empty = tmp_path / "runtime"
    empty.mkdir(mode=0o700)
    result = run_cli(
        "key", "list", env={"DBUS_SESSION_BUS_ADDRESS": None, "XDG_RUNTIME_DIR": str(empty)}
    )
    assert result.returncode == ExitCode.UNREACHABLE, result.stderr
    stderr = result.stderr.decode()
    assert "no OS keyring service is running" in stderr
    assert "gnome-keyring-daemon --unlock" in stderr
    assert "S3VAULT_KEYSTORE_TYPE=file" in stderr  # how to use the file keystore instead
    assert "Traceback" not in stderr


@pytest.mark.services  # a D-Bus session and a gnome-keyring of its own
def test_a_locked_keyring_is_a_clear_error(tmp_path: Path) -> None:
    """A real gnome-keyring that was started but never unlocked (no prompt possible)."""
    home = tmp_path / "home"
    runtime = tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY"}
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_RUNTIME_DIR=str(runtime),
        S3VAULT_KEYRING_SERVICE="s3vault-locked-test",
    )
    script = (
        "gnome-keyring-daemon --start --components=secrets >/dev/null 2>&1; "
        f"exec {sys.executable} -m s3vault key list"
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == ExitCode.UNREACHABLE, stderr
    assert "locked" in stderr
    assert "Traceback" not in stderr
