"""Where the agent keeps its socket and lock: the user's runtime dir, private to them.

The control socket accepts pause/stop from whoever can connect, so the directory that
holds it must be ours and closed to everyone else (0700); a directory that is not is
refused rather than repaired, since someone else may already have a handle on it.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import platformdirs

from s3vault.errors import RefusedError
from s3vault.private import private_dir

APP = "s3vault"
SOCKET_NAME = "agent.sock"
LOCK_NAME = "agent.lock"


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/s3vault`` (or platformdirs' fallback), created 0700, checked.

    ``$S3VAULT_RUNTIME_DIR`` replaces it: an agent apart from the user's one (the one
    `s3vault demo --gui` runs), without moving the rest of the session's runtime dir.
    """
    override = os.environ.get("S3VAULT_RUNTIME_DIR")
    if override:
        path = Path(override)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_private_dir(path)
        return path
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (root on a server, a cron job) platformdirs falls back
        # to /run/user/UID or a private temp dir and warns on every call. The fallback
        # is checked below like any runtime dir, so the warning only adds noise.
        warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
        path = Path(platformdirs.user_runtime_dir(APP))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path)
    return path


def check_private_dir(path: Path) -> None:
    """Refuse a directory that is a link, not ours, or open to group or others."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RefusedError(
            f"{path} is not a directory",
            hint="Remove it; s3vault creates its runtime directory itself.",
        )
    if st.st_uid != os.getuid():
        raise RefusedError(
            f"{path} belongs to another user (uid {st.st_uid})",
            hint="Set XDG_RUNTIME_DIR to a directory of your own (systemd sets it at login).",
        )
    if st.st_mode & 0o077:
        raise RefusedError(
            f"{path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"chmod 700 {path}",
        )


def socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def lock_path() -> Path:
    return runtime_dir() / LOCK_NAME


def state_dir() -> Path:
    """The agent's persistent state (the state database, the log of a detached agent): 0700."""
    return private_dir(Path(platformdirs.user_state_dir(APP)))
