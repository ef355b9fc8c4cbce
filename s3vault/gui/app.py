"""`s3vault gui` / `s3vault-gui`: start the desktop app (to be completed)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from s3vault.gui.context import AppContext
from s3vault.gui.main_window import MainWindow

APP_NAME = "s3vault"


def run(config_path: Path | None = None, argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName(APP_NAME)
    ctx = AppContext(config_path)
    window = MainWindow(ctx)
    window.show()
    ctx.agent.connect_now()
    return int(app.exec())


def main() -> None:
    sys.exit(run())
