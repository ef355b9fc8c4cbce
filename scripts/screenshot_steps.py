"""What scripts/screenshots.py does in the running app, step by step, and the shots.

`Shots.normal()` and `Shots.hidpi()` are generators of `Wait`s (scripts/screenshot_driver.py):
the code between two yields runs in the app's event loop.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import screenshot_scene as scene
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget
from screenshot_driver import Wait, pause, until

SELECTED = "documents/passport-scan.jpg"
MARGIN = 14  # around a cropped region of the screen


class Shots:
    def __init__(self, out: Path, folder: Path, samples: list[Path]) -> None:
        self.out = out
        self.folder = folder
        self.samples = samples
        self.shell: Any = None  # the app's AppShell, set when it starts

    # ---- helpers ---------------------------------------------------------------------

    @property
    def window(self) -> Any:
        return self.shell.window

    @property
    def ctx(self) -> Any:
        return self.shell.ctx

    def grab(self, widget: QWidget, name: str) -> None:
        path = self.out / name
        if not widget.grab().save(str(path)):
            raise RuntimeError(f"could not save {path}")
        print(f"  {name}", flush=True)

    def screen(self, name: str, rect: QRect) -> None:
        """The part ``rect`` (+ a margin) of the whole X screen, tray and popups included."""
        screen = QGuiApplication.primaryScreen().geometry()
        area = rect.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN).intersected(screen)
        full = self.out / "_screen.png"
        _run("import", "-window", "root", str(full))
        crop = f"{area.width()}x{area.height()}+{area.x()}+{area.y()}"
        _run("convert", str(full), "-crop", crop, "+repage", str(self.out / name))
        full.unlink()
        print(f"  {name}", flush=True)

    def folder_state(self) -> tuple[str, Any]:
        status = self.ctx.agent.last_status or {}
        folders = status.get("folders") or []
        if not folders:
            return "", None
        return str(folders[0].get("state")), folders[0]

    def folder_synced(self) -> bool:
        state, folder = self.folder_state()
        return state == "idle" and bool(folder.get("last_sync"))

    def started(self) -> Iterator[Wait]:
        yield until(lambda: self.shell is not None and self.window.isVisible(), "the main window")
        yield until(lambda: self.ctx.agent.connected, "the app to start the agent", 60)
        yield until(self.folder_synced, "the first sync of ~/Documents", 120)

    def browse(self) -> Iterator[Wait]:
        """The browser on documents/, with one object selected and its envelope shown."""
        browser = self.window.browser
        self.window.show_view(browser)
        browser.open_location(scene.BUCKET, "documents/")
        yield until(
            lambda: not browser.model.loading and browser.model.row_of_key(SELECTED) >= 0,
            f"the listing of s3://{scene.BUCKET}/documents/",
        )
        browser.table.setFocus()
        browser.select_keys([SELECTED])
        yield until(lambda: browser.panel.info_json() is not None, "the envelope panel")
        yield pause(0.4)

    def views(self, scheme: str) -> Iterator[Wait]:
        window = self.window
        window.show_view(window.folders)
        yield pause(0.5)
        self.grab(window, f"folders-{scheme}.png")
        yield from self.browse()
        self.grab(window, f"browser-{scheme}.png")
        if scheme == "light":
            self.grab(window.browser.panel, "envelope-panel.png")
        keys = window.keys
        window.show_view(keys)
        yield until(
            lambda: keys.loaded and keys.model.rowCount() == 2 and keys.count_job is None,
            "the key list and its object counts",
        )
        keys.select(scene.CURRENT_KEY)
        yield pause(0.3)
        self.grab(window, f"keys-{scheme}.png")
        window.show_view(window.activity)
        yield pause(0.4)
        self.grab(window, f"activity-{scheme}.png")
        window.show_view(window.settings)
        yield pause(0.4)
        self.grab(window, f"settings-{scheme}.png")

    # ---- the runs --------------------------------------------------------------------

    def normal(self) -> Iterator[Wait]:
        yield from self.started()
        yield until(lambda: self.shell.tray is not None, "the tray icon", 15)
        yield from self.views("light")
        yield from self.rotate()
        yield from self.upload()
        yield from self.tray_menu()
        yield from self.dark()
        yield from self.views("dark")
        yield from self.notification()
        self.shell.quit()

    def hidpi(self) -> Iterator[Wait]:
        yield from self.started()
        self.window.resize(980, 600)
        yield from self.browse()
        self.grab(self.window, "browser-hidpi.png")
        self.shell.quit()

    # ---- single shots ----------------------------------------------------------------

    def rotate(self) -> Iterator[Wait]:
        from s3vault.gui.rotate_dialog import open_rotate_dialog

        dialog = open_rotate_dialog(self.window, self.ctx, scene.BUCKET, [], "documents/")
        counted: list[object] = []
        dialog.counted.connect(counted.append)
        yield pause(1.0)  # its key list loads first
        dialog.count()
        yield until(lambda: bool(counted), "the rotation dialog's count", 60)
        yield pause(0.3)
        self.grab(dialog, "rotate.png")
        dialog.reject()

    def upload(self) -> Iterator[Wait]:
        from s3vault.gui.upload_dialog import UploadWindow

        browser = self.window.browser
        self.window.show_view(browser)
        browser.open_location(scene.BUCKET, "inbox/")
        yield until(lambda: not browser.model.loading, "the listing of inbox/")
        browser.upload_paths(self.samples)

        def window() -> Any:
            found = [w for w in QApplication.topLevelWidgets() if isinstance(w, UploadWindow)]
            return found[0] if found else None

        yield until(lambda: window() is not None and window().isVisible(), "the upload window")
        yield until(lambda: not window().session.running, "the upload to finish", 120)
        yield pause(0.3)
        self.grab(window(), "upload.png")
        window().close()

    def tray_menu(self) -> Iterator[Wait]:
        self.window.hide()  # the menu over the desktop, as when the window is closed
        yield pause(0.3)
        icon = self.shell.tray_host.icon
        menu = self.shell.tray.menu
        where = icon.geometry()
        if where.isEmpty():
            raise RuntimeError("the tray icon has no geometry (is trayer running?)")
        center = where.center()
        _run("xdotool", "mousemove", str(center.x()), str(center.y()), "click", "3")
        yield until(menu.isVisible, "the tray menu after a right click on the icon", 10)
        yield pause(0.5)
        self.screen("tray-menu.png", menu.geometry().united(where))
        menu.hide()
        self.shell.show_window()

    def dark(self) -> Iterator[Wait]:
        hints = QGuiApplication.styleHints()
        hints.setColorScheme(Qt.ColorScheme.Dark)
        yield pause(1.0)
        window_color = QApplication.palette().color(QPalette.ColorRole.Window)
        if window_color.lightness() > 128:
            raise RuntimeError(
                f"the dark colour scheme did not switch the palette (window colour "
                f"{window_color.name()}, style {QApplication.style().name()})"
            )

    def notification(self) -> Iterator[Wait]:
        """Delete most of ~/Documents: the agent refuses the mass delete, the app says so."""
        files = sorted(p for p in self.folder.rglob("*") if p.is_file())
        for path in files[: len(files) * 3 // 4]:
            path.unlink()
        self.window.show_view(self.window.folders)

        def refused() -> bool:
            _state, folder = self.folder_state()
            return bool(folder and folder.get("refused"))

        yield until(refused, "the agent to refuse the mass delete", 60)
        yield until(lambda: _dunst_window() is not None, "the notification popup", 30)
        yield pause(0.8)
        self.grab(self.window, "folders-refused-dark.png")
        self.window.hide()  # the popup over the desktop
        yield pause(0.5)
        geometry = _dunst_window()
        assert geometry is not None
        self.screen("notification.png", geometry)


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=os.environ)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def _dunst_window() -> QRect | None:
    """Where dunst's popup is on the screen, or None while none is shown."""
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--class", "Dunst"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    for window in found.stdout.split():
        values = dict(
            line.split("=", 1)
            for line in _run("xdotool", "getwindowgeometry", "--shell", window).splitlines()
            if "=" in line
        )
        rect = QRect(
            int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])
        )
        if rect.width() > 1 and rect.height() > 1:
            return rect
    return None
