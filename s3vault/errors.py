"""Errors a user can act on, each with a documented exit code.

Every layer raises these (or lets the edge translate library exceptions into them);
the CLI prints ``message`` and ``hint`` and exits with ``exit_code``; the GUI shows
``title``. No traceback ever reaches a user for an expected failure.

Exit codes (also in the README):

====  ===================================================================
0     success
1     unexpected error (a bug: please report it)
2     usage error: bad arguments, bad config, bad input file, a local
      file or folder that cannot be read or written
3     not found: bucket, object, local file
4     integrity failure: authentication tag, key commitment or wrapped
      data key did not verify (tampered or corrupted data, wrong key)
5     key missing: no master key available can open the object, or the
      named key does not exist
6     service unreachable: S3, KMS or the OS keyring did not answer
7     access denied: credentials missing or refused
8     conflict: existing state differs (key name taken by other material,
      object changed concurrently, a folder another process is syncing)
9     refused by policy: legacy format without --allow-legacy, an object
      that is not encrypted, object too large for the format, envelope over
      S3's metadata limit
130   interrupted (Ctrl-C)
====  ===================================================================
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    NOT_FOUND = 3
    INTEGRITY = 4
    KEY_MISSING = 5
    UNREACHABLE = 6
    ACCESS_DENIED = 7
    CONFLICT = 8
    REFUSED = 9
    INTERRUPTED = 130


class S3VaultError(Exception):
    """Base of every error s3vault expects and explains."""

    exit_code: ExitCode = ExitCode.UNEXPECTED
    title: str = "s3vault error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(S3VaultError):
    exit_code = ExitCode.USAGE
    title = "Invalid input"


class ConfigError(UsageError):
    title = "Invalid configuration"


class LocalFileError(UsageError):
    """A local file or folder could not be read or written (permissions, a full disk)."""

    title = "Local file"


class NotFoundError(S3VaultError):
    exit_code = ExitCode.NOT_FOUND
    title = "Not found"


class IntegrityError(S3VaultError):
    """Authentication failed: the data, its envelope or the key is not what was written.

    Raised before any plaintext is released.
    """

    exit_code = ExitCode.INTEGRITY
    title = "Integrity check failed"


class FormatError(IntegrityError):
    """The envelope is malformed, ambiguous (format confusion) or inconsistent."""

    title = "Invalid envelope"


class KeyMissingError(S3VaultError):
    exit_code = ExitCode.KEY_MISSING
    title = "Key missing"


class UnreachableError(S3VaultError):
    exit_code = ExitCode.UNREACHABLE
    title = "Service unreachable"


class KeyringUnavailableError(UnreachableError):
    title = "No OS keyring"


class AccessDeniedError(S3VaultError):
    exit_code = ExitCode.ACCESS_DENIED
    title = "Access denied"


class ConflictError(S3VaultError):
    exit_code = ExitCode.CONFLICT
    title = "Conflict"


class RefusedError(S3VaultError):
    exit_code = ExitCode.REFUSED
    title = "Refused"


class NotEncryptedError(RefusedError):
    """The object has no envelope: s3vault releases only what it can authenticate."""

    title = "Not encrypted"


class LegacyFormatError(RefusedError):
    """A legacy (weaker) format or wrap was met without the explicit opt-in."""

    title = "Legacy format"


_LOCAL_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    # A file past the file system's largest or the process's `ulimit -f`.
    errno.EFBIG: "the file is larger than the file system or the file size limit allows",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
}


def local_error(exc: OSError, doing: str, path: str | os.PathLike[str]) -> S3VaultError:
    """``exc``, met while trying to ``doing`` ``path`` ("write", "create the folder"),
    as an error a user can act on: NotFoundError for a missing path, else LocalFileError.
    """
    if exc.errno == errno.ENOENT:
        return NotFoundError(f"cannot {doing} {os.fspath(path)}: no such file or folder")
    reason = _LOCAL_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return LocalFileError(f"cannot {doing} {os.fspath(path)}: {reason}")
