"""`s3vault service install | uninstall | status`: run the agent as a systemd user
service and the desktop app at login (s3vault.agent.service_install; docs/agent.md)."""

from __future__ import annotations

from typing import Any

import click

from s3vault.agent import service_install as api
from s3vault.cli.context import AppContext
from s3vault.cli.output import console, emit_json, err_console, print_lines

pass_app = click.make_pass_decorator(AppContext)

SERVICE_EPILOG = """\b
Examples:
  s3vault service install                 # unit + app autostart, enabled and started
  s3vault --config /etc/s3vault/laptop.yaml service install --json
  s3vault service install --no-start      # enable only (e.g. before the config exists)
  s3vault service status --json | jq .active
  s3vault service uninstall
"""

INSTALL_EPILOG = """\b
Examples:
  s3vault service install
  s3vault service install --no-app --json      # a server: no desktop app at login
  s3vault --config ~/vault.yaml service install

\b
Writes ~/.config/systemd/user/s3vault-agent.service (XDG_CONFIG_HOME respected) running
this install's s3vault (and --config, if given), then `systemctl --user daemon-reload`,
`enable` and `start`; and ~/.config/autostart/s3vault.desktop when the desktop app
is installed. Idempotent: run again, nothing changes unless something differs (a changed
unit restarts the agent). Files not written by s3vault are never replaced.
Without a systemd user manager (a container, ssh without a session) the files are still
written, with the agent's own autostart entry, and it prints what to do instead.

\b
Exit codes: 0 installed (also without systemd: see "systemd" in --json), 8 a file at one
of the paths was not written by s3vault (nothing changed), 6 systemd refused a step.
"""


@click.group(epilog=SERVICE_EPILOG)
def service() -> None:
    """Run the sync agent as a systemd user service, the app at login."""


@service.command(epilog=INSTALL_EPILOG)
@click.option("--no-start", is_flag=True, help="Enable the unit, do not start (or restart) it.")
@click.option("--no-app", is_flag=True, help="No autostart entry for the desktop app.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def install(app: AppContext, no_start: bool, no_app: bool, as_json: bool) -> None:
    """Install, enable and start the agent's user unit; the app's autostart entry."""
    config_path = app.config_path
    commands = api.Commands.of_this_install(config_path)
    result = api.install(
        api.ServicePaths.for_user(),
        commands,
        api.UserSystemd(),
        start=not no_start,
        app=not no_app,
    )
    if config_path is not None and not config_path.exists():
        result.warnings.append(f"the config {config_path} does not exist (yet)")
    if as_json:
        emit_json(result.to_json())
    else:
        for item in result.files:
            if item.action in ("written", "removed"):
                console.print(f"{item.action}: {item.path}")
        if result.systemd.available:
            state = "started" if result.started else "restarted" if result.restarted else None
            console.print(
                f"s3vault-agent: enabled{', ' + state if state else ''}"
                f"{', running' if result.active else ', not running'}"
            )
        else:
            err_console.print(f"warning: {result.systemd.unavailable_reason}")
            print_lines("\n".join(result.instructions), to=err_console)
        if not result.changed:
            console.print("nothing to change: already installed")
    for warning in result.warnings:
        err_console.print(f"warning: {warning}")


@service.command(
    epilog="""\b
Examples:
  s3vault service uninstall
  s3vault service uninstall --json

\b
Stops and disables the unit, removes the files `service install` wrote. Files not
written by s3vault (and `systemctl --user edit` drop-ins) are left alone.
Exit codes: 0 done, 6 systemd refused to stop or disable the unit."""
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def uninstall(as_json: bool) -> None:
    """Stop and remove the agent's user unit and the autostart entries."""
    result = api.uninstall(api.ServicePaths.for_user(), api.UserSystemd())
    if as_json:
        emit_json(result.to_json())
    else:
        if result.stopped:
            console.print("s3vault-agent: stopped and disabled")
        for item in result.files:
            if item.action == "removed":
                console.print(f"removed: {item.path}")
        if not result.changed:
            console.print("nothing to remove")
    for warning in result.warnings:
        err_console.print(f"warning: {warning}")


@service.command(
    epilog="""\b
Examples:
  s3vault service status
  s3vault service status --json | jq '.enabled, .active, .agent.state'

\b
"enabled"/"active" come from systemctl --user (null without a user manager); "agent"
is the running agent's own answer (null when none answers), however it was started.
Exit code: 0 (it reports; read the fields)."""
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Show what is installed, whether systemd runs it, and the agent's answer."""
    report = api.status(api.ServicePaths.for_user(), api.UserSystemd())
    report["agent"] = _agent_answer()
    if as_json:
        emit_json(report)
        return
    installed = "installed" if report["installed"] else "not installed"
    console.print(f"unit: {report['unit']} ({installed})")
    if report["systemd"] == "available":
        enabled = "enabled" if report["enabled"] else "disabled"
        console.print(f"systemd: {enabled}, {'active' if report['active'] else 'inactive'}")
    else:
        console.print(f"systemd: unavailable ({report['systemd_reason']})")
    for role, entry in report["autostart"].items():
        console.print(f"autostart ({role}): {entry['path'] if entry['installed'] else 'none'}")
    agent = report["agent"]
    console.print(
        f"agent: running (pid {agent['pid']}, {agent['state']})" if agent else "agent: not running"
    )


def _agent_answer() -> dict[str, Any] | None:
    """{pid, state} from the agent's socket, or None when no agent answers."""
    from s3vault.agent.client import AgentClient
    from s3vault.errors import S3VaultError

    try:
        with AgentClient(timeout=5) as client:
            snapshot = client.status()
    except S3VaultError:
        return None
    return {"pid": snapshot.get("pid"), "state": snapshot.get("state")}

