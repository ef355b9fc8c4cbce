"""`s3vault sync` (one reconcile run of a folder) and `s3vault restore` (the way back)."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from s3vault.agent.client import AgentClient
from s3vault.cli.context import AppContext
from s3vault.cli.object_commands import instruction_suffix_option, key_option
from s3vault.cli.output import console, emit_json, err_console, human_size, plural
from s3vault.cli.progress import count_progress, sync_progress
from s3vault.config.sync import FolderSettings, normalise_prefix, parse_rate
from s3vault.errors import KeyMissingError, S3VaultError, UsageError
from s3vault.remote.url import parse_s3_url
from s3vault.sync.engine import SyncEngine, SyncReport
from s3vault.sync.restore import RestoreReport
from s3vault.sync.restore import restore as restore_folder
from s3vault.sync.state import FolderBusyError, StateDB, default_state_path
from s3vault.vault.factory import build_vault

pass_app = click.make_pass_decorator(AppContext)


def _configured_suffix(app: AppContext, bucket: str, prefix: str) -> str | None:
    """The instruction suffix of the configured folder that syncs to s3://bucket/prefix.

    So that `sync` and `restore` of a folder the agent syncs read and write its
    instruction files where the agent does, without repeating --instruction-suffix.
    """
    try:
        prefix = normalise_prefix(prefix)
    except ValueError:
        return None  # not a folder's prefix; the caller reports what is wrong with it
    for folder in app.config.folders:
        if folder.bucket == bucket and folder.prefix == prefix:
            return folder.instruction_suffix
    return None


def _folder(
    app: AppContext,
    local_dir: Path,
    target: str,
    key_name: str | None,
    format_: str | None,
    envelope: str | None,
    instruction_suffix: str | None,
    delete: bool,
) -> FolderSettings:
    url = parse_s3_url(target)
    defaults = app.config.defaults
    key = key_name or defaults.key or app.keystore.current()
    if not key:
        raise KeyMissingError(
            "sync needs a master key, and none is current",
            hint="Give --key NAME, or make one current with `s3vault key use NAME` "
            "(`s3vault key generate NAME` creates one).",
        )
    try:
        return FolderSettings.model_validate(
            {
                "path": local_dir.expanduser().absolute(),
                "bucket": url.bucket,
                "prefix": url.key,
                "key": key,
                "format": format_ or defaults.format,
                "envelope": envelope or defaults.envelope,
                "instruction_suffix": instruction_suffix
                or _configured_suffix(app, url.bucket, url.key),
                "delete": "mirror" if delete else "keep",
            }
        )
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors())
        raise UsageError(f"cannot sync {local_dir} to {target}: {problems}") from None


@click.command(
    epilog="""\b
Examples:
  s3vault sync ~/Documents s3://my-vault/laptop/documents --key laptop-2026
  s3vault sync ~/Documents s3://my-vault/laptop/documents --dry-run
  s3vault sync ~/Photos s3://my-vault/photos --no-delete --json
  s3vault sync ~/Documents s3://my-vault/laptop/documents --force
  s3vault sync ~/Videos s3://my-vault/videos --bwlimit 5MiB
  s3vault sync ~/Scans s3://shared/scans --envelope instruction-file --instruction-suffix .env

A folder the running agent syncs is handed to it (it syncs now; follow it with
`s3vault status`); --dry-run still runs here, --force is refused.

Exit codes: 0 in sync (or handed to the agent), 8 conflicts (another machine changed
an object; nothing was overwritten) or another s3vault process is syncing the folder,
9 refused by the safety guard (nothing was changed), else the code of the first
per-file error."""
)
@click.argument("local_dir", type=click.Path(path_type=Path))
@click.argument("target")
@key_option
@click.option("--format", "format_", type=click.Choice(["v2", "v3"]), help="Format of new objects.")
@click.option(
    "--envelope",
    type=click.Choice(["metadata", "instruction-file"]),
    help="Where new objects keep their envelope.",
)
@instruction_suffix_option
@click.option(
    "--delete/--no-delete",
    default=True,
    show_default=True,
    help="Delete the objects of files deleted locally (mirror), or keep them.",
)
@click.option(
    "--bwlimit",
    metavar="RATE",
    help="Upload at most RATE bytes per second (10MiB, 500KB, off); "
    "default: agent.bandwidth_limit of the config.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing.")
@click.option("--force", is_flag=True, help="Run even when the safety guard refuses.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def sync(
    app: AppContext,
    local_dir: Path,
    target: str,
    key_name: str | None,
    format_: str | None,
    envelope: str | None,
    instruction_suffix: str | None,
    delete: bool,
    bwlimit: str | None,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> int:
    """Encrypt LOCAL_DIR into s3://BUCKET/PREFIX, once: upload what changed.

    Upload sync: the folder is the source and is never modified. Every write is
    conditional, so an object another machine changed is reported as a conflict,
    never overwritten. A run that would delete many objects (or sees the folder
    suddenly empty) is refused unless --force. What was synced is remembered in the
    state database, so the next run uploads only the differences.
    """
    folder = _folder(
        app, local_dir, target, key_name, format_, envelope, instruction_suffix, delete
    )
    rate = app.config.agent.bandwidth_limit
    if bwlimit is not None:
        try:
            rate = parse_rate(bwlimit)
        except ValueError as exc:
            raise UsageError(f"--bwlimit: {exc}") from None
    if not dry_run and _handed_to_agent(folder.folder_id, force=force, as_json=as_json):
        return 0
    # A vault of its own, built with the limit (app.vault has none).
    vault = build_vault(app.config, keystore_factory=lambda: app.keystore, bandwidth_limit=rate)
    with StateDB(default_state_path()) as state:
        engine = SyncEngine(folder, vault, state, workers=app.config.agent.workers)
        with sync_progress(f"syncing {folder.path.name}", shown=not as_json) as update:
            report = engine.reconcile(force=force, dry_run=dry_run, progress=update)
    if as_json:
        emit_json({**report.to_json(), "handed_to_agent": False})
    else:
        _print_sync(report)
    return report.exit_code


def _handed_to_agent(folder_id: str, *, force: bool, as_json: bool) -> bool:
    """Whether the running agent syncs ``folder_id``; then it is asked to sync now.

    Two processes must not sync one folder at once (each would take the other's
    writes for another machine's): a folder the agent owns is the agent's to sync.
    ``--force`` cannot be handed over: refused with what to do instead. Without a
    running agent (or one that does not answer), False: this process syncs, under
    the state database's folder lock.
    """
    try:
        with AgentClient(timeout=10) as agent:
            owned = any(f.get("folder") == folder_id for f in agent.status()["folders"])
            if owned and not force:
                agent.sync_now()
    except (S3VaultError, OSError):
        # No agent, or one that does not answer (a stale socket, a timeout): this
        # process syncs, under the folder lock.
        return False
    if not owned:
        return False
    if force:
        raise FolderBusyError(
            f"the s3vault agent syncs {folder_id}; --force cannot be handed to it",
            hint="Stop the agent (`s3vault stop`), run this command again, then start "
            "the agent (`s3vault agent`).",
        )
    if as_json:
        emit_json({"folder": folder_id, "handed_to_agent": True, "exit_code": 0})
    else:
        console.print(
            f"The s3vault agent syncs {folder_id}: asked it to sync now. "
            "Follow it with `s3vault status`."
        )
    return True


def _print_sync(report: SyncReport) -> None:
    if report.dry_run:
        _print_dry_run(report)
    else:
        console.print(
            f"{report.uploaded} uploaded ({human_size(report.bytes)}), {report.copied} "
            f"renamed, {report.deleted} deleted, {report.touched} touched, "
            f"{len(report.deferred)} deferred, {len(report.conflicts)} conflicts, "
            f"{len(report.errors)} errors in {report.duration:.1f} s",
        )
        if report.relearned:
            console.print(
                f"{report.relearned} objects were re-written with the same content "
                "(key rotation): the state learned their new ETags"
            )
    if report.forced:
        err_console.print(f"warning: {report.forced}")
    for conflict in report.conflicts:
        err_console.print(f"conflict: {conflict.path}: {conflict.reason}")
    for error in report.errors:
        err_console.print(f"error: {error.path}: {error.message}")
    for path in report.deferred:
        err_console.print(
            f"deferred (changing while read, or a write S3 may still commit; next run): {path}"
        )


_UPLOAD_REASONS = {"new": "new", "changed": "changed", "missing-remotely": "missing in S3"}


def _print_dry_run(report: SyncReport) -> None:
    """Each step the run would take, as rclone's --dry-run lists them, then the totals."""
    for step in report.would:
        if step.action == "upload":
            why = _UPLOAD_REASONS.get(step.reason or "", step.reason)
            console.print(f"would upload {step.path} ({why}, {human_size(step.bytes)})")
        elif step.action == "rename":
            console.print(f"would rename {step.path} → {step.to} (a server-side copy)")
        elif step.action == "delete":
            console.print(f"would delete {step.path} (deleted here)")
        elif step.action == "touch":
            console.print(f"would record {step.path} (only its modification time changed)")
        elif step.action == "forget":
            console.print(f"would forget {step.path} (gone here and in S3)")
        elif step.action == "conflict":
            console.print(f"conflict: {step.path}: {step.reason}")
    n = report.planned
    upload_bytes = sum(step.bytes or 0 for step in report.would if step.action == "upload")
    line = (
        f"dry run: would upload {plural(n.get('upload', 0), 'file')} ({human_size(upload_bytes)}), "
        f"rename {n.get('rename', 0)}, delete {n.get('delete', 0)}"
    )
    if n.get("conflict"):
        line += f"; {plural(n['conflict'], 'conflict')}"
    console.print(line + "; nothing was changed")


@click.command(
    epilog="""\b
Examples:
  s3vault restore s3://my-vault/laptop/documents ~/restored
  s3vault restore s3://my-vault/laptop/documents ~/Documents --overwrite
  s3vault restore s3://old-bucket/archive ./archive --allow-legacy --key old-aes --json
  s3vault restore s3://shared/scans ~/Scans --instruction-suffix .env"""
)
@click.argument("source")
@click.argument("local_dir", type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace existing files (default: keep them).")
@key_option
@instruction_suffix_option
@click.option(
    "--allow-legacy",
    is_flag=True,
    help="Also read legacy, weaker formats (V1, AES/CBC content, kms, AESWrap, RSA PKCS#1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def restore(
    app: AppContext,
    source: str,
    local_dir: Path,
    overwrite: bool,
    key_name: str | None,
    instruction_suffix: str | None,
    allow_legacy: bool,
    as_json: bool,
) -> int:
    """Decrypt every object under s3://BUCKET/PREFIX into LOCAL_DIR.

    Each file is verified before it appears under its name; a tampered object is an
    error and leaves no file. Keys that would land outside LOCAL_DIR are refused.
    Existing files are kept (reported as skipped) unless --overwrite. Files get
    back the modification time they had when synced.
    """
    url = parse_s3_url(source)
    try:
        prefix = normalise_prefix(url.key)
    except ValueError as exc:
        raise UsageError(f"cannot restore {source}: {exc}") from None
    suffix = instruction_suffix or _configured_suffix(app, url.bucket, prefix)
    with count_progress("restored", shown=not as_json) as on_file:
        report = restore_folder(
            app.vault.with_instruction_suffix(suffix),
            url.bucket,
            prefix,
            local_dir.expanduser(),
            overwrite=overwrite,
            key_name=key_name,
            allow_legacy=allow_legacy,
            on_file=on_file,
        )
    if as_json:
        emit_json(report.to_json())
    else:
        _print_restore(report)
    return report.exit_code


def _print_restore(report: RestoreReport) -> None:
    console.print(
        f"{report.restored} restored ({human_size(report.bytes)}), {len(report.skipped)} "
        f"kept (exist; --overwrite replaces them), {len(report.errors)} errors "
        f"in {report.duration:.1f} s",
    )
    for error in report.errors:
        err_console.print(f"error: {error.path}: {error.message}")
