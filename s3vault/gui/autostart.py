"""Start the app at login: an XDG autostart entry, ``$XDG_CONFIG_HOME/autostart/s3vault.desktop``
(``~/.config/autostart`` by default), which every freedesktop session (GNOME, KDE,
Xfce…) runs at login. Disk I/O: call from a job.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from s3vault.errors import local_error

ENTRY_NAME = "s3vault.desktop"


def autostart_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / ENTRY_NAME


def is_enabled() -> bool:
    return autostart_path().is_file()


def exec_line(config_path: Path | None = None) -> str:
    """``s3vault gui`` (the installed command's full path when it is on PATH, so a
    virtualenv install starts too), with ``--config`` for a config not at the default."""
    program = shutil.which("s3vault") or "s3vault"
    args = [program]
    if config_path is not None:
        args += ["--config", str(config_path)]
    args.append("gui")
    # The desktop entry spec quotes with double quotes only (no single quotes).
    return " ".join(_quote(a) for a in args)


def _quote(arg: str) -> str:
    if arg and all(c not in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def entry_text(config_path: Path | None = None) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=s3vault\n"
        "Comment=Client-side encrypted sync to S3\n"
        f"Exec={exec_line(config_path)}\n"
        "Icon=s3vault\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def set_enabled(enabled: bool, config_path: Path | None = None) -> Path:
    """Write or remove the entry; its path."""
    path = autostart_path()
    try:
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{ENTRY_NAME}.tmp")
            tmp.write_text(entry_text(config_path), encoding="utf-8")
            os.replace(tmp, path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        doing = "write the autostart entry" if enabled else "remove the autostart entry"
        raise local_error(exc, doing, path) from None
    return path
