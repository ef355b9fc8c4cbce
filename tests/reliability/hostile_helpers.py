"""Shared pieces of the hostile-input tests (test_hostile_*.py).

A hostile object is stored with a plain boto3 client, byte for byte as an attacker
with write access to the bucket would store it, and then read by s3vault: in process
through `Vault` for the bulk (fast: no interpreter start-up), and through the real
command line for a sample (exit code, no traceback). What every read must end in:

- a clean `S3VaultError` with an exit code from the documented set (`HOSTILE_CODES`);
- or the object's true plaintext: a tampered object never opens to other bytes;
- and no file left behind: no output, no temp file beside it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotation_helpers import CachingKeyStore, make_vault

from s3vault.cli.object_commands import envelope_table
from s3vault.cli.output import PlainConsole
from s3vault.errors import ExitCode, S3VaultError
from s3vault.keys.manage import parse_import
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

VECTORS = Path(__file__).parent.parent / "vectors"
MANIFEST: list[dict[str, Any]] = json.loads((VECTORS / "manifest.json").read_text())
NEGATIVE = [e for e in MANIFEST if e["expect"] == "fails"]
SUFFIX = ".instruction"
CLI_TIMEOUT = 120.0

HOSTILE_CODES = frozenset({ExitCode.INTEGRITY, ExitCode.KEY_MISSING, ExitCode.REFUSED})
"""What a hostile object may end in: 4 integrity (tampered, malformed, ambiguous
envelope), 5 key missing (the envelope names a key that is not here, or no key opens
it), 9 refused (a legacy format or wrap without --allow-legacy, or no envelope at all:
not encrypted)."""

AES_KEY = "hostile-aes"
RSA_KEY = "hostile-rsa"
VECTOR_KEY = "aes256-a"  # the key of every neg-* vector


def vector_object(entry: Mapping[str, Any]) -> StoredParts:
    folder = VECTORS / "objects" / entry["name"]
    instruction = folder / "instruction.json"
    return StoredParts(
        body=(folder / "body.bin").read_bytes(),
        metadata=json.loads((folder / "metadata.json").read_text()),
        instruction=instruction.read_bytes() if instruction.exists() else None,
    )


def vector_plaintext(entry: Mapping[str, Any]) -> bytes:
    return (VECTORS / entry["plaintext"]).read_bytes()


@dataclass(frozen=True)
class StoredParts:
    """An object as stored: body, user metadata, instruction file (None: none)."""

    body: bytes
    metadata: dict[str, str]
    instruction: bytes | None = None

    def store(self, s3_client: S3Client, bucket: str, key: str) -> None:
        """Store it (and its instruction file) byte for byte; a stale instruction file
        of an earlier object at ``key`` is removed."""
        s3_client.put_object(Bucket=bucket, Key=key, Body=self.body, Metadata=self.metadata)
        if self.instruction is None:
            s3_client.delete_object(Bucket=bucket, Key=key + SUFFIX)
        else:
            s3_client.put_object(Bucket=bucket, Key=key + SUFFIX, Body=self.instruction)


def read_parts(s3_client: S3Client, bucket: str, key: str) -> StoredParts:
    """The object as S3 holds it now (to check nothing was destroyed)."""
    got = s3_client.get_object(Bucket=bucket, Key=key)
    try:
        instruction = s3_client.get_object(Bucket=bucket, Key=key + SUFFIX)["Body"].read()
    except s3_client.exceptions.NoSuchKey:
        instruction = None
    return StoredParts(got["Body"].read(), got["Metadata"], instruction)


# ---- the keys and the vault ---------------------------------------------------------------


@dataclass
class HostileKeys:
    """A keyring namespace of its own: the vectors' aes256-a and two fresh keys."""

    store: KeyStore
    service: str
    env: dict[str, str]

    def vault(self) -> Vault:
        return make_vault(self.store)


def make_hostile_keys(session_env: Mapping[str, str]) -> HostileKeys:
    service = f"s3vault-hostile-{uuid.uuid4().hex[:12]}"
    store = CachingKeyStore(service=service)
    store.put(generate_key(AES_KEY, "aes256"))
    store.put(generate_key(RSA_KEY, "rsa2048"))
    key, _ = parse_import(VECTOR_KEY, "aes", (VECTORS / "keys" / f"{VECTOR_KEY}.key").read_bytes())
    store.put(key)
    return HostileKeys(store, service, {**session_env, "S3VAULT_KEYRING_SERVICE": service})


# ---- what every read must end in ----------------------------------------------------------


def check_get(vault: Vault, bucket: str, key: str, plaintext: bytes, out_dir: Path) -> str:
    """`Vault.get` of a hostile object to a file in the empty ``out_dir``: "error" (clean,
    nothing left behind) or "same" (the true plaintext). Anything else fails the test."""
    assert list(out_dir.iterdir()) == []
    target = out_dir / "plain.bin"
    try:
        vault.get(bucket, key, target, allow_legacy=True)
    except S3VaultError as exc:
        assert exc.exit_code in HOSTILE_CODES, (key, exc.exit_code, exc.message)
        left = list(out_dir.iterdir())
        assert left == [], f"{key}: a failed get left {left}"
        return "error"
    released = target.read_bytes()
    target.unlink()
    assert list(out_dir.iterdir()) == [], "a temp file was left beside the output"
    assert released == plaintext, f"{key}: a tampered object opened to other bytes"
    return "same"


def check_get_stream(vault: Vault, bucket: str, key: str, plaintext: bytes) -> str:
    """`Vault.get` to a stream (`get KEY -`): nothing written unless it is the truth."""
    out = io.BytesIO()
    try:
        vault.get(bucket, key, out, allow_legacy=True)
    except S3VaultError as exc:
        assert exc.exit_code in HOSTILE_CODES, (key, exc.exit_code, exc.message)
        assert out.getvalue() == b"", f"{key}: a failed get wrote to the stream"
        return "error"
    assert out.getvalue() == plaintext, f"{key}: a tampered object opened to other bytes"
    return "same"


def check_inspect(vault: Vault, bucket: str, key: str) -> str:
    """`inspect` (key check included) and its text and JSON output: never a crash."""
    try:
        info = vault.inspect(bucket, key, confirm_key=True)
    except S3VaultError as exc:
        assert exc.exit_code in HOSTILE_CODES, (key, exc.exit_code, exc.message)
        return "error"
    json.dumps(info.to_json())
    console = PlainConsole(file=io.StringIO(), width=100)
    console.print(envelope_table(info))
    return "shown"


# ---- the real command line ----------------------------------------------------------------


def run_cli(
    env: Mapping[str, str], *args: str | os.PathLike[str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """`python -m s3vault ARGS` in the keyring namespace of ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "s3vault", *(os.fspath(a) for a in args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(env),
        cwd=cwd,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess[bytes], codes: frozenset[ExitCode] | set[ExitCode]
) -> None:
    """A documented exit code, an explanation, and no traceback."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode in codes, (result.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    # Errors go to stderr; `rotate` prints its report, failures included, on stdout.
    assert (stderr + result.stdout.decode(errors="replace")).strip(), "unexplained failure"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
