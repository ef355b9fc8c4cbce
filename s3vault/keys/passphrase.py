"""Where the file keystore's passphrase comes from: a variable, a file, a command, a prompt.

Never from the command line (argv is visible to every user of the machine), never in
a log or an error message. At most one source is configured (the config checks it);
with none, the face asks on a terminal (the CLI) or the error names the three settings.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from s3vault.config.model import KeystoreSettings
from s3vault.errors import ConfigError

AskPassphrase = Callable[[str, bool], str | None]
"""``ask(prompt, new)``: a passphrase typed by the user (hidden; asked twice when ``new``),
or None when nobody can be asked (no terminal)."""

SETTINGS_HINT = (
    "Set one of keystore.passphrase_env (the name of an environment variable), "
    "keystore.passphrase_file (a file; systemd LoadCredential= puts it in "
    "$CREDENTIALS_DIRECTORY) or keystore.passphrase_command (a command that prints it), "
    "e.g. S3VAULT_KEYSTORE_PASSPHRASE_ENV=S3VAULT_PASSPHRASE; or run s3vault on a terminal "
    "to type it."
)


@dataclass(frozen=True)
class PassphraseSource:
    """The configured source of the passphrase, read only when the file is opened."""

    env: str | None = None
    file: Path | None = None
    command: str | None = None
    ask: AskPassphrase | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @classmethod
    def from_settings(
        cls, settings: KeystoreSettings, ask: AskPassphrase | None = None
    ) -> PassphraseSource:
        return cls(
            env=settings.passphrase_env or None,
            file=settings.passphrase_file,
            command=settings.passphrase_command or None,
            ask=ask,
        )

    def describe(self) -> str:
        """Which source this is (not the passphrase): keys the derived-key cache."""
        if self.env:
            return f"env:{self.env}"
        if self.file is not None:
            return f"file:{self.file}"
        if self.command:
            return f"command:{self.command}"
        return f"ask:{id(self.ask)}"

    def read(self, *, where: str, new: bool) -> str:
        """The passphrase for ``where``; ``new``: the file is about to be created.

        ConfigError (exit 2) when the source is unset, unreadable, fails or is empty.
        """
        if self.env:
            value = self.environ.get(self.env)
            if value is None:
                raise ConfigError(
                    f"the environment variable {self.env} (keystore.passphrase_env) is "
                    f"not set, so {where} cannot be opened",
                    hint=f"Export {self.env} with the keystore's passphrase.",
                )
            return _non_empty(value, f"the environment variable {self.env}")
        if self.file is not None:
            return _non_empty(_strip_newline(self._read_file()), f"passphrase file {self._path()}")
        if self.command:
            return _non_empty(_strip_newline(self._run()), "the output of the passphrase command")
        typed = self.ask(f"Passphrase of {where}", new) if self.ask is not None else None
        if typed is None:
            raise ConfigError(f"no passphrase for {where} is configured", hint=SETTINGS_HINT)
        return _non_empty(typed, "the passphrase typed")

    def _path(self) -> Path:
        assert self.file is not None
        path = self.file.expanduser()
        credentials = self.environ.get("CREDENTIALS_DIRECTORY")
        if not path.is_absolute() and credentials:
            return Path(credentials) / path
        return path

    def _read_file(self) -> str:
        path = self._path()
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            hint = (
                "A relative path is looked up in $CREDENTIALS_DIRECTORY, which is not set here."
                if not path.is_absolute()
                else "Check keystore.passphrase_file (and the unit's LoadCredential=)."
            )
            raise ConfigError(
                f"the passphrase file {path} (keystore.passphrase_file) does not exist",
                hint=hint,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise ConfigError(f"cannot read the passphrase file {path}: {reason}") from None

    def _run(self) -> str:
        assert self.command is not None
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            raise ConfigError(f"keystore.passphrase_command cannot be split: {exc}") from None
        if not argv:
            raise ConfigError("keystore.passphrase_command is empty")
        try:
            # No shell; stdin and stderr stay the terminal's (a command may prompt, and
            # its own error message is what a user needs); only stdout is captured.
            done = subprocess.run(argv, stdout=subprocess.PIPE, check=False)
        except OSError as exc:
            raise ConfigError(
                f"the passphrase command {argv[0]} (keystore.passphrase_command) cannot "
                f"be run: {exc.strerror}"
            ) from None
        if done.returncode != 0:
            raise ConfigError(
                f"the passphrase command {argv[0]} (keystore.passphrase_command) failed "
                f"with exit status {done.returncode}",
                hint="Run it yourself to see why; it must print the passphrase and exit 0.",
            )
        try:
            return done.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"the passphrase command {argv[0]} printed something that is not UTF-8 text"
            ) from None


def _strip_newline(text: str) -> str:
    """One trailing line end off (what `echo` and editors add), nothing else."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _non_empty(value: str, what: str) -> str:
    if not value:
        raise ConfigError(f"{what} is empty: the keystore needs a passphrase", hint=SETTINGS_HINT)
    return value
