"""The sync part of the config file: which folders go where, and how the agent runs.

    folders:
      - path: ~/Documents
        bucket: my-vault
        prefix: laptop/documents
        key: laptop-2026
    agent: {workers: 8, debounce_ms: 500, rescan_interval: 1h}

Only ``path``, ``bucket`` and ``key`` are required. These models sit in
`s3vault.config.model.Config` as ``folders: list[FolderSettings]`` and
``agent: AgentSettings`` (with `check_folders` run over the list).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from s3vault.config.suffix import InstructionSuffix

# ---- durations and rates: the forms a person writes in YAML --------------------------

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> int:
    """Seconds from ``3600``, ``"3600"``, ``"45s"``, ``"30m"``, ``"1h"``, ``"1h30m"``, ``"2d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like 30m or 1h")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            return int(text)
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
    raise ValueError(
        f"{value!r} is not a duration: write seconds (3600) or a number with s, m, h or d "
        "(45s, 30m, 1h, 1h30m)"
    )


_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?i?b?)(?:/s)?", re.IGNORECASE)
_RATE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    # Bare K/M/G are binary, as in rclone's --bwlimit.
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_UNLIMITED = {"off", "none", "unlimited", "0"}


def parse_rate(value: object) -> int | None:
    """Bytes per second from ``"10MiB"``, ``"500KB/s"``, ``"1.5M"``, ``1048576``; None if off.

    Units are bytes, never bits: ``MB`` is 10^6 bytes, ``MiB`` and bare ``M`` 2^20.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a bandwidth limit is a size per second like 10MiB, or off")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a bandwidth limit cannot be negative")
        return value or None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _UNLIMITED:
            return None
        match = _RATE.fullmatch(text)
        if match and match.group(2).lower() in _RATE_UNITS:
            rate = int(float(match.group(1)) * _RATE_UNITS[match.group(2).lower()])
            if rate > 0:
                return rate
    raise ValueError(
        f"{value!r} is not a bandwidth limit: write bytes per second with a unit "
        "(500KiB, 10MiB, 2MB) or off"
    )


def parse_size(value: object) -> int:
    """Bytes from ``16MiB``, ``5MB``, ``8M`` or a plain integer (same units as a rate)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _RATE.fullmatch(value.strip())
        if match and match.group(2).lower() in _RATE_UNITS and "/" not in value:
            return int(float(match.group(1)) * _RATE_UNITS[match.group(2).lower()])
    raise ValueError(f"{value!r} is not a size: write bytes (8388608) or 8MiB, 16MB, 5GiB")


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "examples": ["8MiB", "16MB", "5GiB"]},
            ]
        }
    ),
]


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^(\d+|(\d+[smhd])+)$"},
            ]
        }
    ),
]
Rate = Annotated[
    int | None,
    BeforeValidator(parse_rate),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "examples": ["10MiB", "500KB", "off"]},
                {"type": "null"},
            ]
        }
    ),
]


class _Section(BaseModel):
    # Unknown keys are an error: a typo in a provisioning template must not be ignored.
    # defer_build: built on first validation (see config.model).
    model_config = ConfigDict(extra="forbid", defer_build=True)


# ---- folders -------------------------------------------------------------------------


class FolderSettings(_Section):
    """One local folder encrypted into ``s3://bucket/prefix``."""

    path: Path = Field(description="The local folder (absolute, ~ allowed)")
    bucket: str = Field(description="The S3 bucket (a name, not a URL)")
    prefix: str = Field(
        default="",
        description="Key prefix inside the bucket, e.g. laptop/documents ('' = bucket root)",
    )
    key: str = Field(description="Name of the master key new objects are encrypted with")
    format: Literal["v2", "v3"] = Field(
        default="v3", description="v3 (key commitment) or v2 (read by older official clients)"
    )
    envelope: Literal["metadata", "instruction-file"] = Field(
        default="metadata", description="Where each object's envelope is stored"
    )
    instruction_suffix: InstructionSuffix | None = Field(
        default=None,
        description="Name suffix of the folder's instruction files "
        "(default: defaults.instruction_suffix)",
    )
    delete: Literal["mirror", "keep"] = Field(
        default="mirror",
        description="mirror: a file deleted locally is deleted in S3; keep: its object stays",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="gitignore-style patterns of paths not to sync (added to the defaults "
        "and to the folder's .s3vaultignore)",
    )
    follow_symlinks: bool = Field(
        default=False, description="Sync what symbolic links point to (default: skip links)"
    )
    max_delete_percent: int = Field(
        default=50,
        ge=0,
        le=100,
        description="Refuse a run that would delete more than this share of the synced files",
    )
    max_delete_files: int = Field(
        default=1000, ge=0, description="Refuse a run that would delete more files than this"
    )

    @field_validator("path", mode="after")
    @classmethod
    def _absolute_path(cls, value: Path) -> Path:
        path = value.expanduser()
        if not path.is_absolute():
            # Relative to what? The agent's working directory is not the user's.
            raise ValueError(f"{value} is not an absolute path: write /home/me/x or ~/x")
        return path

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        name = value.strip()
        if name.startswith("s3://"):
            raise ValueError(
                f"{value!r} is a URL: write the bucket name only, and the rest in 'prefix'"
            )
        if not name or "/" in name or any(c.isspace() for c in name):
            raise ValueError(f"{value!r} is not a bucket name (no '/', no spaces)")
        return name

    @field_validator("prefix")
    @classmethod
    def _normalised_prefix(cls, value: str) -> str:
        return normalise_prefix(value)

    @field_validator("key")
    @classmethod
    def _key_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the master key name cannot be empty")
        return value

    @property
    def folder_id(self) -> str:
        """The folder's name in the state database: where it syncs to.

        Keyed on the remote location, not the local path, so moving the local folder
        (and updating ``path``) keeps the state; the guard then notices the new root.
        """
        return f"s3://{self.bucket}/{self.prefix}"

    def object_key(self, relpath: str) -> str:
        """The object key of a file: ``prefix`` + its POSIX path under the root."""
        return self.prefix + relpath

    def local_path(self, relpath: str) -> Path:
        """The local file of a POSIX path under the root (the inverse of a scan's path)."""
        return self.path.joinpath(*relpath.split("/"))

    def relpath_of(self, key: str) -> str | None:
        """The inverse of `object_key`; None for a key outside the prefix."""
        if not key.startswith(self.prefix) or key == self.prefix:
            return None
        return key[len(self.prefix) :]


def normalise_prefix(value: str) -> str:
    """``"/a/b"`` -> ``"a/b/"``, ``""`` or ``"/"`` -> ``""``; rejects ``.``/``..``/``//``."""
    text = value.strip().strip("/")
    if not text:
        return ""
    parts = text.split("/")
    if any(p in ("", ".", "..") for p in parts):
        # Such keys are ambiguous (and some S3 servers refuse them).
        raise ValueError(f"prefix {value!r} has an empty, '.' or '..' segment")
    return "/".join(parts) + "/"


def check_folders(folders: Sequence[FolderSettings]) -> None:
    """Refuse folders that overlap, locally or in S3 (ValueError naming both).

    Two folders syncing the same files would upload them twice; two folders sharing a
    prefix would each see the other's objects as "not mine" or, worse, delete them.
    """
    for i, a in enumerate(folders):
        for b in folders[i + 1 :]:
            if _nested(a.path, b.path):
                raise ValueError(f"folders {a.path} and {b.path} overlap: one is inside the other")
            if a.bucket == b.bucket and (
                a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
            ):
                raise ValueError(
                    f"folders {a.path} and {b.path} overlap in S3: {a.folder_id} and "
                    f"{b.folder_id}; give each its own prefix"
                )


def _nested(a: Path, b: Path) -> bool:
    pa, pb = PurePosixPath(a.as_posix()), PurePosixPath(b.as_posix())
    return pa == pb or pa.is_relative_to(pb) or pb.is_relative_to(pa)


# ---- the agent -----------------------------------------------------------------------


class AgentSettings(_Section):
    """How the sync agent works (one agent per user, for every folder)."""

    workers: int = Field(default=8, ge=1, le=64, description="Parallel file transfers")
    debounce_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="Wait this long after the last change of a file before uploading it",
    )
    rescan_interval: Duration = Field(
        default=3600,
        description="Full scan of every folder this often (seconds, or 30m, 1h, 1d); "
        "0 = only at start",
    )
    bandwidth_limit: Rate = Field(
        default=None,
        description="Upload limit in bytes per second (10MiB, 500KB, ...); none by default",
    )
    metrics_file: Path | None = Field(
        default=None,
        description="Write Prometheus metrics to this file (node_exporter's textfile "
        "collector reads *.prom files); none by default",
    )

    @field_validator("metrics_file", mode="after")
    @classmethod
    def _absolute_metrics_file(cls, value: Path | None) -> Path | None:
        # The agent's working directory is not the user's: a relative path would land
        # wherever systemd started it.
        if value is None:
            return None
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError(f"metrics_file {value} must be an absolute path (or start with ~)")
        return value
