"""Shared by the rotation tests: in-process vaults over the session's real services, a
key set in a keyring namespace of its own, a meter of the S3 traffic a client makes,
and the official S3 Encryption Client as an independent reader."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import boto3
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
from s3_encryption.materials import CommitmentPolicy, KmsKeyring

from s3vault.config.load import load_config
from s3vault.keys.material import KmsKey, MasterKey, generate_key
from s3vault.keys.store import KeyStore, PutResult
from s3vault.vault.factory import build_vault
from s3vault.vault.rotation import RotationOptions, RotationReport, Rotator
from s3vault.vault.vault import Vault

MiB = 1024 * 1024
KINDS = ("aes", "rsa", "kms")
CONTEXT = {"project": "alpha"}
DATA_KEY_PART = {
    "v2": ("x-amz-key-v2", "x-amz-wrap-alg", "x-amz-matdesc"),
    "v3": ("x-amz-3", "x-amz-w", "x-amz-m", "x-amz-t"),
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CachingKeyStore(KeyStore):
    """The real keyring store, each key read from it once per test module.

    A read of a split RSA record over D-Bus takes ~0.3 s; the engine reads every key
    once per run anyway, but the tests' own puts and gets would read them again and
    again.
    """

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self._cache: dict[str, MasterKey] = {}
        self._cache_lock = threading.Lock()

    def get(self, name: str) -> MasterKey:
        with self._cache_lock:
            if name not in self._cache:
                self._cache[name] = super().get(name)
            return self._cache[name]

    def put(self, key: MasterKey, *, force: bool = False) -> PutResult:
        with self._cache_lock:
            self._cache.pop(key.name, None)
        return super().put(key, force=force)


def make_store(kms_client: Any, kinds: tuple[str, ...] = KINDS) -> KeyStore:
    """A keyring namespace holding KIND-old and KIND-new for each kind (RSA-2048: fast)."""
    store = CachingKeyStore(service=f"s3vault-rot-{uuid.uuid4().hex[:12]}")
    for kind in kinds:
        for age in ("old", "new"):
            name = f"{kind}-{age}"
            if kind == "kms":
                key_id = kms_client.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
                store.put(KmsKey(name, key_id))
            else:
                store.put(generate_key(name, "aes256" if kind == "aes" else "rsa2048"))
    return store


def make_vault(store: KeyStore, **transfer: int) -> Vault:
    """A vault configured like the CLI's (env points at the services), optional transfer
    settings (e.g. a lowered copy_threshold)."""
    config = load_config()
    if transfer:
        config = config.model_copy(update={"transfer": config.transfer.model_copy(update=transfer)})
    return build_vault(config, keystore_factory=lambda: store)


def rotate(vault: Vault, bucket: str, key: str, **options: Any) -> RotationReport:
    rotator = Rotator(vault, RotationOptions(**options))
    report = rotator.new_report(bucket, key)
    rotator.rotate_one(bucket, key, report)
    return report


def rotate_prefix(
    vault: Vault, bucket: str, prefix: str, *, workers: int = 4, **options: Any
) -> RotationReport:
    rotator = Rotator(vault, RotationOptions(**options))
    report = rotator.new_report(bucket, prefix)
    rotator.rotate_prefix(bucket, prefix, report, workers=workers)
    return report


class TrafficMeter:
    """Bytes a boto3 client sends and receives (headers and bodies), from botocore events.

    Request size: the headers plus Content-Length (or the body's length) of every
    request sent; response size: the headers plus the body of every response.
    """

    def __init__(self, client: Any) -> None:
        self.sent = 0
        self.received = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._on_send)
        client.meta.events.register("after-call.s3", self._on_response)

    def _on_send(self, request: Any, **_: Any) -> None:
        headers = request.headers
        size = sum(len(str(k)) + len(str(v)) + 4 for k, v in headers.items())
        length = headers.get("Content-Length")
        if length is not None:
            size += int(length)
        elif isinstance(request.body, bytes | bytearray):
            size += len(request.body)
        with self._lock:
            self.sent += size
            self.requests.append(f"{request.method} {request.url.split('?')[0]}")

    def _on_response(self, http_response: Any, model: Any, **_: Any) -> None:
        headers = http_response.headers
        size = sum(len(str(k)) + len(str(v)) + 4 for k, v in headers.items())
        if model.has_streaming_output:
            # GetObject: the body is read later, all of it by our callers.
            size += int(headers.get("Content-Length") or 0)
        elif model.http.get("method") != "HEAD":
            # A HEAD's Content-Length is the object's size; no body comes with it.
            size += len(http_response.content or b"")
        with self._lock:
            self.received += size

    @property
    def total(self) -> int:
        return self.sent + self.received


def official_read(
    s3: Any, kms: Any, kms_key_id: str, bucket: str, key: str, context: Mapping[str, str]
) -> bytes:
    """Read an object with the official Python S3 Encryption Client 4.0.0 (KMS keyring).

    Its own boto3 clients (it hooks the S3 client it is given); V2 objects need the
    REQUIRE_ENCRYPT_ALLOW_DECRYPT commitment policy; the same encryption context as
    the object's must be passed.
    """
    keyring = KmsKeyring(
        kms_client=boto3.client("kms", endpoint_url=kms.endpoint_url, region_name=kms.region),
        kms_key_id=kms_key_id,
    )
    config = S3EncryptionClientConfig(
        keyring=keyring, commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    )
    client = S3EncryptionClient(wrapped_s3_client=s3.client(), config=config)
    response = client.get_object(Bucket=bucket, Key=key, EncryptionContext=dict(context))
    data: bytes = response["Body"].read()
    return data
