"""AWS KMS calls for envelope encryption, with botocore errors translated once, here.

The boto3 client comes from a factory, called on first use, so that a command which
never touches a KMS-wrapped object never builds one. `boto3_kms_client` builds it from
the vault's one AWS session (`remote/session.py`, handed in by `vault.factory`), so
profile, credentials and region resolve as for S3; its endpoint is ``kms.endpoint_url``
or the usual AWS sources (boto3 itself honours ``AWS_ENDPOINT_URL_KMS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from s3vault.config.model import KmsSettings
from s3vault.errors import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    KeyMissingError,
    S3VaultError,
    UnreachableError,
    UsageError,
)

_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
}
_UNAVAILABLE = {
    "KeyUnavailableException",
    "DependencyTimeoutException",
    "KMSInternalException",
    "ThrottlingException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
}


class AwsClients(Protocol):
    """Where boto3 clients come from: the vault's `s3vault.remote.session.AwsSession`."""

    @property
    def region_name(self) -> str | None: ...

    def client(self, service_name: str, **kwargs: Any) -> Any: ...


def boto3_kms_client(session: AwsClients, settings: KmsSettings) -> Any:
    """A boto3 KMS client of ``session``: its profile and credentials, the endpoint
    ``kms.endpoint_url`` (else the usual AWS sources), the region ``kms.region``, else
    the session's (``s3.region``, else the profile's or environment's), else us-east-1."""
    region = settings.region or session.region_name
    try:
        return session.client(
            "kms",
            endpoint_url=settings.endpoint_url,
            region_name=region or "us-east-1",
            config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
        )
    except NoRegionError:
        raise ConfigError("no AWS region set for KMS", hint="Set kms.region") from None


class KmsClient:
    """GenerateDataKey / Decrypt / Encrypt with s3vault errors; plaintext never in a message."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            with _kms_errors("connect to KMS", None):
                self._client = self._factory()
        return self._client

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """A fresh AES-256 data key: (plaintext, ciphertext blob), bound to the context."""
        with _kms_errors("generate a data key", key_id):
            response = self.client.generate_data_key(
                KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(encryption_context)
            )
        return bytes(response["Plaintext"]), bytes(response["CiphertextBlob"])

    def decrypt(
        self,
        ciphertext: bytes,
        encryption_context: Mapping[str, str],
        key_id: str | None = None,
    ) -> bytes:
        """The plaintext of a data key KMS wrapped; ``key_id`` pins the key it must use."""
        kwargs: dict[str, Any] = {
            "CiphertextBlob": ciphertext,
            "EncryptionContext": dict(encryption_context),
        }
        if key_id:
            kwargs["KeyId"] = key_id
        with _kms_errors("decrypt the data key", key_id):
            response = self.client.decrypt(**kwargs)
        return bytes(response["Plaintext"])

    def encrypt(
        self, key_id: str, plaintext: bytes, encryption_context: Mapping[str, str]
    ) -> bytes:
        """Wrap an existing data key with ``key_id`` (rotation): the ciphertext blob."""
        with _kms_errors("encrypt the data key", key_id):
            response = self.client.encrypt(
                KeyId=key_id, Plaintext=plaintext, EncryptionContext=dict(encryption_context)
            )
        return bytes(response["CiphertextBlob"])

    def decrypt_with_key_id(
        self, ciphertext: bytes, encryption_context: Mapping[str, str]
    ) -> tuple[bytes, str]:
        """Like `decrypt`, also returning the ARN of the KMS key that wrapped the data key.

        Rotation compares that ARN with the target key's, so an object already wrapped
        by the target is recognised without trusting anything stored beside it.
        """
        with _kms_errors("decrypt the data key", None):
            response = self.client.decrypt(
                CiphertextBlob=ciphertext, EncryptionContext=dict(encryption_context)
            )
        return bytes(response["Plaintext"]), str(response["KeyId"])

    def key_arn(self, key_id: str) -> str:
        """The ARN of a key given by id, ARN or alias (DescribeKey).

        Without kms:DescribeKey permission, the ARN is learnt from an Encrypt of 32
        zero bytes instead, which rotation to that key needs to be allowed anyway.
        """
        try:
            with _kms_errors("describe the key", key_id):
                return str(self.client.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
        except AccessDeniedError:
            with _kms_errors("encrypt with the key", key_id):
                response = self.client.encrypt(KeyId=key_id, Plaintext=bytes(32))
            return str(response["KeyId"])


@contextmanager
def _kms_errors(action: str, key_id: str | None) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, action, key_id) from None


def translate(exc: Exception, action: str, key_id: str | None) -> S3VaultError:
    """The s3vault error for a botocore failure while trying to ``action``."""
    which = f"KMS key {key_id}" if key_id else "the KMS key"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message") or code)
        if code in _DENIED:
            return AccessDeniedError(
                f"KMS refused to {action} ({code}: {message})",
                hint="Check the AWS credentials and the key policy / IAM policy of "
                f"{which} (kms:GenerateDataKey, kms:Decrypt, kms:Encrypt).",
            )
        if code == "InvalidCiphertextException":
            return IntegrityError(
                "KMS could not decrypt the data key: the encryption context differs from "
                "the one it was wrapped with, or the envelope was altered",
            )
        if code == "IncorrectKeyException":
            return KeyMissingError(
                f"the data key was not wrapped by {which}",
                hint="Leave out --key to let KMS pick the key named in the wrapped data key.",
            )
        if code == "NotFoundException":
            return KeyMissingError(
                f"{which} does not exist in this AWS account and region ({message})",
                hint="Check the key id or alias, and the region (AWS_REGION / kms.region).",
            )
        if code in {"DisabledException", "KMSInvalidStateException"}:
            return KeyMissingError(
                f"{which} cannot be used now: it is disabled or pending deletion ({message})",
                hint="Enable it again (aws kms enable-key / cancel-key-deletion).",
            )
        if code == "InvalidKeyUsageException":
            return UsageError(
                f"{which} cannot wrap data keys ({message})",
                hint="Use a symmetric KMS key with key usage ENCRYPT_DECRYPT.",
            )
        if code in _UNAVAILABLE:
            return UnreachableError(f"KMS could not {action} now ({code}: {message})")
        if code in {"ValidationException", "InvalidParameterException"}:
            return UsageError(f"KMS rejected the request to {action} ({code}: {message})")
        return S3VaultError(f"KMS failed to {action} ({code}: {message})")
    if isinstance(exc, BotoConnectionError | ReadTimeoutError | ConnectionClosedError):
        return UnreachableError(
            f"cannot reach KMS to {action}: {exc}",
            hint="Check the network and the endpoint (kms.endpoint_url / AWS_ENDPOINT_URL_KMS).",
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return AccessDeniedError(
            "no AWS credentials found for KMS",
            hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE).",
        )
    if isinstance(exc, NoRegionError):
        return ConfigError(
            "no AWS region for KMS", hint="Set AWS_REGION, or kms.region in the config."
        )
    if isinstance(exc, ParamValidationError):
        # botocore quotes the rejected value, which for Plaintext is a data key.
        detail = "the data key" if "Plaintext" in str(exc) else str(exc)
        return UsageError(f"invalid KMS request to {action}: {detail}")
    return UnreachableError(f"KMS request to {action} failed: {exc}")
