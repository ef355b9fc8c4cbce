"""What every command needs, built lazily: the config, the key store, the vault."""

from __future__ import annotations

import sys
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
        from s3vault.keys.open import keystore_from_config, keystore_from_settings

        if "config" in self.__dict__:  # already read and checked whole
            return keystore_from_config(self.config, ask_passphrase)
        # The two sections a key store needs, not the whole file: a key command then
        # builds no validator for folders, transfers or the agent (start-up time).
        from s3vault.config.load import load_key_settings

        settings = load_key_settings(self.config_path)
        return keystore_from_settings(settings.keyring, settings.keystore, ask_passphrase)

    @cached_property
    def vault(self) -> Vault:
        from s3vault.vault.factory import build_vault

        return build_vault(self.config, keystore_factory=lambda: self.keystore)


def ask_passphrase(prompt: str, new: bool) -> str | None:
    """The file keystore's passphrase typed on the terminal (hidden; twice for a new
    file), or None when there is no terminal to ask on (scripts, services)."""
    if not sys.stdin.isatty():
        return None
    import click

    # On stderr: stdout may be JSON for a script.
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=new, err=True)
    return value
