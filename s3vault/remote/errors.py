"""Translate botocore's exceptions into s3vault errors, once, at the edge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from s3vault.errors import (
    AccessDeniedError,
    ConfigError,
    ConflictError,
    NotFoundError,
    S3VaultError,
    UnreachableError,
    UsageError,
)

_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "OperationAborted"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def translate(exc: BaseException, what: str) -> S3VaultError:
    """The user-facing error for a botocore failure while doing ``what``.

    ``what`` names the target in the user's words, e.g. ``s3://bucket/key``.
    """
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code == "NoSuchBucket":
            return NotFoundError(
                f"bucket of {what} does not exist",
                hint="Create it first, or check the bucket name and the endpoint.",
            )
        if code in {"NoSuchKey", "NotFound", "NoSuchUpload"} or status == 404:
            return NotFoundError(f"{what} does not exist")
        if code in _DENIED or status == 403:
            return AccessDeniedError(
                f"access to {what} was denied ({code or status}: {message})",
                hint="Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile, "
                "and the bucket policy.",
            )
        if code in _CONFLICT or status in {409, 412}:
            return ConflictError(f"{what} changed while s3vault was working on it ({code})")
        if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
            return UnreachableError(f"S3 failed on {what} ({code or status}: {message})")
        return UsageError(f"S3 refused the request on {what} ({code or status}: {message})")
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return UnreachableError(
            f"cannot reach S3 for {what}: {exc}",
            hint="Check the network and the endpoint (s3.endpoint_url / AWS_ENDPOINT_URL_S3).",
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AccessDeniedError(
            "no AWS credentials found",
            hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile "
            "(AWS_PROFILE or s3.profile in the config).",
        )
    if isinstance(exc, ProfileNotFound):
        return ConfigError(f"AWS profile not found: {exc}")
    if isinstance(exc, ParamValidationError):
        return UsageError(f"invalid request for {what}: {_one_line(str(exc))}")
    if isinstance(exc, BotoCoreError):
        return UnreachableError(f"S3 request for {what} failed: {_one_line(str(exc))}")
    raise exc


def _one_line(text: str) -> str:
    """botocore's multi-line messages on one line (they are printed after "error:")."""
    return " ".join(text.split())


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Run a block of S3 calls, re-raising failures as s3vault errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, what) from None
