"""The `s3vault` command: objects (put, get, inspect, ls, rm, rotate), sync and restore,
the agent and its controls (status, pause, resume, sync-now, stop), keys, config, demo.

Each group of commands lives in its own module (`object_commands`, `sync_commands`,
`agent_commands`, `key_commands`, `rotate_command`, `config_commands`, `demo_command`).

Errors are translated once, here: an `S3VaultError` prints its message and hint on
stderr and exits with its documented code (see s3vault.errors); nothing expected
ends in a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from s3vault import __version__
from s3vault.cli.context import AppContext
from s3vault.cli.output import emit_json, err_console, error_object, report_problem, styled
from s3vault.errors import ExitCode, S3VaultError
from s3vault.process import log_to, no_core_dumps

EPILOG = """\b
Examples:
  s3vault key generate laptop-2026
  s3vault put report.pdf s3://my-vault/docs/report.pdf
  s3vault ls s3://my-vault/docs/ --recursive
  s3vault inspect s3://my-vault/docs/report.pdf --json
  s3vault get s3://my-vault/docs/report.pdf ./report.pdf
  s3vault rotate s3://my-vault/ --recursive --to-key laptop-2027
  s3vault sync ~/Documents s3://my-vault/laptop/documents
  s3vault agent && s3vault status
  s3vault gui

Exit codes: 0 ok, 1 unexpected error, 2 usage or config error, 3 not found,
4 integrity failure, 5 key missing, 6 service unreachable, 7 access denied,
8 conflict, 9 refused by policy, 130 interrupted.
"""


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs.

    `s3vault key list` then never imports boto3, and every run starts faster. The
    command list of ``--help`` comes from the summaries in `COMMANDS` (a test checks
    them against the commands' own), so that ``s3vault --help`` imports none of them.
    """

    def __init__(self, *args: Any, lazy: dict[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, _, attribute = self._lazy[cmd_name].target.partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own list of commands, from the summaries instead of the commands."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self._lazy:
                # A stand-in command: click shortens its help as it would the real one's.
                stand_in = click.Command(name, help=self._lazy[name].summary)
                summary = stand_in.get_short_help_str(limit)
            else:
                command = super().get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                summary = command.get_short_help_str(limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@dataclass(frozen=True)
class LazyCommand:
    target: str
    """``module:attribute`` of the click command."""
    summary: str
    """Its one-line help, as ``--help`` lists it (the command's own, checked by a test)."""


COMMANDS = {
    "put": LazyCommand(
        "s3vault.cli.object_commands:put", "Encrypt LOCAL and upload it to s3://BUCKET/KEY."
    ),
    "get": LazyCommand(
        "s3vault.cli.object_commands:get",
        "Download s3://BUCKET/KEY and decrypt it to LOCAL ('-' for stdout).",
    ),
    "inspect": LazyCommand(
        "s3vault.cli.object_commands:inspect",
        "Show the envelope of s3://BUCKET/KEY, every field decoded, and its master key.",
    ),
    "ls": LazyCommand(
        "s3vault.cli.object_commands:ls",
        "List objects under s3://BUCKET[/PREFIX] with their format and master key.",
    ),
    "rm": LazyCommand(
        "s3vault.cli.object_commands:rm",
        "Delete s3://BUCKET/KEY and its instruction file (KEY+SUFFIX), if any.",
    ),
    "sync": LazyCommand(
        "s3vault.cli.sync_commands:sync",
        "Encrypt LOCAL_DIR into s3://BUCKET/PREFIX, once: upload what changed.",
    ),
    "restore": LazyCommand(
        "s3vault.cli.sync_commands:restore",
        "Decrypt every object under s3://BUCKET/PREFIX into LOCAL_DIR.",
    ),
    "rotate": LazyCommand(
        "s3vault.cli.rotate_command:rotate",
        "Give the object s3://BUCKET/KEY, or with --recursive every object under "
        "s3://BUCKET/PREFIX, a new master key without moving its data.",
    ),
    "key": LazyCommand(
        "s3vault.cli.key_commands:key_group",
        "Manage master keys: AES and RSA keys in the OS keyring (or the keystore file), "
        "references to AWS KMS keys.",
    ),
    "config": LazyCommand(
        "s3vault.cli.config_commands:config_group",
        "Inspect and validate the declarative config file.",
    ),
    "demo": LazyCommand(
        "s3vault.cli.demo_command:demo",
        "Run s3vault end to end on an embedded local S3 endpoint.",
    ),
    "gui": LazyCommand(
        "s3vault.cli.gui_command:gui",
        "Open the desktop app: folders, bucket browser, envelopes, keys, tray icon.",
    ),
    "agent": LazyCommand(
        "s3vault.cli.agent_commands:agent",
        "Run the sync agent: keep every configured folder encrypted in S3.",
    ),
    "status": LazyCommand(
        "s3vault.cli.agent_commands:status", "Show what the sync agent is doing."
    ),
    "pause": LazyCommand(
        "s3vault.cli.agent_commands:pause",
        "Pause syncing (changes are remembered and synced on resume).",
    ),
    "resume": LazyCommand(
        "s3vault.cli.agent_commands:resume",
        "Resume syncing after `pause` (of every folder, or with --folder of one).",
    ),
    "sync-now": LazyCommand(
        "s3vault.cli.agent_commands:sync_now",
        "Sync every folder (or one) in full now (with the S3 listing), without waiting.",
    ),
    "stop": LazyCommand(
        "s3vault.cli.agent_commands:stop",
        "Stop the agent (after the reconcile in progress), and wait until it has.",
    ),
    "service": LazyCommand(
        "s3vault.cli.service_command:service",
        "Run the sync agent as a systemd user service, the app at login.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="S3VAULT_CONFIG",
    help="Config file (YAML or JSON). Default: ~/.config/s3vault/config.yaml if present.",
)
@click.version_option(__version__, prog_name="s3vault")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Client-side encrypted S3 storage in the AWS S3 Encryption Client format.

    Every object gets its own data key, wrapped by a master key kept in your OS
    keyring (AES or RSA) or in AWS KMS. Objects open with the official AWS S3
    Encryption Clients and vice versa.
    """
    ctx.obj = AppContext(config_path=config_path)


def report_error(exc: S3VaultError, *, as_json: bool = False) -> None:
    if as_json:
        emit_json({"error": error_object(exc)})
    report_problem(exc)


def _report_usage(exc: click.ClickException) -> None:
    """click's own errors (a missing argument, a bad option value), printed as ours.

    Its message may quote what the user typed; that goes through the plain console.
    """
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        err_console.print(exc.ctx.get_usage())
        hint = f"Try '{exc.ctx.command_path} {exc.ctx.help_option_names[0]}' for help."
        err_console.print(hint)
    err_console.print(styled(("error:", "bold red"), " ", exc.format_message()))


def _report_os_error(exc: OSError) -> None:
    """A local file or folder that could not be read or written, as a message.

    The commands translate the failures they expect; this is the net under them, so
    that an unusual one (a full disk, a read-only mount) is still a message, not a
    traceback.
    """
    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    err_console.print(styled(("error:", "bold red"), " ", f"cannot use{where}: {reason}"))


def _start_process() -> None:
    """No core dumps (keys are in memory); s3vault's log on stderr if asked for."""
    no_core_dumps()
    if os.environ.get("S3VAULT_LOG_LEVEL"):
        log_to(logging.StreamHandler(sys.stderr))
        logging.getLogger(__name__).debug("s3vault %s, pid %d", __version__, os.getpid())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `s3vault` script and of `python -m s3vault`."""
    args = sys.argv[1:] if argv is None else argv
    try:
        _start_process()
        result: Any = cli.main(args=args, prog_name="s3vault", standalone_mode=False)
    except S3VaultError as exc:
        report_error(exc, as_json="--json" in args)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as exc:
        _report_usage(exc)
        sys.exit(int(ExitCode.USAGE))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        # `s3vault get ... - | head`: the reader went away; not an error of ours.
        sys.stderr.close()
        sys.exit(0)
    except OSError as exc:
        _report_os_error(exc)
        sys.exit(int(ExitCode.USAGE))
    sys.exit(result if isinstance(result, int) else 0)
