"""The bucket browser (to be built)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from s3vault.gui.context import AppContext


class BrowserView(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        QVBoxLayout(self).addWidget(QLabel("Bucket browser"))

    def upload_paths(self, paths: list[Path]) -> None:
        """Encrypt and upload dropped files and folders at the prefix shown."""
