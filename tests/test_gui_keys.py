"""The key manager: list, generate (and the backup prompt), import, export, delete
behind the guard, make current, and a keyring that cannot be used; all against the
test's private keyring, SeaweedFS and moto's KMS.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from gui_helpers import GUI_KEY
from keyring.backends import fail
from PySide6.QtWidgets import QMessageBox

from s3vault.errors import KeyMissingError
from s3vault.gui.agent_link import AgentLink
from s3vault.gui.context import AppContext
from s3vault.gui.key_dialogs import ExportKeyDialog, GenerateKeyDialog, ImportKeyDialog
from s3vault.gui.keys_model import CURRENT, NAME, OBJECTS, TYPE, CountState, KeysModel
from s3vault.gui.keys_view import KeysView
from s3vault.keys.material import AesKey, KmsKey, generate_key, same_material
from s3vault.keys.store import KeyInfo, KeyStore

WAIT_MS = 10_000


def shown_view(qtbot: Any, ctx: AppContext, **kwargs: Any) -> KeysView:
    view = KeysView(ctx, **kwargs)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.loaded, timeout=WAIT_MS)
    return view


def cell(view: KeysView, name: str, column: int) -> str:
    model = view.model
    return str(model.data(model.index(model.row_of(name), column)))


def boxes(widget: Any) -> list[QMessageBox]:
    return [box for box in widget.findChildren(QMessageBox) if box.isVisible()]


def wait_for_problem(qtbot: Any, widget: Any) -> QMessageBox:
    qtbot.waitUntil(lambda: bool(boxes(widget)), timeout=WAIT_MS)
    return boxes(widget)[-1]


def last_activity(ctx: AppContext) -> tuple[str, str, str, str]:
    entry = ctx.activity.entries()[0]
    return entry.what, entry.item, entry.result, entry.level


def test_the_model_passes_the_model_tester_with_every_kind_of_key(qtmodeltester: Any) -> None:
    now = datetime.now(UTC).isoformat()
    model = KeysModel()
    model.set_keys(
        [
            KeyInfo("b-rsa", "rsa", now, "ab" * 8, 4096, None, False),
            KeyInfo("a-aes", "aes", now, "cd" * 8, 256, None, True),
            KeyInfo("c-kms", "kms", now, "ef" * 8, None, "alias/x", False),
        ]
    )
    qtmodeltester.check(model)
    assert [model.data(model.index(r, NAME)) for r in range(3)] == ["a-aes", "b-rsa", "c-kms"]
    assert model.data(model.index(0, CURRENT)) == "✓"
    assert model.data(model.index(1, TYPE)) == "RSA-4096"
    assert model.data(model.index(2, TYPE)) == "KMS key alias/x"
    assert model.data(model.index(0, OBJECTS)) == "…"
    model.set_counts(CountState.DONE, {"a-aes": 3})
    qtmodeltester.check(model)
    assert [model.data(model.index(r, OBJECTS)) for r in range(3)] == ["3", "0", "—"]


def test_the_list_shows_each_key_with_its_type_current_and_objects_using_it(
    qtbot: Any,
    ctx: AppContext,
    gui_key: str,
    keyring_service: str,
    kms_key_id: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    store = KeyStore(keyring_service)
    store.put(generate_key("spare", "rsa2048"))
    store.put(KmsKey("cloud", kms_key_id))
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"hello")
    ctx.vault().put(plain, bucket, "docs/a.txt", key_name=gui_key)

    view = shown_view(qtbot, ctx)
    assert [info.name for info in view.model.key_infos()] == ["cloud", GUI_KEY, "spare"]
    assert cell(view, GUI_KEY, TYPE) == "AES-256"
    assert cell(view, "spare", TYPE) == "RSA-2048"
    assert cell(view, "cloud", TYPE) == f"KMS key {kms_key_id}"
    assert cell(view, GUI_KEY, CURRENT) == "✓" and cell(view, "spare", CURRENT) == ""
    qtbot.waitUntil(lambda: cell(view, GUI_KEY, OBJECTS) == "1", timeout=WAIT_MS)
    assert cell(view, "spare", OBJECTS) == "0"
    assert cell(view, "cloud", OBJECTS) == "—"


def test_counting_is_cancelled_when_the_view_is_hidden(qtbot: Any, ctx: AppContext) -> None:
    view = KeysView(ctx)
    qtbot.addWidget(view)
    view.show()
    job = view.count_job
    assert job is not None and not job.cancelled
    view.hide()  # before the job's result can arrive (it is delivered on this thread)
    assert job.cancelled and view.count_job is None
    view.show()  # shown again: counted again
    assert view.count_job is not None and view.count_job is not job


def test_without_buckets_the_counts_say_not_counted(
    qtbot: Any, keyring_service: str, gui_key: str, tmp_path: Path, agent_socket: Path
) -> None:
    config = tmp_path / "bare.yaml"
    config.write_text("version: 1\ns3: {addressing_style: path}\n", encoding="utf-8")
    context = AppContext(config, agent=AgentLink(agent_socket))
    try:
        view = shown_view(qtbot, context)
        assert view.count_job is None
        assert cell(view, GUI_KEY, OBJECTS) == "not counted"
        assert "no buckets configured" in view.status.text()
    finally:
        context.agent.close()
        assert context.jobs.shutdown(WAIT_MS)


def test_generating_a_key_stores_it_and_prompts_for_a_backup(
    qtbot: Any, ctx: AppContext, gui_key: str, keyring_service: str
) -> None:
    view = shown_view(qtbot, ctx)
    dialog = view.open_generate_dialog()
    assert isinstance(dialog, GenerateKeyDialog)
    dialog.name_edit.setText(".hidden")  # the store's rule: not starting with '.'
    assert not dialog.ok_button.isEnabled() and dialog.name_error.text()
    dialog.name_edit.setText("laptop-2026")
    dialog.current_box.setChecked(True)
    assert dialog.ok_button.isEnabled() and dialog.kind() == "aes256"
    dialog.ok_button.click()

    store = KeyStore(keyring_service)
    qtbot.waitUntil(lambda: isinstance(view.dialog, QMessageBox), timeout=WAIT_MS)
    prompt = view.dialog
    assert isinstance(prompt, QMessageBox) and prompt.isVisible()
    assert "exists only in this computer's keyring" in prompt.text()
    assert "Losing a key loses data" in prompt.informativeText()
    assert isinstance(store.get("laptop-2026"), AesKey)
    assert store.current() == "laptop-2026"
    what, item, result, level = last_activity(ctx)
    assert (what, item, level) == ("key", "laptop-2026", "done")
    assert "generated AES-256 (current)" in result
    qtbot.waitUntil(lambda: view.model.row_of("laptop-2026") >= 0, timeout=WAIT_MS)

    export_now = next(b for b in prompt.buttons() if b.accessibleName() == "Export now")
    export_now.click()
    assert isinstance(view.dialog, ExportKeyDialog)
    assert view.dialog.key_name == "laptop-2026"


def test_importing_a_cli_export_file_and_pasted_text(
    qtbot: Any, ctx: AppContext, run_cli: Any, keyring_service: str, tmp_path: Path
) -> None:
    exported = tmp_path / "rsa.pem"
    KeyStore(keyring_service).put(generate_key("src", "rsa2048"))
    r = run_cli("key", "export", "src", "--file", exported, "--yes")
    assert r.returncode == 0, r.stderr
    view = shown_view(qtbot, ctx)
    view.import_file("from-file", exported)
    store = KeyStore(keyring_service)
    qtbot.waitUntil(lambda: view.model.row_of("from-file") >= 0, timeout=WAIT_MS)
    assert same_material(store.get("from-file"), store.get("src"))
    assert cell(view, "from-file", TYPE) == "RSA-2048"
    assert last_activity(ctx)[2].startswith("created: RSA-2048 from ")

    secret = os.urandom(32)
    dialog = view.open_import_dialog()
    dialog.name_edit.setText("pasted")
    dialog.tabs.setCurrentIndex(ImportKeyDialog.PASTE)
    assert not dialog.ok_button.isEnabled()
    dialog.paste_edit.setPlainText(base64.b64encode(secret).decode())
    dialog.ok_button.click()
    assert dialog.paste_edit.toPlainText() == ""  # the secret does not linger
    assert not dialog.paste_edit.isUndoRedoEnabled()
    qtbot.waitUntil(lambda: view.model.row_of("pasted") >= 0, timeout=WAIT_MS)
    key = store.get("pasted")
    assert isinstance(key, AesKey) and key.secret == secret
    assert "read as base64 from pasted text" in last_activity(ctx)[2]


def test_importing_a_kms_key_id_stores_only_the_reference(
    qtbot: Any, ctx: AppContext, keyring_service: str, kms_key_id: str
) -> None:
    view = shown_view(qtbot, ctx)
    dialog = view.open_import_dialog()
    dialog.name_edit.setText("cloud")
    dialog.tabs.setCurrentIndex(ImportKeyDialog.KMS)
    dialog.kms_edit.setText(kms_key_id)
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: view.model.row_of("cloud") >= 0, timeout=WAIT_MS)
    assert KeyStore(keyring_service).get("cloud") == KmsKey("cloud", kms_key_id)
    assert cell(view, "cloud", TYPE) == f"KMS key {kms_key_id}"


def test_importing_other_material_under_a_taken_name_is_a_clear_conflict(
    qtbot: Any, ctx: AppContext, gui_key: str, keyring_service: str
) -> None:
    view = shown_view(qtbot, ctx)
    before = KeyStore(keyring_service).get(gui_key)
    view.import_text(gui_key, base64.b64encode(os.urandom(32)))
    box = wait_for_problem(qtbot, view)
    assert box.windowTitle() == "s3vault: Conflict"
    assert f"a different key named '{gui_key}'" in box.text()
    assert same_material(KeyStore(keyring_service).get(gui_key), before)
    assert last_activity(ctx)[3] == "error"

    view.import_text("bad", b"not a key")
    qtbot.waitUntil(lambda: "cannot read an AES key" in last_activity(ctx)[2], timeout=WAIT_MS)


def test_export_writes_a_private_file_the_cli_imports_back_and_never_overwrites_silently(
    qtbot: Any,
    ctx: AppContext,
    gui_key: str,
    keyring_service: str,
    run_cli: Any,
    tmp_path: Path,
) -> None:
    view = shown_view(qtbot, ctx)
    view.select(gui_key)
    dialog = view.open_export_dialog()
    assert isinstance(dialog, ExportKeyDialog) and dialog.isVisible()
    target = tmp_path / "backup.key"
    dialog.path_edit.setText(str(target))
    with qtbot.waitSignal(dialog.exported, timeout=WAIT_MS):
        dialog.ok_button.click()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    r = run_cli("key", "import", "restored", "--type", "aes", "--file", target, "--json")
    assert r.returncode == 0, r.stderr
    store = KeyStore(keyring_service)
    assert same_material(store.get("restored"), store.get(gui_key))
    assert json.loads(r.stdout)["result"] == "created"
    assert "exported the secret key" in last_activity(ctx)[2]

    target.write_bytes(b"keep me")
    again = view.open_export_dialog(gui_key)
    assert isinstance(again, ExportKeyDialog)
    again.path_edit.setText(str(target))
    with qtbot.waitSignal(again.failed, timeout=WAIT_MS) as failed:
        again.ok_button.click()
    assert "already exists" in failed.args[0].message
    assert target.read_bytes() == b"keep me"
    again.replace_box.setChecked(True)
    with qtbot.waitSignal(again.exported, timeout=WAIT_MS):
        again.ok_button.click()
    key = store.get(gui_key)
    assert isinstance(key, AesKey) and base64.b64decode(target.read_bytes()) == key.secret


def test_delete_is_refused_while_an_object_uses_the_key_and_allowed_after(
    qtbot: Any,
    ctx: AppContext,
    gui_key: str,
    keyring_service: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    store = KeyStore(keyring_service)
    store.put(generate_key("old"))
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"needs old")
    vault = ctx.vault()
    vault.put(plain, bucket, "docs/a.txt", key_name="old")
    view = shown_view(qtbot, ctx)

    view.delete_selected("old")
    box = wait_for_problem(qtbot, view)
    assert "still wraps the data keys of 1 object(s)" in box.text()
    assert f"s3://{bucket}/docs/a.txt" in box.text()
    assert "--force" not in box.informativeText() and "Rotate" in box.informativeText()
    assert isinstance(store.get("old"), AesKey)
    box.close()

    vault.delete(bucket, "docs/a.txt")
    view.delete_selected("old")
    qtbot.waitUntil(
        lambda: isinstance(view.dialog, QMessageBox) and view.dialog.isVisible(),
        timeout=WAIT_MS,
    )
    confirm = view.dialog
    assert isinstance(confirm, QMessageBox)
    assert "unreadable forever" in confirm.text() and "'old'" in confirm.text()
    assert "current key" not in confirm.informativeText()
    assert isinstance(store.get("old"), AesKey)  # nothing deleted before the answer
    delete = next(b for b in confirm.buttons() if b.accessibleName() == "Delete the key")
    delete.click()
    qtbot.waitUntil(lambda: view.model.row_of("old") < 0, timeout=WAIT_MS)
    with pytest.raises(KeyMissingError):
        store.get("old")
    assert last_activity(ctx)[1:] == ("old", "deleted", "done")


def test_deleting_the_current_key_says_there_will_be_no_current_key(
    qtbot: Any, ctx: AppContext, gui_key: str, keyring_service: str
) -> None:
    view = shown_view(qtbot, ctx)
    view.delete_selected(gui_key)
    qtbot.waitUntil(lambda: isinstance(view.dialog, QMessageBox), timeout=WAIT_MS)
    confirm = view.dialog
    assert isinstance(confirm, QMessageBox)
    assert "It is the current key" in confirm.informativeText()
    next(b for b in confirm.buttons() if b.accessibleName() == "Delete the key").click()
    qtbot.waitUntil(lambda: view.model.row_of(gui_key) < 0, timeout=WAIT_MS)
    assert KeyStore(keyring_service).current() is None
    assert last_activity(ctx)[2:] == ("deleted; there is no current key now", "warning")


def test_make_current_changes_the_current_key(
    qtbot: Any, ctx: AppContext, gui_key: str, keyring_service: str
) -> None:
    store = KeyStore(keyring_service)
    store.put(generate_key("next"))
    view = shown_view(qtbot, ctx)
    view.select("next")
    assert view.buttons["Make current"].isEnabled()
    view.buttons["Make current"].click()
    qtbot.waitUntil(lambda: cell(view, "next", CURRENT) == "✓", timeout=WAIT_MS)
    assert store.current() == "next"
    assert cell(view, gui_key, CURRENT) == ""
    assert last_activity(ctx)[1:3] == ("next", "is now the current key for new objects")


def test_a_keyring_that_cannot_be_used_is_a_clear_message(
    qtbot: Any, ctx: AppContext, keyring_service: str
) -> None:
    def unusable() -> KeyStore:
        return KeyStore(keyring_service, backend=fail.Keyring())

    view = shown_view(qtbot, ctx, keystore=unusable)
    box = wait_for_problem(qtbot, view)
    assert box.windowTitle() == "s3vault: No OS keyring"
    assert "no OS keyring service is running" in box.text()
    assert "gnome-keyring-daemon --unlock" in box.informativeText()
    assert "no OS keyring service is running" in view.status.text()
    assert view.model.rowCount() == 0
    assert last_activity(ctx)[3] == "error"


def test_a_result_that_arrives_after_the_view_is_gone_is_dropped(
    qtbot: Any, ctx: AppContext, gui_key: str
) -> None:
    view = KeysView(ctx)
    job = view.make_current(gui_key)
    assert job is not None
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT_MS):
        shiboken6.delete(view)  # before the job's result is delivered (on this thread)
    # A result reaching the deleted view would raise (pytest-qt fails the test) or log.
    assert ctx.activity.entries() == []
