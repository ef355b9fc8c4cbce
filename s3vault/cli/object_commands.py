"""Commands on single objects: put, get, inspect, ls, rm."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import click
from rich.table import Table

from s3vault.cli.context import AppContext
from s3vault.cli.output import (
    console,
    emit_json,
    emit_json_list,
    err_console,
    human_size,
    plural,
    print_table,
)
from s3vault.cli.progress import transfer_progress
from s3vault.config.suffix import check_instruction_suffix
from s3vault.crypto.envelope import Location, Version
from s3vault.errors import NotFoundError, UsageError, local_error
from s3vault.remote.url import parse_s3_url
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.vault import PrefixEntry

pass_app = click.make_pass_decorator(AppContext)


def parse_context(pairs: tuple[str, ...]) -> dict[str, str]:
    """``--context K=V`` options as a dict (UsageError on a malformed pair)."""
    context: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--context '{pair}' must look like NAME=VALUE")
        context[name] = value
    return context


context_option = click.option(
    "--context",
    "context_pairs",
    multiple=True,
    metavar="K=V",
    help="Encryption context entry (KMS) or description entry (raw keys); repeatable.",
)
key_option = click.option("--key", "key_name", metavar="NAME", help="Master key by name.")


def _checked_suffix(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_instruction_suffix(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


instruction_suffix_option = click.option(
    "--instruction-suffix",
    "instruction_suffix",
    metavar="SUFFIX",
    callback=_checked_suffix,
    help="Instruction files are KEY+SUFFIX (default: defaults.instruction_suffix of the "
    "config, else .instruction).",
)


@click.command(
    epilog="""\b
Examples:
  s3vault put notes.txt s3://my-vault/notes.txt
  s3vault put big.iso s3://my-vault/iso/ --key laptop-2026 --format v2
  s3vault put db.dump s3://my-vault/db.dump --envelope instruction-file
  s3vault put db.dump s3://my-vault/db.dump --envelope instruction-file \\
      --instruction-suffix .envelope
  s3vault put a.csv s3://my-vault/a.csv --key prod-kms --context project=alpha"""
)
@click.argument("local", type=click.Path(path_type=Path))
@click.argument("target")
@key_option
@click.option(
    "--format",
    "format_",
    type=click.Choice(["v2", "v3"]),
    help="v3 (default): key commitment. v2: readable by older official clients.",
)
@click.option(
    "--envelope",
    type=click.Choice(["metadata", "instruction-file"]),
    help="Store the envelope in the object's metadata (default) or in an instruction "
    "file, KEY.instruction.",
)
@instruction_suffix_option
@context_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def put(
    app: AppContext,
    local: Path,
    target: str,
    key_name: str | None,
    format_: str | None,
    envelope: str | None,
    instruction_suffix: str | None,
    context_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Encrypt LOCAL and upload it to s3://BUCKET/KEY.

    A KEY ending in '/' (or empty) takes the file's name. The data key is new for
    every object and is wrapped by the master key (--key, else the current key).
    """
    url = parse_s3_url(target)
    key = url.key + local.name if url.is_prefix else url.key
    size = local.stat().st_size if local.is_file() else None
    vault = app.vault.with_instruction_suffix(instruction_suffix)
    with transfer_progress(f"encrypting {local.name}", size, shown=not as_json) as bar:
        result = vault.put(
            local,
            url.bucket,
            key,
            key_name=key_name,
            version=Version(format_) if format_ else None,
            location=Location(envelope) if envelope else None,
            context=parse_context(context_pairs),
            progress=bar.advance,
        )
    if as_json:
        emit_json(
            {
                "url": result.url,
                "bucket": url.bucket,
                "key": key,
                "etag": result.etag,
                "version_id": result.version_id,
                "plaintext_size": result.plaintext_size,
                "ciphertext_size": result.ciphertext_size,
                "format": result.format,
                "location": result.location,
                "instruction_file": result.instruction_file,
                "key_name": result.key_name,
                "wrap_algorithm": result.wrap_algorithm,
            }
        )
    else:
        envelope_in = f"envelope in {result.instruction_file or 'metadata'}"
        console.print(
            f"encrypted {local} → {result.url} ({human_size(result.plaintext_size)}, "
            f"{result.format}, key {result.key_name}, {envelope_in})"
        )


@click.command(
    epilog="""\b
Examples:
  s3vault get s3://my-vault/notes.txt ./notes.txt
  s3vault get s3://my-vault/notes.txt - | less
  s3vault get s3://old-bucket/v1-object ./out --allow-legacy --key old-aes
  s3vault get s3://their-bucket/report.pdf . --instruction-suffix .envelope"""
)
@click.argument("source")
@click.argument("local")
@key_option
@instruction_suffix_option
@click.option(
    "--allow-legacy",
    is_flag=True,
    help="Also read legacy, weaker formats (V1, AES/CBC content, kms, AESWrap, RSA PKCS#1).",
)
@context_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (not with '-').")
@pass_app
def get(
    app: AppContext,
    source: str,
    local: str,
    key_name: str | None,
    instruction_suffix: str | None,
    allow_legacy: bool,
    context_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Download s3://BUCKET/KEY and decrypt it to LOCAL ('-' for stdout).

    The plaintext is released only after it authenticated: a file appears under
    its name once verified; with '-' (or a device or FIFO such as /dev/null) nothing
    is written before the whole object verified. LOCAL may be a folder (ending in
    '/'), which then receives the object's name.
    """
    url = parse_s3_url(source)
    if url.is_prefix:
        raise UsageError(f"{source} names no object", hint="Give the full key: s3://BUCKET/KEY")
    context = parse_context(context_pairs) or None
    if local == "-" and as_json:
        raise UsageError("--json cannot be combined with '-' (stdout carries the data)")
    # A stream (stdout, /dev/null, a FIFO) is written into, never replaced, and gets
    # nothing before the whole object verified; a file appears once verified.
    stream = local == "-" or _is_device(local)
    target = None if stream else _download_target(local, url.key)
    with ExitStack() as stack:
        sink: Path | BinaryIO = target or stack.enter_context(_open_device(local))
        name = target.name if target else PurePosixPath(url.key).name
        bar = stack.enter_context(transfer_progress(f"decrypting {name}", shown=not as_json))
        result = app.vault.with_instruction_suffix(instruction_suffix).get(
            url.bucket,
            url.key,
            sink,
            key_name=key_name,
            allow_legacy=allow_legacy,
            context=context,
            progress=bar.advance,
            on_size=bar.start,
        )
    if local == "-":
        _note_other_key(key_name, result.key_name)
        return
    destination = local if stream else result.destination
    if as_json:
        emit_json(
            {
                "url": str(url),
                "bucket": url.bucket,
                "key": url.key,
                "destination": destination,
                "plaintext_size": result.plaintext_size,
                "format": result.format,
                "key_name": result.key_name,
            }
        )
    else:
        opened = f", key {result.key_name}" if result.key_name else ""
        console.print(
            f"decrypted {url} → {destination} ({human_size(result.plaintext_size)}, "
            f"{result.format}{opened}, authenticated)"
        )
    _note_other_key(key_name, result.key_name)


def _is_device(local: str) -> bool:
    """Whether LOCAL is something to write into rather than a file to replace: a
    character or block device or a FIFO (through any symlink, as /dev/stdout is)."""
    try:
        mode = os.stat(local).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)


@contextmanager
def _open_device(local: str) -> Iterator[BinaryIO]:
    if local == "-":
        yield sys.stdout.buffer
        return
    try:
        sink = open(local, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise local_error(exc, "write", local) from None
    with sink:
        yield sink


def _download_target(local: str, key: str) -> Path:
    """The file `get` writes: LOCAL, or the object's name inside LOCAL if it is a folder.

    LOCAL ending in '/' names a folder, which must exist (as with `cp`): it never
    becomes a file of that name.
    """
    target = Path(local)
    if target.is_dir():
        return target / PurePosixPath(key).name
    if local.endswith(("/", os.sep)):
        raise NotFoundError(
            f"folder {local} does not exist", hint=f"Create it first: mkdir -p {local}"
        )
    if not target.parent.is_dir():
        raise NotFoundError(f"folder {target.parent} does not exist")
    return target


def _note_other_key(asked: str | None, opened: str | None) -> None:
    """Say so when --key named a key and the object was opened by another one.

    The envelope's own description names the key that wraps its data key, and that
    key is tried first; --key is for objects that do not name theirs.
    """
    if asked is not None and opened is not None and opened != asked:
        err_console.print(f"note: opened with {opened}, the key its envelope names, not {asked}")


@click.command(
    epilog="""\b
Examples:
  s3vault inspect s3://my-vault/notes.txt
  s3vault inspect s3://my-vault/notes.txt --json | jq .wrap_algorithm
  s3vault inspect s3://their-bucket/report.pdf --instruction-suffix .envelope
  s3vault inspect s3://my-vault/notes.txt --no-key-check   # S3 only: no keyring, no KMS

\b
The master key is confirmed by opening the data key (no content is read): a KMS
object shows its KMS key (kms_key_id) and the local keys that refer to it; a raw
key is looked up in the keyring. A key that is missing or a KMS that cannot be
reached shows as "key check: failed" with the reason, not as an error."""
)
@click.argument("target")
@instruction_suffix_option
@click.option("--json", "as_json", is_flag=True, help="Print every envelope field as JSON.")
@click.option(
    "--no-key-check",
    "no_key_check",
    is_flag=True,
    help="Do not open the data key: show the master key only as the envelope names it.",
)
@pass_app
def inspect(
    app: AppContext, target: str, instruction_suffix: str | None, as_json: bool, no_key_check: bool
) -> None:
    """Show the envelope of s3://BUCKET/KEY, every field decoded, and its master key."""
    url = parse_s3_url(target)
    if not url.key:
        raise UsageError(
            f"{target} names no object",
            hint=f"Give the full key: s3://BUCKET/KEY (`s3vault ls {target}` lists them).",
        )
    vault = app.vault.with_instruction_suffix(instruction_suffix)
    info = vault.inspect(url.bucket, url.key, confirm_key=not no_key_check)
    if as_json:
        emit_json(info.to_json())
        return
    print_table(envelope_table(info))


def envelope_table(info: ObjectInfo) -> Table:
    """Every envelope field of one object, one per row (empty fields left out)."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in info.to_json().items():
        if value is None or value == []:
            continue
        table.add_row(name.replace("_", " "), _cell(value))
    return table


def _cell(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "{}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@click.command(
    epilog="""\b
Examples:
  s3vault ls s3://my-vault
  s3vault ls s3://my-vault/docs/ --recursive --json
  s3vault ls s3://their-bucket/ --instruction-suffix .envelope"""
)
@click.argument("target")
@click.option("--recursive", "-r", is_flag=True, help="List every object under the prefix.")
@instruction_suffix_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@pass_app
def ls(
    app: AppContext, target: str, recursive: bool, instruction_suffix: str | None, as_json: bool
) -> None:
    """List objects under s3://BUCKET[/PREFIX] with their format and master key.

    Instruction files are not listed on their own: an object whose envelope is in
    one shows 'instruction-file' in the envelope column.
    """
    url = parse_s3_url(target)
    vault = app.vault.with_instruction_suffix(instruction_suffix)
    entries = vault.list(url.bucket, url.key, recursive=recursive)
    if as_json:
        emit_json_list(
            {"prefix": e.prefix, "url": f"s3://{e.bucket}/{e.prefix}"}
            if isinstance(e, PrefixEntry)
            else e.to_json()
            for e in entries
        )
        return
    unreadable: list[ObjectInfo] = []
    print_table(listing_table(_noting_unreadable(entries, unreadable)))
    if unreadable:
        first = unreadable[0]
        err_console.print(
            f"note: {plural(len(unreadable), 'object')} with an envelope that could not be "
            f"read (format 'invalid'), e.g. {first.key}: {first.envelope_error}"
        )


def _noting_unreadable(
    entries: Iterable[ObjectInfo | PrefixEntry], unreadable: list[ObjectInfo]
) -> Iterator[ObjectInfo | PrefixEntry]:
    for entry in entries:
        if isinstance(entry, ObjectInfo) and entry.envelope_error:
            unreadable.append(entry)
        yield entry


def listing_table(entries: Iterable[ObjectInfo | PrefixEntry], *, modified: bool = True) -> Table:
    """The `ls` table: one row per object, folders first as S3 returns them.

    ``modified=False`` leaves out the time (the demo's objects were all just written).
    """
    columns = ["size", "modified", "format", "envelope", "master key"]
    if not modified:
        columns.remove("modified")
    table = Table(box=None, pad_edge=False)
    # Only the object key may wrap (on a narrow terminal); nothing is ever cut.
    table.add_column("key", overflow="fold")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column == "size" else "left")
    for e in entries:
        if isinstance(e, PrefixEntry):
            table.add_row(e.prefix, *([""] * len(columns)))
        else:
            row = _ls_row(e)
            table.add_row(e.key, *(row[column] for column in columns))
    return table


def _ls_row(info: ObjectInfo) -> dict[str, str]:
    env = info.envelope
    master = info.key_name or (
        "kms" if env is not None and env.is_kms else ("?" if env is not None else "")
    )
    return {
        "size": human_size(info.plaintext_size),
        "modified": info.last_modified.strftime("%Y-%m-%d %H:%M") if info.last_modified else "",
        "format": info.format_label,
        "envelope": env.location.value if env is not None else "",
        "master key": master,
    }


@click.command(
    epilog="""\b
Examples:
  s3vault rm s3://my-vault/notes.txt
  s3vault rm s3://my-vault/notes.txt --json     # exit 3 (and an error object) if absent
  s3vault rm s3://their-bucket/report.pdf --instruction-suffix .envelope"""
)
@click.argument("target")
@instruction_suffix_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def rm(app: AppContext, target: str, instruction_suffix: str | None, as_json: bool) -> None:
    """Delete s3://BUCKET/KEY and its instruction file (KEY+SUFFIX), if any."""
    url = parse_s3_url(target)
    if url.is_prefix:
        raise UsageError(f"{target} names no object", hint="Give the full key: s3://BUCKET/KEY")
    app.vault.with_instruction_suffix(instruction_suffix).delete(url.bucket, url.key)
    if as_json:
        emit_json({"url": str(url), "bucket": url.bucket, "key": url.key, "deleted": True})
    else:
        console.print(f"deleted {url}")
