"""`s3vault key ...`: create, import, export, list, delete and choose master keys.

Secrets come in on a file or stdin, never as an argument (argv is visible to every
user of the machine), and go out only through `export`, after a warning.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from s3vault.cli.context import AppContext
from s3vault.cli.key_migrate import migrate_command
from s3vault.cli.output import confirm_or_abort, console, emit_json, err_console
from s3vault.errors import KeyMissingError, UsageError
from s3vault.keys.manage import (
    MAX_KEY_FILE_BYTES,
    check_key_input,
    describe,
    describe_key,
    export_bytes,
    generate_new,
    import_key,
    key_info,
    parse_import,
    read_key_file,
    use_key,
    write_private_file,
)
from s3vault.keys.material import GENERATE_TYPES, KmsKey, MasterKey, validate_name
from s3vault.keys.store import KeyInfo, KeyStore


def _store(ctx: click.Context) -> KeyStore:
    return ctx.ensure_object(AppContext).keystore


def _summary(key: MasterKey, store: KeyStore, result: str) -> dict[str, object]:
    """The JSON of a key command (docs/keys.md): the key, no secret, and whether the
    command changed anything (``changed``, for Ansible's changed_when)."""
    return {
        "name": key.name,
        "type": key.type,
        "bits": key.bits,
        "fingerprint": key.fingerprint,
        "key_id": key.key_id if isinstance(key, KmsKey) else None,
        "current": store.current() == key.name,
        "result": result,
        "changed": result != "unchanged",
    }


def _warn(text: str) -> None:
    err_console.print(f"warning: {text}")


@click.group(
    "key",
    epilog="""\b
Examples:
  s3vault key generate laptop-2026
  s3vault key import office --type aes --file office.key
  s3vault key list
  s3vault key use laptop-2026
""",
)
def key_group() -> None:
    """Manage master keys: AES and RSA keys in the OS keyring (or the keystore file),
    references to AWS KMS keys.

    The current key wraps the data keys of new objects unless --key names another;
    the first key you create becomes current.
    """


@key_group.command(
    "generate",
    epilog="""\b
Examples:
  s3vault key generate laptop-2026
  s3vault key generate shared-rsa --type rsa4096 --json
  s3vault key generate laptop-2026 --if-missing --json   # for Ansible: "changed"

A name that is taken is refused (exit 8). With --if-missing, a key of the wanted
type and size under that name is kept (exit 0, "unchanged"); one of another type
is still refused unless --force, which replaces it with a new key.
""",
)
@click.argument("name")
@click.option(
    "--type",
    "kind",
    type=click.Choice(GENERATE_TYPES),
    default="aes256",
    show_default=True,
    help="Key type: a random AES-256 key, or an RSA key pair of that many bits.",
)
@click.option("--if-missing", is_flag=True, help="Keep an existing key NAME of this type (exit 0).")
@click.option(
    "--force", is_flag=True, help="Replace an existing key NAME (objects it wrapped need a copy)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def generate_command(
    ctx: click.Context, name: str, kind: str, if_missing: bool, force: bool, as_json: bool
) -> None:
    """Create a new random master key NAME in the key store (the OS keyring by default)."""
    store = _store(ctx)
    key, result = generate_new(
        store,
        name,
        kind,  # type: ignore[arg-type]  # click.Choice
        if_missing=if_missing,
        force=force,
        warn=_warn,
    )
    summary = _summary(key, store, result)
    if as_json:
        emit_json(summary)
        return
    what = f"key {name} ({describe_key(key)}), fingerprint {key.fingerprint}"
    if result == "unchanged":
        console.print(f"unchanged: {what} already exists")
        return
    console.print(f"{result} {what}")
    if summary["current"]:
        console.print(f"{name} is the current key: new objects are encrypted with it")


@key_group.command(
    "import",
    epilog="""\b
Examples:
  openssl rand -base64 32 | s3vault key import office --type aes --file -
  s3vault key import office --type aes --file office.key
  s3vault key import partner --type rsa --file partner.pem
  s3vault key import prod --type kms --key-id alias/s3vault-prod
  s3vault key import --recovery --file laptop-2026.kit
  s3vault key import --recovery          # at a terminal: type the kit line by line

Importing the same key again is a no-op ("unchanged", exit 0); other material
under an existing name is refused (exit 8) unless --force. With --recovery, NAME
defaults to the name in the kit, and a kit that does not check stores nothing (exit 2).
""",
)
@click.argument("name", required=False)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["aes", "rsa", "kms"]),
    help="aes: 16/24/32 raw bytes, hex or base64; rsa: PEM private key; kms: a KMS key id.",
)
@click.option(
    "--file",
    "source",
    metavar="PATH|-",
    help="Read the key from PATH, or from stdin with '-' (never pass a secret as an argument).",
)
@click.option("--key-id", metavar="ID|ARN|ALIAS", help="The AWS KMS key (with --type kms).")
@click.option(
    "--recovery",
    is_flag=True,
    help="Read a recovery kit (`key export --recovery`): from --file, stdin, or typed.",
)
@click.option("--force", is_flag=True, help="Replace a different key of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_command(
    ctx: click.Context,
    name: str | None,
    kind: str | None,
    source: str | None,
    key_id: str | None,
    recovery: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Add an existing master key NAME: AES or RSA from a file or stdin, a KMS key id,
    or a recovery kit."""
    if name is not None:
        validate_name(name)
    note = ""
    created: str | None = None
    key: MasterKey
    if recovery:
        if kind is not None or key_id is not None:
            raise UsageError("--recovery reads the key's type from the kit: leave out --type")
        from s3vault.cli.recovery_input import read_kit  # only here: the kit's reader

        kit = read_kit(source)
        key, created = kit.key(name), kit.created
        note = ", from a recovery kit"
    elif name is None or kind is None:
        raise UsageError(
            "key import needs NAME and --type (or --recovery)",
            hint="e.g. s3vault key import office --type aes --file office.key",
        )
    elif kind == "kms":
        if source is not None or key_id is None:
            raise UsageError("--type kms takes --key-id ID (and no --file)")
        key = KmsKey(name, key_id)
    else:
        if key_id is not None or source is None:
            raise UsageError(f"--type {kind} takes --file PATH or --file - (and no --key-id)")
        data = _read_key_source(source)
        key, note = parse_import(name, kind, data)  # type: ignore[arg-type]  # aes or rsa
    store = _store(ctx)
    result = import_key(store, key, force=force, warn=_warn, created=created)
    if as_json:
        emit_json(_summary(key, store, result))
        return
    what = f"key {key.name} ({describe_key(key)}{note}), fingerprint {key.fingerprint}"
    if result == "unchanged":
        console.print(f"unchanged: {what} is already in {store.where}")
    else:
        console.print(f"{result} {what}")


def _read_key_source(source: str) -> bytes:
    if source == "-":
        return check_key_input(sys.stdin.buffer.read(MAX_KEY_FILE_BYTES + 1))
    return read_key_file(source)


@key_group.command(
    "export",
    epilog="""\b
Examples:
  s3vault key export laptop-2026 --file laptop-2026.key
  s3vault key export laptop-2026 --yes | gpg --encrypt -r me@example.org > backup.gpg
  s3vault key export laptop-2026 --recovery --yes | lp     # a paper recovery kit

AES keys are written as one line of base64, RSA keys as a PKCS#8 PEM private key,
KMS keys as their key id. A file is created with mode 0600. --recovery writes a
recovery kit instead: the key in checked groups of characters to print and keep
(docs/keys.md); `s3vault key import --recovery` reads it back.
""",
)
@click.argument("name")
@click.option(
    "--file",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (mode 0600) instead of stdout.",
)
@click.option("--recovery", is_flag=True, help="Write a recovery kit to print and keep.")
@click.option("--yes", is_flag=True, help="Do not ask; also allows overwriting --file.")
@click.pass_context
def export_command(
    ctx: click.Context, name: str, target: Path | None, recovery: bool, yes: bool
) -> None:
    """Print or save the material of key NAME (a secret, except for KMS keys)."""
    validate_name(name)
    store = _store(ctx)
    key, data = export_bytes(store, name, recovery=recovery)
    if not isinstance(key, KmsKey):
        err_console.print(
            f"warning: this exposes the secret key '{name}'; anyone who gets a copy can "
            "decrypt every object it protects.",
        )
        confirm_or_abort(f"Export the secret key '{name}'?", yes=yes)
    if target is None:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    write_private_file(target, data, overwrite=yes)
    what = "a recovery kit of key" if recovery else "key"
    err_console.print(f"wrote {what} {name} to {target} (mode 0600)")


@key_group.command(
    "list",
    epilog="""\b
Examples:
  s3vault key list
  s3vault key list --json | jq -r '.[] | select(.current) | .name'
""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of keys.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """Show your master keys (no secrets); * marks the current key."""
    infos = _store(ctx).list()
    if as_json:
        emit_json([asdict(info) for info in infos])
        return
    if not infos:
        console.print("no keys yet: create one with `s3vault key generate NAME`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("", "NAME", "TYPE", "BITS", "FINGERPRINT / KEY ID", "CREATED"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            "*" if info.current else "",
            info.name,
            info.type,
            str(info.bits) if info.bits else "-",
            info.key_id or info.fingerprint,
            info.created,
        )
    console.print(table)


@key_group.command(
    "delete",
    epilog="""\b
Examples:
  s3vault key delete old-laptop
  s3vault key delete old-laptop --yes --check s3://my-vault/ --check s3://archive/2026/
  s3vault key delete old-laptop --yes --force
  s3vault key delete old-laptop --yes --missing-ok --json   # for Ansible: "changed"

\b
s3vault refuses (exit 8) to delete a key that a synced folder in the config uses,
and, for AES and RSA keys, while an object still names the key in its description in
the buckets listed under `buckets:` in the config, the synced folders' prefixes, or
the places given with --check: rotate those objects first (`s3vault rotate
s3://BUCKET/ -r --from-key NAME --to-key NEW`). It also refuses while an object there
has an envelope it cannot read (e.g. an instruction file under another suffix), since
that object may need the key. Objects that do not name their key
(written by other clients) are not found this way, and KMS-wrapped objects are not
looked for (they do not name their key; deleting a KMS key here only forgets
s3vault's reference to it).
""",
)
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--check",
    "checks",
    multiple=True,
    metavar="s3://BUCKET[/PREFIX]",
    help="Also look for objects that need the key here (repeatable).",
)
@click.option("--force", is_flag=True, help="Delete even if objects still need the key.")
@click.option("--missing-ok", is_flag=True, help="A key that does not exist is not an error.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def delete_command(
    ctx: click.Context,
    name: str,
    yes: bool,
    checks: tuple[str, ...],
    force: bool,
    missing_ok: bool,
    as_json: bool,
) -> None:
    """Remove key NAME from the key store (for a KMS key: only s3vault's reference)."""
    validate_name(name)
    store = _store(ctx)
    try:
        info = key_info(store, name)
    except KeyMissingError:
        if not missing_ok:
            raise
        _report_delete(name, None, "missing", as_json=as_json)
        return
    gone = info if info is not None else _unlisted_info(store.get(name))
    if not force:
        _refuse_if_still_used(ctx.ensure_object(AppContext), name, checks, gone.type != "kms")
    if gone.type == "kms":
        question = f"Forget KMS key '{name}' ({gone.key_id})? The KMS key itself is not changed."
    else:
        question = f"Delete key '{name}'? Objects it wrapped cannot be read without a copy of it."
    confirm_or_abort(question, yes=yes)
    store.delete(name)
    _report_delete(name, gone, "deleted", as_json=as_json)


def _unlisted_info(key: MasterKey) -> KeyInfo:
    """What the index would say of a key it lost (an interrupted write)."""
    key_id = key.key_id if isinstance(key, KmsKey) else None
    return KeyInfo(key.name, key.type, "", key.fingerprint, key.bits, key_id, current=False)


def _report_delete(name: str, gone: KeyInfo | None, result: str, *, as_json: bool) -> None:
    """The outcome of `key delete` (``gone``: None if there was no such key): JSON
    (docs/keys.md) or a sentence."""
    if as_json:
        emit_json(
            {
                "name": name,
                "type": gone.type if gone else None,
                "bits": gone.bits if gone else None,
                "fingerprint": gone.fingerprint if gone else None,
                "key_id": gone.key_id if gone else None,
                "was_current": bool(gone and gone.current),
                "result": result,
                "changed": gone is not None,
            }
        )
        return
    if gone is None:
        console.print(f"unchanged: there is no key {name}")
        return
    console.print(f"deleted key {name} ({describe(gone.type, gone.bits, gone.key_id)})")
    if gone.current:
        console.print("there is no current key now: choose one with `s3vault key use NAME`")


def _refuse_if_still_used(app: AppContext, name: str, checks: tuple[str, ...], scan: bool) -> None:
    """ConflictError while a synced folder uses key ``name`` or, with ``scan``, objects
    in the configured buckets, the folders' prefixes or the --check places name it."""
    # Here, not at the top: the vault brings boto3, which the other key commands
    # (`key list` first) never need.
    from s3vault.vault.key_users import key_places, refuse_if_key_in_use

    config = app.config
    places = key_places(config, checks)
    if not refuse_if_key_in_use(config, lambda: app.vault, name, places, scan=scan):
        err_console.print(
            "note: no bucket was checked for objects that need this key "
            "(list them under `buckets:` in the config, or pass --check s3://BUCKET)",
        )


@key_group.command(
    "use",
    epilog="""\b
Examples:
  s3vault key use laptop-2026
  s3vault key use laptop-2026 --json    # "changed": false if it was current already
""",
)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def use_command(ctx: click.Context, name: str, as_json: bool) -> None:
    """Make key NAME the current key: new objects are encrypted with it."""
    validate_name(name)
    store = _store(ctx)
    key, previous = use_key(store, name)
    result = "unchanged" if previous == name else "switched"
    if as_json:
        emit_json(_summary(key, store, result) | {"previous": previous})
        return
    if result == "unchanged":
        console.print(f"unchanged: {name} is already the current key")
    else:
        console.print(f"{name} is now the current key for new objects")


key_group.add_command(migrate_command)
