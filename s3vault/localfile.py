"""Whether a local file changed while it was read: one rule for every reader.

A file's size, mtime and inode, taken before its first byte was read and compared
after the last one, tell whether the bytes read are the file as it was. The vault's
upload, the sync engine and its small-file path all ask this same question.
"""

from __future__ import annotations

import os
from pathlib import Path


def same_file_state(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether two stats of a path show the same file, unchanged (size, mtime, inode)."""
    return (before.st_size, before.st_mtime_ns, before.st_ino) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    )


def changed_since(path: str | Path, before: os.stat_result) -> bool:
    """Whether ``path`` is no longer the file ``before`` describes (changed or gone)."""
    try:
        after = os.stat(path)
    except OSError:
        return True
    return not same_file_state(before, after)
