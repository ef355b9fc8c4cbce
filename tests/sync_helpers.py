"""What the sync engine tests share: a vault with the folder's key, an engine, files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from s3vault.config.load import load_config
from s3vault.config.sync import FolderSettings
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.sync.engine import SyncEngine
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

SYNC_KEY = "sync-key"


def sync_vault(keyring_service: str) -> Vault:
    """A vault on the session's S3 whose keyring holds a fresh AES key `sync-key`."""
    KeyStore(service=keyring_service).put(generate_key(SYNC_KEY))
    return build_vault(load_config(), keystore_factory=lambda: KeyStore(service=keyring_service))


def make_folder_engine(
    root: Path, bucket: str, prefix: str, vault: Vault, state: StateDB, **settings: Any
) -> SyncEngine:
    folder = FolderSettings(path=root, bucket=bucket, prefix=prefix, key=SYNC_KEY, **settings)
    # One quick retry: the outage tests would otherwise wait for the backoff.
    return SyncEngine(folder, vault, state, workers=4, attempts=2, backoff=0.05)


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def decrypted(vault: Vault, bucket: str, key: str) -> bytes:
    out = io.BytesIO()
    vault.get(bucket, key, out)
    return out.getvalue()
