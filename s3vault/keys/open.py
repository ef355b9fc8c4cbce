"""The key store the config asks for: the one place that chooses keyring or file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from s3vault.keys.store import KeyStore

if TYPE_CHECKING:
    from s3vault.config.model import Config, KeyringSettings, KeystoreSettings
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
    return keystore_from_settings(
        config.keyring, config.keystore, ask_passphrase, store_type=store_type
    )


def keystore_from_settings(
    keyring: KeyringSettings,
    keystore: KeystoreSettings,
    ask_passphrase: AskPassphrase | None = None,
    *,
    store_type: StoreType | None = None,
) -> KeyStore:
    """`keystore_from_config` from the two sections it reads (`config.load.load_key_settings`)."""
    chosen = store_type or keystore.type
    if chosen == "keyring":
        return KeyStore(service=keyring.service)
    # Only here: the file keystore's cipher and KDF are not needed for the keyring.
    from s3vault.keys.file_storage import FileStorage
    from s3vault.keys.passphrase import PassphraseSource

    source = PassphraseSource.from_settings(keystore, ask_passphrase)
    return KeyStore(storage=FileStorage(keystore.file_path(), source))
