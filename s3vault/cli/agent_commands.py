"""`s3vault agent` (run the sync agent) and the commands that talk to it over its
control socket: `status`, `pause`, `resume`, `sync-now`, `stop` (docs/agent.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from s3vault.cli.context import AppContext
from s3vault.cli.output import (
    console,
    emit_json,
    emit_json_line,
    err_console,
    error_object,
    human_size,
    plural,
    report_problem,
)
from s3vault.errors import ConfigError, ExitCode, UnreachableError, UsageError
from s3vault.private import open_private_append

pass_app = click.make_pass_decorator(AppContext)

START_TIMEOUT = 30.0  # seconds a detached agent may take to open its socket
STOP_TIMEOUT = 120.0  # a stop waits for the reconcile in progress to end

AGENT_EPILOG = """\b
Examples:
  s3vault agent                 # start in the background, log in ~/.local/state/s3vault/
  s3vault agent --foreground    # run here, log to stderr (systemd, autostart, debugging)
  s3vault service install       # as a systemd user service (or autostart), at every login

\b
One agent per user syncs every folder of the config's `folders:` section. It does a
full sync (with the S3 listing) at start, then uploads changes as files are written,
and rescans every `agent.rescan_interval`. systemd and XDG autostart run it with
--foreground (it then reports READY/STATUS/WATCHDOG to systemd).

\b
Exit codes: 0 stopped cleanly, 2 bad config (e.g. no folders), 8 an agent is already
running, 9 refused (e.g. inotify watch limit, unsafe runtime dir).
"""

STATUS_EPILOG = """\b
Examples:
  s3vault status
  s3vault status --json | jq .state
  s3vault status --json --flat     # {"state": "idle", "running": "true", ...}
  s3vault status --watch

\b
States: idle, syncing, paused, offline (S3 unreachable; retried with backoff), error.
With --json, an agent that is not running is the object {"state": "not-running",
"error": {...}} (exit 6); --flat prints one object of strings and exits 0 for it too
(Terraform's `external` data source; docs/json.md).
Exit codes: 0 the agent answered, 6 the agent is not running (or did not answer).
"""


@click.command(epilog=AGENT_EPILOG)
@click.option(
    "--foreground", is_flag=True, help="Run in this process (systemd, autostart, debugging)."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the started agent's pid and log as JSON (not with --foreground).",
)
@click.option("--detached-child", is_flag=True, hidden=True)
@pass_app
def agent(app: AppContext, foreground: bool, as_json: bool, detached_child: bool) -> int:
    """Run the sync agent: keep every configured folder encrypted in S3."""
    if foreground and as_json:
        raise UsageError(
            "--json cannot be combined with --foreground (the agent runs here; it logs "
            "to stderr)",
            hint="Use `s3vault status --json` to ask a running agent.",
        )
    config = app.config
    if not config.folders:
        raise ConfigError(
            "no folders to sync: the config has no `folders:` section",
            hint="Add one (path, bucket, key); see docs/agent.md.",
        )
    from s3vault.agent.daemon import run_agent

    if foreground or detached_child:
        return run_agent(config, foreground=not detached_child)
    return _start_detached(app, as_json=as_json)


def _start_detached(app: AppContext, *, as_json: bool = False) -> int:
    """Start `s3vault agent --detached-child` in its own session; wait for its socket.

    Started means: the socket answers with the new process's pid. An agent that is
    running already is reported (exit 8) and no second one is started; a child that
    stops at once is reported with what it wrote to the log.
    """
    from s3vault.agent import paths
    from s3vault.agent.client import AgentClient
    from s3vault.agent.daemon import LOG_NAME
    from s3vault.agent.lock import AgentLock

    with AgentLock(paths.lock_path()):
        pass  # AgentRunningError (exit 8) if an agent holds it
    log_path = paths.state_dir() / LOG_NAME
    command = [sys.executable, "-m", "s3vault"]
    if app.config_path is not None:
        command += ["--config", os.fspath(app.config_path.absolute())]
    command += ["agent", "--detached-child"]
    with open_private_append(log_path) as log:
        offset = log.tell()
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not killed with this terminal
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            _show_log_since(log_path, offset)
            err_console.print(f"the agent stopped at once (exit code {code}); log: {log_path}")
            return code
        try:
            with AgentClient(timeout=5) as client:
                answered = client.status().get("pid")
        except UnreachableError:
            answered = None
        if answered == child.pid:
            if as_json:
                emit_json({"started": True, "pid": child.pid, "log": str(log_path)})
            else:
                console.print(f"agent started (pid {child.pid}); log: {log_path}")
            return 0
        # Not up yet, or another agent won a race to start: ours then stops (exit 8).
        time.sleep(0.2)
    err_console.print(f"the agent (pid {child.pid}) did not open its socket; see {log_path}")
    return int(ExitCode.UNREACHABLE)


def _show_log_since(log_path: Path, offset: int) -> None:
    """Print what the child wrote to the log (its error and hint), on stderr."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return
    for line in text.splitlines()[-20:]:
        err_console.print(line)


@click.command(epilog=STATUS_EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--flat",
    is_flag=True,
    help="Print one flat JSON object of strings, exit 0 also when the agent is not "
    "running (Terraform's `external` data source, shell scripts).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Follow the status: one line per change (with --json: one JSON document per "
    "line) until Ctrl-C or the agent stops.",
)
def status(as_json: bool, flat: bool, watch: bool) -> int:
    """Show what the sync agent is doing."""
    from s3vault.agent.client import AgentClient

    if flat and watch:
        raise UsageError("--flat cannot be combined with --watch")
    if watch:
        with AgentClient() as client:
            for update in client.subscribe():
                if as_json:
                    emit_json_line(update)
                else:
                    console.print(_one_line(update))
        return 0
    if not (as_json or flat):
        with AgentClient() as client:
            snapshot = client.status()
        _print_status(snapshot)
        return 0
    # One JSON object on stdout whatever happens, for monitoring and Terraform.
    try:
        with AgentClient() as client:
            snapshot = client.status()
    except UnreachableError as exc:
        report_problem(exc)
        if flat:
            emit_json(flat_status(None, exc))
            return 0
        emit_json({"state": not_running_state(exc), "error": error_object(exc)})
        return int(exc.exit_code)
    emit_json(flat_status(snapshot, None) if flat else snapshot)
    return 0


def not_running_state(exc: UnreachableError) -> str:
    """The state of an agent that did not answer: "not-running" (no socket, or nobody
    listens) or "not-responding" (it timed out)."""
    from s3vault.agent.client import AgentNotRunningError

    return "not-running" if isinstance(exc, AgentNotRunningError) else "not-responding"


def flat_status(snapshot: dict[str, Any] | None, exc: UnreachableError | None) -> dict[str, str]:
    """The status as one flat object of strings (Terraform's `external` data source
    accepts nothing else): the same keys whether the agent runs or not; a value that
    is unknown (the agent is not running) is ""."""
    if snapshot is None:
        assert exc is not None
        unknown = dict.fromkeys(FLAT_FIELDS, "")
        return {
            **unknown,
            "state": not_running_state(exc),
            "running": "false",
            "message": exc.message,
        }
    attention = snapshot["attention"]
    folders = snapshot["folders"]
    syncs = [f["last_sync"] for f in folders if f["last_sync"] is not None]
    values: dict[str, object] = {
        "state": snapshot["state"],
        "running": "true",
        "message": "",
        "pid": snapshot["pid"],
        "protocol": snapshot["protocol"],
        "paused": "true" if snapshot["paused"] else "false",
        "attention": attention["level"],
        "file_errors": attention["errors"],
        "conflicts": attention["conflicts"],
        "refused": attention["refused"],
        "folders": len(folders),
        "folders_failed": attention["folders_failed"],
        "folders_offline": attention["folders_offline"],
        "last_sync": f"{max(syncs):.0f}" if syncs else "",
        "oldest_sync": f"{min(syncs):.0f}" if len(syncs) == len(folders) and syncs else "",
        "started_at": f"{snapshot['started_at']:.0f}",
    }
    return {name: str(values[name]) for name in FLAT_FIELDS}


FLAT_FIELDS = (
    "state",
    "running",
    "message",
    "pid",
    "protocol",
    "paused",
    "attention",
    "file_errors",
    "conflicts",
    "refused",
    "folders",
    "folders_failed",
    "folders_offline",
    "last_sync",
    "oldest_sync",
    "started_at",
)


def _print_status(s: dict[str, Any]) -> None:
    console.print(f"agent: {s['state']}")
    p = s.get("progress")
    if p:
        console.print(
            f"  syncing {p['folder']}: {p['files_done']}/{p['files_total']} files, "
            f"{human_size(p['bytes_done'])}/{human_size(p['bytes_total'])}, "
            f"{human_size(p['rate'])}/s"
        )
        if p.get("current"):
            console.print(f"    {p['current']}")
    for f in s["folders"]:
        line = f"  {f['path']} -> {f['folder']}: {f['state']}"
        if f.get("paused") and f["state"] != "paused":
            line += " (paused after this run)"
        if f.get("conflicts"):
            line += f", {plural(f['conflicts'], 'conflict')}"
        if f.get("last_sync"):
            line += f", last sync {_time(f['last_sync'])}"
        console.print(line)
        if f.get("message"):
            console.print(f"    {f['message']}")
    conflicts = s.get("conflicts") or []
    problems = [e for e in s["errors"] if (e["folder"], e["path"]) not in _keys(conflicts)]
    if problems:
        console.print(f"file errors ({len(problems)}):")
        for e in problems[-10:]:
            console.print(f"  {e['path']}: {e['message']}")
    if conflicts:
        console.print(f"conflicts ({len(conflicts)}):")
        for c in conflicts[-10:]:
            console.print(f"  {c['path']}: {c['reason']}")
    if s["recent"]:
        console.print("recent activity:")
        for r in s["recent"][-10:]:
            console.print(f"  {_time(r['time'])} {r['event']} {r.get('folder') or ''}".rstrip())


def _one_line(s: dict[str, Any]) -> str:
    line = f"{datetime.now():%H:%M:%S} {s['state']}"
    p = s.get("progress")
    if p:
        line += (
            f" {p['files_done']}/{p['files_total']} files, "
            f"{human_size(p['bytes_done'])}/{human_size(p['bytes_total'])}, "
            f"{human_size(p['rate'])}/s"
        )
    attention = s.get("attention")
    if attention is None:  # an agent of protocol 1
        if s["errors"]:
            line += f", {len(s['errors'])} file errors"
        return line
    if attention["errors"]:
        line += f", {attention['errors']} file errors"
    if attention["conflicts"]:
        line += f", {plural(attention['conflicts'], 'conflict')}"
    if attention["refused"]:
        line += f", {attention['refused']} refused"
    return line


def _keys(entries: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["folder"], e["path"]) for e in entries}


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _control(
    verb: str, done: str, as_json: bool, folder: str | None = None, *, quiet: bool = False
) -> dict[str, Any]:
    """Send ``verb``; print the agent's reply (as JSON, or ``done``) unless ``quiet``."""
    from s3vault.agent.client import AgentClient

    args: dict[str, str] = {}
    if folder is not None:
        # A local path travels absolute: the agent's working directory is not ours.
        args["folder"] = folder if folder.startswith("s3://") else os.path.abspath(folder)
    with AgentClient() as client:
        reply = client.request(verb, **args)
    if quiet:
        return reply
    if as_json:
        emit_json(reply)
    else:
        console.print(f"{done}: {reply['folder']}" if "folder" in reply else done)
    return reply


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the agent's reply as JSON.")
_FOLDER = click.option(
    "--folder",
    metavar="PATH_OR_ID",
    help="Only this folder: its local path (~/Documents) or its id (s3://BUCKET/PREFIX/, "
    "as `s3vault status` shows it).",
)


@click.command(
    epilog="""\b
Examples:
  s3vault pause
  s3vault pause --json          # the agent's reply: {"ok": true, "state": "paused"}
  s3vault pause --folder ~/Videos                # only this folder
  s3vault pause --folder s3://my-vault/videos/   # the same, by its id"""
)
@_JSON
@_FOLDER
def pause(as_json: bool, folder: str | None) -> None:
    """Pause syncing (changes are remembered and synced on resume)."""
    _control("pause", "paused", as_json, folder)


@click.command(
    epilog="""\b
Examples:
  s3vault resume
  s3vault pause && make-backup.sh; s3vault resume
  s3vault resume --folder ~/Videos   # a folder paused on its own (then rescanned in full)"""
)
@_JSON
@_FOLDER
def resume(as_json: bool, folder: str | None) -> None:
    """Resume syncing after `pause` (of every folder, or with --folder of one)."""
    _control("resume", "resumed", as_json, folder)


@click.command(
    "sync-now",
    epilog="""\b
Examples:
  s3vault sync-now
  s3vault sync-now && s3vault status --watch
  s3vault sync-now --folder ~/Documents""",
)
@_JSON
@_FOLDER
def sync_now(as_json: bool, folder: str | None) -> None:
    """Sync every folder (or one) in full now (with the S3 listing), without waiting."""
    _control("sync-now", "full sync requested", as_json, folder)


@click.command(
    epilog="""\b
Examples:
  s3vault stop
  s3vault stop --timeout 600    # wait longer for a large upload to finish"""
)
@_JSON
@click.option(
    "--timeout",
    type=float,
    default=STOP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the agent to exit.",
)
def stop(as_json: bool, timeout: float) -> None:
    """Stop the agent (after the reconcile in progress), and wait until it has."""
    from s3vault.agent.client import wait_until_stopped

    reply = _control("stop", "stopping", as_json=False, quiet=as_json)
    wait_until_stopped(timeout=timeout)
    if as_json:
        emit_json({**reply, "stopped": True})
    else:
        console.print("stopped")
