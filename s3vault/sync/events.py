"""From a stream of file-system events to the net change of each path.

Editors and downloads produce bursts: a save can be "create temp, write, write,
rename over the original"; a copy is "created" then many "modified". The watcher feeds
every event to a `Debouncer`, which keeps one net change per path and hands a path out
once no event touched it for ``debounce`` seconds (or after ``max_wait`` at the latest,
so a file written without pause is still synced; the upload's own size/mtime check
keeps a torn copy out of S3).

The net change is a hint of *where to look*, not a verdict: the caller stats those
paths (directories are scanned again) and the planner decides from what is on disk
and in the state database. That is why a guess may be conservative: "deleted" for a
path that might never have existed costs nothing.

Rules (tested table by table in tests/test_sync_events.py):

======================================  ======================================
events on a path                        net change
======================================  ======================================
created, deleted                        nothing
deleted, created                        upload (it was modified)
modified × N                            one upload
moved a→b, modified b                   moved a→b, modified
moved a→b, moved b→c                    moved a→c (and b deleted, in case the
                                        first move replaced a file at b)
created a, moved a→b                    upload b
moved a→b, moved b→a                    nothing for a
any directory event                     rescan of the directory's subtree
                                        (a moved directory: both places)
======================================  ======================================

Paths are whatever the caller uses consistently (relative POSIX paths in s3vault).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["created", "modified", "deleted", "moved"]
ChangeKind = Literal["upload", "deleted", "moved", "rescan"]
IsIgnored = Callable[[str, bool], bool]


@dataclass(frozen=True, slots=True)
class FsEvent:
    """One event as a watcher reports it (watchdog's four kinds)."""

    kind: EventKind
    src: str
    dest: str | None = None  # moved only
    is_dir: bool = False
    time: float | None = None  # when it happened; None: when the Debouncer got it

    def __post_init__(self) -> None:
        if (self.kind == "moved") != (self.dest is not None):
            raise ValueError("a 'moved' event, and only that, has a dest")


@dataclass(frozen=True, slots=True)
class Change:
    """The net change of one path.

    upload   the file may have new content (created or modified): look at it.
    deleted  the file is gone (or may have been replaced and moved away).
    moved    the content that was at ``src`` is at ``path`` now (``modified``: and
             was written to since); ``src`` is gone unless another change says so.
    rescan   a directory was created, deleted or moved: scan its subtree again.
    """

    kind: ChangeKind
    path: str
    src: str | None = None
    modified: bool = False


# ---- one path's net change -----------------------------------------------------------


@dataclass(slots=True)
class _Net:
    existed: bool  # a file may have been at the path before the burst
    exists: bool  # a file is there now
    origin: str | None = None  # the content came from there by moves
    modified: bool = False  # written during the burst


_Key = tuple[bool, str]  # (is a directory rescan, path)


class _Ledger:
    """The net change of every path seen since it was last handed out."""

    def __init__(self, is_ignored: IsIgnored | None) -> None:
        self.files: dict[str, _Net] = {}
        self.rescans: set[str] = set()
        self.is_ignored = is_ignored

    def apply(self, event: FsEvent) -> list[_Key]:
        """Fold one event in; the keys it touched (a move links two paths)."""
        kept = self._unignored(event)
        if kept is None:
            return []
        event = kept
        if event.is_dir:
            if event.kind == "modified":
                return []  # a directory's mtime changes with every child: no news
            paths = [event.src] if event.dest is None else [event.src, event.dest]
            self.rescans.update(paths)
            return [(True, p) for p in paths]
        if event.kind == "created":
            self._created(event.src)
        elif event.kind == "modified":
            self._modified(event.src)
        elif event.kind == "deleted":
            self._deleted(event.src)
        else:
            assert event.dest is not None
            self._moved(event.src, event.dest)
            return [(False, event.src), (False, event.dest)]
        return [(False, event.src)]

    def _unignored(self, event: FsEvent) -> FsEvent | None:
        """Ignored paths vanish from the stream; a move across the line becomes a
        create or a delete (an editor's "write .x.swp, rename to x" is an upload of x)."""
        ignored = self.is_ignored
        if ignored is None:
            return event
        src_out = ignored(event.src, event.is_dir)
        if event.dest is None:
            return None if src_out else event
        dest_out = ignored(event.dest, event.is_dir)
        if src_out and dest_out:
            return None
        if src_out:
            return FsEvent("created", event.dest, is_dir=event.is_dir, time=event.time)
        if dest_out:
            return FsEvent("deleted", event.src, is_dir=event.is_dir, time=event.time)
        return event

    def _created(self, path: str) -> None:
        net = self.files.get(path)
        if net is None:
            self.files[path] = _Net(existed=False, exists=True, modified=True)
        else:
            if not net.exists:
                net.origin = None  # new content, whatever was there before
            net.exists = net.modified = True

    def _modified(self, path: str) -> None:
        net = self.files.get(path)
        if net is None:
            self.files[path] = _Net(existed=True, exists=True, modified=True)
        else:
            if not net.exists:
                net.origin = None
            net.exists = net.modified = True

    def _deleted(self, path: str) -> None:
        net = self.files.get(path)
        if net is None:
            self.files[path] = _Net(existed=True, exists=False)
        elif not net.existed:
            del self.files[path]  # created and deleted within the burst: nothing
        else:
            net.exists, net.origin, net.modified = False, None, False

    def _moved(self, src: str, dest: str) -> None:
        left = self.files.pop(src, None) or _Net(existed=True, exists=True)
        # Where the content really comes from: the start of a chain of moves, or
        # nowhere if it was created during the burst.
        origin = left.origin if left.origin is not None else (src if left.existed else None)
        modified = left.modified or origin is None
        if left.existed:
            self.files[src] = _Net(existed=True, exists=False)
        before = self.files.get(dest)
        # Unknown whether a move replaced a file at dest: assume it may have.
        existed = before.existed if before is not None else True
        if origin == dest:  # moved back home
            self.files[dest] = _Net(existed=existed, exists=True, modified=modified)
        else:
            self.files[dest] = _Net(existed=existed, exists=True, origin=origin, modified=modified)

    def take(self, keys: Iterable[_Key]) -> list[Change]:
        """Hand out the net changes of ``keys`` and forget them."""
        keys = list(keys)
        nets = {p: net for is_dir, p in keys if not is_dir and (net := self.files.pop(p, None))}
        changes = [Change("rescan", p) for is_dir, p in keys if is_dir and p in self.rescans]
        self.rescans.difference_update(p for is_dir, p in keys if is_dir)
        moved_away = {n.origin for n in nets.values() if n.exists and n.origin is not None}
        for path, net in nets.items():
            if not net.exists:
                if net.existed and path not in moved_away:
                    changes.append(Change("deleted", path))
            elif net.origin is not None:
                changes.append(Change("moved", path, src=net.origin, modified=net.modified))
            elif net.modified or not net.existed:
                changes.append(Change("upload", path))
        return sorted(changes, key=lambda c: (c.path, c.kind))


def coalesce(events: Iterable[FsEvent], *, is_ignored: IsIgnored | None = None) -> list[Change]:
    """The net changes of a whole burst of events, sorted by path (no timing)."""
    ledger = _Ledger(is_ignored)
    keys: dict[_Key, None] = {}
    for event in events:
        keys.update(dict.fromkeys(ledger.apply(event)))
    return ledger.take(keys)


# ---- timing --------------------------------------------------------------------------


class Debouncer:
    """Holds net changes until their paths are quiet, then hands them out in batches.

    Paths linked by a move are held and handed out together (a rename must never
    reach the planner as a delete without its other half). Plan each batch as one
    unit, so the planner can pair a vanished file with its new name.

    Not thread-safe: the watcher thread and the agent loop share it under a lock.
    """

    def __init__(
        self,
        debounce: float,
        *,
        max_wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        is_ignored: IsIgnored | None = None,
    ) -> None:
        self.debounce = debounce
        self.max_wait = max(max_wait, debounce)
        self.clock = clock
        self._ledger = _Ledger(is_ignored)
        # Groups of keys that must leave together, with their first and last event time.
        self._group_of: dict[_Key, int] = {}
        self._groups: dict[int, _Group] = {}
        self._next_id = 0

    def add(self, event: FsEvent) -> None:
        when = event.time if event.time is not None else self.clock()
        keys = self._ledger.apply(event)
        if not keys:
            return
        ids = {self._group_of[k] for k in keys if k in self._group_of}
        if ids:
            target = max(ids, key=lambda i: len(self._groups[i].keys))
            group = self._groups[target]
            for other in ids - {target}:
                merged = self._groups.pop(other)
                group.absorb(merged)
                for k in merged.keys:
                    self._group_of[k] = target
        else:
            target, self._next_id = self._next_id, self._next_id + 1
            group = self._groups[target] = _Group(first=when, last=when)
        for k in keys:
            group.keys.add(k)
            self._group_of[k] = target
        group.first = min(group.first, when)
        group.last = max(group.last, when)

    def due(self) -> list[Change]:
        """The changes whose paths have been quiet long enough (removed from here)."""
        now = self.clock()
        ready = [
            i
            for i, g in self._groups.items()
            if now - g.last >= self.debounce or now - g.first >= self.max_wait
        ]
        return self._release(ready)

    def flush(self) -> list[Change]:
        """Everything held, now (on "sync now", pause or shutdown)."""
        return self._release(list(self._groups))

    def next_due(self) -> float | None:
        """The clock time at which `due` may next return something; None if idle."""
        if not self._groups:
            return None
        return min(
            min(g.last + self.debounce, g.first + self.max_wait) for g in self._groups.values()
        )

    def __len__(self) -> int:
        """Paths held."""
        return len(self._group_of)

    def _release(self, ids: list[int]) -> list[Change]:
        keys: list[_Key] = []
        for i in ids:
            group = self._groups.pop(i)
            keys.extend(group.keys)
            for k in group.keys:
                del self._group_of[k]
        return self._ledger.take(keys)


@dataclass(slots=True)
class _Group:
    first: float
    last: float
    keys: set[_Key] = field(default_factory=set)

    def absorb(self, other: _Group) -> None:
        self.keys |= other.keys
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
