"""The bucket browser's table: the folders and objects directly under one prefix.

Large prefixes stay responsive (see docs GUI.md, "Large listings"):

- Rows arrive a page at a time (`list_pages`, 500 rows) from a job; `fetchMore` only
  asks for the next page, and the page is inserted when it arrives. `canFetchMore` is
  False while a page is in flight, once the listing is complete, or after an error.
- A page shows what LIST tells (name, stored size, date). The envelope (key,
  format, location, plaintext size) needs a HEAD per object, so it is read only for
  rows a view asks about (`data` of an undescribed row queues it), a few dozen at a
  time, and filled in with `dataChanged`.
- Sort and filter run on the Python list (folders always first); never a proxy model.

`open(bucket, prefix)` starts a listing; `complete` (and the `loaded` signal) say
that every row is in; `loading_changed` drives a "Loading…" indicator; `failed`
carries a `Problem` (a missing bucket, access denied, S3 unreachable).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from s3vault.gui.context import AppContext
from s3vault.gui.jobs import Job
from s3vault.gui.messages import Problem
from s3vault.vault import ObjectSummary, PrefixEntry
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.pages import describe, list_pages

COLUMNS = ("Name", "Size", "Modified", "Key", "Format", "Envelope")
NAME, SIZE, MODIFIED, KEY, FORMAT, LOCATION = range(len(COLUMNS))
# A usual wide value of each column (the last one stretches): the view sizes columns
# from these in its font, so they fit at any font size and scale.
COLUMN_SAMPLES = {
    NAME: "a-longer-file-name.pdf",
    SIZE: "1023.9 MiB",
    MODIFIED: "2026-12-31 23:59",
    KEY: "laptop-2026",
    FORMAT: "Format",
}
DESCRIBE_BATCH = 48  # envelopes read per job: about a screenful of rows
WANTED_MAX = 256  # rows remembered for describing; older wishes (scrolled past) drop

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

Index = QModelIndex | QPersistentModelIndex


def human_size(n: int | None) -> str:
    """Bytes for people: 87 B, 300.0 KiB, 24.0 MiB."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@dataclass(slots=True, eq=False)
class Row:
    """One folder (a common prefix) or object of the listing."""

    name: str  # relative to the listed prefix; a folder's ends with "/"
    key: str  # the full key, or the folder's full prefix
    folder: bool
    size: int  # as stored (ciphertext); 0 for a folder
    mtime: float  # last modified, seconds since the epoch (0 unknown)
    modified: datetime | None
    etag: str
    fold: str  # name.casefold(), for the filter
    info: ObjectInfo | None = None  # the envelope, once described

    @property
    def display_size(self) -> int:
        """The plaintext size once the envelope is known, else the stored size."""
        if self.info is not None and self.info.plaintext_size is not None:
            return self.info.plaintext_size
        return self.size

    def summary(self) -> ObjectSummary:
        return ObjectSummary(self.key, self.size, self.etag, self.modified)


def _row(entry: ObjectSummary | PrefixEntry, prefix: str) -> Row:
    if isinstance(entry, PrefixEntry):
        name = entry.prefix[len(prefix) :]
        return Row(name, entry.prefix, True, 0, 0.0, None, "", name.casefold())
    name = entry.key[len(prefix) :]
    when = entry.last_modified
    mtime = when.timestamp() if when is not None else 0.0
    return Row(name, entry.key, False, entry.size, mtime, when, entry.etag, name.casefold())


def _text_of(info: ObjectInfo | None, column: int) -> str:
    if info is None:
        return ""
    if column == KEY:
        return info.key_name or ""
    if column == FORMAT:
        return info.format_label
    if info.envelope is None:
        return ""
    return info.envelope.location.value


def _unreadable(bucket: str, entry: ObjectSummary, problem: Problem) -> ObjectInfo:
    """What a row shows when its envelope could not be read (it is not asked again)."""
    return ObjectInfo(
        bucket,
        entry.key,
        entry.size,
        entry.etag,
        entry.last_modified,
        None,
        None,
        envelope_error=problem.message,
    )


_SORT_KEYS: dict[int, Any] = {
    NAME: lambda r: r.name,
    SIZE: lambda r: r.display_size,
    MODIFIED: lambda r: r.mtime,
    KEY: lambda r: _text_of(r.info, KEY),
    FORMAT: lambda r: _text_of(r.info, FORMAT),
    LOCATION: lambda r: _text_of(r.info, LOCATION),
}


class _Listing:
    """The page iterator of one `open`: only its page jobs, one at a time, touch it."""

    def __init__(self) -> None:
        self.pages: Iterator[list[ObjectSummary | PrefixEntry]] | None = None


class BucketModel(QAbstractTableModel):
    loading_changed = Signal(bool)
    loaded = Signal()  # the listing is complete: every row is in
    failed = Signal(object)  # a Problem

    def __init__(self, ctx: AppContext, parent: Any = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.bucket: str | None = None
        self.prefix = ""
        self.problem: Problem | None = None
        self._generation = 0  # bumped by open(): results of older jobs are ignored
        self._all: list[Row] = []  # every loaded row, in listing order
        self._rows: list[Row] = []  # the rows shown: filtered and sorted
        self._by_key: dict[str, Row] = {}
        self._filter = ""
        self._sort_column = NAME
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._listing = _Listing()
        self._page_job: Job | None = None
        self._complete = False
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._describe_job: Job | None = None
        self._describe_timer = QTimer(self)
        self._describe_timer.setSingleShot(True)
        self._describe_timer.setInterval(0)
        self._describe_timer.timeout.connect(self._start_describe)

    # ---- what the view asks -----------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every row of the listing is loaded (also true for a listing that failed)."""
        return self._complete

    @property
    def loading(self) -> bool:
        return self._page_job is not None

    @property
    def loaded_count(self) -> int:
        """Rows loaded so far, whether or not the filter shows them."""
        return len(self._all)

    def row_at(self, row: int) -> Row:
        return self._rows[row]

    def row_of_key(self, key: str) -> int:
        """The row showing ``key`` (an object key or a folder's prefix); -1 if none."""
        for i, row in enumerate(self._rows):
            if row.key == key:
                return i
        return -1

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        r = index.row()
        if r >= len(self._rows):
            return None
        role = int(role)
        row = self._rows[r]
        column = index.column()
        if role in (_DISPLAY, _ACCESSIBLE):
            return self._display(row, column)
        if role == _TOOLTIP:
            return self._tooltip(row, column)
        if role == _ALIGN and column == SIZE:
            return _RIGHT
        return None

    def _display(self, row: Row, column: int) -> str:
        if column == NAME:
            return row.name
        if row.folder:
            return "Folder" if column == FORMAT else ""
        if column == SIZE:
            if row.info is None:
                self._want(row)
            return human_size(row.display_size)
        if column == MODIFIED:
            return row.modified.astimezone().strftime("%Y-%m-%d %H:%M") if row.modified else ""
        if row.info is None:
            self._want(row)
            return "…"
        return _text_of(row.info, column)

    def _tooltip(self, row: Row, column: int) -> str | None:
        if row.folder:
            return f"Folder {row.key} (double-click to open)"
        if column == SIZE:
            if row.info is None or row.info.plaintext_size is None:
                return f"{row.size:,} bytes stored (the plaintext size shows once read)"
            return f"{row.info.plaintext_size:,} bytes of plaintext; {row.size:,} bytes stored"
        if row.info is not None and row.info.envelope_error:
            return f"Invalid envelope: {row.info.envelope_error}"
        if column == FORMAT and row.info is not None and not row.info.encrypted:
            return "Not encrypted: a plain object"
        return row.key

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if int(role) == _DISPLAY and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # ---- opening a location and paging -----------------------------------------------

    def open(self, bucket: str, prefix: str = "") -> None:
        """Show ``bucket/prefix`` (a prefix is "" or ends in "/"); loads the first page."""
        self._generation += 1
        for job in (self._page_job, self._describe_job):
            if job is not None:
                job.cancel()
        self.beginResetModel()
        self.bucket, self.prefix = bucket, prefix
        self._all, self._rows, self._by_key = [], [], {}
        self._listing, self._page_job, self._describe_job = _Listing(), None, None
        self._complete, self.problem = False, None
        self._wanted.clear()
        self.endResetModel()
        self._start_page()

    def refresh(self) -> None:
        if self.bucket is not None:
            self.open(self.bucket, self.prefix)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        if parent.isValid() or self.bucket is None:
            return False
        return not self._complete and self._page_job is None

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        # Only asks: the page is inserted when it arrives (never re-entrantly from here).
        if self.canFetchMore(parent):
            self._start_page()

    def _start_page(self) -> None:
        bucket, prefix, generation = self.bucket, self.prefix, self._generation
        listing = self._listing
        assert bucket is not None

        def work(job: Job) -> list[ObjectSummary | PrefixEntry] | None:
            if listing.pages is None:
                listing.pages = list_pages(self.ctx.vault(), bucket, prefix)
            job.check()
            return next(listing.pages, None)

        self._page_job = self.ctx.jobs.start(
            f"list s3://{bucket}/{prefix}",
            work,
            on_done=lambda page: self._page_arrived(generation, page),
            on_failed=lambda problem: self._page_failed(generation, problem),
        )
        self.loading_changed.emit(True)

    def _page_arrived(
        self, generation: int, page: list[ObjectSummary | PrefixEntry] | None
    ) -> None:
        if generation != self._generation:
            return
        self._page_job = None
        if page is None:
            self._complete = True
        else:
            self._add(page)
        self.loading_changed.emit(False)
        if self._complete:
            self.loaded.emit()

    def _page_failed(self, generation: int, problem: Problem) -> None:
        if generation != self._generation:
            return
        self._page_job = None
        self._complete = True
        self.problem = problem
        self.loading_changed.emit(False)
        self.failed.emit(problem)

    def _add(self, page: list[ObjectSummary | PrefixEntry]) -> None:
        new = [_row(entry, self.prefix) for entry in page]
        self._all.extend(new)
        for row in new:
            self._by_key[row.key] = row
        shown = self._sorted([r for r in new if self._matches(r)])
        if not shown:
            return
        first = len(self._rows)
        in_order = not any(r.folder for r in shown) and (
            not self._rows or self._in_order(self._rows[-1], shown[0])
        )
        self.beginInsertRows(QModelIndex(), first, first + len(shown) - 1)
        self._rows.extend(shown)
        self.endInsertRows()
        if not in_order:
            self._resort()

    # ---- sort and filter ----------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        self._sort_column, self._sort_order = column, order
        self._resort()

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    def set_filter(self, text: str) -> None:
        """Show only rows whose name contains ``text`` (case-insensitive)."""
        fold = text.casefold()
        if fold == self._filter:
            return
        self.beginResetModel()
        self._filter = fold
        self._rows = self._sorted([r for r in self._all if self._matches(r)])
        self.endResetModel()

    def _matches(self, row: Row) -> bool:
        return not self._filter or self._filter in row.fold

    def _descending(self) -> bool:
        return self._sort_order == Qt.SortOrder.DescendingOrder

    def _sorted(self, rows: list[Row]) -> list[Row]:
        """Folders first (by name), then objects by the sort column."""
        descending = self._descending()
        folders = [r for r in rows if r.folder]
        objects = [r for r in rows if not r.folder]
        folders.sort(key=_SORT_KEYS[NAME], reverse=descending and self._sort_column == NAME)
        objects.sort(key=_SORT_KEYS[self._sort_column], reverse=descending)
        return folders + objects

    def _in_order(self, before: Row, after: Row) -> bool:
        if before.folder:
            return True
        key = _SORT_KEYS[self._sort_column]
        a, b = key(before), key(after)
        return bool(a >= b if self._descending() else a <= b)

    def _resort(self) -> None:
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        moved = [(i, self._rows[i.row()]) for i in persistent if i.row() < len(self._rows)]
        self._rows = self._sorted(self._rows)
        if moved:
            where = {id(row): n for n, row in enumerate(self._rows)}
            self.changePersistentIndexList(
                [i for i, _ in moved],
                [self.index(where[id(row)], i.column()) for i, row in moved],
            )
        self.layoutChanged.emit()

    # ---- envelopes, on demand ------------------------------------------------------

    def _want(self, row: Row) -> None:
        """Queue ``row`` for `describe` (a view showed it); started from the event loop."""
        self._wanted[row.key] = None
        self._wanted.move_to_end(row.key)
        while len(self._wanted) > WANTED_MAX:
            self._wanted.popitem(last=False)
        if self._describe_job is None and not self._describe_timer.isActive():
            self._describe_timer.start()

    def _start_describe(self) -> None:
        if self._describe_job is not None or self.bucket is None:
            return
        batch: list[ObjectSummary] = []
        while self._wanted and len(batch) < DESCRIBE_BATCH:
            key, _ = self._wanted.popitem(last=True)  # the latest wishes: rows on screen
            row = self._by_key.get(key)
            if row is not None and row.info is None and not row.folder:
                batch.append(row.summary())
        if not batch:
            return
        bucket, generation = self.bucket, self._generation
        self._describe_job = self.ctx.jobs.start(
            f"read envelopes in s3://{bucket}/{self.prefix}",
            lambda job: describe(self.ctx.vault(), bucket, batch),
            on_done=lambda infos: self._described(generation, infos),
            on_failed=lambda problem: self._described(
                generation, [_unreadable(bucket, e, problem) for e in batch]
            ),
        )

    def _described(self, generation: int, infos: list[ObjectInfo]) -> None:
        if generation != self._generation:
            return
        self._describe_job = None
        for info in infos:
            row = self._by_key.get(info.key)
            if row is not None:
                row.info = info
        if infos and self._rows:
            # Views repaint only what they show: one signal for all rows is cheap.
            self.dataChanged.emit(self.index(0, SIZE), self.index(len(self._rows) - 1, LOCATION))
        if self._wanted:
            self._describe_timer.start()
