"""The records the sync engine passes around: files as seen locally, in the state
database and in S3, and the actions a plan is made of.

Paths are POSIX paths relative to the sync root (``"photos/2024/a.jpg"``), the same
on every OS, so they double as the tail of the object key (see
`FolderSettings.object_key`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A regular file found by a scan: only what ``stat`` says, never its content."""

    path: str
    size: int
    mtime_ns: int
    inode: int


UNKNOWN_HASH = ""
"""`SyncedFile.content_hash` of a row whose uploaded bytes are not known for sure: the
file changed after it was read, or the row was relearned from S3. With an impossible
mtime (-1) it makes the next plan compare the file again and upload it."""


@dataclass(frozen=True, slots=True)
class SyncedFile:
    """A state-database row: the file as it was when S3 confirmed its object.

    ``content_hash`` is the SHA-256 (hex) of the plaintext that was uploaded;
    ``etag``/``version_id`` are what S3 answered for that upload, so the next write
    of the object can be made conditional on them.
    """

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    etag: str
    key_name: str
    version_id: str | None = None
    synced_at: float = field(default_factory=time.time)
    token: str | None = None
    """The upload token the object carries (``s3vault-upload``), if it was recorded."""


class StateRows(Mapping[str, SyncedFile]):
    """A folder's state rows as read in one query: path -> `SyncedFile`, built on access.

    A run of 100,000 unchanged files needs only each row's size, mtime and ETag; a
    `SyncedFile` per row would cost more than the comparison itself. The rows are
    kept as the database's tuples (`SyncedFile`'s fields in order, ``raw``), and the
    planner compares those (`size`, `mtime_ns`, `etag` are their positions). A
    snapshot: later writes to the database do not change it, `update` does.
    """

    SIZE, MTIME_NS, ETAG = 1, 2, 4  # positions in a raw row

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, tuple[Any, ...]] | None = None) -> None:
        self.raw: dict[str, tuple[Any, ...]] = {} if raw is None else raw

    @classmethod
    def of(cls, rows: Mapping[str, SyncedFile]) -> StateRows:
        """The same rows, from `SyncedFile`s (a dict in the tests, say)."""
        if isinstance(rows, StateRows):
            return rows
        return cls({path: _astuple(row) for path, row in rows.items()})

    def __getitem__(self, path: str) -> SyncedFile:
        return SyncedFile(*self.raw[path])

    def __contains__(self, path: object) -> bool:
        return path in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def etags(self) -> Iterator[tuple[str, str]]:
        """(path, ETag) of every row, without building rows."""
        etag = self.ETAG
        return ((path, row[etag]) for path, row in self.raw.items())

    def only(self, paths: Iterable[str]) -> StateRows:
        """The rows of ``paths`` (those that have one), sharing nothing with this."""
        raw = self.raw
        return StateRows({p: raw[p] for p in paths if p in raw})

    def update(self, rows: Mapping[str, SyncedFile]) -> None:
        """Replace or add rows (relearned ones, say)."""
        for path, row in rows.items():
            self.raw[path] = _astuple(row)


def _astuple(row: SyncedFile) -> tuple[Any, ...]:
    # Not dataclasses.astuple: that deep-copies every field.
    return (
        row.path,
        row.size,
        row.mtime_ns,
        row.content_hash,
        row.etag,
        row.key_name,
        row.version_id,
        row.synced_at,
        row.token,
    )


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """An object of the folder's prefix in a listing, keyed by its relative path."""

    path: str
    etag: str
    size: int
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class RootIdentity:
    """Which directory the sync root is: its device and inode.

    Remembered in the state database; a different identity at the same path means
    the folder was replaced or a drive is not mounted (see docs/sync.md).
    """

    device: int
    inode: int


# ---- actions ---------------------------------------------------------------------
#
# A plan is a list of these, in the order they must run: copies before uploads (a copy
# reads the old object), everything that preserves data before any delete.

UploadReason = Literal["new", "changed", "missing-remotely"]


@dataclass(frozen=True, slots=True)
class Upload:
    """Encrypt and upload the local file.

    With ``expected_etag`` the write is conditional (IfMatch): it replaces only the
    object this machine last wrote. Without it the object must not exist yet
    (IfNoneMatch ``*``). Either way, a failed precondition is a conflict, never an
    overwrite.
    """

    path: str
    reason: UploadReason
    expected_etag: str | None = None

    @property
    def if_none_match(self) -> bool:
        return self.expected_etag is None


@dataclass(frozen=True, slots=True)
class Copy:
    """A rename of unchanged content: server-side copy of ``src_path``'s object.

    ``src_etag`` pins the source (CopySourceIfMatch). An instruction file, if the
    object has one, is copied with it.
    """

    src_path: str
    dst_path: str
    src_etag: str


@dataclass(frozen=True, slots=True)
class DeleteRemote:
    """Delete the object of a file that is gone locally (delete policy "mirror").

    ``renamed_to`` is set when the delete completes a rename (after its `Copy`); such
    deletes lose no data and do not count towards the mass-delete guard.
    """

    path: str
    expected_etag: str
    renamed_to: str | None = None


@dataclass(frozen=True, slots=True)
class Touch:
    """Only the mtime changed (the content hash is the same): update the state row."""

    path: str
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """S3 holds something this machine did not write: leave both sides alone, report."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Forget:
    """The file and its object are both gone: drop the state row."""

    path: str


Action = Upload | Copy | DeleteRemote | Touch | Conflict | Forget
A = TypeVar("A", Upload, Copy, DeleteRemote, Touch, Conflict, Forget)


@dataclass(slots=True)
class PlanCounts:
    """How many paths fell in each case; for status lines and the tests."""

    unchanged: int = 0
    new: int = 0
    changed: int = 0
    missing_remotely: int = 0
    renamed: int = 0
    touched: int = 0
    deleted: int = 0
    kept: int = 0  # deleted locally, object kept (delete policy "keep")
    conflicts: int = 0
    forgotten: int = 0
    remote_only: int = 0  # objects this machine never wrote: left alone
    ignored: int = 0  # state rows of paths now ignored: left alone
    unreadable: int = 0  # state rows under unreadable paths: left alone
    hashed: int = 0  # files whose content was hashed to decide


@dataclass(slots=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    counts: PlanCounts = field(default_factory=PlanCounts)

    def of(self, kind: type[A]) -> list[A]:
        """The actions of one kind, in plan order: ``plan.of(Upload)``."""
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def changes_remote(self) -> bool:
        """Whether running the plan writes or deletes anything in S3."""
        return any(isinstance(a, Upload | Copy | DeleteRemote) for a in self.actions)

    @property
    def deletes(self) -> int:
        """Remote deletes that lose data (renames excluded): what the guard counts."""
        return sum(1 for a in self.actions if isinstance(a, DeleteRemote) and a.renamed_to is None)
