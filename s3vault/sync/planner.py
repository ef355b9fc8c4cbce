"""What to do to bring S3 in line with a folder: a pure function of three listings.

    local   the scan (or the paths a batch of events touched, scanned again)
    state   the state database: what this machine uploaded, with the ETag S3 gave back
    remote  the S3 listing of the folder's prefix, at start-up only (None otherwise)

No I/O happens here except through ``hash_of``, which the planner calls only when
size and mtime cannot decide: a file whose size is the same but mtime is not (is it
a "touch"?), and a new file whose size equals a vanished file's (is it a rename?).

The rules, in the words of the tests (tests/test_sync_planner.py):

- size and mtime as in the state: unchanged, nothing to do, nothing read;
- same size, new mtime, same hash: `Touch` (remember the new mtime, upload nothing);
- otherwise changed: `Upload` conditional on the ETag this machine last wrote;
- not in the state: `Upload` conditional on there being no object yet, or a `Copy`
  when it is a vanished file under a new name (same size, same hash);
- in the state but gone locally: `DeleteRemote` conditional on the ETag (delete
  policy "mirror"), or nothing ("keep");
- with the remote listing: an object whose ETag is not the one this machine wrote,
  or an object at the key of a file this machine never uploaded, is a `Conflict`
  (another machine wrote it: never overwrite it blindly); an object missing although
  the state says synced is uploaded again; objects this machine never wrote are
  left alone.

Paths in ``unreadable`` (a directory that could not be listed, a file whose stat
failed) and paths the ignore rules now exclude are not taken for deleted: their
state rows are left as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol

from s3vault.config.sync import FolderSettings
from s3vault.etag import same_etag
from s3vault.sync.model import (
    Action,
    Conflict,
    Copy,
    DeleteRemote,
    Forget,
    LocalFile,
    Plan,
    RemoteObject,
    StateRows,
    SyncedFile,
    Touch,
    Upload,
)
from s3vault.sync.scan import ROOT

DeletePolicy = Literal["mirror", "keep"]

CHANGED_REMOTELY = "changed in S3 by another writer since this machine synced it"
DELETED_HERE_CHANGED_THERE = (
    "deleted here, but changed in S3 by another writer since: the object is kept"
)
NOT_WRITTEN_HERE = "S3 already has an object at this key that this machine did not write"


def plan(
    local: Mapping[str, LocalFile],
    state: Mapping[str, SyncedFile],
    remote: Mapping[str, RemoteObject] | None = None,
    *,
    delete_policy: DeletePolicy,
    hash_of: Callable[[str], str | None],
    unreadable: Iterable[str] = (),
    is_ignored: Callable[[str], bool] | None = None,
) -> Plan:
    """The actions, in the order they must run, and what each path came to.

    ``hash_of(path)`` returns the content hash of a local file, or None when it cannot
    be read now; the planner then assumes the content changed (the upload will report
    the read error) and never takes the file for a rename.
    """
    result = Plan()
    counts = result.counts
    unknown = _Subtrees(unreadable)
    rows = StateRows.of(state)

    # State rows whose file is not here. Left alone when we cannot know (unreadable)
    # or no longer care (ignored); the rest are deleted or renamed.
    vanished: dict[str, SyncedFile] = {}
    for path in rows.raw:
        if path in local:
            continue
        if unknown.covers(path):
            counts.unreadable += 1
        elif is_ignored is not None and is_ignored(path):
            counts.ignored += 1
        else:
            vanished[path] = rows[path]

    # Rename sources by size: only objects still as this machine wrote them can be copied.
    sources: dict[int, list[SyncedFile]] = defaultdict(list)
    for known in vanished.values():
        if remote is None or _as_written(remote.get(known.path), known):
            sources[known.size].append(known)
    renamed: dict[str, str] = {}  # vanished path -> its (first) new name

    copies: list[Action] = []
    uploads: list[Action] = []
    touches: list[Action] = []
    conflicts: list[Action] = []
    deletes: list[Action] = []
    forgets: list[Action] = []

    def hash_(path: str) -> str | None:
        counts.hashed += 1
        return hash_of(path)

    # Unchanged files (most, in most runs) are told apart in one tight pass; only the
    # others are looked at one by one, in path order.
    unsettled = _unsettled(local, rows, remote)
    counts.unchanged = len(local) - len(unsettled)
    for path in sorted(unsettled):
        file = local[path]
        row = rows.get(path)
        obj = remote.get(path) if remote is not None else None
        if row is None:
            # A file this machine never uploaded.
            if obj is not None:
                conflicts.append(Conflict(path, NOT_WRITTEN_HERE))
                counts.conflicts += 1
                continue
            source = _rename_source(file, sources.get(file.size), hash_)
            if source is not None:
                copies.append(Copy(source.path, path, source.etag))
                renamed.setdefault(source.path, path)
                counts.renamed += 1
            else:
                uploads.append(Upload(path, "new"))
                counts.new += 1
            continue
        if remote is not None:
            if obj is None:
                uploads.append(Upload(path, "missing-remotely"))
                counts.missing_remotely += 1
                continue
            if not same_etag(obj.etag, row.etag):
                conflicts.append(Conflict(path, CHANGED_REMOTELY))
                counts.conflicts += 1
                continue
        # Size or mtime differ here (`_unsettled`): is it only a touch?
        if file.size == row.size and hash_(path) == row.content_hash:
            touches.append(Touch(path, file.mtime_ns))
            counts.touched += 1
        else:
            uploads.append(Upload(path, "changed", expected_etag=row.etag))
            counts.changed += 1

    for path in sorted(vanished):
        gone = vanished[path]
        if remote is not None:
            obj = remote.get(path)
            if obj is None:
                forgets.append(Forget(path))
                counts.forgotten += 1
                continue
            if not same_etag(obj.etag, gone.etag):
                conflicts.append(Conflict(path, DELETED_HERE_CHANGED_THERE))
                counts.conflicts += 1
                continue
        if delete_policy == "keep":
            # The object stays, and so does the row: a file that comes back at this
            # path is then compared with it instead of clashing with our own object.
            if path not in renamed:
                counts.kept += 1
        elif path in renamed:
            deletes.append(DeleteRemote(path, gone.etag, renamed_to=renamed[path]))
        else:
            deletes.append(DeleteRemote(path, gone.etag))
            counts.deleted += 1

    if remote is not None:
        counts.remote_only = sum(1 for p in remote if p not in local and p not in rows.raw)

    # Everything that preserves data runs before anything that removes it; a copy
    # reads the old object, so it runs before an upload could replace it.
    result.actions = [*copies, *uploads, *touches, *conflicts, *deletes, *forgets]
    return result


def _unsettled(
    local: Mapping[str, LocalFile],
    rows: StateRows,
    remote: Mapping[str, RemoteObject] | None,
) -> list[str]:
    """The local paths that are not simply unchanged: no row, another size or mtime
    than the row's, or (with the listing) no object or another ETag than the row's.

    The one loop a no-change run makes over its files: a dict lookup or two and a
    comparison of plain values each, nothing built, nothing read.
    """
    get_row = rows.raw.get
    size_at, mtime_at, etag_at = StateRows.SIZE, StateRows.MTIME_NS, StateRows.ETAG
    found: list[str] = []
    if remote is None:
        for path, file in local.items():
            row = get_row(path)
            if row is None or row[size_at] != file.size or row[mtime_at] != file.mtime_ns:
                found.append(path)
        return found
    get_obj = remote.get
    for path, file in local.items():
        row = get_row(path)
        if row is None or row[size_at] != file.size or row[mtime_at] != file.mtime_ns:
            found.append(path)
            continue
        obj = get_obj(path)
        if obj is None or (obj.etag != row[etag_at] and not same_etag(obj.etag, row[etag_at])):
            found.append(path)
    return found


def _rename_source(
    file: LocalFile,
    candidates: list[SyncedFile] | None,
    hash_of: Callable[[str], str | None],
) -> SyncedFile | None:
    if not candidates:
        return None
    digest = hash_of(file.path)
    if digest is None:
        return None
    return next((row for row in candidates if row.content_hash == digest), None)


def _as_written(obj: RemoteObject | None, row: SyncedFile) -> bool:
    return obj is not None and same_etag(obj.etag, row.etag)


class _Subtrees:
    """Membership of a path in any of some files or directory subtrees."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = {p.strip("/") or ROOT for p in paths}
        self.everything = ROOT in self.paths

    def covers(self, path: str) -> bool:
        if self.everything:
            return True
        if not self.paths:
            return False
        parts = path.split("/")
        return any("/".join(parts[:n]) in self.paths for n in range(1, len(parts) + 1))


# ---- the remote listing ----------------------------------------------------------


class Listed(Protocol):
    """What `Vault.list_objects` yields (`ObjectSummary`)."""

    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str: ...


def remote_index(
    listing: Iterable[Listed | str],
    folder: FolderSettings,
    is_instruction_key: Callable[[str], bool],
) -> dict[str, RemoteObject]:
    """The ``remote`` argument of `plan` from a recursive listing of the folder's prefix.

    Instruction files (the keys ``is_instruction_key`` tells) are envelopes of other
    objects, and keys ending in ``/`` are "folder" placeholders some tools make:
    neither is a file of the folder.
    """
    index: dict[str, RemoteObject] = {}
    for obj in listing:
        if isinstance(obj, str):
            continue  # a common prefix; only in non-recursive listings
        path = folder.relpath_of(obj.key)
        if path is None or path.endswith("/") or is_instruction_key(obj.key):
            continue
        index[path] = RemoteObject(path, obj.etag, obj.size)
    return index
