"""A real X display for the tests and scripts that need one: Xvfb, optionally with a
tray host (`trayer`), started and stopped by PID.

    with virtual_display(tray=True) as display:
        subprocess.run([...], env=display.env())   # QT_QPA_PLATFORM=xcb, DISPLAY=:N
        display.screenshot(Path("screen.png"))      # the whole screen, tray included

Qt decides between tray and no tray when a QSystemTrayIcon is built, so the tray host
is up (its window mapped) before this returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCREEN = "1280x800x24"
READY_TIMEOUT = 15.0


@dataclass
class Display:
    number: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f":{self.number}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update(DISPLAY=self.name, QT_QPA_PLATFORM="xcb")
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(args, env=self.env(), capture_output=True, timeout=30, check=False)

    def screenshot(self, path: Path) -> Path:
        done = self.run("import", "-window", "root", str(path))
        if done.returncode != 0:
            raise RuntimeError(f"import failed: {done.stderr.decode(errors='replace')}")
        return path


def _wait(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {READY_TIMEOUT} s")


@contextmanager
def virtual_display(*, tray: bool = False) -> Iterator[Display]:
    for tool in ("Xvfb", "xdpyinfo", *(("trayer", "xdotool") if tray else ())):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run `make bootstrap-test` as root")
    # -displayfd: Xvfb picks a free display itself and writes its number once it
    # listens, so parallel sessions never race for one. -noreset: by default the
    # server resets when its last client leaves, and refuses connections meanwhile;
    # the readiness probe (xdpyinfo) is that last client, so a client started right
    # after it (trayer) failed now and then with "cannot open display".
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            SCREEN,
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        number = pipe.readline().strip()
    if not number:
        xvfb.wait(timeout=10)
        raise RuntimeError(f"Xvfb did not start (exit status {xvfb.returncode})")
    display = Display(int(number), procs=[xvfb])
    try:
        _wait(lambda: display.run("xdpyinfo").returncode == 0, "Xvfb")
        if tray:
            trayer = subprocess.Popen(
                [
                    "trayer",
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "pixel",
                    "--width",
                    "120",
                    "--height",
                    "32",
                    "--transparent",
                    "false",
                ],
                env=display.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            display.procs.append(trayer)
            _wait(
                lambda: display.run("xdotool", "search", "--class", "trayer").returncode == 0,
                "trayer",
            )
        yield display
    finally:
        for proc in reversed(display.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
