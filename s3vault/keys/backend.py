"""Which keyring backend holds the master keys: only an OS keyring, never a fallback.

`usable_backend` accepts the OS keyrings that ship with `keyring` and refuses the
rest (the `fail` and `null` backends, ``keyrings.alt``'s files, other third parties);
`secret_service_backend` is the quick path to the Secret Service on Linux, which is
always reached through `SecretServiceKeyring` (one kept D-Bus connection; see
`keys.secret_service` for the gnome-keyring crash that avoids);
`keyring_error` turns the keyring libraries' failures into a `KeyringUnavailableError`
that says what to do.

`keyring` itself is imported only off the quick path (another platform, a backend
chosen by the user, an error): importing it costs about 55 ms.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from s3vault.errors import KeyringUnavailableError
from s3vault.keys.secret_service import SecretServiceKeyring

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend


class PasswordBackend(Protocol):
    """What `KeyringStorage` calls: a `keyring` backend, or our `SecretServiceKeyring`."""

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


SERVER_HINT = (
    "Start a desktop session (its keyring unlocks at login) or gnome-keyring. On a server: "
    "`dbus-run-session -- sh -c 'echo -n PASSWORD | gnome-keyring-daemon --unlock "
    "--components=secrets; s3vault ...'`. Or use an AWS KMS key, which keeps no secret "
    "on this machine: `--key kms:KEY_ID` (or `defaults.key: kms:KEY_ID` in the config), "
    "or `s3vault key import NAME --type kms --key-id KEY_ID` where a keyring runs. "
    "Or keep the keys in a passphrase-encrypted file: `S3VAULT_KEYSTORE_TYPE=file` "
    "(or `keystore: {type: file}` in the config) with a passphrase source, e.g. "
    "`S3VAULT_KEYSTORE_PASSPHRASE_ENV=NAME_OF_A_VARIABLE` (or keystore.passphrase_file, "
    "keystore.passphrase_command); see docs/keys.md."
)


def usable_backend(candidate: KeyringBackend | SecretServiceKeyring) -> PasswordBackend:
    """The OS keyring behind ``candidate``, or KeyringUnavailableError.

    Only the OS keyrings that ship with `keyring` itself count: the `fail` and `null`
    backends store nothing, and third-party backends (``keyrings.alt``'s plaintext or
    "encrypted" files, and others) are not what a user means by "my OS keyring". A
    chainer is unwrapped to its best OS keyring so that it cannot fall back to anything
    else for one call.
    """
    if isinstance(candidate, SecretServiceKeyring):
        return candidate
    from keyring.backends import chainer, fail, null

    if isinstance(candidate, chainer.ChainerBackend):
        usable = [b for b in candidate.backends if _is_os_keyring(b)]
        if usable:
            return _ours(usable[0])
        raise KeyringUnavailableError(
            "no OS keyring service is running (no usable keyring backend was found)",
            hint=SERVER_HINT,
        )
    if _is_os_keyring(candidate):
        return _ours(candidate)
    if isinstance(candidate, fail.Keyring | null.Keyring):
        raise KeyringUnavailableError("no OS keyring service is running", hint=SERVER_HINT)
    raise KeyringUnavailableError(
        f"the keyring backend {type(candidate).__module__}.{type(candidate).__name__} "
        "is not an OS keyring; s3vault keeps master keys only in the OS keyring",
        hint=SERVER_HINT,
    )


def secret_service_backend() -> SecretServiceKeyring | None:
    """The Secret Service backend when it is usable and nobody chose another one.

    A shortcut for Linux, without importing `keyring`: ``keyring.get_keyring()``
    imports and probes every backend (the macOS one spawns ``ldconfig``), about 0.1 s,
    and importing `keyring` at all another 55 ms. What the user chose still takes
    precedence: ``PYTHON_KEYRING_BACKEND``, keyring's config file (`keyring_config_file`),
    ``KEYRING_PROPERTY_*`` variables (properties keyring sets on its backend) and a
    backend already chosen in this process (``keyring.set_keyring``); with any of
    them, keyring chooses as always (and `usable_backend` still refuses what is not an
    OS keyring). No Secret Service on the bus: None, and keyring's choice decides.
    """
    if sys.platform != "linux" or os.environ.get("PYTHON_KEYRING_BACKEND"):
        return None
    if any(name.startswith("KEYRING_PROPERTY_") for name in os.environ):
        return None
    core = sys.modules.get("keyring.core")
    if core is not None and getattr(core, "_keyring_backend", None) is not None:
        return None  # already chosen (or set with keyring.set_keyring): respect it
    if keyring_config_file().exists():
        return None
    return SecretServiceKeyring() if SecretServiceKeyring.available() else None


def keyring_config_file() -> Path:
    """keyring's config file on Linux (``keyring.util.platform_.config_root()`` /
    keyringrc.cfg): ``$XDG_CONFIG_HOME/python_keyring``, else ``~/.config/...``."""
    root = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(root, "python_keyring", "keyringrc.cfg")


def default_backend() -> KeyringBackend:
    """The backend `keyring` chooses (env, config file, else the best it finds)."""
    import keyring

    return keyring.get_keyring()


def _is_os_keyring(backend: KeyringBackend) -> bool:
    from keyring.backends import chainer, fail, null

    return type(backend).__module__.startswith("keyring.backends.") and not isinstance(
        backend, fail.Keyring | null.Keyring | chainer.ChainerBackend
    )


def _ours(backend: KeyringBackend) -> PasswordBackend:
    """keyring's Secret Service backend becomes ours (one kept connection)."""
    from keyring.backends import SecretService

    if type(backend) is SecretService.Keyring:
        return SecretServiceKeyring.replacing(backend)
    return backend


def is_keyring_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the keyring's failure (to translate) rather than our bug.

    keyring's errors and OSError, and what secretstorage/jeepney raise of their own
    (not KeyringError) for a vanished D-Bus or a dismissed prompt.
    """
    if isinstance(exc, OSError):
        return True
    return type(exc).__module__.split(".")[0] in {"keyring", "secretstorage", "jeepney", "dbus"}


def is_missing_entry(exc: BaseException) -> bool:
    """Whether ``exc`` says "no such entry" (keyring's PasswordDeleteError)."""
    if type(exc).__module__.split(".")[0] != "keyring":
        return False  # keyring.errors not imported then: not one of its errors
    import keyring.errors

    return isinstance(exc, keyring.errors.PasswordDeleteError)


def keyring_error(exc: Exception, action: str) -> KeyringUnavailableError:
    import keyring.errors

    # Messages from keyring/secretstorage/jeepney describe the service, never the
    # secret; still, only the class and a short text are kept.
    detail = f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")
    if isinstance(exc, keyring.errors.NoKeyringError):
        return KeyringUnavailableError("no OS keyring service is running", hint=SERVER_HINT)
    if isinstance(exc, keyring.errors.KeyringLocked) or "dismissed" in str(exc).lower():
        return KeyringUnavailableError(
            f"the OS keyring is locked and was not unlocked while trying to {action} "
            "(the unlock prompt was dismissed or could not be shown)",
            hint="Unlock your login keyring (e.g. log in to the desktop), then retry. "
            + SERVER_HINT,
        )
    return KeyringUnavailableError(
        f"the OS keyring did not answer while trying to {action} ({detail})",
        hint=SERVER_HINT,
    )
