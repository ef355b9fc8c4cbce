"""The planner and its guard, as named scenarios (in the manner of rclone bisync's).

Each scenario gives the three listings (local files, state rows, remote objects) in a
small notation: a file is its content and mtime, so its size and hash follow from
the content, and an object is its ETag. It states the exact plan, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s3vault.config.sync import FolderSettings
from s3vault.errors import RefusedError
from s3vault.sync.guard import guard
from s3vault.sync.model import (
    Action,
    Conflict,
    Copy,
    DeleteRemote,
    Forget,
    LocalFile,
    Plan,
    RemoteObject,
    SyncedFile,
    Touch,
    Upload,
)
from s3vault.sync.planner import (
    CHANGED_REMOTELY,
    DELETED_HERE_CHANGED_THERE,
    NOT_WRITTEN_HERE,
    plan,
    remote_index,
)
from s3vault.sync.scan import RootStatus


@dataclass(frozen=True)
class F:
    """A file's content and mtime (local or as the state remembers it)."""

    content: str
    mtime: int = 1
    etag: str | None = None  # state only: default derived from the content


def etag_of(content: str) -> str:
    return f'"etag-{content}"'


def hash_of_content(content: str) -> str:
    return f"sha-{content}"


@dataclass
class Scenario:
    name: str
    local: dict[str, F]
    state: dict[str, F]
    expected: list[Action]
    remote: dict[str, str] | None = None  # path -> ETag
    delete: str = "mirror"
    unreadable: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unhashable: list[str] = field(default_factory=list)  # hash_of says None
    hashed: set[str] | None = None  # exactly these paths were read, if given


def run(s: Scenario) -> tuple[Plan, list[str]]:
    local = {
        p: LocalFile(p, len(f.content), f.mtime, inode=i)
        for i, (p, f) in enumerate(s.local.items())
    }
    state = {
        p: SyncedFile(
            p,
            len(f.content),
            f.mtime,
            content_hash=hash_of_content(f.content),
            etag=f.etag or etag_of(f.content),
            key_name="laptop",
        )
        for p, f in s.state.items()
    }
    remote = (
        None
        if s.remote is None
        else {p: RemoteObject(p, etag, size=100) for p, etag in s.remote.items()}
    )
    reads: list[str] = []

    def hash_of(path: str) -> str | None:
        reads.append(path)
        return None if path in s.unhashable else hash_of_content(s.local[path].content)

    result = plan(
        local,
        state,
        remote,
        delete_policy=s.delete,  # type: ignore[arg-type]
        hash_of=hash_of,
        unreadable=s.unreadable,
        is_ignored=lambda p: p in s.ignored,
    )
    return result, reads


E = etag_of

SCENARIOS = [
    Scenario(
        "nothing changed: nothing to do, nothing read",
        local={"a": F("aaa"), "d/b": F("bb")},
        state={"a": F("aaa"), "d/b": F("bb")},
        expected=[],
        hashed=set(),
    ),
    Scenario(
        "new file: upload, only if no object exists yet",
        local={"new": F("n")},
        state={},
        expected=[Upload("new", "new")],
        hashed=set(),
    ),
    Scenario(
        "edited file, other size: upload replacing the object I wrote",
        local={"a": F("aaaa", mtime=2)},
        state={"a": F("aaa")},
        expected=[Upload("a", "changed", expected_etag=E("aaa"))],
        hashed=set(),
    ),
    Scenario(
        "edited file, same size: the hash tells, upload",
        local={"a": F("abc", mtime=2)},
        state={"a": F("xyz")},
        expected=[Upload("a", "changed", expected_etag=E("xyz"))],
        hashed={"a"},
    ),
    Scenario(
        "touch without change: same hash, remember the mtime, no upload",
        local={"a": F("aaa", mtime=2)},
        state={"a": F("aaa", mtime=1)},
        expected=[Touch("a", 2)],
        hashed={"a"},
    ),
    Scenario(
        "same size, new mtime, unreadable now: upload (which reports the error)",
        local={"a": F("aaa", mtime=2)},
        state={"a": F("aaa", mtime=1)},
        unhashable=["a"],
        expected=[Upload("a", "changed", expected_etag=E("aaa"))],
    ),
    Scenario(
        "deleted file, mirror: delete the object, only if it is still mine",
        local={"a": F("aaa")},
        state={"a": F("aaa"), "gone": F("g")},
        expected=[DeleteRemote("gone", E("g"))],
    ),
    Scenario(
        "deleted file, keep: the object and the row stay",
        local={"a": F("aaa")},
        state={"a": F("aaa"), "gone": F("g")},
        delete="keep",
        expected=[],
    ),
    Scenario(
        "rename unchanged: copy, then delete the old object",
        local={"new/name": F("content")},
        state={"old/name": F("content")},
        expected=[
            Copy("old/name", "new/name", E("content")),
            DeleteRemote("old/name", E("content"), renamed_to="new/name"),
        ],
        hashed={"new/name"},
    ),
    Scenario(
        "rename unchanged, keep: copy only",
        local={"b": F("content")},
        state={"a": F("content")},
        delete="keep",
        expected=[Copy("a", "b", E("content"))],
    ),
    Scenario(
        "rename + edit: upload the new name, delete the old",
        local={"b": F("content v2")},
        state={"a": F("content")},
        expected=[Upload("b", "new"), DeleteRemote("a", E("content"))],
        hashed=set(),  # sizes differ: not even a candidate
    ),
    Scenario(
        "rename + edit of the same size: the hash says no",
        local={"b": F("CONTENT")},
        state={"a": F("content")},
        expected=[Upload("b", "new"), DeleteRemote("a", E("content"))],
        hashed={"b"},
    ),
    Scenario(
        "two vanished files of one size: the hash picks the source",
        local={"x": F("two")},
        state={"a": F("one"), "b": F("two")},
        expected=[
            Copy("b", "x", E("two")),
            DeleteRemote("a", E("one")),
            DeleteRemote("b", E("two"), renamed_to="x"),
        ],
    ),
    Scenario(
        "a vanished file found under two names: two copies, one delete",
        local={"x": F("c"), "y": F("c")},
        state={"a": F("c")},
        expected=[
            Copy("a", "x", E("c")),
            Copy("a", "y", E("c")),
            DeleteRemote("a", E("c"), renamed_to="x"),
        ],
    ),
    Scenario(
        "rename, but the new name is unreadable: upload and delete",
        local={"b": F("content")},
        state={"a": F("content")},
        unhashable=["b"],
        expected=[Upload("b", "new"), DeleteRemote("a", E("content"))],
    ),
    Scenario(
        "copies run before uploads, deletes last",
        local={"z": F("zz"), "renamed": F("r"), "edited": F("e2")},
        state={"edited": F("e"), "orig": F("r"), "removed": F("x1")},
        expected=[
            Copy("orig", "renamed", E("r")),
            Upload("edited", "changed", expected_etag=E("e")),
            Upload("z", "new"),
            DeleteRemote("orig", E("r"), renamed_to="renamed"),
            DeleteRemote("removed", E("x1")),
        ],
    ),
    # ---- with the remote listing (start-up) ----
    Scenario(
        "start-up, all in step: nothing",
        local={"a": F("aaa")},
        state={"a": F("aaa")},
        remote={"a": E("aaa")},
        expected=[],
    ),
    Scenario(
        "another machine changed the object: conflict, nothing overwritten",
        local={"a": F("mine", mtime=2)},
        state={"a": F("aaaa")},
        remote={"a": '"etag-theirs"'},
        expected=[Conflict("a", CHANGED_REMOTELY)],
    ),
    Scenario(
        "another machine changed the object of an unchanged file: conflict",
        local={"a": F("aaa")},
        state={"a": F("aaa")},
        remote={"a": '"etag-theirs"'},
        expected=[Conflict("a", CHANGED_REMOTELY)],
    ),
    Scenario(
        "another machine wrote where I have a new file: conflict",
        local={"a": F("mine")},
        state={},
        remote={"a": '"etag-theirs"'},
        expected=[Conflict("a", NOT_WRITTEN_HERE)],
    ),
    Scenario(
        "deleted here, changed there: conflict, the object is kept",
        local={},
        state={"a": F("aaa")},
        remote={"a": '"etag-theirs"'},
        expected=[Conflict("a", DELETED_HERE_CHANGED_THERE)],
    ),
    Scenario(
        "object deleted in S3, file still here: upload it again",
        local={"a": F("aaa")},
        state={"a": F("aaa")},
        remote={},
        expected=[Upload("a", "missing-remotely")],
    ),
    Scenario(
        "file and object both gone: forget the row",
        local={"a": F("aaa")},
        state={"a": F("aaa"), "b": F("bbb")},
        remote={"a": E("aaa")},
        expected=[Forget("b")],
    ),
    Scenario(
        "objects this machine never wrote: left alone",
        local={"a": F("aaa")},
        state={"a": F("aaa")},
        remote={"a": E("aaa"), "theirs/1": '"x"', "theirs/2": '"y"'},
        expected=[],
    ),
    Scenario(
        "rename whose source was changed in S3: no copy of their object",
        local={"b": F("content")},
        state={"a": F("content")},
        remote={"a": '"etag-theirs"'},
        expected=[Upload("b", "new"), Conflict("a", DELETED_HERE_CHANGED_THERE)],
    ),
    Scenario(
        "ETags compare without quotes",
        local={"a": F("aaa")},
        state={"a": F("aaa", etag='"abc"')},
        remote={"a": "abc"},
        expected=[],
    ),
    # ---- what the planner must not take for deleted ----
    Scenario(
        "unreadable directory: its files are not deleted",
        local={"ok": F("o")},
        state={"ok": F("o"), "locked/a": F("a"), "locked/deep/b": F("b"), "lockedx": F("x")},
        unreadable=["locked"],
        expected=[DeleteRemote("lockedx", E("x"))],
    ),
    Scenario(
        "unreadable root: nothing deleted",
        local={},
        state={"a": F("a"), "b/c": F("c")},
        unreadable=["."],
        expected=[],
    ),
    Scenario(
        "paths ignored since they were synced: left alone",
        local={},
        state={"build/out.o": F("o")},
        ignored=["build/out.o"],
        expected=[],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_plan(scenario: Scenario) -> None:
    result, reads = run(scenario)
    assert result.actions == scenario.expected
    if scenario.hashed is not None:
        assert set(reads) == scenario.hashed
    assert len(reads) == len(set(reads)), "a file was hashed twice"
    assert result.counts.hashed == len(reads)


def test_counts_say_what_happened() -> None:
    s = Scenario(
        "mixed",
        local={
            "same": F("s"),
            "touched": F("t", 2),
            "edited": F("e2"),
            "new": F("n"),
            "mv": F("m"),
        },
        state={
            "same": F("s"),
            "touched": F("t"),
            "edited": F("e"),
            "gone": F("g1"),
            "old": F("m"),
            "locked/x": F("x"),
            "ign": F("i"),
        },
        unreadable=["locked"],
        ignored=["ign"],
        expected=[],
    )
    result, _ = run(s)
    c = result.counts
    assert (c.unchanged, c.touched, c.changed, c.new, c.renamed, c.deleted) == (1, 1, 1, 1, 1, 1)
    assert (c.unreadable, c.ignored, c.conflicts, c.forgotten) == (1, 1, 0, 0)
    assert result.deletes == 1  # the rename's delete does not count


def test_remote_only_is_counted() -> None:
    result, _ = run(
        Scenario(
            "r",
            local={"a": F("aaa")},
            state={"a": F("aaa")},
            remote={"a": E("aaa"), "x": '"1"', "y": '"2"'},
            expected=[],
        )
    )
    assert result.counts.remote_only == 2


def test_upload_conditions() -> None:
    assert Upload("a", "new").if_none_match
    assert not Upload("a", "changed", expected_etag='"e"').if_none_match


# ---- the guard --------------------------------------------------------------------


def folder(**overrides: object) -> FolderSettings:
    return FolderSettings.model_validate(
        {"path": "/data/docs", "bucket": "vault", "key": "laptop", **overrides}
    )


def nine_files() -> dict[str, F]:
    return {f"f{i}": F(f"content {i}") for i in range(9)}


@dataclass
class GuardScenario:
    name: str
    local: dict[str, F]
    state: dict[str, F]
    ok: bool
    says: str = ""  # in the reason
    settings: dict[str, object] = field(default_factory=dict)
    root_status: RootStatus = "ok"
    root_changed: bool = False
    force: bool = False
    forceable: bool = True


def keep(files: dict[str, F], n: int) -> dict[str, F]:
    return dict(list(files.items())[:n])


GUARD = [
    GuardScenario("nothing deleted: go", nine_files(), nine_files(), ok=True),
    GuardScenario("delete 4 of 9 files: go", keep(nine_files(), 5), nine_files(), ok=True),
    GuardScenario(
        "delete 5 of 9 files: refuse",
        keep(nine_files(), 4),
        nine_files(),
        ok=False,
        says="would delete 5 of 9 synced files",
    ),
    GuardScenario(
        "delete 5 of 9 files with --force: go",
        keep(nine_files(), 4),
        nine_files(),
        ok=True,
        force=True,
        says="forced: this run would delete 5 of 9",
    ),
    GuardScenario(
        "delete 5 of 9, keep policy: nothing is deleted, go",
        keep(nine_files(), 4),
        nine_files(),
        ok=True,
        settings={"delete": "keep"},
    ),
    GuardScenario(
        "delete 3 of 9 with a limit of 2 files: refuse",
        keep(nine_files(), 6),
        nine_files(),
        ok=False,
        says="more than 2 files",
        settings={"max_delete_files": 2},
    ),
    GuardScenario(
        "delete 1 of 9 with a limit of 0 %: refuse",
        keep(nine_files(), 8),
        nine_files(),
        ok=False,
        says="more than 0 %",
        settings={"max_delete_percent": 0},
    ),
    GuardScenario(
        "rename all 9 files: not a deletion, go",
        {f"renamed/{p}": f for p, f in nine_files().items()},
        nine_files(),
        ok=True,
    ),
    GuardScenario(
        "empty root: refuse",
        {},
        nine_files(),
        ok=False,
        says="suddenly empty (it held 9 synced files)",
    ),
    GuardScenario(
        "empty root, keep policy: refuse all the same",
        {},
        nine_files(),
        ok=False,
        says="suddenly empty",
        settings={"delete": "keep"},
    ),
    GuardScenario("empty root, nothing synced yet: go", {}, {}, ok=True),
    GuardScenario(
        "missing root: refuse, even with --force",
        {},
        nine_files(),
        ok=False,
        says="does not exist",
        root_status="missing",
        force=True,
        forceable=False,
    ),
    GuardScenario(
        "unreadable root: refuse",
        {},
        nine_files(),
        ok=False,
        says="cannot be read",
        root_status="unreadable",
        forceable=False,
    ),
    GuardScenario(
        "root is a file: refuse",
        {},
        {},
        ok=False,
        says="is not a folder",
        root_status="not-a-directory",
        forceable=False,
    ),
    GuardScenario(
        "root replaced by another directory, with changes: refuse",
        {**nine_files(), "stale": F("old copy")},
        nine_files(),
        ok=False,
        says="not the folder synced before",
        root_changed=True,
    ),
    GuardScenario(
        "root replaced, but nothing would change (device renumbered): go",
        nine_files(),
        nine_files(),
        ok=True,
        root_changed=True,
    ),
]


@pytest.mark.parametrize("g", GUARD, ids=[g.name for g in GUARD])
def test_guard(g: GuardScenario) -> None:
    settings = folder(**g.settings)
    result, _ = run(Scenario(g.name, g.local, g.state, expected=[], delete=settings.delete))
    verdict = guard(
        result,
        len(g.local),
        len(g.state),
        settings,
        root_status=g.root_status,
        root_changed=g.root_changed,
        force=g.force,
    )
    assert verdict.ok is g.ok, verdict.reason
    assert g.says in verdict.reason
    if not g.ok:
        assert verdict.forceable is g.forceable
        assert ("--force" in verdict.hint) is g.forceable
        assert "Nothing was" in verdict.hint
        with pytest.raises(RefusedError, match=re.escape(g.says)):
            verdict.raise_if_refused()
    else:
        verdict.raise_if_refused()


def test_guard_counts_the_whole_folder_for_a_batch() -> None:
    # An event batch plans 5 paths, but the folder holds 100 synced files: 5 % only.
    batch = Scenario("batch", local={}, state=keep(nine_files(), 5), expected=[])
    result, _ = run(batch)
    assert result.deletes == 5
    assert guard(result, 95, 100, folder()).ok


# ---- the remote listing ---------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    key: str
    size: int
    etag: str


def test_remote_index_keeps_the_folders_files_only() -> None:
    settings = folder(prefix="laptop/docs")
    listing: list[Summary | str] = [
        Summary("laptop/docs/a.txt", 10, '"1"'),
        Summary("laptop/docs/sub/b.txt", 20, '"2"'),
        Summary("laptop/docs/sub/b.txt.instruction", 300, '"3"'),  # an envelope
        Summary("laptop/docs/sub/", 0, '"4"'),  # a "folder" placeholder
        Summary("laptop/docs", 0, '"5"'),
        Summary("laptop/other/c.txt", 5, '"6"'),
        "laptop/docs/sub/",
    ]
    index = remote_index(listing, settings, lambda key: key.endswith(".instruction"))
    assert index == {
        "a.txt": RemoteObject("a.txt", '"1"', 10),
        "sub/b.txt": RemoteObject("sub/b.txt", '"2"', 20),
    }


def test_remote_index_takes_keys_under_another_suffix_for_files() -> None:
    # With the folder's suffix .env, a .instruction object is a file of the folder and
    # a .env object is an envelope.
    settings = folder(prefix="docs")
    listing: list[Summary | str] = [
        Summary("docs/a.txt", 10, '"1"'),
        Summary("docs/a.txt.env", 300, '"2"'),
        Summary("docs/b.instruction", 20, '"3"'),
    ]
    index = remote_index(listing, settings, lambda key: key.endswith(".env"))
    assert set(index) == {"a.txt", "b.instruction"}


def test_folder_settings_path_is_used_in_messages() -> None:
    verdict = guard(Plan(), 0, 3, folder())
    assert str(Path("/data/docs")) in verdict.reason
