"""`s3vault rotate`: give objects a new master key (re-wrap) or new data keys (re-encrypt).

The work is done by `s3vault.vault.rotation`; this module parses options, shows
progress on a terminal and prints the report (text or JSON).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TimeElapsedColumn,
)

from s3vault.cli.context import AppContext
from s3vault.cli.object_commands import instruction_suffix_option, parse_context
from s3vault.cli.output import console, emit_json, err_console
from s3vault.cli.progress import PlainTextColumn
from s3vault.crypto.envelope import Version
from s3vault.errors import ExitCode, KeyMissingError, UsageError
from s3vault.remote.url import parse_s3_url
from s3vault.vault.rotation import (
    DEFAULT_WORKERS,
    Action,
    Failed,
    Outcome,
    Rotated,
    RotationOptions,
    RotationReport,
    Rotator,
)

pass_app = click.make_pass_decorator(AppContext)

EPILOG = """\b
Examples:
  s3vault rotate s3://my-vault/docs/report.pdf --to-key laptop-2027
  s3vault rotate s3://my-vault/ --recursive --from-key laptop-2026 --to-key laptop-2027
  s3vault rotate s3://my-vault/ --recursive --to-key prod-kms --dry-run
  s3vault rotate s3://my-vault/ --recursive --to-key laptop-2027 --json > report.json
  s3vault rotate s3://my-vault/old/ -r --reencrypt --format v3 --to-key laptop-2027
  s3vault key use laptop-2027 && s3vault rotate s3://my-vault/ -r   # to the current key
  s3vault rotate s3://their-bucket/ -r --to-key laptop-2027 --instruction-suffix .envelope

\b
Re-wrap (the default) keeps each object's data key and wraps it with the new master
key: an envelope in object metadata is rewritten by a server-side copy of the object
onto itself, an envelope in an instruction file by rewriting that file. No object data
passes through this machine. --reencrypt instead gives each object a new data key and
streams it through decryption and encryption (a leaked data key; V2 -> V3).

\b
Objects already on the new key are skipped, so an interrupted run can simply be run
again. Every write is conditional on what was read: an object changed meanwhile is
reported as failed and its new content is left alone. After writing, each object is
read back: the new key opens it, the old one does not, V3's key commitment matches.

\b
Exit codes: 0 every selected object rotated (or skipped); otherwise the code most
failures share, e.g. 8 (changed meanwhile), 5 (no key opens it), 4 (did not verify).
"""


@click.command(epilog=EPILOG)
@click.argument("target")
@click.option(
    "--to-key",
    metavar="NEW",
    help="Master key to wrap with: a key name or kms:KEY_ID (default: the current key).",
)
@click.option(
    "--from-key",
    metavar="OLD",
    help="Rotate only objects whose data key OLD wraps; others are skipped.",
)
@click.option(
    "--recursive", "-r", is_flag=True, help="Rotate every object under the prefix TARGET."
)
@click.option(
    "--reencrypt",
    is_flag=True,
    help="New data keys: download, decrypt, encrypt and upload each object.",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["v2", "v3"]),
    help="With --reencrypt: the format to write (default: each object's own).",
)
@click.option(
    "--context",
    "context_pairs",
    multiple=True,
    metavar="K=V",
    help="New encryption context (KMS) or description entries (raw keys), replacing each "
    "object's own; repeatable. Default: keep each object's.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Objects rotated in parallel (with --recursive).",
)
@click.option(
    "--allow-legacy",
    is_flag=True,
    help="Also rotate objects in legacy formats or wraps (V1 and AES/CBC need --reencrypt).",
)
@click.option(
    "--verify-content/--no-verify-content",
    default=None,
    help="After writing, download each object and authenticate its body "
    "(default: only with --reencrypt).",
)
@click.option(
    "--versions/--no-versions",
    "count_versions",
    default=True,
    help="In a versioned bucket, count the non-current versions that still hold an old "
    "wrap (default: on; costs a listing and a read per old version).",
)
@instruction_suffix_option
@click.option("--dry-run", is_flag=True, help="Show what would be rotated; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def rotate(
    app: AppContext,
    target: str,
    to_key: str | None,
    from_key: str | None,
    recursive: bool,
    reencrypt: bool,
    format_: str | None,
    context_pairs: tuple[str, ...],
    workers: int,
    allow_legacy: bool,
    verify_content: bool | None,
    count_versions: bool,
    instruction_suffix: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Give the object s3://BUCKET/KEY, or with --recursive every object under
    s3://BUCKET/PREFIX, a new master key without moving its data."""
    url = parse_s3_url(target)
    if url.is_prefix and not recursive:
        raise UsageError(
            f"{target} names no object",
            hint="Give the full key, or add --recursive to rotate every object under it.",
        )
    if format_ and not reencrypt:
        raise UsageError(
            "--format needs --reencrypt: a re-wrap keeps each object's format",
            hint="Add --reencrypt to re-encrypt objects into another format.",
        )
    options = RotationOptions(
        to_key=to_key or _current_key(app),
        from_key=from_key,
        reencrypt=reencrypt,
        version=Version(format_) if format_ else None,
        context=parse_context(context_pairs) if context_pairs else None,
        allow_legacy=allow_legacy,
        verify_content=verify_content,
        dry_run=dry_run,
        count_versions=count_versions,
    )
    rotator = Rotator(app.vault.with_instruction_suffix(instruction_suffix), options)
    report = rotator.new_report(url.bucket, url.key)
    try:
        if recursive:
            with object_progress("rotating", shown=not as_json) as progress:
                rotator.rotate_prefix(
                    url.bucket,
                    url.key,
                    report,
                    workers=workers,
                    on_found=progress.found,
                    on_done=progress.done,
                )
        else:
            rotator.rotate_one(url.bucket, url.key, report)
    except KeyboardInterrupt:
        report.interrupted = True
        _print_report(report, as_json=as_json)
        err_console.print("interrupted: run the same command again to finish")
        return int(ExitCode.INTERRUPTED)
    _print_report(report, as_json=as_json)
    return report.exit_code


def _current_key(app: AppContext) -> str:
    name = app.config.defaults.key or app.keystore.current()
    if name is None:
        raise KeyMissingError(
            "no key to rotate to: --to-key is not given and no key is current",
            hint="Name one with --to-key NAME, or make one current with `s3vault key use NAME`.",
        )
    return name


# ---- output --------------------------------------------------------------------------


def _print_report(report: RotationReport, *, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    single = len(report.rotated) + len(report.skipped) + len(report.failed) == 1
    for rotated in sorted(report.rotated, key=lambda r: r.key):
        console.print(_rotated_line(report, rotated, with_checks=single))
    for failed in sorted(report.failed, key=lambda f: f.key):
        console.print(f"failed {_url(report, failed.key)}: {failed.reason}")
        if failed.hint:
            console.print(f"  {failed.hint}")
    if single and report.skipped:
        skipped = report.skipped[0]
        console.print(f"skipped {_url(report, skipped.key)}: {skipped.reason}")
    elif not single:
        console.print(report.summary())
    if report.hint:
        console.print(report.hint)
        if report.dry_run:
            console.print(
                "(A rotation also turns the versions it replaces into non-current versions.)",
            )


def _url(report: RotationReport, key: str) -> str:
    bucket = report.target[len("s3://") :].split("/", 1)[0]
    return f"s3://{bucket}/{key}"


def _rotated_line(report: RotationReport, rotated: Rotated, *, with_checks: bool) -> str:
    verbs = {Action.REWRAP: "re-wrapped", Action.REENCRYPT: "re-encrypted"}
    if report.dry_run:
        verbs = {Action.REWRAP: "would re-wrap", Action.REENCRYPT: "would re-encrypt"}
    line = (
        f"{verbs[rotated.action]} {_url(report, rotated.key)}: {rotated.from_key} → "
        f"{rotated.to_key} ({rotated.format}, envelope in {rotated.envelope})"
    )
    return f"{line}; verified: {_checks(rotated)}" if with_checks else line


def _checks(rotated: Rotated) -> str:
    checks = "opens with the new key only"
    if rotated.format == "v3":
        checks += ", key commitment matches"
    if rotated.content_verified:
        checks += ", content authenticated"
    return checks


class ObjectProgress:
    """Counts objects found and finished; draws nothing without a terminal."""

    def __init__(self, bar: Progress | None = None, task: TaskID | None = None) -> None:
        self._bar = bar
        self._task = task
        self._found = 0
        self._failed = 0

    def found(self, key: str) -> None:
        self._found += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=self._found)

    def done(self, outcome: Outcome) -> None:
        if isinstance(outcome, Failed):
            self._failed += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, failed=self._failed)


@contextmanager
def object_progress(label: str, *, shown: bool = True) -> Iterator[ObjectProgress]:
    """A count-based progress bar on stderr, on a terminal only (called on one thread);
    none with ``shown=False`` (--json)."""
    if not shown or not sys.stderr.isatty():
        yield ObjectProgress()
        return
    with Progress(
        PlainTextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        PlainTextColumn("objects, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        yield ObjectProgress(bar, bar.add_task(label, total=None, failed=0))
