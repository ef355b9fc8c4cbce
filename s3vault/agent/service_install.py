"""`s3vault service install | uninstall | status`: the agent as a systemd user service,
the desktop app in XDG autostart (docs/agent.md, "Run it as a service").

Install is a wanted state, applied idempotently: each file is written only when its
text differs (atomically, 0644), systemd is told only what changed (daemon-reload for a
new unit text, enable when not enabled, start when not running, restart when the unit
changed under a running agent). Without a reachable systemd user manager the files are
still written, plus the agent's own autostart entry, and the result says what to do
instead. Files are ours when they start with `units.MARKER`: install never overwrites
another file, uninstall never removes one.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3vault.agent import units
from s3vault.errors import ConflictError, LocalFileError, UnreachableError, UsageError

SYSTEMCTL_TIMEOUT = 150.0  # a start waits for READY=1; a stop for the reconcile in progress
# `systemctl --user is-system-running` states of a manager that answers.
_MANAGER_UP = {"initializing", "starting", "running", "degraded", "maintenance", "stopping"}


class SystemdError(UnreachableError):
    """systemd reached, but it did not do what was asked (enable, start, stop)."""

    title = "systemd"


@dataclass(frozen=True)
class ServicePaths:
    """Where install writes, under the user's XDG config dir."""

    unit: Path
    agent_autostart: Path
    app_autostart: Path

    @classmethod
    def for_user(cls, environ: Mapping[str, str] = os.environ) -> ServicePaths:
        configured = environ.get("XDG_CONFIG_HOME", "")
        # The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
        config = Path(configured) if os.path.isabs(configured) else Path.home() / ".config"
        return cls(
            unit=config / "systemd" / "user" / units.UNIT_NAME,
            agent_autostart=config / "autostart" / units.AGENT_AUTOSTART_NAME,
            app_autostart=config / "autostart" / units.APP_AUTOSTART_NAME,
        )

    @property
    def wants_link(self) -> Path:
        """The link `systemctl enable` makes (WantedBy=default.target)."""
        return self.unit.parent / "default.target.wants" / units.UNIT_NAME


@dataclass(frozen=True)
class Commands:
    """The install's real commands: the agent in the foreground, the app minimized
    (None when the app is not installed)."""

    agent: list[str]
    app: list[str] | None

    @classmethod
    def of_this_install(
        cls, config_path: Path | None, executable: str = sys.executable
    ) -> Commands:
        # The interpreter's path as is, not resolved: a venv's python is a link out of
        # the venv, and only the link finds the venv's packages.
        python = Path(executable).absolute()
        config = ["--config", os.fspath(config_path.absolute())] if config_path else []
        script = python.parent / "s3vault"
        if _is_executable(script):
            s3vault = [os.fspath(script)]
        else:  # a checkout run as `python -m s3vault`, or a script-less install
            s3vault = [os.fspath(python), "-m", "s3vault"]
        app: list[str] | None = None
        if importlib.util.find_spec("PySide6") is not None:
            gui_script = python.parent / "s3vault-gui"
            if _is_executable(gui_script):
                app = [os.fspath(gui_script), *config, "--minimized"]
            else:
                app = [*s3vault, *config, "gui", "--minimized"]
        return cls(agent=[*s3vault, *config, "agent", "--foreground"], app=app)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


class UserSystemd:
    """`systemctl --user`, or the reason it cannot reach a user manager."""

    def __init__(self, systemctl: str | None = None) -> None:
        self.systemctl = systemctl or shutil.which("systemctl")
        self.unavailable_reason = self._probe()

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    def to_json(self) -> dict[str, str | None]:
        """The `systemd` and `systemd_reason` fields of every `service` command's JSON."""
        return {
            "systemd": "available" if self.available else "unavailable",
            "systemd_reason": self.unavailable_reason,
        }

    def _probe(self) -> str | None:
        if self.systemctl is None:
            return "systemctl not found (this system does not run systemd)"
        done = self._run("is-system-running")
        if done.stdout.strip() in _MANAGER_UP:
            return None
        said = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}")
        return f"systemctl --user cannot reach a user manager: {said.splitlines()[-1]}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.systemctl is not None
        try:
            return subprocess.run(
                [self.systemctl, "--user", *args],
                capture_output=True,
                text=True,
                timeout=SYSTEMCTL_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(exc.args, 1, "", str(exc))

    def query(self, verb: str) -> str:
        """`is-enabled` / `is-active` of the unit: `enabled`, `active`, `inactive`..."""
        return self._run(verb, units.UNIT_NAME).stdout.strip() or "unknown"

    def do(self, *args: str) -> None:
        done = self._run(*args)
        if done.returncode != 0:
            said = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
            raise SystemdError(
                f"systemctl --user {' '.join(args)} failed: {said}",
                hint="The agent's log: journalctl --user -u s3vault-agent -n 50. "
                "The files are in place; run the command again once it is fixed.",
            )


@dataclass
class FileResult:
    path: Path
    role: str  # unit | agent-autostart | app-autostart
    action: str  # written | unchanged | removed | absent | kept (another's file, left alone)

    def to_json(self) -> dict[str, str]:
        return {"path": os.fspath(self.path), "role": self.role, "action": self.action}


@dataclass
class InstallResult:
    systemd: UserSystemd
    files: list[FileResult]
    agent_command: list[str]
    enabled: bool | None = None
    active: bool | None = None
    started: bool = False
    restarted: bool = False
    changed_service: bool = False
    instructions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.changed_service or any(
            item.action in ("written", "removed") for item in self.files
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            **self.systemd.to_json(),
            "files": [item.to_json() for item in self.files],
            "exec_start": self.agent_command,
            "enabled": self.enabled,
            "active": self.active,
            "started": self.started,
            "restarted": self.restarted,
            "instructions": self.instructions,
            "warnings": self.warnings,
        }


def install(
    paths: ServicePaths,
    commands: Commands,
    systemd: UserSystemd,
    *,
    start: bool = True,
    app: bool = True,
) -> InstallResult:
    """Make the wanted state hold; raises ConflictError (nothing written) when a file
    at one of the paths is not ours, SystemdError when systemd refuses a step."""
    wanted: list[tuple[Path, str, str | None]] = [
        (paths.unit, "unit", units.render_unit(commands.agent)),
        # The agent's own entry only where systemd cannot start it: both would start one.
        (
            paths.agent_autostart,
            "agent-autostart",
            None if systemd.available else units.render_agent_autostart(commands.agent),
        ),
        (
            paths.app_autostart,
            "app-autostart",
            units.render_app_autostart(commands.app) if app and commands.app else None,
        ),
    ]
    for path, _, text in wanted:
        if text is not None and _exists_not_ours(path):
            raise ConflictError(
                f"{path} exists and was not written by s3vault; not replaced",
                hint=f"Move it away (mv {shlex.quote(os.fspath(path))} "
                f"{shlex.quote(os.fspath(path) + '.orig')}) and install again.",
            )
    result = InstallResult(systemd=systemd, files=[], agent_command=commands.agent)
    for path, role, text in wanted:
        action = _remove_if_ours(path) if text is None else _write_if_different(path, text)
        result.files.append(FileResult(path, role, action))
        if action == "kept":
            result.warnings.append(f"{path} was not written by s3vault: left as it is")
    if app and commands.app is None:
        result.warnings.append("the desktop app is not installed here: no autostart entry for it")
    unit_written = result.files[0].action == "written"
    if systemd.available:
        _apply_to_systemd(result, systemd, unit_written=unit_written, start=start)
    else:
        result.instructions = _without_systemd(paths, commands)
    return result


def _apply_to_systemd(
    result: InstallResult, systemd: UserSystemd, *, unit_written: bool, start: bool
) -> None:
    if unit_written:
        systemd.do("daemon-reload")
    if systemd.query("is-enabled") != "enabled":
        systemd.do("enable", units.UNIT_NAME)
        result.changed_service = True
    result.enabled = True
    running = systemd.query("is-active") in ("active", "activating", "reloading")
    if start and not running:
        systemd.do("start", units.UNIT_NAME)  # Type=notify: returns after READY=1
        result.started = result.changed_service = True
    elif start and unit_written:
        systemd.do("restart", units.UNIT_NAME)
        result.restarted = result.changed_service = True
    elif unit_written and running:
        result.warnings.append(
            "the running agent still runs the old unit (--no-start): "
            "systemctl --user restart s3vault-agent"
        )
    result.active = systemd.query("is-active") == "active"


def _without_systemd(paths: ServicePaths, commands: Commands) -> list[str]:
    """What to do instead, when no user manager is reachable."""
    detached = [word for word in commands.agent if word != "--foreground"]
    user = os.environ.get("USER") or "$USER"
    return [
        f"The unit {paths.unit} is written but not enabled: no systemd user manager "
        "answers here.",
        f"On a desktop, the autostart entry {paths.agent_autostart} starts the agent at "
        "the next login.",
        "Where systemd runs but this shell has no user session (ssh, su, sudo -u): log in "
        f"once, or run `loginctl enable-linger {user}` as root, then run "
        "`s3vault service install` again in a session with XDG_RUNTIME_DIR set; it enables "
        "the unit and removes the agent's autostart entry.",
        "Without systemd or a desktop (a container, a server): start the agent at boot "
        f"from cron (`crontab -e`): @reboot {shlex.join(detached)}",
    ]


def _exists_not_ours(path: Path) -> bool:
    text = _read(path)
    return text is not None and not units.is_ours(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""  # not text we wrote
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror}") from None


def _write_if_different(path: Path, text: str) -> str:
    if _read(path) == text:
        return "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a reader (systemd, the desktop) sees the old file or the new one.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return "written"


def _remove_if_ours(path: Path) -> str:
    text = _read(path)
    if text is None:
        return "absent"
    if not units.is_ours(text):
        return "kept"
    path.unlink()
    return "removed"


def set_app_autostart(enabled: bool, config_path: Path | None = None) -> Path:
    """The desktop app's autostart entry on or off (the app's "Start at login"): the
    entry `install` writes, so that the app starts once, whoever wrote it. The user
    asked, so an entry s3vault did not write is replaced or removed too. Its path."""
    path = ServicePaths.for_user().app_autostart
    app = Commands.of_this_install(config_path).app
    if not enabled:
        path.unlink(missing_ok=True)
    elif app is None:
        raise UsageError("the desktop app is not installed here (pip install 's3vault[gui]')")
    else:
        _write_if_different(path, units.render_app_autostart(app))
    return path


@dataclass
class UninstallResult:
    systemd: UserSystemd
    files: list[FileResult]
    stopped: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.stopped or any(item.action == "removed" for item in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            **self.systemd.to_json(),
            "files": [item.to_json() for item in self.files],
            "stopped": self.stopped,
            "warnings": self.warnings,
        }


def uninstall(paths: ServicePaths, systemd: UserSystemd) -> UninstallResult:
    """Stop and disable the unit, remove what install wrote; leave other files alone."""
    result = UninstallResult(systemd=systemd, files=[])
    unit_text = _read(paths.unit)
    unit_ours = unit_text is not None and units.is_ours(unit_text)
    if unit_ours and systemd.available:
        was_enabled = systemd.query("is-enabled") == "enabled"
        was_active = systemd.query("is-active") in ("active", "activating", "reloading")
        if was_enabled or was_active:
            systemd.do("disable", "--now", units.UNIT_NAME)  # waits for the agent's exit
            result.stopped = was_active
    if unit_ours:
        # The enable link, also when no manager answers now to `disable` it.
        link = paths.wants_link
        if link.is_symlink() and Path(os.readlink(link)).name == units.UNIT_NAME:
            link.unlink()
    for path, role in (
        (paths.unit, "unit"),
        (paths.agent_autostart, "agent-autostart"),
        (paths.app_autostart, "app-autostart"),
    ):
        action = _remove_if_ours(path)
        result.files.append(FileResult(path, role, action))
        if action == "kept":
            result.warnings.append(f"{path} was not written by s3vault: left as it is")
    if unit_ours and systemd.available:
        systemd.do("daemon-reload")
    return result


def status(paths: ServicePaths, systemd: UserSystemd) -> dict[str, Any]:
    """What is installed and what systemd says of it (the agent's answer: the caller)."""
    unit_text = _read(paths.unit)
    result: dict[str, Any] = {
        **systemd.to_json(),
        "unit": os.fspath(paths.unit),
        "installed": unit_text is not None,
        "managed": unit_text is not None and units.is_ours(unit_text),
        "enabled": None,
        "active": None,
        "autostart": {
            role: {
                "path": os.fspath(path),
                "installed": (text := _read(path)) is not None,
                "managed": text is not None and units.is_ours(text),
            }
            for role, path in (("agent", paths.agent_autostart), ("app", paths.app_autostart))
        },
    }
    if systemd.available:
        result["enabled"] = systemd.query("is-enabled") == "enabled"
        result["active"] = systemd.query("is-active") == "active"
    return result
