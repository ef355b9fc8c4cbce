"""The one AWS session of a vault: the boto3 session and the S3 client, each built once.

Both S3 transports (boto3 in `S3Remote`, obstore in `NativeS3`) and the KMS client
(`keys/kms.py`) take their profile, region, credentials and endpoint from one
`AwsSession`, so they resolve the same way (config, environment, profiles, SSO) and
refreshable credentials are refreshed once. Everything is built on first use:
building a session touches neither the network nor the credential files.

boto3 sessions are not thread-safe while they build clients or load credentials;
here that happens under one lock.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError

from s3vault.config.model import S3Settings, TransferSettings
from s3vault.remote.errors import translate


class AwsSession:
    """The boto3 session of ``settings.profile`` and ``settings.region``, and its S3 client.

    ``transfer`` sizes the S3 client's connection pool to the transfer concurrency.
    Thread-safe.
    """

    def __init__(
        self, settings: S3Settings | None = None, transfer: TransferSettings | None = None
    ) -> None:
        self.settings = settings if settings is not None else S3Settings()
        concurrency = (transfer if transfer is not None else TransferSettings()).concurrency
        self.pool_size = max(10, concurrency * 2)
        self._lock = threading.Lock()
        self._boto3: boto3.session.Session | None = None
        self._s3: Any = None

    def __repr__(self) -> str:
        return f"AwsSession(profile={self.settings.profile!r}, region={self.settings.region!r})"

    # ---- the session ---------------------------------------------------------------

    @property
    def boto3_session(self) -> boto3.session.Session:
        """The boto3 session (built once). Build clients with `client`, not from this."""
        with self._lock:
            return self._session()

    def _session(self) -> boto3.session.Session:
        # Called with the lock held.
        if self._boto3 is None:
            try:
                self._boto3 = boto3.session.Session(
                    profile_name=self.settings.profile, region_name=self.settings.region
                )
            except BotoCoreError as exc:
                raise translate(exc, "the AWS profile") from None
        return self._boto3

    @property
    def region_name(self) -> str | None:
        """``s3.region``, else the profile's or the environment's region; None if unset."""
        return self.settings.region or self.boto3_session.region_name

    def credentials(self) -> Credentials | None:
        """The session's credentials, loaded once (None if there are none)."""
        with self._lock:
            session = self._session()
            try:
                return session.get_credentials()
            except BotoCoreError as exc:
                raise translate(exc, "the AWS profile") from None

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle the session's clients verify TLS with (``AWS_CA_BUNDLE``, profile)."""
        with self._lock:
            session = self._session()
            try:
                bundle = session._session.get_config_variable("ca_bundle")
            except BotoCoreError as exc:
                raise translate(exc, "the AWS profile") from None
        return str(bundle) if bundle else None

    def client(self, service_name: str, **kwargs: Any) -> Any:
        """A new boto3 client of this session, e.g. ``client("kms", region_name=...)``."""
        with self._lock:
            # boto3-stubs types client() per service name literal; callers pass one.
            return self._session().client(service_name, **kwargs)  # type: ignore[call-overload]

    # ---- S3 ------------------------------------------------------------------------

    @property
    def s3_client(self) -> Any:
        """The boto3 S3 client (thread-safe; built once, shared by every caller)."""
        with self._lock:
            if self._s3 is None:
                config = BotoConfig(
                    max_pool_connections=self.pool_size,
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=120,
                    s3={
                        "addressing_style": self.settings.addressing_style,
                        # UNSIGNED-PAYLOAD, as over https: on http:// endpoints botocore
                        # would SHA-256 every body for the signature (about 1 s of CPU
                        # per GiB). The CRC32 checksum still protects each body in
                        # transit, and the content is AES-GCM authenticated end to end.
                        "payload_signing_enabled": False,
                    },
                )
                self._s3 = self._session().client(
                    "s3", endpoint_url=self.settings.endpoint_url, config=config
                )
            return self._s3

    @property
    def s3_endpoint_url(self) -> str:
        """The S3 endpoint boto3 resolved (``s3.endpoint_url``, environment, profile)."""
        return str(self._s3_meta().endpoint_url)

    @property
    def s3_region(self) -> str | None:
        """The region boto3 resolved for S3 (it signs requests for this one)."""
        region = self._s3_meta().region_name
        return str(region) if region else None

    def _s3_meta(self) -> Any:
        try:
            return self.s3_client.meta
        except BotoCoreError as exc:
            raise translate(exc, "the S3 endpoint") from None
