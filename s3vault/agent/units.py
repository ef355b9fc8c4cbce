"""The files that start the agent and the app at login: the systemd user unit and the
XDG autostart entries, rendered for one install's real commands (pure: no I/O).

`s3vault service install` writes them (s3vault.agent.service_install); the copies
under installer/ are the same text for a manual install (tests/test_service_install.py
keeps them in step). Each rendered file starts with `MARKER`: uninstall removes only
files that carry it, and install never overwrites a file without it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from s3vault.errors import UsageError

UNIT_NAME = "s3vault-agent.service"
AGENT_AUTOSTART_NAME = "s3vault-agent.desktop"
# The same name as the app's menu entry (resources/s3vault.desktop), which the app's
# "Start at login" and installer/install-desktop.sh --autostart write too: one entry,
# so the app never starts twice at login.
APP_AUTOSTART_NAME = "s3vault.desktop"

MARKER = "# Written by s3vault; `s3vault service uninstall` removes it."
MANAGED_HEADER = (
    f"{MARKER}\n"
    "# Edits here are replaced by the next install: customise with\n"
    "#   systemctl --user edit s3vault-agent   (a drop-in, which install never touches)\n"
)

# From [Unit] on, installer/systemd/s3vault-agent.service is this text with
# ExecStart=%h/.local/bin/s3vault agent --foreground.
UNIT_BODY = """\
[Unit]
Description=s3vault: client-side encrypted folder sync to S3
Documentation=https://github.com/s3vault/s3vault/blob/main/docs/agent.md
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
# The agent reports READY=1 once its control socket answers, STATUS= as it syncs,
# and WATCHDOG=1 every WatchdogSec/2.
ExecStart={exec_start}
Restart=on-failure
RestartSec=10
WatchdogSec=60
# A stop lets the reconcile in progress finish (an upload is never left half-done
# on purpose; a kill is safe too, only slower to recover).
TimeoutStopSec=120
# Exit codes that a restart cannot fix: 2 bad config, 8 another agent runs, 9 refused.
RestartPreventExitStatus=2 8 9

# Hardening, as Syncthing's user unit, limited to what a *user* manager applies without
# privileges: seccomp filters and process flags. Left out on purpose: ProtectSystem,
# ProtectHome, PrivateTmp, PrivateDevices, ProtectKernel*, ProtectClock, ProtectHostname.
# In a user unit they need a user namespace (PrivateUsers=, implied), which many kernels
# refuse to unprivileged users (the unit then fails to start), and ProtectHome would hide
# the folders the agent syncs.
# Never gains privileges through setuid binaries or file capabilities.
NoNewPrivileges=yes
# Only the machine's native system-call ABI (no 32-bit compat calls).
SystemCallArchitectures=native
# No memory both writable and executable: the agent generates no code at run time.
MemoryDenyWriteExecute=yes
# No change of the execution domain (personality(2)).
LockPersonality=yes
# No real-time scheduling: a sync never starves the desktop.
RestrictRealtime=yes
# Creates no setuid/setgid files.
RestrictSUIDSGID=yes
# Creates no namespaces.
RestrictNamespaces=yes
# Sockets: Unix (control socket, the keyring's D-Bus, sd_notify), IPv4/IPv6 (S3, KMS),
# netlink (the resolver asks it which address families the host has).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# What the agent writes itself (state database, log) is for this user only.
UMask=0077

[Install]
WantedBy=default.target
"""

AGENT_AUTOSTART_BODY = """\
[Desktop Entry]
# XDG autostart of the agent, for desktops without systemd user sessions (docs/agent.md).
# Not together with the systemd unit enabled: the second agent would exit
# ("already running", exit code 8), harmless but noisy.
Type=Application
Name=s3vault agent
Comment=Keep your folders encrypted in S3
Exec={exec_line}
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
X-GNOME-Autostart-Delay=10
"""

APP_AUTOSTART_BODY = """\
[Desktop Entry]
# The desktop app in the tray at login (it starts the agent if none runs).
Type=Application
Name=s3vault
GenericName=Encrypted S3 sync
Comment=Keep folders client-side encrypted in S3; browse, upload and restore
Exec={exec_line}
Icon=s3vault
Terminal=false
StartupWMClass=s3vault
X-GNOME-Autostart-enabled=true
X-GNOME-Autostart-Delay=5
"""

# Words that need no quoting in either syntax: no space, quote, backslash, `%` or `$`.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:,+=@-]+")


def _check_word(word: str) -> None:
    if not word or any(ord(char) < 0x20 or char == "\x7f" for char in word):
        raise UsageError(
            f"cannot write {word!r} into a unit or desktop entry: empty or a control character",
            hint="Install s3vault (and the config) under a path without such characters.",
        )


def systemd_word(word: str) -> str:
    """One argument of an ExecStart= line, as systemd reads it back exactly.

    systemd expands `%` specifiers in the whole line and `$VAR` in the arguments, and
    splits on spaces, honouring double quotes with C escapes.
    """
    _check_word(word)
    if _PLAIN_WORD.fullmatch(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def systemd_executable(path: str) -> str:
    """The program of an ExecStart= line: no `$` expansion there, and systemd refuses a
    path with a quote or a backslash in it ("contains special characters")."""
    _check_word(path)
    if any(char in path for char in "\\\"'"):
        raise UsageError(
            f"systemd cannot run a program whose path holds a quote or a backslash: {path}",
            hint="Install s3vault under another path (installer/install.sh --venv DIR).",
        )
    if _PLAIN_WORD.fullmatch(path):
        return path
    return '"' + path.replace("%", "%%") + '"'


def desktop_word(word: str) -> str:
    """One argument of a desktop entry's Exec= key (Desktop Entry Specification).

    An argument with a reserved character is double-quoted with `"`, `` ` ``, `$` and
    `\\` escaped by a backslash; the key's value then escapes every backslash once more
    (a string value), and a literal `%` is `%%` (field codes).
    """
    _check_word(word)
    if _PLAIN_WORD.fullmatch(word):
        return word
    quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", word) + '"'
    return quoted.replace("\\", "\\\\").replace("%", "%%")


def render_unit(command: Sequence[str], *, header: str = MANAGED_HEADER) -> str:
    """The unit, its ExecStart= running `command` (the agent, in the foreground)."""
    program, *arguments = command
    exec_start = " ".join([systemd_executable(program), *map(systemd_word, arguments)])
    return header + "\n" + UNIT_BODY.replace("{exec_start}", exec_start)


def render_agent_autostart(command: Sequence[str]) -> str:
    """The agent's XDG autostart entry, for sessions without a systemd user manager."""
    exec_line = " ".join(desktop_word(word) for word in command)
    return f"{MARKER}\n" + AGENT_AUTOSTART_BODY.replace("{exec_line}", exec_line)


def render_app_autostart(command: Sequence[str]) -> str:
    """The desktop app's XDG autostart entry (`command` starts it minimized)."""
    exec_line = " ".join(desktop_word(word) for word in command)
    return f"{MARKER}\n" + APP_AUTOSTART_BODY.replace("{exec_line}", exec_line)


def is_ours(text: str) -> bool:
    """Whether a file's text was written by `s3vault service install`."""
    return text.startswith(MARKER + "\n")
