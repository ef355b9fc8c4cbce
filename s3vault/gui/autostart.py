"""Start the app at login ("Start at login" in Settings): the XDG autostart entry
``$XDG_CONFIG_HOME/autostart/s3vault.desktop``, which every freedesktop session (GNOME,
KDE, Xfce…) runs at login. It is the entry `s3vault service install` writes
(`s3vault.agent.service_install.set_app_autostart`): one entry, so the app starts once,
in the tray. Disk I/O: call from a job.
"""

from __future__ import annotations

from pathlib import Path

from s3vault.agent.service_install import ServicePaths, set_app_autostart
from s3vault.errors import local_error


def autostart_path() -> Path:
    return ServicePaths.for_user().app_autostart


def is_enabled() -> bool:
    return autostart_path().is_file()


def set_enabled(enabled: bool, config_path: Path | None = None) -> Path:
    """Write or remove the entry; its path."""
    try:
        return set_app_autostart(enabled, config_path)
    except OSError as exc:
        doing = "write the autostart entry" if enabled else "remove the autostart entry"
        raise local_error(exc, doing, autostart_path()) from None
