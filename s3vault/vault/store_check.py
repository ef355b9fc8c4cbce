"""Is the store usable? Live checks of the S3 settings, each with a verdict a person
can act on: do the credentials resolve and does S3 accept them, does the endpoint
answer, does the bucket exist, can s3vault write to it.

    for verdict in check_store(S3Settings(endpoint_url="http://nas:8333"), "vault"):
        print(verdict.text())      # ✓ Endpoint: S3 answered at http://nas:8333

The setup of the desktop app and its settings view ("Test connection") run these in a
job. Each check makes at most one request and never retries: a verdict in seconds is
worth more here than the transfer code's patience. The write check puts a tiny probe
object and deletes it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from s3vault.config.model import S3Settings
from s3vault.errors import ConfigError, S3VaultError
from s3vault.remote.errors import error_code, http_status, translate
from s3vault.remote.session import AwsSession

CREDENTIALS, ENDPOINT, BUCKET, WRITE = "Credentials", "Endpoint", "Bucket", "Write"
PROBE_PREFIX = ".s3vault-probe-"

# Where botocore found the credentials (Credentials.method), in the user's words.
_SOURCES = {
    "env": "the environment (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "~/.aws/credentials",
    "config-file": "~/.aws/config",
    "sso": "AWS SSO",
    "assume-role": "an assumed role",
    "assume-role-with-web-identity": "a web identity",
    "container-role": "the container's role",
    "iam-role": "the instance's role",
    "custom-process": "a credential process",
}
_BAD_KEY = {"InvalidAccessKeyId", "InvalidClientTokenId"}
_BAD_SECRET = {"SignatureDoesNotMatch"}
_EXPIRED = {"ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
_WRONG_REGION = {
    "AuthorizationHeaderMalformed",
    "PermanentRedirect",
    "IllegalLocationConstraintException",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's outcome. ``ok`` is None when the check could not run (an earlier
    one failed). ``missing_bucket``: the bucket does not exist (offer to create it)."""

    check: str
    ok: bool | None
    message: str
    hint: str | None = None
    missing_bucket: bool = False

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "–"}[self.ok]

    def text(self) -> str:
        line = f"{self.mark} {self.check}: {self.message}"
        return f"{line}\n    {self.hint}" if self.hint else line


def all_passed(verdicts: list[Verdict]) -> bool:
    return bool(verdicts) and all(v.ok for v in verdicts)


def check_store(settings: S3Settings, bucket: str | None = None) -> list[Verdict]:
    """The verdicts on ``settings`` (and ``bucket``, if given): credentials, endpoint,
    then bucket and write access. Never raises for what it checks."""
    checks = [CREDENTIALS, ENDPOINT] + ([BUCKET, WRITE] if bucket else [])
    verdicts: dict[str, Verdict] = {}

    def result() -> list[Verdict]:
        return [verdicts.get(c) or Verdict(c, None, "not tested") for c in checks]

    session = AwsSession(settings)
    try:
        credentials = session.credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except S3VaultError as exc:
        verdicts[CREDENTIALS] = Verdict(CREDENTIALS, False, exc.message, exc.hint)
        return result()
    except BotoCoreError as exc:  # refreshing (SSO, assumed role) failed
        err = translate(exc, "the credentials")
        verdicts[CREDENTIALS] = Verdict(CREDENTIALS, False, err.message, err.hint)
        return result()
    if credentials is None or frozen is None or not frozen.access_key:
        verdicts[CREDENTIALS] = Verdict(
            CREDENTIALS,
            False,
            "no AWS credentials found",
            "Choose a profile from ~/.aws/config, or set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (s3vault never stores credentials in its config).",
        )
        return result()
    source = _SOURCES.get(credentials.method, credentials.method)
    if settings.profile and credentials.method in ("shared-credentials-file", "config-file"):
        source = f"profile {settings.profile}"
    found = Verdict(CREDENTIALS, True, f"found in {source}, accepted by S3")

    try:
        client = _probe_client(session, settings)
        url = str(client.meta.endpoint_url)
    except (ValueError, BotoCoreError, S3VaultError) as exc:
        verdicts[CREDENTIALS] = replace(found, message=f"found in {source}")
        verdicts[ENDPOINT] = Verdict(
            ENDPOINT,
            False,
            f"the endpoint is not usable: {_one_line(exc)}",
            "Write a URL like https://s3.example.org or http://127.0.0.1:8333, "
            "or leave it empty for AWS.",
        )
        return result()

    try:
        if bucket:
            client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        else:
            client.list_buckets()
    except ClientError as exc:
        verdicts[ENDPOINT] = Verdict(ENDPOINT, True, f"S3 answered at {url}")
        verdicts.update(_refused(exc, source, bucket, url))
        return result()
    except BotoCoreError as exc:
        verdicts[CREDENTIALS] = replace(found, message=f"found in {source}")
        verdicts[ENDPOINT] = Verdict(
            ENDPOINT,
            False,
            f"cannot reach S3 at {url}: {_one_line(exc)}",
            "Check the endpoint URL (host and port), that the server is running, "
            "and the network or proxy.",
        )
        return result()
    else:
        verdicts[CREDENTIALS] = found
        verdicts[ENDPOINT] = Verdict(ENDPOINT, True, f"S3 answered at {url}")
        if bucket:
            verdicts[BUCKET] = Verdict(BUCKET, True, f"{bucket} exists and can be listed")
    if bucket:
        verdicts[WRITE] = _write_probe(client, bucket)
    return result()


def _refused(exc: ClientError, source: str, bucket: str | None, url: str) -> dict[str, Verdict]:
    """The verdicts for a request S3 answered with an error."""
    code, status = error_code(exc), http_status(exc)
    if code in _BAD_KEY:
        return {
            CREDENTIALS: Verdict(
                CREDENTIALS,
                False,
                f"S3 does not know the access key from {source} ({code})",
                "Check the access key ID, or that these credentials belong to this endpoint.",
            )
        }
    if code in _BAD_SECRET:
        return {
            CREDENTIALS: Verdict(
                CREDENTIALS,
                False,
                f"S3 refused the secret access key from {source} ({code}): access denied",
                "The secret does not match the access key ID: copy it again from "
                "where it was issued.",
            )
        }
    if code in _EXPIRED:
        return {
            CREDENTIALS: Verdict(
                CREDENTIALS,
                False,
                f"the credentials from {source} have expired ({code})",
                "Log in again (e.g. `aws sso login`) or renew the session token.",
            )
        }
    accepted = Verdict(CREDENTIALS, True, f"found in {source}, accepted by S3")
    if not bucket:
        if code == "AccessDenied" or status == 403:
            # Signed correctly but not allowed to list every bucket: common and fine.
            note = " (listing all buckets is not allowed)"
            return {CREDENTIALS: replace(accepted, message=accepted.message + note)}
        err = translate(exc, url)
        return {CREDENTIALS: Verdict(CREDENTIALS, False, err.message, err.hint)}
    if code == "NoSuchBucket" or (status == 404 and not code):
        return {
            CREDENTIALS: accepted,
            BUCKET: Verdict(
                BUCKET,
                False,
                f"bucket {bucket} does not exist at {url}",
                "Create it, or check the bucket name and the endpoint.",
                missing_bucket=True,
            ),
        }
    if code in _WRONG_REGION or status == 301:
        region = _bucket_region(exc)
        where = f" (it is in {region})" if region else ""
        return {
            CREDENTIALS: accepted,
            BUCKET: Verdict(
                BUCKET,
                False,
                f"bucket {bucket} is in another region{where} ({code or status})",
                f"Set the region to {region}." if region else "Set the bucket's region.",
            ),
        }
    if code == "AccessDenied" or status == 403:
        return {
            CREDENTIALS: accepted,
            BUCKET: Verdict(
                BUCKET,
                False,
                f"access to bucket {bucket} was denied ({code or status})",
                "These credentials may not list this bucket: check the bucket policy or "
                "the user's permissions (s3:ListBucket), or the bucket name.",
            ),
        }
    err = translate(exc, f"s3://{bucket}")
    return {CREDENTIALS: accepted, BUCKET: Verdict(BUCKET, False, err.message, err.hint)}


def _write_probe(client: Any, bucket: str) -> Verdict:
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"s3vault write test\n")
    except (ClientError, BotoCoreError) as exc:
        err = translate(exc, f"s3://{bucket}/{key}")
        return Verdict(
            WRITE,
            False,
            f"cannot write to {bucket}: {err.message}",
            "s3vault needs s3:PutObject, s3:GetObject and s3:DeleteObject on the bucket.",
        )
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        err = translate(exc, f"s3://{bucket}/{key}")
        return Verdict(
            WRITE,
            False,
            f"wrote a test object but cannot delete it: {err.message}",
            f"Delete s3://{bucket}/{key} by hand; s3vault needs s3:DeleteObject.",
        )
    return Verdict(WRITE, True, f"a test object was written to {bucket} and deleted")


def create_bucket(settings: S3Settings, bucket: str) -> None:
    """Create ``bucket`` in the settings' region (S3VaultError if S3 refuses)."""
    session = AwsSession(settings)
    client = _probe_client(session, settings)
    region = client.meta.region_name
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1" and not settings.endpoint_url:
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        if isinstance(exc, ClientError) and error_code(exc) == "BucketAlreadyOwnedByYou":
            return
        raise translate(exc, f"s3://{bucket}") from None


def aws_profiles() -> list[str]:
    """The profiles of ~/.aws/config and ~/.aws/credentials (or AWS_CONFIG_FILE ...)."""
    try:
        return sorted(boto3.session.Session().available_profiles)
    except BotoCoreError as exc:
        raise ConfigError(f"cannot read the AWS config files: {_one_line(exc)}") from None


def _probe_client(session: AwsSession, settings: S3Settings) -> Any:
    config = BotoConfig(
        retries={"max_attempts": 1, "mode": "standard"},  # a verdict now, not in a minute
        connect_timeout=5,
        read_timeout=20,
        s3={"addressing_style": settings.addressing_style},
    )
    return session.client("s3", endpoint_url=settings.endpoint_url or None, config=config)


def _bucket_region(exc: ClientError) -> str | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or exc.response.get("Error", {}).get("Region")
    return str(region) if region else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
