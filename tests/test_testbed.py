"""The test bed itself: real SeaweedFS, moto KMS and Secret Service behave as the
other tests assume, and no secret shows up where it must not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import keyring
import keyring.backends.SecretService
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from services import MotoKMS, SessionServices

from s3vault.embedded.keyring_session import PrivateKeyring, keyring_available
from s3vault.embedded.seaweed import LocalS3
from s3vault.keys.backend import usable_backend
from s3vault.keys.secret_service import SecretServiceKeyring

# Some tests here start services of their own rather than using the session's.
pytestmark = pytest.mark.services


def test_s3_signed_put_get_keeps_user_metadata(s3_client, bucket):
    metadata = {"x-amz-key-v2": "d3JhcHBlZA==", "x-amz-matdesc": '{"s3vault-key":"k1"}'}
    s3_client.put_object(Bucket=bucket, Key="dir/a.bin", Body=b"\x00payload\xff", Metadata=metadata)
    got = s3_client.get_object(Bucket=bucket, Key="dir/a.bin")
    assert got["Body"].read() == b"\x00payload\xff"
    assert got["Metadata"] == metadata


def test_s3_refuses_a_wrong_secret(s3, bucket):
    wrong = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key + "x",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as err:
        wrong.list_objects_v2(Bucket=bucket)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_s3_stop_and_start_keep_ports_keys_and_data(s3, s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="kept", Body=b"survives a restart")
    endpoint, keys, old_pid = s3.endpoint_url, (s3.access_key, s3.secret_key), s3.pid

    s3.stop()
    assert s3.pid is None and not s3.running
    assert not list(Path("/tmp").glob(f"seaweedfs-*-{s3.ports.s3}.sock"))
    offline = s3.client(retries={"max_attempts": 1}, connect_timeout=1)
    with pytest.raises(EndpointConnectionError):
        offline.list_buckets()

    s3.start()
    assert (s3.endpoint_url, (s3.access_key, s3.secret_key)) == (endpoint, keys)
    assert s3.pid != old_pid
    # The session's client (made before the outage) works again as it is.
    assert s3_client.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"survives a restart"


def test_local_s3_reuses_credentials_of_its_data_dir(tmp_path):
    with LocalS3(tmp_path / "s3") as first:
        first.create_bucket("persistent")
        first.client().put_object(Bucket="persistent", Key="k", Body=b"v")
        keys = (first.access_key, first.secret_key)
    identities = tmp_path / "s3" / "identities.json"
    assert identities.stat().st_mode & 0o777 == 0o600
    with LocalS3(tmp_path / "s3") as second:
        assert (second.access_key, second.secret_key) == keys
        assert second.client().get_object(Bucket="persistent", Key="k")["Body"].read() == b"v"


def test_kms_encrypts_with_a_context_and_rejects_another(kms_client, kms_key_id):
    context = {"s3vault": "test", "aws:x-amz-cek-alg": "AES/GCM/NoPadding"}
    blob = kms_client.encrypt(KeyId=kms_key_id, Plaintext=b"data key", EncryptionContext=context)[
        "CiphertextBlob"
    ]
    plain = kms_client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]
    assert plain == b"data key"
    with pytest.raises(ClientError) as err:
        kms_client.decrypt(CiphertextBlob=blob, EncryptionContext={**context, "s3vault": "other"})
    assert err.value.response["Error"]["Code"] == "InvalidCiphertextException"


def test_keyring_round_trip_on_the_private_secret_service(keyring_service):
    # Other test modules define keyring backends of their own (keyring registers every
    # subclass), which can make keyring pick a chainer; what s3vault uses is its OS part.
    backend = usable_backend(keyring.get_keyring())
    assert isinstance(backend, SecretServiceKeyring)
    assert keyring_available()
    backend.set_password(keyring_service, "laptop-2026", "c2VjcmV0")
    assert backend.get_password(keyring_service, "laptop-2026") == "c2VjcmV0"
    backend.delete_password(keyring_service, "laptop-2026")
    assert backend.get_password(keyring_service, "laptop-2026") is None


def test_a_dead_keyring_fails_the_test_loudly_and_ends_the_session(tmp_path_factory):
    import signal
    from types import SimpleNamespace

    # A keyring of its own (the session's must not be touched), in a short path.
    with PrivateKeyring(parent=tmp_path_factory.mktemp("kr")) as private:
        services = SessionServices(tmp_path_factory.mktemp("services"))
        services._keyring = private
        session = SimpleNamespace(shouldfail=False)
        first = SimpleNamespace(nodeid="tests/test_x.py::test_first", session=session)
        services.check_keyring(first, finished=True)  # alive: nothing happens
        assert private.failure() is None and not session.shouldfail

        pid = private.daemon_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # our own child
        private._daemon.wait(10)
        failure = private.failure()
        assert failure is not None
        assert f"gnome-keyring-daemon (pid {pid}) was killed by signal 9" in failure

        second = SimpleNamespace(nodeid="tests/test_x.py::test_second", session=session)
        with pytest.raises(pytest.fail.Exception) as failed:
            services.check_keyring(second, finished=False)
        message = str(failed.value)
        assert "died after tests/test_x.py::test_first, before tests/test_x.py::test_second" in (
            message
        )
        assert "was killed by signal 9" in message
        assert session.shouldfail  # the run stops after this test: no restart, no cascade
        assert private.daemon_pid == pid  # and nothing was restarted
        services._keyring = None  # the `with` stops it


def test_many_new_clients_at_once_do_not_crash_a_private_keyring(tmp_path_factory, monkeypatch):
    """Our own Secret Service checks, from 8 threads, each on a fresh connection.

    gnome-keyring 42 aborts when a new client's first request is a property read
    (see _open_secret_service); the same loop with such a first request killed the
    daemon in 2 runs out of 3 here.
    """
    import threading

    from s3vault.embedded.keyring_session import _secret_service_usable

    with PrivateKeyring(parent=tmp_path_factory.mktemp("kr")) as private:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private.address or "")
        answers: list[bool] = []

        def ask() -> None:
            for _ in range(300):
                answers.append(_secret_service_usable())

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert private.failure() is None
        # A lost race may still answer False (an error), but never crashes the daemon.
        assert answers.count(True) > len(answers) // 2


def test_the_bus_keeps_no_pipe_to_us(private_keyring):
    # dbus-daemon does not ignore SIGPIPE: its stdout must not be a pipe nobody reads.
    assert private_keyring.dir is not None
    for pid in private_keyring.pids:
        for fd in (0, 1, 2):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            assert not target.startswith("pipe:") or fd == 0, (pid, fd, target)


def test_a_child_process_inherits_s3_kms_and_keyring(s3, bucket, kms_key_id, keyring_service):
    keyring.set_password(keyring_service, "user", "from-parent")
    # Nothing but the environment tells the child where S3, KMS and the keyring are.
    script = f"""
import json, boto3, keyring
s3 = boto3.client("s3")
s3.put_object(Bucket={bucket!r}, Key="child", Body=b"hi")
kms = boto3.client("kms")
key = kms.describe_key(KeyId={kms_key_id!r})["KeyMetadata"]["KeyId"]
print(json.dumps({{
    "keyring": type(keyring.get_keyring()).__module__,
    "secret": keyring.get_password({keyring_service!r}, "user"),
    "kms_key": key,
    "service_env": __import__("os").environ["S3VAULT_KEYRING_SERVICE"],
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout)
    assert seen == {
        "keyring": "keyring.backends.SecretService",
        "secret": "from-parent",
        "kms_key": kms_key_id,
        "service_env": keyring_service,
    }
    assert s3.client().get_object(Bucket=bucket, Key="child")["Body"].read() == b"hi"


def test_the_session_never_touches_the_developers_home(session_env, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert Path(os.environ[name]).is_relative_to(base), name
    assert "AWS_PROFILE" not in os.environ and "AWS_CA_BUNDLE" not in os.environ
    assert os.environ["AWS_ENDPOINT_URL_S3"] != os.environ["AWS_ENDPOINT_URL_KMS"]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may contain spaces: split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_no_secret_in_any_process_arguments(
    s3: LocalS3, kms: MotoKMS, private_keyring: PrivateKeyring
):
    ours = {s3.pid, kms.pid, *private_keyring.pids}
    assert None not in ours
    assert ours <= _descendants(os.getpid())
    for pid in Path("/proc").glob("[0-9]*"):
        try:
            argv = (pid / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        assert s3.secret_key.encode() not in argv, f"secret in the arguments of PID {pid.name}"
    # The keyring's unlock password went through stdin: its argv is exactly this.
    daemon = Path(f"/proc/{private_keyring.daemon_pid}/cmdline").read_bytes().split(b"\0")
    assert [a for a in daemon if a][1:] == [b"--foreground", b"--unlock", b"--components=secrets"]
