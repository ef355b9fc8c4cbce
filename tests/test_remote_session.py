"""One AWS session per vault (s3vault/remote/session.py), and how `build_vault` wires it.

The S3 client is built once; the native path and the KMS client resolve profile,
region, credentials and endpoints through the same session; the bandwidth limit is
given when the vault is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from s3vault.config.model import Config, KmsSettings, S3Settings
from s3vault.keys.kms import boto3_kms_client
from s3vault.keys.store import KeyStore
from s3vault.remote.native import NativeS3, PutRequest
from s3vault.remote.s3 import S3Remote
from s3vault.remote.session import AwsSession
from s3vault.vault.factory import build_vault


def test_the_s3_client_is_built_once_and_shared_with_the_native_path(session_env) -> None:
    session = AwsSession()
    remote = S3Remote(session=session)
    assert remote.client is session.s3_client
    assert remote.client is remote.client
    native = NativeS3.for_remote(remote)
    assert native.session is session
    assert native.endpoint_url == session_env["AWS_ENDPOINT_URL_S3"]
    assert native.endpoint_url == remote.client.meta.endpoint_url


def test_a_remote_takes_settings_or_a_session_not_both() -> None:
    session = AwsSession(S3Settings(region="eu-west-1"))
    assert S3Remote(session=session).settings is session.settings
    assert S3Remote(settings=session.settings, session=session).session is session
    with pytest.raises(ValueError, match="not both"):
        S3Remote(settings=S3Settings(region="eu-west-2"), session=session)


@pytest.mark.parametrize(
    ("kms_region", "s3_region", "environment", "expected"),
    [
        ("eu-west-3", "eu-west-1", "us-west-2", "eu-west-3"),
        (None, "eu-west-1", "us-west-2", "eu-west-1"),
        (None, None, "us-west-2", "us-west-2"),
        (None, None, None, "us-east-1"),
    ],
)
def test_the_kms_region_falls_back_to_the_s3_then_the_session_region(
    monkeypatch: pytest.MonkeyPatch,
    kms_region: str | None,
    s3_region: str | None,
    environment: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    if environment is None:
        monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    else:
        monkeypatch.setenv("AWS_DEFAULT_REGION", environment)
    session = AwsSession(S3Settings(region=s3_region))
    client = boto3_kms_client(session, KmsSettings(region=kms_region))
    assert client.meta.region_name == expected


def test_the_kms_endpoint_comes_from_the_config_else_the_environment(session_env) -> None:
    session = AwsSession()
    configured = boto3_kms_client(session, KmsSettings(endpoint_url="http://127.0.0.1:9"))
    assert configured.meta.endpoint_url == "http://127.0.0.1:9"
    default = boto3_kms_client(session, KmsSettings())
    assert default.meta.endpoint_url == session_env["AWS_ENDPOINT_URL_KMS"]


def test_s3_native_and_kms_resolve_the_same_profile(
    bucket: str, s3: Any, s3_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A profile named in the config wins over the environment on all three paths."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[vault]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = {s3.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret-wrong-secret-00")
    vault = build_vault(
        Config(s3=S3Settings(profile="vault")), keystore_factory=lambda: KeyStore("unused")
    )
    vault.remote.put_bytes(bucket, "by-boto3", b"x", {})
    NativeS3.for_remote(vault.remote).put(PutRequest(bucket, "by-obstore", b"y"))
    assert s3_client.get_object(Bucket=bucket, Key="by-obstore")["Body"].read() == b"y"

    kms = vault.keys.kms.client
    signed: list[str | bytes] = []
    kms.meta.events.register(
        "before-send.kms", lambda request, **_: signed.append(request.headers["Authorization"])
    )
    kms.list_keys()
    header = signed[0].decode() if isinstance(signed[0], bytes) else signed[0]
    assert f"Credential={s3.access_key}/" in header


def test_the_bandwidth_limit_is_given_when_the_vault_is_built() -> None:
    limited = build_vault(
        Config(), keystore_factory=lambda: KeyStore("unused"), bandwidth_limit=2_000_000
    )
    assert limited.remote.throttle is not None
    assert limited.remote.throttle.rate == 2_000_000
    # The native path of the same vault takes the same limit.
    assert NativeS3.for_remote(limited.remote).throttle is limited.remote.throttle
    for off in (None, 0):
        vault = build_vault(
            Config(), keystore_factory=lambda: KeyStore("unused"), bandwidth_limit=off
        )
        assert vault.remote.throttle is None
