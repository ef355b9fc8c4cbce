"""The settings view: the config file edited in place (comments and order kept),
validated before anything is written, read-only when managed or overridden, shown as
an error when broken; "Start at login" writes and removes the autostart entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from s3vault.agent import units
from s3vault.config.load import load_config
from s3vault.gui.context import AppContext
from s3vault.gui.settings_view import SettingsView

COMMENTED = """\
# The team's s3vault config: keep the comments.
version: 1
buckets: [{bucket}]   # the one bucket
s3:
  addressing_style: path  # SeaweedFS wants path style
defaults:
  envelope: metadata
agent:
  rescan_interval: 1h  # written as a person would
"""


def open_view(qtbot, ctx: AppContext) -> SettingsView:
    view = SettingsView(ctx)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: not view.busy, timeout=5_000)
    return view


def save_and_wait(qtbot, view: SettingsView) -> None:
    view.save_button.click()
    qtbot.waitUntil(lambda: view.status.text().startswith(("✓", "✗")), timeout=5_000)


def top_keys(path: Path) -> list[str]:
    return list(YAML().load(path.read_text()))


def test_saving_keeps_comments_and_order_and_writes_only_the_changes(
    qtbot, ctx: AppContext, gui_config: Path, bucket: str, s3
) -> None:
    gui_config.write_text(COMMENTED.format(bucket=bucket))
    view = open_view(qtbot, ctx)
    form = view.form
    assert form.field("agent", "rescan_interval").read() == "1h"
    form.field("defaults", "format").widget.setCurrentIndex(1)  # v2
    form.field("s3", "endpoint_url").widget.setText(s3.endpoint_url)
    save_and_wait(qtbot, view)
    assert view.status.text() == "✓ Saved."

    text = gui_config.read_text()
    for kept in (
        "# The team's s3vault config",
        "# the one bucket",
        "# SeaweedFS wants path",
        "rescan_interval: 1h  # written as a person would",
    ):
        assert kept in text
    assert top_keys(gui_config) == ["version", "buckets", "s3", "defaults", "agent"]
    assert list(YAML().load(text)["s3"]) == ["addressing_style", "endpoint_url"]
    config = load_config(gui_config)
    assert config.defaults.format == "v2" and config.s3.endpoint_url == s3.endpoint_url
    assert ctx.config.defaults.format == "v2"  # the app reloaded it
    assert [e.result for e in ctx.activity.entries()][:1] == ["saved"]


def test_an_invalid_value_is_shown_at_its_field_and_nothing_is_written(
    qtbot, ctx: AppContext, gui_config: Path
) -> None:
    before = gui_config.read_bytes()
    view = open_view(qtbot, ctx)
    workers = view.form.field("agent", "workers")
    workers.widget.setValue(0)
    view.form.field("agent", "rescan_interval").widget.setText("every hour")
    save_and_wait(qtbot, view)
    assert view.status.text().startswith("✗ Not saved: agent.workers")
    assert not workers.error.isHidden()
    assert "greater than or equal to 1" in workers.error.text()
    assert "not a duration" in view.form.field("agent", "rescan_interval").error.text()
    assert gui_config.read_bytes() == before


def test_a_managed_config_is_read_only_and_save_refuses(
    qtbot, ctx: AppContext, gui_config: Path
) -> None:
    gui_config.write_text(gui_config.read_text() + "managed_by: ansible\n")
    before = gui_config.read_bytes()
    view = open_view(qtbot, ctx)
    assert view.banner.text().startswith("Managed by ansible: change it where it is provisioned")
    assert all(not f.widget.isEnabled() for f in view.form.all_fields())
    assert not view.save_button.isEnabled()
    view.save()
    assert "managed by ansible" in view.status.text()
    assert gui_config.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("version: 1\ns3: {region: [unclosed\n", "not valid YAML"),
        ("version: 1\nagent: {workers: 0}\n", "agent.workers"),
    ],
    ids=["yaml-error", "schema-error"],
)
def test_a_broken_config_shows_its_error_and_path_and_is_never_overwritten(
    qtbot, ctx: AppContext, gui_config: Path, content: str, says: str
) -> None:
    gui_config.write_text(content)
    view = open_view(qtbot, ctx)
    assert says in view.banner.text() and str(gui_config) in view.banner.text()
    assert view.scroll_area.isHidden()
    assert not view.save_button.isEnabled() and view.open_location.isEnabled()
    view.save()
    assert gui_config.read_text() == content


def test_a_setting_from_the_environment_is_read_only_and_not_written(
    qtbot, ctx: AppContext, gui_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3VAULT_DEFAULTS_FORMAT", "v2")
    view = open_view(qtbot, ctx)
    fmt = view.form.field("defaults", "format")
    assert fmt.read() == "v2" and not fmt.widget.isEnabled()
    assert "S3VAULT_DEFAULTS_FORMAT" in fmt.error.text()
    view.form.field("s3", "region").widget.setText("eu-west-1")
    save_and_wait(qtbot, view)
    saved = YAML().load(gui_config.read_text())
    assert saved["s3"]["region"] == "eu-west-1" and "defaults" not in saved


def test_a_folders_delete_policy_and_ignore_patterns_are_saved_in_that_folder(
    qtbot, ctx: AppContext, gui_config: Path, bucket: str, tmp_path: Path
) -> None:
    gui_config.write_text(
        gui_config.read_text()
        + f"folders:\n  - {{path: {tmp_path / 'a'}, bucket: {bucket}, prefix: a, key: k}}\n"
        + f"  - {{path: {tmp_path / 'b'}, bucket: {bucket}, prefix: b, key: k}}\n"
    )
    view = open_view(qtbot, ctx)
    form = view.form
    assert form.folder_choice.count() == 2
    form.folder_choice.setCurrentIndex(1)
    form.folder_fields["delete"].widget.setCurrentIndex(1)  # keep
    form.folder_fields["ignore"].widget.setPlainText("*.tmp\n\nbuild/\n")
    form.folder_choice.setCurrentIndex(0)  # the edits of folder b are kept meanwhile
    save_and_wait(qtbot, view)
    assert view.status.text() == "✓ Saved."
    folders = load_config(gui_config).folders
    assert [(f.delete, f.ignore) for f in folders] == [
        ("mirror", []),
        ("keep", ["*.tmp", "build/"]),
    ]


def test_start_at_login_writes_and_removes_the_autostart_entry(
    qtbot, ctx: AppContext, gui_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    entry = tmp_path / "xdg" / "autostart" / "s3vault.desktop"
    view = open_view(qtbot, ctx)
    assert not view.start_at_login.isChecked()
    view.start_at_login.click()
    qtbot.waitUntil(entry.is_file, timeout=5_000)
    text = entry.read_text()
    assert "[Desktop Entry]" in text and "Type=Application" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    # The entry `s3vault service install` writes: the app in the tray, this config.
    assert exec_line.endswith(" --minimized") and f"--config {gui_config}" in exec_line
    assert text.startswith(units.MARKER + "\n")
    # `s3vault service install` then finds its own entry: one entry, the app starts once.
    command = ["service", "install", "--no-start", "--json"]
    installed = subprocess.run(
        [sys.executable, "-m", "s3vault", "--config", str(gui_config), *command],
        env=dict(os.environ),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    files = {f["role"]: f for f in json.loads(installed.stdout)["files"]}
    assert (files["app-autostart"]["path"], files["app-autostart"]["action"]) == (
        str(entry),
        "unchanged",
    )
    assert sorted(p.name for p in entry.parent.iterdir()) == [
        "s3vault-agent.desktop",  # this machine has no systemd user manager
        "s3vault.desktop",
    ]
    qtbot.waitUntil(view.start_at_login.isEnabled, timeout=5_000)
    view.start_at_login.click()
    qtbot.waitUntil(lambda: not entry.exists(), timeout=5_000)


def test_test_connection_checks_the_configured_bucket(qtbot, ctx: AppContext, bucket: str) -> None:
    view = open_view(qtbot, ctx)
    with qtbot.waitSignal(view.tester.tested, timeout=15_000) as tested:
        view.tester.test_button.click()
    assert all(v.ok for v in tested.args[0]), view.tester.lines.text()
    assert f"{bucket} exists" in view.tester.lines.text()


def test_the_view_follows_a_config_written_elsewhere(
    qtbot, ctx: AppContext, gui_config: Path
) -> None:
    view = open_view(qtbot, ctx)
    gui_config.write_text(gui_config.read_text() + "defaults: {format: v2}\n")
    ctx.reload_config()  # what another view does after writing the file
    qtbot.waitUntil(lambda: view.form.field("defaults", "format").read() == "v2", timeout=5_000)
