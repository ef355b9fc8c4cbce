"""The desktop app's key export writes a recovery kit when asked; the CLI reads it back."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from typing import Any

from s3vault.gui.context import AppContext
from s3vault.gui.key_dialogs import ExportKeyDialog
from s3vault.keys.store import KeyStore

WAIT_MS = 10_000


def test_export_dialog_writes_a_recovery_kit_the_cli_restores(
    qtbot: Any, ctx: AppContext, gui_key: str, keyring_service: str, run_cli: Any, tmp_path: Path
) -> None:
    dialog = ExportKeyDialog(ctx, gui_key)
    qtbot.addWidget(dialog)
    dialog.show()
    target = tmp_path / "kit.txt"
    dialog.path_edit.setText(str(target))
    dialog.kit_box.setChecked(True)
    with qtbot.waitSignal(dialog.exported, timeout=WAIT_MS):
        dialog.ok_button.click()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text().startswith("s3vault recovery kit v1\n")
    assert "recovery kit of the secret key" in ctx.activity.entries()[0].result
    scratch = {"S3VAULT_KEYRING_SERVICE": f"s3vault-test-{uuid.uuid4().hex[:12]}"}
    r = run_cli("key", "import", "--recovery", "--file", target, "--json", env=scratch)
    assert r.returncode == 0, r.stderr
    restored = json.loads(r.stdout)
    assert restored["name"] == gui_key
    assert restored["fingerprint"] == KeyStore(keyring_service).get(gui_key).fingerprint


def test_the_default_file_name_follows_the_kit_choice_but_a_typed_name_stays(
    qtbot: Any, ctx: AppContext
) -> None:
    dialog = ExportKeyDialog(ctx, "laptop")
    qtbot.addWidget(dialog)
    assert dialog.path_edit.text().endswith("laptop.key")
    dialog.kit_box.setChecked(True)
    assert dialog.path_edit.text().endswith("laptop-recovery-kit.txt")
    dialog.kit_box.setChecked(False)
    assert dialog.path_edit.text().endswith("laptop.key")
    dialog.path_edit.setText("/media/usb/backup.key")
    dialog.kit_box.setChecked(True)
    assert dialog.path_edit.text() == "/media/usb/backup.key"
