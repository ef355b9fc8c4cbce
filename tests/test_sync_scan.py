"""The stat-only scan, the ignore rules it applies, the root checks and content hashes."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from s3vault.errors import ConfigError
from s3vault.sync.ignore import IGNORE_FILE, IgnoreRules
from s3vault.sync.scan import (
    file_hasher,
    hash_file,
    root_identity,
    root_status,
    scan,
    scan_paths,
)

NO_RULES = IgnoreRules(defaults=False)


def write(root: Path, rel: str, content: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def scandir_failing(monkeypatch: pytest.MonkeyPatch, target: Path, error: OSError) -> list[str]:
    """Make os.scandir fail for one directory (root can read anything, so chmod 000
    does not simulate an unreadable directory); return the directories listed."""
    real = os.scandir
    listed: list[str] = []

    def scandir(path: str) -> Iterator[os.DirEntry[str]]:
        listed.append(os.fspath(path))
        if os.fspath(path) == os.fspath(target):
            raise error
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return listed


def test_regular_files_by_posix_path(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", b"hello")
    write(tmp_path, "sub/deeper/b.bin", b"12345678")
    (tmp_path / "empty-dir").mkdir()
    result = scan(tmp_path, NO_RULES)
    assert set(result.files) == {"a.txt", "sub/deeper/b.bin"}
    f = result.files["sub/deeper/b.bin"]
    st = os.stat(tmp_path / "sub" / "deeper" / "b.bin")
    assert (f.path, f.size, f.mtime_ns, f.inode) == (
        "sub/deeper/b.bin",
        8,
        st.st_mtime_ns,
        st.st_ino,
    )
    assert (result.skipped, result.errors, result.vanished, result.ignored) == ({}, {}, [], 0)


def test_symlinks_are_skipped_by_default(tmp_path: Path) -> None:
    target = write(tmp_path, "real/file.txt")
    (tmp_path / "link-to-file").symlink_to(target)
    (tmp_path / "link-to-dir").symlink_to(tmp_path / "real")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    result = scan(tmp_path, NO_RULES)
    assert set(result.files) == {"real/file.txt"}
    assert result.skipped == {
        "link-to-file": "symbolic link (not followed)",
        "link-to-dir": "symbolic link (not followed)",
        "broken": "symbolic link (not followed)",
    }


def test_followed_symlinks_and_loops(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "real/file.txt", b"abc")
    write(tmp_path, "outside/o.txt")
    (root / "link-to-file").symlink_to(root / "real" / "file.txt")
    (root / "link-to-outside").symlink_to(tmp_path / "outside")
    (root / "real" / "loop").symlink_to(root)  # back up to the root
    (root / "again").symlink_to(root / "real")  # a second way into real/
    (root / "broken").symlink_to(tmp_path / "nowhere")
    result = scan(root, NO_RULES, follow_symlinks=True)
    assert set(result.files) == {"real/file.txt", "link-to-file", "link-to-outside/o.txt"}
    assert result.files["link-to-file"].size == 3
    assert result.skipped["broken"] == "broken symbolic link"
    assert "synced already" in result.skipped["real/loop"]
    # A directory is synced under its real path, never under a link's.
    assert "synced already" in result.skipped["again"]
    assert result.errors == {}


def test_fifo_socket_and_device_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "file")
    os.mkfifo(tmp_path / "fifo")
    monkeypatch.chdir(tmp_path)  # a socket path must be short: bind relative
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock")
    try:
        os.mknod(tmp_path / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        has_device = True
    except PermissionError:  # no CAP_MKNOD in this container
        has_device = False
    try:
        result = scan(tmp_path, NO_RULES)
    finally:
        server.close()
    assert set(result.files) == {"file"}
    expected = {"fifo": "named pipe (FIFO)", "sock": "socket"}
    if has_device:
        expected["dev"] = "device"
    assert result.skipped == expected


def test_unreadable_directory_is_an_error_not_an_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a/ok.txt")
    write(tmp_path, "locked/secret.txt")
    write(tmp_path, "z/ok.txt")
    scandir_failing(monkeypatch, tmp_path / "locked", PermissionError(13, "Permission denied"))
    result = scan(tmp_path, NO_RULES)
    assert set(result.files) == {"a/ok.txt", "z/ok.txt"}
    assert result.errors == {"locked": "Permission denied"}
    assert result.unreadable == ["locked"]


def test_directory_removed_mid_scan_is_unknown_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "moving/a.txt")
    write(tmp_path, "stays.txt")
    scandir_failing(monkeypatch, tmp_path / "moving", FileNotFoundError(2, "gone"))
    result = scan(tmp_path, NO_RULES)
    assert set(result.files) == {"stays.txt"}
    assert result.errors == {}
    assert result.unreadable == ["moving"]


def test_missing_root_is_never_an_empty_scan(tmp_path: Path) -> None:
    for follow in (False, True):
        result = scan(tmp_path / "nowhere", NO_RULES, follow_symlinks=follow)
        assert result.files == {}
        assert result.unreadable == ["."]


def test_name_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    fd = os.open(os.fsencode(tmp_path) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    write(tmp_path, "good.txt")
    result = scan(tmp_path, NO_RULES)
    assert set(result.files) == {"good.txt"}
    [(name, reason)] = result.skipped.items()
    assert name.startswith("bad")
    assert "UTF-8" in reason


# ---- ignore rules ---------------------------------------------------------------------


def test_default_ignores(tmp_path: Path) -> None:
    kept = ["report.docx", "notes.md", "sub/photo.jpg", "tmp.txt", ".hidden"]
    litter = [
        ".report.docx.swp",
        "sub/.x.swo",
        "draft~",
        ".#draft",
        "#draft#",
        ".~lock.report.docx#",
        "~$report.docx",
        "cache.tmp",
        "big.iso.part",
        "movie.crdownload",
        ".DS_Store",
        "sub/Thumbs.db",
        "desktop.ini",
        ".Trash-1000/files/x",
        "sub/.photo.jpg.s3vault-part",
    ]
    for rel in kept + litter:
        write(tmp_path, rel)
    result = scan(tmp_path, IgnoreRules())
    assert set(result.files) == set(kept)
    assert result.ignored == len(litter)


def test_config_patterns_and_the_ignore_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        IGNORE_FILE,
        b"# build output\n/build/\n*.log\n!important.log\n\nsecrets/*.key\n",
    )
    for rel in [
        "build/out.o",
        "src/build/kept.c",  # /build/ is anchored to the root
        "a.log",
        "deep/b.log",
        "important.log",
        "secrets/id.key",
        "secrets/readme",
        "node_modules/pkg/index.js",
        "web/node_modules/pkg/index.js",
        "keep.tmp",
        "src/main.c",
    ]:
        write(tmp_path, rel)
    rules = IgnoreRules.for_folder(tmp_path, ["node_modules/", "!keep.tmp"])
    result = scan(tmp_path, rules)
    assert set(result.files) == {
        IGNORE_FILE,  # synced: a restore brings the rules back
        "src/build/kept.c",
        "important.log",
        "secrets/readme",
        "keep.tmp",  # the config re-includes what a default excludes
        "src/main.c",
    }


def test_directory_patterns_prune_the_whole_subtree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        write(tmp_path, f"node_modules/p{i}/index.js")
    write(tmp_path, "app.js")
    listed = scandir_failing(monkeypatch, tmp_path / "never", OSError())
    result = scan(tmp_path, IgnoreRules(["node_modules/"]))
    assert set(result.files) == {"app.js"}
    assert result.ignored == 1  # the directory, not its files
    assert not any("node_modules" in d for d in listed)  # never entered


def test_a_directory_pattern_does_not_match_a_file(tmp_path: Path) -> None:
    write(tmp_path, "logs")  # a file named like the directory pattern
    write(tmp_path, "sub/logs/x")
    result = scan(tmp_path, IgnoreRules(["logs/"], defaults=False))
    assert set(result.files) == {"logs"}


def test_unreadable_ignore_file_stops_the_folder(tmp_path: Path) -> None:
    (tmp_path / IGNORE_FILE).mkdir()  # reading it fails
    with pytest.raises(ConfigError, match=IGNORE_FILE):
        IgnoreRules.for_folder(tmp_path)


def test_no_ignore_file_is_fine(tmp_path: Path) -> None:
    rules = IgnoreRules.for_folder(tmp_path, ["*.bak"])
    assert rules.is_ignored("x.bak")
    assert rules.is_ignored("x.swp")
    assert not rules.is_ignored("x.txt")
    assert rules.is_ignored("node_modules", is_dir=False) is False


# ---- part of a folder: subtrees and event paths ---------------------------------------


def test_scan_under_a_subtree(tmp_path: Path) -> None:
    write(tmp_path, "a/1")
    write(tmp_path, "a/b/2")
    write(tmp_path, "c/3")
    assert set(scan(tmp_path, NO_RULES, under="a").files) == {"a/1", "a/b/2"}
    assert set(scan(tmp_path, NO_RULES, under="a/b/").files) == {"a/b/2"}
    gone = scan(tmp_path, NO_RULES, under="missing")
    assert (gone.files, gone.unreadable) == ({}, [])  # its files are gone, not unknown


def test_scan_paths_for_an_event_batch(tmp_path: Path) -> None:
    write(tmp_path, "edited.txt", b"new")
    write(tmp_path, "new-dir/x")
    write(tmp_path, "new-dir/y/z")
    write(tmp_path, "real/inside")
    write(tmp_path, "ignored.tmp")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "pipe")
    result = scan_paths(
        tmp_path,
        ["edited.txt", "new-dir", "deleted.txt", "link/inside", "link", "ignored.tmp", "pipe"],
        IgnoreRules(),
    )
    assert set(result.files) == {"edited.txt", "new-dir/x", "new-dir/y/z"}
    assert result.files["edited.txt"].size == 3
    assert result.skipped == {"link": "symbolic link (not followed)", "pipe": "named pipe (FIFO)"}
    assert result.ignored == 1
    assert result.unreadable == []


# ---- the root ----------------------------------------------------------------------------


def test_root_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "file")
    (tmp_path / "dir").mkdir()
    assert root_status(tmp_path / "dir") == "ok"
    assert root_status(tmp_path / "nowhere") == "missing"
    assert root_status(tmp_path / "file" / "below") == "missing"
    assert root_status(tmp_path / "file") == "not-a-directory"
    scandir_failing(monkeypatch, tmp_path / "dir", PermissionError(13, "Permission denied"))
    assert root_status(tmp_path / "dir") == "unreadable"


def test_root_identity_tells_a_replaced_folder(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    before = root_identity(root)
    assert before == root_identity(root)
    root.rename(tmp_path / "docs.old")
    root.mkdir()  # an empty folder at the same path: an unmounted drive looks like this
    assert root_identity(root) != before
    (tmp_path / "via-link").symlink_to(root)
    assert root_identity(tmp_path / "via-link") == root_identity(root)


# ---- content ------------------------------------------------------------------------------


def test_hash_file(tmp_path: Path) -> None:
    path = write(tmp_path, "f", b"some content" * 10000)
    assert hash_file(path) == hashlib.sha256(b"some content" * 10000).hexdigest()
    hash_of = file_hasher(tmp_path)
    assert hash_of("f") == hash_file(path)
    assert hash_of("missing") is None


def test_hash_of_a_fifo_fails_instead_of_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "was-a-file")
    assert file_hasher(tmp_path)("was-a-file") is None


def test_hash_does_not_follow_a_link_unless_asked(tmp_path: Path) -> None:
    write(tmp_path, "real", b"r")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert file_hasher(tmp_path)("link") is None
    assert file_hasher(tmp_path, follow_symlinks=True)("link") == hashlib.sha256(b"r").hexdigest()


# ---- speed ------------------------------------------------------------------------------


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


@pytest.mark.slow
def test_scanning_100000_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "many"
    for d in range(100):
        sub = root / f"dir{d:02}" / "sub"
        sub.mkdir(parents=True)
        for i in range(1000):
            os.mknod(sub / f"file{i:04}.txt")  # an empty regular file, one syscall
    rules = IgnoreRules(["node_modules/", "*.log"])
    result, seconds = _timed(lambda: scan(root, rules))
    assert len(result.files) == 100_000  # type: ignore[attr-defined]
    _, bare = _timed(lambda: scan(root, NO_RULES))
    with capsys.disabled():
        print(
            f"\nscan of 100,000 files: {seconds:.2f} s with the default ignore rules, "
            f"{bare:.2f} s with none"
        )
