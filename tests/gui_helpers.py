"""Fixtures for the desktop app's tests (a pytest plugin, see conftest.py).

The app runs on Qt's offscreen platform (set for the whole session in conftest.py)
against the real services: SeaweedFS, moto's KMS, the private keyring. Each test
gets its own config file, key store (``keyring_service``) and bucket, and an
`AppContext` whose agent link points at a socket of the test (no agent runs unless
the test starts one with `agent_helpers`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

GUI_KEY = "gui-key"


def write_gui_config(path: Path, bucket: str, *, extra: str = "") -> Path:
    path.write_text(
        "# s3vault config of a GUI test\n"
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        f"buckets: [{bucket}]\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture
def gui_config(tmp_path: Path, bucket: str, keyring_service: str) -> Path:
    """A config file for the test's bucket (S3 and KMS endpoints come from the session
    environment, as a user's AWS settings would)."""
    return write_gui_config(tmp_path / "config.yaml", bucket)


@pytest.fixture
def gui_key(keyring_service: str) -> str:
    """An AES master key, current, in the test's key store."""
    from s3vault.keys.material import generate_key
    from s3vault.keys.store import KeyStore

    store = KeyStore(keyring_service)
    store.put(generate_key(GUI_KEY))
    store.set_current(GUI_KEY)
    return GUI_KEY


@pytest.fixture
def agent_socket() -> Iterator[Path]:
    """A short socket path of the test's own (no agent listens unless the test starts one)."""
    with tempfile.TemporaryDirectory(prefix="s3v-gui-") as tmp:
        yield Path(tmp) / "agent.sock"


@pytest.fixture
def ctx(qtbot: object, gui_config: Path, agent_socket: Path) -> Iterator[object]:
    from s3vault.gui.agent_link import AgentLink
    from s3vault.gui.context import AppContext

    context = AppContext(gui_config, agent=AgentLink(agent_socket))
    try:
        yield context
    finally:
        context.agent.close()
        assert context.jobs.shutdown(30_000), "a job of the test was still running"
