"""Output helpers shared by every command: JSON for machines, rich for people."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

# Human output goes to stdout; errors and progress to stderr so that
# `s3vault get s3://b/k - > file` and `--json | jq` stay clean.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout (sorted keys, stable for scripts)."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def emit_json_line(value: Any) -> None:
    """Print one compact JSON document per line (for streams such as `ls --json-lines`)."""
    click.echo(json.dumps(value, sort_keys=True, default=str))


def confirm_or_abort(question: str, *, yes: bool) -> None:
    """Ask before a destructive step; `--yes` answers for scripts.

    With no terminal on stdin and no `--yes`, refuse instead of hanging.
    """
    from s3vault.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{question} Refusing without confirmation.",
            hint="Pass --yes to confirm in a script.",
        )
    if not click.confirm(question, default=False, err=True):
        raise click.Abort()
