"""Downloads from the bucket browser: selected objects and folders decrypted into a
folder, verified; a tampered object fails by name and leaves no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3vault.gui.browser_view import BrowserView
from s3vault.gui.context import AppContext
from s3vault.gui.downloads import DownloadReport, start_download

WAIT = 15_000


def put(ctx: AppContext, tmp_path: Path, bucket: str, key: str, body: bytes) -> None:
    local = tmp_path / "upload.bin"
    local.write_bytes(body)
    ctx.vault().put(local, bucket, key)


@pytest.fixture
def browser(qtbot, ctx: AppContext, gui_key: str) -> BrowserView:
    view = BrowserView(ctx)
    qtbot.addWidget(view)
    return view


def load(qtbot, view: BrowserView, bucket: str, prefix: str = "") -> None:
    view.open_location(bucket, prefix)
    qtbot.waitUntil(lambda: view.model.complete, timeout=WAIT)


def run(qtbot, browser: BrowserView, folder: Path) -> DownloadReport:
    with qtbot.waitSignal(browser.download_finished, timeout=WAIT) as finished:
        assert browser.download_selected(folder) is not None
    report = finished.args[0]
    assert isinstance(report, DownloadReport)
    return report


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_two_selected_objects_download_decrypted_and_identical(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    bodies = {"one.txt": b"first object\n", "two.bin": bytes(range(256)) * 40}
    for key, body in bodies.items():
        put(ctx, tmp_path, bucket, "here/" + key, body)
    put(ctx, tmp_path, bucket, "here/other.txt", b"not selected")
    load(qtbot, browser, bucket, "here/")
    browser.select_keys(["here/one.txt", "here/two.bin"])
    target = tmp_path / "out"
    report = run(qtbot, browser, target)
    assert files_under(target) == bodies
    assert sorted(report.downloaded) == ["here/one.txt", "here/two.bin"]
    assert not report.failed and report.bytes == sum(len(b) for b in bodies.values())
    assert not browser.progress.isVisible()
    results = [e.result for e in ctx.activity.entries()]
    assert results[0].startswith("2 downloaded and verified")


def test_a_folder_downloads_recursively_keeping_its_layout(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "top/photos/a.jpg", b"a-jpg")
    put(ctx, tmp_path, bucket, "top/photos/2026/b.jpg", b"b-jpg")
    put(ctx, tmp_path, bucket, "top/notes.txt", b"not in the folder")
    load(qtbot, browser, bucket, "top/")
    browser.select_keys(["top/photos/"])
    assert browser.selected_prefixes() == ["top/photos/"]
    target = tmp_path / "out"
    report = run(qtbot, browser, target)
    assert files_under(target) == {"photos/a.jpg": b"a-jpg", "photos/2026/b.jpg": b"b-jpg"}
    assert len(report.downloaded) == 2


def test_a_tampered_object_fails_by_name_and_leaves_no_file(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path, s3_client
) -> None:
    put(ctx, tmp_path, bucket, "good.txt", b"intact")
    put(ctx, tmp_path, bucket, "bad.txt", b"this will be tampered with")
    stored = s3_client.get_object(Bucket=bucket, Key="bad.txt")
    body = bytearray(stored["Body"].read())
    body[3] ^= 0x01  # one flipped bit of ciphertext; the envelope (metadata) is kept
    s3_client.put_object(
        Bucket=bucket, Key="bad.txt", Body=bytes(body), Metadata=stored["Metadata"]
    )
    load(qtbot, browser, bucket)
    browser.select_keys(["bad.txt", "good.txt"])
    target = tmp_path / "out"
    report = run(qtbot, browser, target)
    assert report.downloaded == ["good.txt"]
    assert [key for key, _ in report.failed] == ["bad.txt"]
    # Nothing of it on disk: not under its name, no temp file beside it.
    assert files_under(target) == {"good.txt": b"intact"}
    errors = [e for e in ctx.activity.entries() if e.level == "error"]
    assert any(e.item == f"s3://{bucket}/bad.txt" for e in errors)
    assert "1 failed" in browser.message_bar.text.text()


def test_nothing_selected_downloads_the_prefix_shown_and_existing_files_are_kept(
    qtbot, ctx: AppContext, gui_key: str, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "p/a.txt", b"new a")
    put(ctx, tmp_path, bucket, "p/sub/b.txt", b"new b")
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_bytes(b"mine")
    outcomes: list[object] = []
    progress: list[object] = []
    start_download(
        ctx,
        bucket,
        [],
        target,
        prefixes=["p/"],
        base="p/",
        on_progress=progress.append,
        on_finished=outcomes.append,
    )
    qtbot.waitUntil(lambda: bool(outcomes), timeout=WAIT)
    report = outcomes[0]
    assert isinstance(report, DownloadReport)
    assert report.skipped == ["p/a.txt"] and report.downloaded == ["p/sub/b.txt"]
    assert files_under(target) == {"a.txt": b"mine", "sub/b.txt": b"new b"}
    assert progress[-1].done == progress[-1].total == 2  # type: ignore[attr-defined]


def test_a_cancelled_download_stops_and_says_so(
    qtbot, ctx: AppContext, gui_key: str, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "c/a.txt", b"a")
    outcomes: list[object] = []
    job = start_download(
        ctx, bucket, ["c/a.txt"], tmp_path / "out", base="c/", on_finished=outcomes.append
    )
    job.cancel()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=WAIT)
    report = outcomes[0]
    assert isinstance(report, DownloadReport) and report.cancelled
    assert not (tmp_path / "out" / "a.txt").exists()
    assert "cancelled" in ctx.activity.entries()[0].result
