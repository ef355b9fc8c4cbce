"""The user metadata sync writes beside each object's envelope.

`s3vault-mtime` gives `s3vault restore` the file's modification time back;
`s3vault-upload` is the upload token that proves an object is this machine's own
write (see `sync.ownership`).
"""

from __future__ import annotations

MTIME_METADATA = "s3vault-mtime"
"""User metadata with the file's mtime in ns: `s3vault restore` gives it back."""
UPLOAD_TOKEN_METADATA = "s3vault-upload"  # noqa: S105 (a metadata name, not a secret)
"""A token per write, ``WRITER.RANDOM``, also kept in the state (in-flight announcement,
then the row): it proves an object is this machine's write, after a crash between S3's
answer and the state row, or after key rotation re-wrote the object with a new ETag.
WRITER is the state database's id (`StateDB.writer`)."""


def upload_metadata(mtime_ns: int, token: str) -> dict[str, str]:
    """The metadata of one upload of a file whose mtime was ``mtime_ns``."""
    return {MTIME_METADATA: str(mtime_ns), UPLOAD_TOKEN_METADATA: token}
