"""The key store the config asks for: the one place that chooses keyring or file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from s3vault.keys.store import KeyStore

if TYPE_CHECKING:
    from s3vault.config.model import Config
    from s3vault.keys.passphrase import AskPassphrase

StoreType = Literal["keyring", "file"]


def keystore_from_config(
    config: Config,
    ask_passphrase: AskPassphrase | None = None,
    *,
    store_type: StoreType | None = None,
) -> KeyStore:
    """The configured key store (``keystore.type``), or the one of ``store_type``.

    ``keyring``: the OS keyring under ``keyring.service``; a missing keyring stays an
    error (no fallback to the file). ``file``: ``keystore.path``, its passphrase from
    the configured source, else from ``ask_passphrase`` (a face's prompt). Nothing is
    opened here: the first read does it.
    """
    chosen = store_type or config.keystore.type
    if chosen == "keyring":
        return KeyStore(service=config.keyring.service)
    # Only here: the file keystore's cipher and KDF are not needed for the keyring.
    from s3vault.keys.file_storage import FileStorage
    from s3vault.keys.passphrase import PassphraseSource

    source = PassphraseSource.from_settings(config.keystore, ask_passphrase)
    return KeyStore(storage=FileStorage(config.keystore.file_path(), source))
