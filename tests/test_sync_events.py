"""Event coalescing and debouncing: a burst of events is one net change per path."""

from __future__ import annotations

import pytest

from s3vault.sync.events import Change, Debouncer, FsEvent, coalesce
from s3vault.sync.ignore import IgnoreRules


def created(path: str, *, is_dir: bool = False, t: float | None = None) -> FsEvent:
    return FsEvent("created", path, is_dir=is_dir, time=t)


def modified(path: str, *, is_dir: bool = False, t: float | None = None) -> FsEvent:
    return FsEvent("modified", path, is_dir=is_dir, time=t)


def deleted(path: str, *, is_dir: bool = False, t: float | None = None) -> FsEvent:
    return FsEvent("deleted", path, is_dir=is_dir, time=t)


def moved(src: str, dest: str, *, is_dir: bool = False, t: float | None = None) -> FsEvent:
    return FsEvent("moved", src, dest, is_dir=is_dir, time=t)


UPLOAD = "upload"
DELETED = "deleted"
RESCAN = "rescan"


def moved_from(src: str, *, modified: bool = False) -> tuple[str, str, bool]:
    return ("moved", src, modified)


def net(changes: list[Change]) -> dict[str, object]:
    """Changes as {path: "upload" | "deleted" | "rescan" | ("moved", src, modified)}."""
    out: dict[str, object] = {}
    for c in changes:
        assert c.path not in out, f"two changes for {c.path}"
        out[c.path] = (c.kind, c.src, c.modified) if c.kind == "moved" else c.kind
    return out


# (name, events, net change per path)
COALESCING = [
    ("created", [created("a")], {"a": UPLOAD}),
    ("modified", [modified("a")], {"a": UPLOAD}),
    ("deleted", [deleted("a")], {"a": DELETED}),
    ("created then deleted: nothing", [created("a"), deleted("a")], {}),
    ("created, modified, deleted: nothing", [created("a"), modified("a"), deleted("a")], {}),
    ("deleted then created: modified", [deleted("a"), created("a")], {"a": UPLOAD}),
    ("modified many times: one upload", [modified("a")] * 50, {"a": UPLOAD}),
    ("created then modified: one upload", [created("a"), modified("a")], {"a": UPLOAD}),
    ("modified then deleted: deleted", [modified("a"), deleted("a")], {"a": DELETED}),
    ("moved", [moved("a", "b")], {"b": moved_from("a")}),
    (
        "moved then modified: moved and modified",
        [moved("a", "b"), modified("b")],
        {"b": moved_from("a", modified=True)},
    ),
    (
        "modified then moved: moved and modified",
        [modified("a"), moved("a", "b")],
        {"b": moved_from("a", modified=True)},
    ),
    (
        "moved twice: one move from the start (b may have been replaced)",
        [moved("a", "b"), moved("b", "c")],
        {"c": moved_from("a"), "b": DELETED},
    ),
    ("created then moved: created at the new name", [created("a"), moved("a", "b")], {"b": UPLOAD}),
    ("moved and back: nothing at home", [moved("a", "b"), moved("b", "a")], {"b": DELETED}),
    (
        "moved then recreated at the old name",
        [moved("a", "b"), created("a")],
        {"a": UPLOAD, "b": moved_from("a")},
    ),
    (
        "moved then deleted: both names gone (b may have been replaced)",
        [moved("a", "b"), deleted("b")],
        {"a": DELETED, "b": DELETED},
    ),
    (
        "atomic save: temp written then renamed over the file",
        [created("t"), modified("t"), moved("t", "doc")],
        {"doc": UPLOAD},
    ),
    (
        "two files, independent",
        [modified("a"), deleted("b"), created("c")],
        {"a": UPLOAD, "b": DELETED, "c": UPLOAD},
    ),
    ("directory created: rescan", [created("d", is_dir=True)], {"d": RESCAN}),
    ("directory deleted: rescan", [deleted("d", is_dir=True)], {"d": RESCAN}),
    (
        "directory moved: rescan both places",
        [moved("d", "e", is_dir=True)],
        {"d": RESCAN, "e": RESCAN},
    ),
    ("directory modified: no news", [modified("d", is_dir=True)], {}),
    (
        "file events inside a new directory are kept beside its rescan",
        [created("d", is_dir=True), created("d/x"), modified("d/x")],
        {"d": RESCAN, "d/x": UPLOAD},
    ),
]


@pytest.mark.parametrize(
    ("events", "expected"), [c[1:] for c in COALESCING], ids=[c[0] for c in COALESCING]
)
def test_coalescing(events: list[FsEvent], expected: dict[str, object]) -> None:
    assert net(coalesce(events)) == expected


# Ignore rules at the event level: an ignored path never shows; a move across the
# line is a create or a delete.
IGNORED = [
    ("swap file written: nothing", [created(".a.swp"), modified(".a.swp")], {}),
    (
        "vim-style save: rename to backup, write new, delete backup",
        [moved("a", "a~"), created("a"), modified("a"), deleted("a~")],
        {"a": UPLOAD},
    ),
    (
        "download finished: .part renamed to the real name",
        [created("f.iso.part"), modified("f.iso.part"), moved("f.iso.part", "f.iso")],
        {"f.iso": UPLOAD},
    ),
    ("renamed to an ignored name: deleted", [moved("a", "a.tmp")], {"a": DELETED}),
    ("ignored directory: nothing", [created("node_modules", is_dir=True)], {}),
    ("file in an ignored directory: nothing", [created("node_modules/x.js")], {}),
]


@pytest.mark.parametrize(
    ("events", "expected"), [c[1:] for c in IGNORED], ids=[c[0] for c in IGNORED]
)
def test_ignored_paths(events: list[FsEvent], expected: dict[str, object]) -> None:
    rules = IgnoreRules(["node_modules/"])
    assert net(coalesce(events, is_ignored=rules.is_ignored)) == expected


def test_a_moved_event_needs_a_dest() -> None:
    with pytest.raises(ValueError, match="dest"):
        FsEvent("moved", "a")
    with pytest.raises(ValueError, match="dest"):
        FsEvent("created", "a", "b")


# ---- debouncing --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_path_waits_until_quiet(clock: Clock) -> None:
    d = Debouncer(0.5, clock=clock)
    d.add(modified("a"))
    assert d.due() == []
    clock.now += 0.4
    d.add(modified("a"))  # restarts the wait
    clock.now += 0.4
    assert d.due() == []
    assert d.next_due() == pytest.approx(clock.now + 0.1)
    clock.now += 0.1
    assert net(d.due()) == {"a": UPLOAD}
    assert len(d) == 0
    assert d.due() == []
    assert d.next_due() is None


def test_paths_are_released_independently(clock: Clock) -> None:
    d = Debouncer(1.0, clock=clock)
    d.add(modified("a"))
    clock.now += 0.6
    d.add(modified("b"))
    clock.now += 0.5
    assert net(d.due()) == {"a": UPLOAD}
    assert len(d) == 1
    clock.now += 0.5
    assert net(d.due()) == {"b": UPLOAD}


def test_a_move_holds_both_paths_together(clock: Clock) -> None:
    # The source must never reach the planner as a bare delete while its new name
    # is still held back: that would delete the object before the copy.
    d = Debouncer(1.0, clock=clock)
    d.add(modified("a"))
    clock.now += 0.9
    d.add(moved("a", "b"))
    clock.now += 0.2
    assert d.due() == []
    clock.now += 0.8
    assert net(d.due()) == {"b": moved_from("a", modified=True)}


def test_chained_moves_form_one_group(clock: Clock) -> None:
    d = Debouncer(1.0, clock=clock)
    d.add(moved("a", "b"))
    clock.now += 0.9
    d.add(moved("c", "d"))
    clock.now += 0.2
    assert net(d.due()) == {"b": moved_from("a")}
    d.add(moved("d", "a"))  # joins c/d with a, which was just released
    clock.now += 1.0
    assert net(d.due()) == {"a": moved_from("c"), "d": DELETED}


def test_a_file_written_without_pause_is_released_after_max_wait(clock: Clock) -> None:
    d = Debouncer(0.5, max_wait=5.0, clock=clock)
    for _ in range(20):
        d.add(modified("log"))
        clock.now += 0.3
        if d.due():
            break
    else:
        pytest.fail("never released")
    assert clock.now - 1000.0 >= 5.0


def test_event_time_is_used_when_given(clock: Clock) -> None:
    d = Debouncer(0.5, clock=clock)
    d.add(modified("a", t=clock.now - 1.0))
    assert net(d.due()) == {"a": UPLOAD}


def test_flush_releases_everything(clock: Clock) -> None:
    d = Debouncer(10.0, clock=clock)
    d.add(modified("a"))
    d.add(created("d", is_dir=True))
    assert net(d.flush()) == {"a": UPLOAD, "d": RESCAN}
    assert len(d) == 0


def test_created_then_deleted_leaves_nothing_held(clock: Clock) -> None:
    d = Debouncer(0.5, clock=clock)
    d.add(created("a"))
    d.add(deleted("a"))
    clock.now += 1
    assert d.due() == []
    assert len(d) == 0
