"""Shared by the service-fault tests: the fault proxies in front of the session's
SeaweedFS and moto KMS, in-process vaults pointed at them, and the checks every
failed CLI run must pass (exit code, no traceback, nothing left behind)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from reliability_report import ReliabilityReport

from s3vault.config.model import Config, KmsSettings, S3Settings, TransferSettings
from s3vault.keys.store import KeyStore
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3_proxy(s3: object) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's SeaweedFS (shared by a module's tests)."""
    with FaultProxy(upstream=s3.endpoint_url, flavour="s3", seed=13) as proxy:  # type: ignore[attr-defined]
        yield proxy


@pytest.fixture(scope="module")
def kms_proxy(kms: object) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's moto KMS."""
    with FaultProxy(upstream=kms.endpoint_url, flavour="kms", seed=13) as proxy:  # type: ignore[attr-defined]
        yield proxy


@pytest.fixture
def proxies(s3_proxy: FaultProxy, kms_proxy: FaultProxy) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Both proxies, with no rule and listening, before and after the test."""
    for proxy in (s3_proxy, kms_proxy):
        proxy.clear()
        proxy.up()
    yield s3_proxy, kms_proxy
    for proxy in (s3_proxy, kms_proxy):
        proxy.clear()
        proxy.up()


def proxied_env(s3_proxy: FaultProxy, kms_proxy: FaultProxy) -> dict[str, str]:
    """What leads a CLI or agent process through the proxies (boto3 and obstore both
    take the S3 endpoint from AWS_ENDPOINT_URL_S3)."""
    return {"AWS_ENDPOINT_URL_S3": s3_proxy.url, "AWS_ENDPOINT_URL_KMS": kms_proxy.url}


def proxied_vault(
    s3_proxy: FaultProxy, kms_proxy: FaultProxy, store: KeyStore, **transfer: int
) -> Vault:
    """An in-process vault whose S3 (both transports) and KMS go through the proxies."""
    config = Config(
        s3=S3Settings(endpoint_url=s3_proxy.url, addressing_style="path", region="us-east-1"),
        kms=KmsSettings(endpoint_url=kms_proxy.url, region="us-east-1"),
        transfer=TransferSettings(**transfer),
    )
    return build_vault(config, keystore_factory=lambda: store)


def assert_clean_failure(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The CLI failed with ``code``, said why in one error line, printed no traceback."""
    err = result.stderr.decode(errors="replace")
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    assert "error:" in err, err
    return err


def leftovers(folder: Path, *expected: str) -> list[str]:
    """Files in ``folder`` other than ``expected`` (a partial or temp file, say)."""
    return sorted(name for name in os.listdir(folder) if name not in expected)


def record(
    reliability: ReliabilityReport, proxy: FaultProxy, before: dict[str, int], what: str
) -> None:
    """Add the faults ``proxy`` injected since ``before`` (its counts then) to the
    report, named "``what`` ``kind``" (e.g. "s3 503")."""
    for kind, n in proxy.counts().items():
        if n > before.get(kind, 0):
            reliability.fault(f"{what} {kind}", n - before.get(kind, 0))
