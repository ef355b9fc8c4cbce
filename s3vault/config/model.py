"""The shape of the config file (YAML; JSON is valid YAML).

Every setting has a default, so an absent file means "AWS defaults, keys in the
OS keyring" (`keystore.type: file` keeps them in a passphrase-encrypted file instead).
Every setting can also be given by an environment variable ``S3VAULT_<SECTION>_<NAME>``
(see `s3vault.config.load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, model_validator

from s3vault.config.suffix import DEFAULT_INSTRUCTION_SUFFIX, InstructionSuffix
from s3vault.config.sync import AgentSettings, FolderSettings, Size, check_folders

MiB = 1024 * 1024
GiB = 1024 * MiB


class _Section(BaseModel):
    # Unknown keys are an error: a typo in a provisioning template must not be ignored.
    # defer_build: a model's validator is built when it first validates, so a command
    # that reads one section (`key list`: keyring, keystore) does not build them all.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class S3Settings(_Section):
    """Where S3 is. Unset fields fall back to the usual AWS sources (env, profiles)."""

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint, e.g. http://127.0.0.1:8333"
    )
    region: str | None = Field(default=None, description="AWS region, e.g. us-east-1")
    profile: str | None = Field(default=None, description="AWS profile from ~/.aws/config")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="'path' for most self-hosted S3 servers"
    )


class KmsSettings(_Section):
    endpoint_url: str | None = Field(default=None, description="KMS endpoint override")
    region: str | None = Field(default=None, description="KMS region (default: the S3 region)")


class KeyringSettings(_Section):
    service: str = Field(
        default="s3vault", description="Service name under which keys live in the OS keyring"
    )


class KeystoreSettings(_Section):
    """Where master keys live: the OS keyring, or one passphrase-encrypted file.

    The file is for machines without a Secret Service (servers, containers, CI); it is
    used only when chosen here, never as a fallback for a missing keyring.
    """

    type: Literal["keyring", "file"] = Field(
        default="keyring",
        description="'keyring': the OS keyring (service: keyring.service); 'file': one "
        "file encrypted with a passphrase (AES-256-GCM, key from Argon2id)",
    )
    path: Path | None = Field(
        default=None,
        description="The file keystore (default: keystore in the user data dir, e.g. "
        "~/.local/share/s3vault/keystore)",
    )
    passphrase_env: str | None = Field(
        default=None,
        description="Name of the environment variable that holds the file keystore's passphrase",
    )
    passphrase_file: Path | None = Field(
        default=None,
        description="File holding the passphrase (one trailing newline ignored); a relative "
        "path is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)",
    )
    passphrase_command: str | None = Field(
        default=None,
        description="Command (run without a shell) that prints the passphrase on stdout",
    )

    @model_validator(mode="after")
    def _one_passphrase_source(self) -> KeystoreSettings:
        given = [
            name
            for name in ("passphrase_env", "passphrase_file", "passphrase_command")
            if getattr(self, name) not in (None, "")
        ]
        if len(given) > 1:
            raise ValueError(f"set at most one passphrase source, not {' and '.join(given)}")
        return self

    def file_path(self) -> Path:
        """The file keystore's path: ``path``, or the default in the user data dir."""
        if self.path is not None:
            return self.path.expanduser()
        return Path(platformdirs.user_data_dir("s3vault")) / "keystore"


class DefaultsSettings(_Section):
    """What commands use when their options are not given."""

    format: Literal["v2", "v3"] = Field(
        default="v3", description="v3 (key commitment) or v2 (read by older official clients)"
    )
    envelope: Literal["metadata", "instruction-file"] = Field(
        default="metadata", description="Where the envelope is stored"
    )
    instruction_suffix: InstructionSuffix = Field(
        default=DEFAULT_INSTRUCTION_SUFFIX,
        description="Name suffix of instruction files: the envelope of KEY is in KEY + this "
        "(the official clients' default is .instruction)",
    )
    key: str | None = Field(
        default=None, description="Master key for new objects (default: the current key)"
    )


class TransferSettings(_Section):
    multipart_threshold: Size = Field(
        default=16 * MiB, ge=5 * MiB, description="Objects at least this big use multipart"
    )
    part_size: Size = Field(default=8 * MiB, ge=5 * MiB, description="Multipart part size")
    concurrency: int = Field(default=8, ge=1, le=64, description="Parallel part transfers")
    copy_threshold: Size = Field(
        default=5 * GiB,
        ge=5 * MiB,
        le=5 * GiB,
        description="Objects larger than this are copied (renames in sync, key rotation) with a "
        "multipart copy (S3 copies at most 5 GiB in one request)",
    )


class Config(_Section):
    version: Literal[1] = 1
    managed_by: str | None = Field(
        default=None,
        description="Set by automation (e.g. 'ansible', 'terraform') that owns this file: "
        "the desktop app then shows the settings read-only",
    )
    s3: S3Settings = Field(default_factory=S3Settings)
    kms: KmsSettings = Field(default_factory=KmsSettings)
    keyring: KeyringSettings = Field(default_factory=KeyringSettings)
    keystore: KeystoreSettings = Field(default_factory=KeystoreSettings)
    defaults: DefaultsSettings = Field(default_factory=DefaultsSettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    buckets: list[str] = Field(
        default_factory=list,
        description="Buckets s3vault checks before deleting a key, as BUCKET or "
        "s3://BUCKET/PREFIX (`s3vault key delete` refuses a key their objects still need)",
    )
    folders: list[FolderSettings] = Field(
        default_factory=list, description="Local folders kept encrypted in S3"
    )
    agent: AgentSettings = Field(default_factory=AgentSettings)

    @model_validator(mode="after")
    def _folders_do_not_overlap(self) -> Config:
        check_folders(self.folders)
        return self
