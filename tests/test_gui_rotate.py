"""Key rotation from the app (`s3vault.gui.rotate_dialog`) against real SeaweedFS and
keyring: count first, confirm, rotate with progress, cancel between objects, and a
result list that says what happened to each object."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from s3vault.gui.context import AppContext
from s3vault.gui.rotate_dialog import RotateDialog, open_rotate_dialog
from s3vault.gui.rotate_results import CHANGED, FAILED, outcome_label
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.vault.rotation import Failed

NEW_KEY = "new-key"


@pytest.fixture
def new_key(keyring_service: str, gui_key: str) -> str:
    KeyStore(keyring_service).put(generate_key(NEW_KEY))
    return NEW_KEY


def store(ctx: AppContext, bucket: str, tmp_path: Path, keys: list[str], key_name: str) -> None:
    vault = ctx.vault()

    def put(key: str) -> None:
        local = tmp_path / key.replace("/", "_")
        local.write_bytes(f"content of {key}".encode())
        vault.put(local, bucket, key, key_name=key_name)

    with vault.remembering_keys(), ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))


def ready(qtbot, dialog: RotateDialog, to_key: str) -> None:
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.count_button.isEnabled, timeout=10_000)
    dialog.key_combo.setCurrentIndex(dialog.key_combo.findData(to_key))


def count(qtbot, dialog: RotateDialog) -> None:
    with qtbot.waitSignal(dialog.counted, timeout=20_000):
        dialog.count_button.click()


def run(qtbot, dialog: RotateDialog) -> None:
    assert dialog.rotate_button.isEnabled()
    with qtbot.waitSignal(dialog.run_finished, timeout=30_000):
        dialog.rotate_button.click()


def read_back(ctx: AppContext, bucket: str, key: str, tmp_path: Path) -> bytes:
    out = tmp_path / "read-back"
    ctx.vault().get(bucket, key, out)
    return out.read_bytes()


def test_rewrap_of_selected_objects_counts_first_then_names_the_new_key_and_still_decrypts(
    qtbot,
    qtmodeltester,
    ctx: AppContext,
    gui_key: str,
    new_key: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    selected = ["r/a.txt", "r/b.txt", "r/c.txt"]
    store(ctx, bucket, tmp_path, selected, gui_key)
    store(ctx, bucket, tmp_path, ["r/done.txt"], new_key)  # already on the target
    dialog = open_rotate_dialog(None, ctx, bucket, [*selected, "r/done.txt"], None)
    ready(qtbot, dialog, new_key)
    assert dialog.key_combo.itemText(dialog.key_combo.findData(gui_key)) == f"{gui_key} (current)"
    assert not dialog.rotate_button.isEnabled()  # no rotation before a count
    count(qtbot, dialog)
    assert "3 objects will be re-wrapped to 'new-key'" in dialog.status.text()
    assert dialog.rotate_button.text() == "&Rotate 3 objects"
    assert all(ctx.vault().inspect(bucket, k).key_name == gui_key for k in selected)  # dry run
    run(qtbot, dialog)
    qtmodeltester.check(dialog.results)
    assert dialog.results.labels() == {
        "r/a.txt": "rotated",
        "r/b.txt": "rotated",
        "r/c.txt": "rotated",
        "r/done.txt": "skipped",
    }
    for key in selected:
        assert ctx.vault().inspect(bucket, key).key_name == new_key
        assert read_back(ctx, bucket, key, tmp_path) == f"content of {key}".encode()
    assert dialog.status.text().startswith("rotated 3, skipped 1 (already on new-key: 1), failed 0")
    [entry] = [e for e in ctx.activity.entries() if e.what == "rotate"]
    assert entry.level == "done" and entry.result.startswith("rotated 3")


def test_reencrypt_of_a_prefix_writes_the_chosen_format_v2(
    qtbot, ctx: AppContext, gui_key: str, new_key: str, bucket: str, tmp_path: Path
) -> None:
    keys = ["p/one", "p/two"]
    store(ctx, bucket, tmp_path, keys, gui_key)
    assert ctx.vault().inspect(bucket, "p/one").format_label == "v3"
    dialog = RotateDialog(ctx, bucket, [], "p/")
    ready(qtbot, dialog, new_key)
    dialog.reencrypt_radio.setChecked(True)
    assert dialog.format_combo.isEnabled()
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("v2"))
    count(qtbot, dialog)
    assert "2 objects will be re-encrypted" in dialog.status.text()
    run(qtbot, dialog)
    for key in keys:
        info = ctx.vault().inspect(bucket, key)
        assert (info.format_label, info.key_name) == ("v2", new_key)
        assert read_back(ctx, bucket, key, tmp_path) == f"content of {key}".encode()


def test_cancel_during_a_prefix_rotation_stops_early_and_the_report_says_how_many_were_done(
    qtbot, ctx: AppContext, gui_key: str, new_key: str, bucket: str, tmp_path: Path
) -> None:
    keys = [f"many/{i:02}" for i in range(50)]
    store(ctx, bucket, tmp_path, keys, gui_key)
    dialog = RotateDialog(ctx, bucket, [], "many/", workers=2)
    ready(qtbot, dialog, new_key)
    count(qtbot, dialog)
    assert dialog.rotate_button.text() == "&Rotate 50 objects"
    # Cancel in the job's thread as soon as the first outcome is reported.
    dialog.run_started.connect(
        lambda job: job.signals.progress.connect(
            lambda _: dialog.cancel(), Qt.ConnectionType.DirectConnection
        )
    )
    run(qtbot, dialog)
    report = dialog.report
    assert report is not None and report.interrupted
    done = len(report.rotated)
    assert 1 <= done < 50 and not report.failed
    assert dialog.status.text().startswith(f"Cancelled after {done} object(s)")
    on_new = sum(ctx.vault().inspect(bucket, k).key_name == new_key for k in keys)
    assert on_new == done  # what is done stays done, and nothing more
    assert dialog.bar.value() == done and dialog.bar.maximum() == 50
    assert any(e.level == "warning" and "Cancelled" in e.result for e in ctx.activity.entries())


def test_a_rotation_to_the_key_objects_already_have_counts_nothing_to_rotate(
    qtbot, ctx: AppContext, gui_key: str, new_key: str, bucket: str, tmp_path: Path
) -> None:
    store(ctx, bucket, tmp_path, ["s/x"], gui_key)
    dialog = RotateDialog(ctx, bucket, ["s/x"], None)
    ready(qtbot, dialog, gui_key)
    count(qtbot, dialog)
    assert dialog.status.text().startswith("Nothing to rotate")
    assert not dialog.rotate_button.isEnabled()
    assert dialog.results.labels() == {"s/x": "skipped"}


def test_a_failure_from_a_concurrent_change_is_shown_as_changed_meanwhile() -> None:
    assert outcome_label(Failed("k", "s3://b/k changed", None, 8)) == CHANGED
    assert outcome_label(Failed("k", "no key opens it", None, 5)) == FAILED
