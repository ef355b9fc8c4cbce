"""What every command needs, built lazily: the config, the key store, the vault."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3vault.config.model import Config
    from s3vault.keys.store import KeyStore
    from s3vault.vault.vault import Vault


@dataclass
class AppContext:
    """Lazily built services; attached to click's ``ctx.obj``.

    Building is lazy so that `s3vault --help` or `key list` never touch S3,
    and `ls` never touches the keyring.
    """

    config_path: Path | None = None
    _cache: dict[str, object] = field(default_factory=dict)

    @cached_property
    def config(self) -> Config:
        from s3vault.config.load import load_config

        return load_config(self.config_path)

    @cached_property
    def keystore(self) -> KeyStore:
        from s3vault.keys.store import KeyStore

        return KeyStore(service=self.config.keyring.service)

    @cached_property
    def vault(self) -> Vault:
        from s3vault.vault.factory import build_vault

        return build_vault(self.config, keystore_factory=lambda: self.keystore)
