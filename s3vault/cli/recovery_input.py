"""Reading a recovery kit for `s3vault key import --recovery`: from a file, from
stdin, or typed at a terminal line by line (keys/recovery.py reads the format).

At a terminal each line is checked as it is typed, and a line that does not check is
asked for again; the key is never printed back.
"""

from __future__ import annotations

import sys

import click

from s3vault.cli.output import err_console, styled
from s3vault.errors import UsageError
from s3vault.keys.manage import MAX_KEY_FILE_BYTES, check_key_input, read_key_file
from s3vault.keys.recovery import KitReader


def read_kit(source: str | None) -> KitReader:
    """The kit from ``source`` (a path; "-" or None: stdin, prompted for at a terminal),
    read to its end; UsageError at the first line that is wrong."""
    if source not in (None, "-"):
        return _read_text(read_key_file(source))
    if sys.stdin.isatty():
        return _prompt()
    return _read_text(check_key_input(sys.stdin.buffer.read(MAX_KEY_FILE_BYTES + 1)))


def _read_text(data: bytes) -> KitReader:
    reader = KitReader()
    for line in data.decode("utf-8", "replace").splitlines():
        reader.feed(line)
    return reader


def _prompt() -> KitReader:
    err_console.print(
        "Type the recovery kit line by line as printed, header first "
        "(case, spaces and dashes do not matter; a blank line is skipped)."
    )
    reader = KitReader()
    while not reader.done:
        # Shown as typed, like any prompt; the groups alone are not the whole key,
        # and nothing prints the key afterwards.
        line = click.prompt(reader.prompt(), default="", show_default=False, err=True)
        try:
            reader.feed(line)
        except UsageError as exc:
            err_console.print(styled(("error:", "bold red"), " ", exc.message))
    return reader
