"""Output helpers shared by every command: JSON for machines, rich for people.

Text printed here is never interpreted. Object keys come from whoever can write to
the bucket and file names from whoever can write to the folder, so a name like
``notes [bold].txt`` or one holding an escape sequence must show as the name it is:
the consoles below have rich's markup, emoji codes and highlighting turned off, and
`visible` shows control characters as escapes. Styling (a red "error:") is added
with `styled`, which never parses its text either.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rich.table import Table  # only commands that print tables import it

    from s3vault.errors import S3VaultError

# C0 and C1 control characters, DEL, and the Unicode line separators and bidirectional
# overrides: each can move the cursor, recolour, clear or reorder what a terminal shows.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``).

    Everything else, backslashes and brackets included, stays as it is.
    """
    return _INVISIBLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class PlainConsole(Console):
    """A rich Console that prints strings exactly: no markup, no emoji codes, no
    highlighting, and control characters escaped (`visible`).

    Every string rich renders (a printed argument, a table cell, a rule's title)
    passes through `render_str`, so this holds for tables and progress bars too.
    A newline inside a string is a control character as well (a name holding one
    must not fake a line of output): print one line per call, or use `print_lines`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, soft_wrap=True, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs.update(markup=False, emoji=False)
        return super().render_str(visible(text), **kwargs)


# Human output goes to stdout; errors and progress to stderr so that
# `s3vault get s3://b/k - > file` and `--json | jq` stay clean.
console = PlainConsole()
err_console = PlainConsole(stderr=True)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of plain strings and ``(text, style)`` pairs; no text is parsed as markup.

    ``styled(("error:", "bold red"), " ", message)``
    """
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(visible(part[0]), Style.parse(part[1]))
        else:
            text.append(visible(part))
    return text


def print_prose(text: str | Text) -> None:
    """A sentence or two of our own: word-wrapped on a terminal, one line in a pipe."""
    console.print(text, soft_wrap=not console.is_terminal)


def print_lines(text: str, *, to: Console | None = None) -> None:
    """Print our own multi-line ``text`` line by line (see `PlainConsole`)."""
    for line in text.splitlines():
        (to or console).print(line)


def print_table(table: Table) -> None:
    """Print a table without ever cutting a cell.

    On a terminal, long cells wrap within the window (columns that may fold say so
    with ``overflow="fold"``); into a pipe or file, each row stays on one line at
    its natural width, so `s3vault ls ... | grep` sees whole names.
    """
    if console.is_terminal:
        console.print(table)
        return
    unbounded = console.options.update(max_width=1_000_000)
    natural = console.measure(table, options=unbounded).maximum
    if natural <= console.width:
        console.print(table)
        return
    # Console.print never renders wider than the console: use one as wide as the table.
    PlainConsole(file=console.file, width=natural).print(table)


def plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def human_size(n: float | None) -> str:
    """Bytes for people: 87 B, 300.0 KiB, 24.0 MiB ("?" when unknown)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout (sorted keys, stable for scripts)."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def emit_json_list(items: Iterable[Any]) -> None:
    """Print a JSON list on stdout as ``items`` come: one compact element per line.

    A long listing starts printing at once and is never held whole in memory (the
    indented `emit_json` would keep it all, and its pure-Python encoder costs ~0.1 ms
    per element). Nothing is printed before the first element: an error raised
    before it leaves stdout to the error object alone, and one raised later leaves
    the list unclosed, so a consumer cannot take a partial listing for a whole one.
    """
    encode = json.JSONEncoder(sort_keys=True, default=str).encode
    opened = False
    for item in items:
        click.echo(",\n" if opened else "[\n", nl=False)
        click.echo(encode(item), nl=False)
        opened = True
    click.echo("\n]" if opened else "[]")


def error_object(exc: S3VaultError) -> dict[str, Any]:
    """An error as `--json` prints it on stdout (docs/json.md, "Errors"): ``type`` (the
    error's title), ``message``, ``hint`` (or null) and ``exit_code``."""
    return {
        "type": exc.title,
        "message": exc.message,
        "hint": exc.hint,
        "exit_code": int(exc.exit_code),
    }


def report_problem(exc: S3VaultError) -> None:
    """An error for people, on stderr: "error: MESSAGE", then its hint."""
    err_console.print(styled(("error:", "bold red"), " ", exc.message))
    if exc.hint:
        print_lines(exc.hint, to=err_console)


def emit_json_line(value: Any) -> None:
    """Print one compact JSON document per line (for streams such as `ls --json-lines`)."""
    click.echo(json.dumps(value, sort_keys=True, default=str))


def confirm_or_abort(question: str, *, yes: bool) -> None:
    """Ask before a destructive step; `--yes` answers for scripts.

    The answer must come from a person at a terminal: an answer piped in (`echo y |`)
    is refused on purpose, so a script says `--yes` where everyone can read it.
    """
    from s3vault.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{question} This needs a confirmation, and standard input is not a terminal "
            "(an answer piped in is not accepted).",
            hint="Pass --yes to confirm in a script.",
        )
    if not click.confirm(question, default=False, err=True):
        raise click.Abort()
