"""`s3vault demo --gui`: the desktop app on the demo's embedded S3, with the demo folder
kept in sync by an agent of the demo's own.

The demo's agent must not meet the user's: it gets its own runtime dir (socket, lock,
the app's single-instance socket) and state dir, so a real agent running on the same
account is neither shown nor disturbed. The app starts that agent (as it would on a
real setup) and it is stopped again when the app quits, before the embedded S3 stops.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from s3vault.cli.output import print_prose
from s3vault.config.model import Config
from s3vault.config.sync import FolderSettings
from s3vault.errors import S3VaultError, UsageError

AGENT_STOP_TIMEOUT = 30.0


def gui_available() -> bool:
    """Whether the extra `gui` (PySide6) is installed."""
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def require_gui() -> None:
    """UsageError (before the demo starts anything) when the extra `gui` is missing."""
    if not gui_available():
        raise UsageError(
            "the desktop app is not installed here (PySide6 is missing)",
            hint="Install it with: pip install 's3vault[gui]' (make demo does).",
        )


def config_with_folder(config: Config, folder: FolderSettings) -> str:
    """The demo's config file text, with ``folder`` to keep in sync."""
    data = config.model_copy(update={"folders": [folder]}).model_dump(
        mode="json", exclude_defaults=True
    )
    return str(yaml.safe_dump(data, sort_keys=False))


def run_gui_demo(
    base: Path, config_file: Path, folder: FolderSettings, env: dict[str, str]
) -> int:
    """Run the app on ``config_file`` until it quits, then stop the demo's agent.
    ``env``: the embedded S3's (and keyring's) variables. The app's exit status."""
    require_gui()
    from s3vault.gui.app import run

    runtime = base / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.update(env)
    os.environ.update(
        S3VAULT_CONFIG=str(config_file),
        S3VAULT_RUNTIME_DIR=str(runtime),
        XDG_STATE_HOME=str(base / "agent-state"),
    )
    print_prose(
        f"Opening the desktop app; the demo folder {folder.path} is kept in sync into "
        f"s3://{folder.bucket}/{folder.prefix}/ by the demo's own agent. Quit the app "
        "(tray menu or window) to end the demo."
    )
    try:
        return run(config_file, [])
    finally:
        _stop_demo_agent()


def _stop_demo_agent() -> None:
    """Stop the agent the app started for the demo (if any) and wait for it to exit."""
    from s3vault.agent.client import stop_agent

    try:
        stop_agent(timeout=AGENT_STOP_TIMEOUT)
    except S3VaultError as exc:
        print_prose(f"could not stop the demo's agent: {exc.message}")
