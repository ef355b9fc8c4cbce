"""What s3vault keeps on disk is private to its user: 0700 folders, 0600 files, umask or not.

After the full workflow of secrets_workflow.py (keys in the keyring and the file
keystore, put, get, rotate, sync, the detached agent and its child run, restore, key
export), every mode under every folder s3vault uses for itself (XDG state, data,
config, cache and runtime) is read: folders 0700, files 0600 (sockets too). The
workflow's processes ran with umask 022, which alone would make 0755 and 0644.
An older install's open modes are tightened when s3vault opens them again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from reliability_report import ReliabilityReport
from secrets_workflow import Workflow, shared_workflow

from s3vault.gui.config_file import read_document, write_document
from s3vault.private import private_dir
from s3vault.sync.state import StateDB


@pytest.fixture
def flow(tmp_path_factory: pytest.TempPathFactory, s3: Any, kms_client: Any) -> Workflow:
    return shared_workflow(tmp_path_factory, s3, kms_client)


def modes_under(root: Path) -> dict[str, int]:
    found = {str(root): stat.S_IMODE(root.lstat().st_mode)}
    for path in root.rglob("*"):
        found[str(path)] = stat.S_IMODE(path.lstat().st_mode)
    return found


def wrong_modes(roots: list[Path]) -> tuple[int, list[str]]:
    checked, wrong = 0, []
    for root in roots:
        for name, mode in modes_under(root).items():
            checked += 1
            want = 0o700 if Path(name).is_dir() else 0o600
            if mode != want:
                wrong.append(f"{name}: {mode:o}, not {want:o}")
    return checked, wrong


def test_everything_s3vault_keeps_on_disk_is_0700_and_0600_after_a_workflow_at_umask_022(
    flow: Workflow, reliability: ReliabilityReport
) -> None:
    roots = flow.s3vault_dirs()
    names = {p.parent.name for p in roots}
    assert {"state", "share", flow.runtime.name} <= names, roots
    state = flow.xdg["XDG_STATE_HOME"] / "s3vault"
    for made in ("state.db", "agent.log", "locks"):
        assert (state / made).exists(), made
    assert (flow.xdg["XDG_DATA_HOME"] / "s3vault" / "keystore").exists()
    checked, wrong = wrong_modes(roots)
    reliability.figure("private files: paths whose mode was read", str(checked))
    assert checked >= 10
    assert wrong == []


def test_an_older_install_with_open_modes_is_tightened_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "state" / "s3vault"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)  # noqa: S103 - an older install's
    path = folder / "state.db"
    with StateDB(path):
        pass
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (folder / name).touch()
        os.chmod(folder / name, 0o644)
    with StateDB(path) as db:
        db.writer  # noqa: B018 - a read through the opened database
    _, wrong = wrong_modes([folder])
    assert wrong == []


def test_the_state_database_and_its_wal_files_are_0600_while_open_at_umask_022(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "s3vault"
    old = os.umask(0o022)
    try:
        with StateDB(folder / "state.db"):  # a new database: the schema was just written
            assert (folder / "state.db-wal").exists() and (folder / "state.db-shm").exists()
            _, wrong = wrong_modes([folder])
    finally:
        os.umask(old)
    assert wrong == []


def test_a_new_folder_and_its_missing_parents_are_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        made = private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    chain = (made, made.parent, made.parent.parent)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in chain}
    assert modes == {"c": 0o700, "b": 0o700, "a": 0o700}


def test_a_folder_the_user_named_is_created_private_but_an_existing_one_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # noqa: S103 - the user's choice
    private_dir(home, tighten=False)
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


def test_the_config_file_the_app_writes_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "config" / "s3vault" / "config.yaml"
    old = os.umask(0o022)
    try:
        write_document(path, read_document(path))
    finally:
        os.umask(old)
    _, wrong = wrong_modes([path.parent])
    assert wrong == []
