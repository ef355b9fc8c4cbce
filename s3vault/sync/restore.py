"""Restore: decrypt every object under a prefix into a local folder.

The inverse of sync. Object keys come from the bucket, which may hold keys written by
anyone: a key is mapped to a path only if that path stays inside the target folder
(`target_path`, shared with the desktop app's downloads in `s3vault.vault.local_paths`).
Each object is decrypted into a temp file beside its target and moved into place
only once it verified (`Vault.get` to a path), so a tampered object
leaves no file behind. The temp files a killed restore left are removed by the next
one (`remove_leftover_parts`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s3vault.errors import ExitCode, NotFoundError, S3VaultError, local_error
from s3vault.sync.metadata import MTIME_METADATA
from s3vault.sync.report import PathError
from s3vault.vault import ObjectHead, Vault
from s3vault.vault.local_paths import WrittenNames, free_target
from s3vault.vault.streams import remove_leftover_parts


@dataclass
class RestoreReport:
    restored: int = 0
    skipped: list[str] = field(default_factory=list)  # existing files kept
    errors: list[PathError] = field(default_factory=list)
    bytes: int = 0
    duration: float = 0.0

    @property
    def exit_code(self) -> int:
        return self.errors[0].exit_code if self.errors else int(ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


def restore(
    vault: Vault,
    bucket: str,
    prefix: str,
    root: Path,
    *,
    overwrite: bool = False,
    key_name: str | None = None,
    allow_legacy: bool = False,
    on_file: Callable[[str], None] | None = None,
) -> RestoreReport:
    """Decrypt each object under ``prefix`` into ``root``; per-object errors are collected."""
    started = time.monotonic()
    report = RestoreReport()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise local_error(exc, "create the folder", root) from None
    remove_leftover_parts(root)
    with vault.keys.remembering_keys():
        found = _restore_all(
            vault, bucket, prefix, root, report, overwrite, key_name, allow_legacy, on_file
        )
    if not found:
        raise NotFoundError(
            f"there are no objects under s3://{bucket}/{prefix}: nothing was restored",
            hint=f"`s3vault ls s3://{bucket}/` shows what the bucket holds.",
        )
    report.duration = time.monotonic() - started
    return report


def _restore_all(
    vault: Vault,
    bucket: str,
    prefix: str,
    root: Path,
    report: RestoreReport,
    overwrite: bool,
    key_name: str | None,
    allow_legacy: bool,
    on_file: Callable[[str], None] | None,
) -> bool:
    """Restore every object; False if the prefix holds none at all.

    The objects' HEADs (for the mtime each file had) go out many at once through the
    native client (`S3Remote.heads`), a window ahead of the downloads.
    """
    found = False
    written = WrittenNames(root)  # two keys, one file on a case-folding file system

    def keys() -> Iterator[str]:
        nonlocal found
        for entry in vault.list_objects(bucket, prefix):
            found = True
            relkey = entry.key[len(prefix) :]
            # Instruction files belong to their object; "dir/" keys are folder placeholders.
            if not (vault.is_instruction_key(entry.key) or relkey.endswith("/") or not relkey):
                yield entry.key

    for key, head in vault.remote.heads(bucket, keys()):
        relkey = key[len(prefix) :]
        try:
            if isinstance(head, S3VaultError):
                raise head
            written.refuse_clash(relkey)
            path = _restore_one(
                vault, bucket, head, root, relkey, report, overwrite, key_name, allow_legacy
            )
            if path is not None:
                written.add(relkey)
        except S3VaultError as exc:
            report.errors.append(PathError(relkey, exc.message, int(exc.exit_code)))
        if on_file:
            on_file(relkey)
    return found


def _restore_one(
    vault: Vault,
    bucket: str,
    head: ObjectHead,
    root: Path,
    relkey: str,
    report: RestoreReport,
    overwrite: bool,
    key_name: str | None,
    allow_legacy: bool,
) -> Path | None:
    """Restore one object; its path, or None if a file there was kept."""
    path = free_target(root, relkey, overwrite=overwrite)
    if path is None:
        report.skipped.append(relkey)
        return None
    result = vault.get(bucket, head.key, path, key_name=key_name, allow_legacy=allow_legacy)
    report.restored += 1
    report.bytes += result.plaintext_size
    mtime = head.metadata.get(MTIME_METADATA)
    # The mtime the file had when it was synced; an object without it keeps "now".
    if mtime and mtime.isdigit():
        with contextlib.suppress(OSError, OverflowError):
            os.utime(path, ns=(int(mtime), int(mtime)))
    return path
