"""Build a `Vault` from the config: the one place where the layers are wired together."""

from __future__ import annotations

from collections.abc import Callable

from s3vault.config.model import Config
from s3vault.keys.kms import boto3_kms_client
from s3vault.keys.provider import KeyProvider
from s3vault.keys.store import KeyStore
from s3vault.remote.s3 import S3Remote
from s3vault.remote.session import AwsSession
from s3vault.remote.throttle import Throttle
from s3vault.vault.vault import Vault


def build_vault(
    config: Config,
    *,
    keystore_factory: Callable[[], KeyStore],
    bandwidth_limit: int | None = None,
) -> Vault:
    """A vault over the configured S3 endpoint and key store.

    S3 (both transports) and KMS share one AWS session, so profile, region and
    credentials resolve once, the same way. ``bandwidth_limit`` (bytes per second;
    None or 0: none) throttles every upload of the vault. The key store and the KMS
    client are built lazily, so listing a bucket never touches the keyring and
    raw-key work never needs KMS.
    """
    session = AwsSession(config.s3, config.transfer)
    throttle = Throttle(bandwidth_limit) if bandwidth_limit else None
    remote = S3Remote(session=session, transfer=config.transfer, throttle=throttle)
    provider = KeyProvider(
        keystore_factory, kms_client=lambda: boto3_kms_client(session, config.kms)
    )
    return Vault(remote, provider, config.defaults)
