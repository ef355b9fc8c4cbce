"""Screenshots of the desktop app, for the README and for looking at it with fresh eyes.

    .venv/bin/python scripts/screenshots.py [--out build/screenshots]

Starts a virtual X display (Xvfb) with a tray host (trayer), and in it the real app
(`s3vault.gui.app.run`) on embedded services: a private keyring, a local S3
(SeaweedFS), a notification server (dunst) and the sync agent the app starts itself.
The scene (scripts/screenshot_scene.py) is a bucket of varied objects (V3, V2 and
instruction-file envelopes under two master keys) and a synced ~/Documents.

It saves, in --out:
  folders-light.png browser-light.png envelope-panel.png keys-light.png
  activity-light.png settings-light.png rotate.png upload.png tray-menu.png
  folders-dark.png browser-dark.png keys-dark.png activity-dark.png settings-dark.png
  notification.png folders-refused-dark.png   (a refused mass delete, as it is shown)
  browser-hidpi.png                            (a second run at QT_SCALE_FACTOR=2)

The app is driven by QTimer steps (`Director`), never by processEvents() loops (PySide6
6.12 on Python 3.11 leaks a reference per call and crashes). Every wait has a timeout
that names what did not happen. Everything started is stopped by PID, also on error.
Needs: make bootstrap-test (Xvfb, trayer, xdotool, ImageMagick, dunst).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # xdisplay.py

from screenshot_driver import Director, Wait  # noqa: E402 (scripts/ is on sys.path)
from screenshot_steps import Shots  # noqa: E402

INNER_TIMEOUT = 300  # seconds for one run of the app (both views, all shots)


# ---- the outer process: a display, then the app in it ----------------------------------


def outer(out: Path) -> int:
    from xdisplay import virtual_display

    out.mkdir(parents=True, exist_ok=True)
    status = 0
    with virtual_display(tray=True) as display:
        display.run("xsetroot", "-solid", "#4a5a6a")  # a desktop colour, not black
        for mode, extra in (("normal", {}), ("hidpi", {"QT_SCALE_FACTOR": "2"})):
            # The GTK platform theme: the palette a GNOME user gets, and the one whose
            # colour scheme follows QStyleHints.setColorScheme (the generic theme ignores it).
            env = {
                **display.env(),
                "QT_QPA_PLATFORMTHEME": "gtk3",
                "NO_AT_BRIDGE": "1",  # no accessibility bus here: no GTK warning about it
                "QT_LOGGING_RULES": "qt.qpa.theme.gnome=false",  # nor about a portal
                **extra,
            }
            command = [sys.executable, __file__, "--inner", mode, "--out", str(out)]
            print(f"screenshots: {mode} run on display {display.name}", flush=True)
            try:
                done = subprocess.run(command, env=env, timeout=INNER_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                print(f"screenshots: the {mode} run took over {INNER_TIMEOUT} s", file=sys.stderr)
                return 1
            status = status or done.returncode
    shots = sorted(out.glob("*.png"))
    print(f"screenshots: {len(shots)} PNGs in {out}:")
    for shot in shots:
        print(f"  {shot.name}")
    return status


# ---- the inner process: services, scene, the app ---------------------------------------


def inner(mode: str, out: Path) -> int:
    import screenshot_scene as scene

    from s3vault.embedded.keyring_session import PrivateKeyring
    from s3vault.embedded.seaweed import LocalS3

    base = Path(tempfile.mkdtemp(prefix="s3v-shots-", dir="/tmp"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        keyring = PrivateKeyring(parent=base).start()
        stack.callback(keyring.stop)
        keyring.apply_to_environ()
        s3 = LocalS3(base / "s3").start()
        stack.callback(s3.stop)
        for variable in LocalS3.CONFLICTING_ENV:
            os.environ.pop(variable, None)
        os.environ.update(s3.env())
        home = base / "home"
        runtime = base / "run"
        runtime.mkdir(mode=0o700)
        os.environ.update(
            HOME=str(home),
            S3VAULT_RUNTIME_DIR=str(runtime),
            XDG_STATE_HOME=str(base / "state"),
            XDG_CONFIG_HOME=str(base / "config"),
            XDG_DATA_HOME=str(base / "data"),
        )
        stack.callback(stop_agent)
        dunst = start_dunst(base)
        stack.callback(stop_process, dunst)

        folder = home / "Documents"
        scene.write_folder(folder)
        store = scene.make_keys()
        s3.create_bucket(scene.BUCKET)
        config = scene.config_for(s3.endpoint_url, s3.region, folder)
        scene.fill_bucket(config, store, base / "scratch")
        config_path = base / "config.yaml"
        scene.write_config(config_path, config)
        os.environ["S3VAULT_CONFIG"] = str(config_path)
        samples = scene.upload_samples(base / "drop")
        shots = Shots(out, folder, samples)
        steps = shots.hidpi() if mode == "hidpi" else shots.normal()
        return run_app(config_path, steps, shots)
    return 1


def start_dunst(base: Path) -> subprocess.Popen[bytes]:
    """A notification server on the private session bus, drawing on the display."""
    rc = base / "dunstrc"
    rc.write_text(DUNSTRC, encoding="utf-8")
    log = open(base / "dunst.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        ["dunst", "-config", str(rc)], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
    )


DUNSTRC = """\
[global]
    width = 380
    origin = top-right
    offset = 16x48
    font = Sans 10
    frame_width = 1
    frame_color = "#8a8a8a"
    padding = 12
    horizontal_padding = 14
    corner_radius = 6
    markup = full
    format = "<b>%s</b>\\n%b"
    word_wrap = yes
[urgency_low]
    background = "#2b2b2b"
    foreground = "#f0f0f0"
[urgency_normal]
    background = "#2b2b2b"
    foreground = "#f0f0f0"
[urgency_critical]
    background = "#2b2b2b"
    foreground = "#f0f0f0"
    frame_color = "#d9534f"
"""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_agent() -> None:
    """Stop the agent the app started (its stop verb), and wait for it to go."""
    from s3vault.agent.client import stop_agent as stop_and_wait
    from s3vault.errors import S3VaultError

    try:
        stop_and_wait(timeout=30)
    except S3VaultError as exc:
        print(f"screenshots: {exc.message}", file=sys.stderr)


# ---- driving the app ----------------------------------------------------------------


def run_app(config_path: Path, steps: Iterator[Wait], shots: Shots) -> int:
    from PySide6.QtCore import QTimer

    from s3vault.gui import app as gui_app

    original_start = gui_app.AppShell.start

    def start(shell: gui_app.AppShell) -> None:  # the shell run() builds, for the steps
        shots.shell = shell
        original_start(shell)

    gui_app.AppShell.start = start  # type: ignore[method-assign]
    failure: list[str] = []

    def fail(message: str) -> None:
        failure.append(message)
        print(f"screenshots: {message}", file=sys.stderr)
        if shots.shell is not None:
            shots.shell.quit()

    application = gui_app.setup_application([sys.argv[0]])
    director_box: list[Director] = []
    QTimer.singleShot(0, lambda: director_box.append(Director(steps, fail)))
    code = gui_app.run(config_path, [sys.argv[0]])
    del application
    return 1 if failure else code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "screenshots")
    parser.add_argument("--inner", choices=("normal", "hidpi"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.out.absolute()
    if args.inner:
        return inner(args.inner, out)
    return outer(out)


if __name__ == "__main__":
    sys.exit(main())
