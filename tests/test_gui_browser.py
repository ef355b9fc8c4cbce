"""The bucket browser against real SeaweedFS: folders and objects, paging a large
prefix, sort, filter, the envelope panel, and errors shown in the view."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from s3vault.gui.browser_view import BrowserView
from s3vault.gui.bucket_model import FORMAT, KEY, NAME, SIZE, BucketModel
from s3vault.gui.context import AppContext
from s3vault.vault import Location, SealedPut

WAIT = 10_000


def put(ctx: AppContext, tmp_path: Path, bucket: str, key: str, body: bytes, **kw: object) -> None:
    local = tmp_path / "upload.bin"
    local.write_bytes(body)
    ctx.vault().put(local, bucket, key, **kw)  # type: ignore[arg-type]


def put_many(ctx: AppContext, bucket: str, prefix: str, count: int) -> None:
    """``count`` small encrypted objects, many requests in flight (the native path)."""
    vault = ctx.vault()
    with vault.remembering_keys():
        puts = [
            SealedPut(bucket, vault.seal(b"x" * (i % 97), f"{prefix}obj-{i:05d}"))
            for i in range(count)
        ]
    failures: list[object] = []
    vault.put_sealed_many(puts, lambda o: failures.append(o) if o.error else None)
    assert not failures


def names(model: BucketModel) -> list[str]:
    return [model.row_at(r).name for r in range(model.rowCount())]


def open_and_load(qtbot, view: BrowserView, bucket: str, prefix: str = "") -> None:
    view.open_location(bucket, prefix)
    qtbot.waitUntil(lambda: not view.model.loading, timeout=WAIT)


@pytest.fixture
def browser(qtbot, ctx: AppContext, gui_key: str) -> BrowserView:
    view = BrowserView(ctx)
    qtbot.addWidget(view)
    view.resize(1000, 600)
    return view


def test_browser_shows_folders_first_enters_a_folder_and_goes_up(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "b.txt", b"bee")
    put(ctx, tmp_path, bucket, "a.txt", b"a")
    put(ctx, tmp_path, bucket, "docs/inner.txt", b"inner")
    put(ctx, tmp_path, bucket, "zz/deep/x.txt", b"x")
    browser.show()  # the first show opens the config's first bucket
    qtbot.waitUntil(lambda: browser.model.complete, timeout=WAIT)
    assert browser.location() == (bucket, "")
    assert names(browser.model) == ["docs/", "zz/", "a.txt", "b.txt"]
    assert browser.model.data(browser.model.index(0, FORMAT)) == "Folder"
    assert not browser.up_button.isEnabled()

    docs = browser.model.index(0, NAME)
    browser.table.doubleClicked.emit(docs)
    qtbot.waitUntil(lambda: browser.model.complete and browser.model.rowCount() == 1, timeout=WAIT)
    assert browser.location() == (bucket, "docs/")
    assert names(browser.model) == ["inner.txt"]
    assert browser.path_edit.text() == "docs/"

    browser.up_button.click()
    qtbot.waitUntil(lambda: browser.model.complete and browser.model.rowCount() == 4, timeout=WAIT)
    assert browser.location() == (bucket, "")


def test_rows_show_the_envelope_once_read_for_the_rows_a_view_asks_about(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path, s3_client
) -> None:
    put(ctx, tmp_path, bucket, "v3.bin", b"12345")
    put(ctx, tmp_path, bucket, "file.bin", b"abc", location=Location.INSTRUCTION_FILE)
    s3_client.put_object(  # a plain object beside them
        Bucket=bucket, Key="plain.txt", Body=b"not encrypted"
    )
    open_and_load(qtbot, browser, bucket)
    model = browser.model
    # The instruction file is no row of its own: it is file.bin's envelope location.
    assert names(model) == ["file.bin", "plain.txt", "v3.bin"]
    assert model.data(model.index(2, KEY)) == "…"  # asked for: read in a job
    for r in range(3):
        model.data(model.index(r, KEY))
    qtbot.waitUntil(lambda: model.data(model.index(2, KEY)) != "…", timeout=WAIT)
    qtbot.waitUntil(lambda: all(model.row_at(r).info for r in range(3)), timeout=WAIT)
    assert [model.data(model.index(r, KEY)) for r in range(3)] == ["gui-key", "", "gui-key"]
    assert [model.data(model.index(r, FORMAT)) for r in range(3)] == ["v3", "plain", "v3"]
    assert model.data(model.index(0, 5)) == "instruction-file"
    assert model.data(model.index(2, 5)) == "metadata"
    assert model.data(model.index(2, SIZE)) == "5 B"  # the plaintext size, not the stored
    assert "5 bytes of plaintext" in model.data(model.index(2, SIZE), Qt.ItemDataRole.ToolTipRole)


def test_a_large_prefix_pages_in_without_inserting_inside_fetch_more(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str
) -> None:
    put_many(ctx, bucket, "many/", 2500)
    model = browser.model
    started = time.monotonic()
    browser.open_location(bucket, "many/")
    qtbot.waitUntil(lambda: model.rowCount() > 0, timeout=WAIT)
    first_page = time.monotonic() - started
    assert model.rowCount() == 500
    assert first_page < 2.0, f"the first page took {first_page:.2f}s"
    pages = 1
    while model.canFetchMore():
        before = model.rowCount()
        model.fetchMore()
        # Asked, not inserted: the page arrives later, and no second request meanwhile.
        assert model.rowCount() == before
        assert not model.canFetchMore() and model.loading
        qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
        pages += 1
    assert model.complete
    assert model.rowCount() == model.loaded_count == 2500
    assert pages == 6  # 5 pages of 500 and the empty end
    assert names(model)[:2] == ["obj-00000", "obj-00001"]

    # Sort by size (stored size until the envelope is read: same order), then by name.
    model.sort(SIZE, Qt.SortOrder.DescendingOrder)
    sizes = [model.row_at(r).display_size for r in range(model.rowCount())]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    model.sort(NAME, Qt.SortOrder.DescendingOrder)
    assert names(model)[0] == "obj-02499"
    assert names(model)[-1] == "obj-00000"

    # The filter: a case-insensitive part of the name; cleared, everything is back.
    browser.filter_edit.setText("OBJ-0249")
    assert sorted(names(model)) == [f"obj-0249{i}" for i in range(10)]
    browser.filter_edit.clear()
    assert model.rowCount() == 2500


def test_sort_keeps_folders_first_and_the_selection_on_its_row(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "big.bin", b"x" * 3000)
    put(ctx, tmp_path, bucket, "small.bin", b"x")
    put(ctx, tmp_path, bucket, "mid.bin", b"x" * 100)
    put(ctx, tmp_path, bucket, "sub/a", b"a")
    open_and_load(qtbot, browser, bucket)
    browser.select_keys(["mid.bin"])
    browser.table.sortByColumn(SIZE, Qt.SortOrder.AscendingOrder)
    assert names(browser.model) == ["sub/", "small.bin", "mid.bin", "big.bin"]
    assert browser.table.horizontalHeader().sortIndicatorSection() == SIZE
    assert browser.selected_keys() == ["mid.bin"]  # persistent indexes followed the sort
    browser.table.sortByColumn(SIZE, Qt.SortOrder.DescendingOrder)
    assert names(browser.model) == ["sub/", "big.bin", "mid.bin", "small.bin"]
    assert browser.selected_keys() == ["mid.bin"]


def test_bucket_model_passes_the_model_tester(
    qtbot, qtmodeltester, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    for key in ("one.txt", "two.txt", "d1/x", "d2/y"):
        put(ctx, tmp_path, bucket, key, key.encode())
    open_and_load(qtbot, browser, bucket)
    browser.model.sort(SIZE, Qt.SortOrder.DescendingOrder)
    assert browser.model.rowCount() == 4
    qtmodeltester.check(browser.model)


def test_envelope_panel_labels_every_field_and_copies_them_as_json(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "meta.bin", b"hello world")
    put(ctx, tmp_path, bucket, "inst.bin", b"held", location=Location.INSTRUCTION_FILE)
    open_and_load(qtbot, browser, bucket)
    panel = browser.panel

    with qtbot.waitSignal(panel.loaded, timeout=WAIT) as loaded:
        browser.select_keys(["meta.bin"])
    data = loaded.args[0]
    assert data["key"] == "meta.bin"
    assert panel.field_text("format") == "v3"
    assert panel.field_text("location") == "metadata"
    assert panel.field_text("key_name") == "gui-key"
    # Named by the envelope and confirmed: the key in the keyring opens the data key.
    assert data["key_confirmed"] is True
    assert panel.field_text("key_confirmed") == "Yes: this key opens the data key"
    assert panel.field_text("key_source") == "the envelope's material description"
    assert panel.field_text("key_check_message") is None  # no row: nothing to add
    assert panel.field_text("plaintext_size") == "11 bytes"
    assert panel.field_text("ciphertext_size") == "27 bytes"
    assert panel.field_text("message_id") == data["message_id"]  # base64, as it comes
    assert panel.field_text("commitment") == data["commitment"]
    assert panel.field_text("etag") == data["etag"]
    assert "Encrypted (v3), envelope in metadata" in panel.title.text()

    panel.copy_button.click()
    assert json.loads(QGuiApplication.clipboard().text()) == json.loads(json.dumps(data))

    with qtbot.waitSignal(panel.loaded, timeout=WAIT):
        browser.select_keys(["inst.bin"])
    assert panel.field_text("location") == "instruction-file"
    assert panel.field_text("instruction_file") == "inst.bin.instruction"
    assert panel.field_text("key_name") == "gui-key"
    assert "instruction file" in panel.title.text()


def test_envelope_panel_says_plainly_when_an_object_is_not_encrypted(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, s3_client
) -> None:
    s3_client.put_object(Bucket=bucket, Key="plain.txt", Body=b"not encrypted")
    s3_client.put_object(
        Bucket=bucket, Key="broken.bin", Body=b"xx", Metadata={"x-amz-key-v2": "bm90"}
    )
    open_and_load(qtbot, browser, bucket)
    with qtbot.waitSignal(browser.panel.loaded, timeout=WAIT):
        browser.select_keys(["plain.txt"])
    assert browser.panel.title.text().startswith("Not encrypted")
    assert browser.panel.field_text("encrypted") == "No"
    with qtbot.waitSignal(browser.panel.loaded, timeout=WAIT):
        browser.select_keys(["broken.bin"])
    assert browser.panel.title.text().startswith("Invalid envelope")


def test_a_missing_bucket_shows_a_clear_message_in_the_view_and_the_activity(
    qtbot, browser: BrowserView, ctx: AppContext
) -> None:
    browser.open_location("no-such-bucket-s3vault-test")
    qtbot.waitUntil(lambda: browser.message_bar.isVisibleTo(browser), timeout=WAIT)
    text = browser.message_bar.text.text()
    assert "no-such-bucket-s3vault-test" in text
    assert browser.model.problem is not None and browser.model.complete
    assert not browser.model.canFetchMore()
    assert browser.status.text() == "The listing failed."
    entry = ctx.activity.entries()[0]
    assert entry.level == "error" and "no-such-bucket-s3vault-test" in entry.item


def test_rotate_asks_for_the_selected_objects_or_the_folder(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path
) -> None:
    put(ctx, tmp_path, bucket, "a.bin", b"a")
    put(ctx, tmp_path, bucket, "sub/b.bin", b"b")
    open_and_load(qtbot, browser, bucket)
    browser.select_keys(["a.bin"])
    with qtbot.waitSignal(browser.rotate_requested) as asked:
        browser.rotate_action.trigger()
    assert asked.args == [bucket, ["a.bin"], None]
    browser.select_keys(["sub/"])
    with qtbot.waitSignal(browser.rotate_requested) as asked:
        browser.rotate_action.trigger()
    assert asked.args == [bucket, [], "sub/"]


def test_delete_asks_first_and_removes_the_object_and_its_instruction_file(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path, s3_client
) -> None:
    put(ctx, tmp_path, bucket, "gone.bin", b"a", location=Location.INSTRUCTION_FILE)
    put(ctx, tmp_path, bucket, "kept.bin", b"b")
    open_and_load(qtbot, browser, bucket)
    browser.select_keys(["gone.bin"])
    browser.delete_action.trigger()
    box = browser.confirm_box
    assert box is not None and "gone.bin" in box.informativeText()
    box.button(box.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: names(browser.model) == ["kept.bin"], timeout=WAIT)
    listed = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["kept.bin"]
    assert ctx.activity.entries()[0].result == "deleted"


def test_an_unreachable_endpoint_is_a_clear_message_not_a_hang(
    qtbot, tmp_path: Path, agent_socket: Path, bucket: str
) -> None:
    # An endpoint where nothing listens (a stopped server, a wrong port in the config).
    from s3vault.embedded.ports import free_port
    from s3vault.gui.agent_link import AgentLink

    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"s3: {{addressing_style: path, endpoint_url: 'http://127.0.0.1:{port}'}}\n"
        f"buckets: [{bucket}]\n"
    )
    ctx = AppContext(config, agent=AgentLink(agent_socket))
    view = BrowserView(ctx)
    qtbot.addWidget(view)
    view.show()
    try:
        view.open_location(bucket)
        qtbot.waitUntil(lambda: view.message_bar.isVisibleTo(view), timeout=60_000)
        text = view.message_bar.text.text()
        assert f"127.0.0.1:{port}" in text or "unreachable" in text.lower(), text
        assert view.model.problem is not None
        assert view.model.problem.title == "Service unreachable"
        assert ctx.activity.entries()[0].level == "error"
    finally:
        ctx.agent.close()
        assert ctx.jobs.shutdown(30_000)


def test_envelope_panel_names_the_kms_key_and_the_local_name_confirmed(
    qtbot, browser: BrowserView, ctx: AppContext, bucket: str, tmp_path: Path,
    kms_key_id: str, keyring_service: str,
) -> None:
    from s3vault.keys.material import KmsKey
    from s3vault.keys.store import KeyStore

    KeyStore(keyring_service).put(KmsKey("team-kms", kms_key_id))
    put(ctx, tmp_path, bucket, "kms.bin", b"wrapped by KMS", key_name="team-kms")
    open_and_load(qtbot, browser, bucket)
    with qtbot.waitSignal(browser.panel.loaded, timeout=WAIT) as loaded:
        browser.select_keys(["kms.bin"])
    data = loaded.args[0]
    assert kms_key_id in data["kms_key_id"]  # the key's ARN, as KMS reports it
    assert browser.panel.field_text("key_name") == "team-kms"
    assert browser.panel.field_text("key_confirmed") == "Yes: this key opens the data key"
