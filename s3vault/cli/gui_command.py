"""`s3vault gui`: open the desktop app (the extra `gui`, PySide6)."""

from __future__ import annotations

import sys

import click

from s3vault.cli.context import AppContext
from s3vault.errors import UsageError

GUI_EPILOG = """\b
Examples:
  s3vault gui
  s3vault --config ~/vault.yaml gui
  s3vault gui --minimized       # at login: only the tray icon (the window without a tray)

The app starts the sync agent when none is running. With no config file it opens
a short setup first. A second launch raises the window of the first."""


@click.command(epilog=GUI_EPILOG)
@click.option("--minimized", is_flag=True, help="Start in the tray, without the window.")
@click.pass_obj
def gui(app: AppContext, minimized: bool) -> int:
    """Open the desktop app: folders, bucket browser, envelopes, keys, tray icon."""
    try:
        from s3vault.gui.app import run
    except ImportError as exc:
        raise UsageError(
            f"the desktop app is not installed here ({exc.name or exc})",
            hint="Install it with: pip install 's3vault[gui]'",
        ) from None
    return run(app.config_path, [sys.argv[0], *(["--minimized"] if minimized else [])])
