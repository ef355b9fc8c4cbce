"""The file keystore under the agent and under rotation: they run on it unchanged.

The keystore is configured in the config file (not the environment), as a server
would have it, and the passphrase comes from a file named relative to
``$CREDENTIALS_DIRECTORY``, as systemd's ``LoadCredential=`` hands it to the unit.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from agent_helpers import agent_procs, wait_for
from cli_run import RunCli


def test_agent_and_rotation_work_on_a_file_keystore_fed_by_a_credential(
    run_cli: RunCli, session_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "s3vault-passphrase").write_text(uuid.uuid4().hex + "\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "report.txt").write_bytes(b"synced by an agent whose keys are in a file\n")
    keystore = tmp_path / "private" / "keystore"
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        f"keystore: {{type: file, path: {keystore}, passphrase_file: s3vault-passphrase}}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: sync, key: server}}\n"
        "agent: {debounce_ms: 200, rescan_interval: 1h, workers: 2}\n"
    )
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    for name in ("server", "server-2027"):
        made = run_cli("--config", config, "key", "generate", name, env=env)
        assert made.returncode == 0, made.stderr
    assert keystore.exists()

    with contextlib.contextmanager(agent_procs)(config, dict(session_env, **env)) as procs:
        procs.start()
        url = f"s3://{bucket}/sync/report.txt"
        wait_for(lambda: procs.cli("inspect", url, "--json").returncode == 0, "the agent's upload")

    got = run_cli("--config", config, "get", url, "-", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == (folder / "report.txt").read_bytes()

    rotated = run_cli("--config", config, "rotate", url, "--to-key", "server-2027", env=env)
    assert rotated.returncode == 0, rotated.stderr
    info = run_cli("--config", config, "inspect", url, "--json", env=env)
    assert b"server-2027" in info.stdout
    again = run_cli("--config", config, "get", url, "-", env=env)
    assert again.stdout == (folder / "report.txt").read_bytes()
    # Without the credential, nothing opens: no silent fallback to another store.
    refused = run_cli("--config", config, "get", url, "-", env={"CREDENTIALS_DIRECTORY": None})
    assert refused.returncode == 2
    assert b"Traceback" not in refused.stderr
    assert os.stat(keystore).st_mode & 0o077 == 0
