"""`s3vault key ...`: create, import, export, list, delete and choose master keys.

Secrets come in on a file or stdin, never as an argument (argv is visible to every
user of the machine), and go out only through `export`, after a warning.
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from s3vault.cli.context import AppContext
from s3vault.cli.output import confirm_or_abort, console, emit_json, err_console
from s3vault.errors import (
    ConflictError,
    KeyMissingError,
    NotFoundError,
    UsageError,
    local_error,
)
from s3vault.keys.material import (
    GENERATE_TYPES,
    AesKey,
    KmsKey,
    MasterKey,
    RsaKey,
    generate_key,
    parse_aes,
    parse_rsa,
    validate_name,
)
from s3vault.keys.store import KeyInfo, KeyStore
from s3vault.remote.url import S3Url, parse_s3_url

# A PEM RSA-4096 key is about 3.3 KB; anything far bigger is not a key file.
MAX_KEY_FILE_BYTES = 64 * 1024


def _store(ctx: click.Context) -> KeyStore:
    return ctx.ensure_object(AppContext).keystore


def _describe(key: MasterKey) -> str:
    if isinstance(key, KmsKey):
        return f"KMS key {key.key_id}"
    return f"{key.type.upper()}-{key.bits}"


def _summary(key: MasterKey, store: KeyStore, result: str) -> dict[str, object]:
    return {
        "name": key.name,
        "type": key.type,
        "bits": key.bits,
        "fingerprint": key.fingerprint,
        "key_id": key.key_id if isinstance(key, KmsKey) else None,
        "current": store.current() == key.name,
        "result": result,
    }


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
    """Manage master keys: AES and RSA keys in the OS keyring, references to AWS KMS keys.

    The current key wraps the data keys of new objects unless --key names another;
    the first key you create becomes current.
    """


@key_group.command(
    "generate",
    epilog="""\b
Examples:
  s3vault key generate laptop-2026
  s3vault key generate shared-rsa --type rsa4096 --json
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def generate_command(ctx: click.Context, name: str, kind: str, as_json: bool) -> None:
    """Create a new random master key NAME in the OS keyring."""
    validate_name(name)
    store = _store(ctx)
    try:
        store.get(name)
    except KeyMissingError:
        pass
    else:
        raise ConflictError(
            f"a key named '{name}' already exists",
            hint="Choose another name, or delete the old key first (`s3vault key delete`).",
        )
    key = generate_key(name, kind)  # type: ignore[arg-type]  # click.Choice checked it
    result = store.put(key)
    summary = _summary(key, store, result)
    if as_json:
        emit_json(summary)
        return
    console.print(f"created key {name} ({_describe(key)}), fingerprint {key.fingerprint}")
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

Importing the same key again is a no-op ("unchanged", exit 0); other material
under an existing name is refused (exit 8) unless --force.
""",
)
@click.argument("name")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["aes", "rsa", "kms"]),
    required=True,
    help="aes: 16/24/32 raw bytes, hex or base64; rsa: PEM private key; kms: a KMS key id.",
)
@click.option(
    "--file",
    "source",
    metavar="PATH|-",
    help="Read the key from PATH, or from stdin with '-' (never pass a secret as an argument).",
)
@click.option("--key-id", metavar="ID|ARN|ALIAS", help="The AWS KMS key (with --type kms).")
@click.option("--force", is_flag=True, help="Replace a different key of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_command(
    ctx: click.Context,
    name: str,
    kind: str,
    source: str | None,
    key_id: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Add an existing master key NAME: AES or RSA from a file or stdin, or a KMS key id."""
    validate_name(name)
    note = ""
    key: MasterKey
    if kind == "kms":
        if source is not None or key_id is None:
            raise UsageError("--type kms takes --key-id ID (and no --file)")
        key = KmsKey(name, key_id)
    else:
        if key_id is not None or source is None:
            raise UsageError(f"--type {kind} takes --file PATH or --file - (and no --key-id)")
        data = _read_key_source(source)
        if kind == "aes":
            key, encoding = parse_aes(name, data)
            note = f", read as {encoding}"
        else:
            key = parse_rsa(name, data)
    store = _store(ctx)
    result = store.put(key, force=force)
    if as_json:
        emit_json(_summary(key, store, result))
        return
    what = f"key {name} ({_describe(key)}{note}), fingerprint {key.fingerprint}"
    if result == "unchanged":
        console.print(f"unchanged: {what} is already in the keyring")
    else:
        console.print(f"{result} {what}")


def _read_key_source(source: str) -> bytes:
    if source == "-":
        data = sys.stdin.buffer.read(MAX_KEY_FILE_BYTES + 1)
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_KEY_FILE_BYTES + 1)
        except FileNotFoundError:
            raise NotFoundError(f"key file {source} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot read key file {source}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"the key input is larger than {MAX_KEY_FILE_BYTES} bytes: not a key")
    if not data:
        raise UsageError("the key input is empty")
    return data


@key_group.command(
    "export",
    epilog="""\b
Examples:
  s3vault key export laptop-2026 --file laptop-2026.key
  s3vault key export laptop-2026 --yes | gpg --encrypt -r me@example.org > backup.gpg

AES keys are written as one line of base64, RSA keys as a PKCS#8 PEM private key,
KMS keys as their key id. A file is created with mode 0600.
""",
)
@click.argument("name")
@click.option(
    "--file",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (mode 0600) instead of stdout.",
)
@click.option("--yes", is_flag=True, help="Do not ask; also allows overwriting --file.")
@click.pass_context
def export_command(ctx: click.Context, name: str, target: Path | None, yes: bool) -> None:
    """Print or save the material of key NAME (a secret, except for KMS keys)."""
    validate_name(name)
    key = _store(ctx).get(name)
    if isinstance(key, KmsKey):
        data = (key.key_id + "\n").encode()
    else:
        err_console.print(
            f"warning: this exposes the secret key '{name}'; anyone who gets a copy can "
            "decrypt every object it protects.",
        )
        confirm_or_abort(f"Export the secret key '{name}'?", yes=yes)
        data = _secret_text(key)
    if target is None:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    _write_private_file(target, data, overwrite=yes)
    err_console.print(f"wrote key {name} to {target} (mode 0600)")


def _secret_text(key: AesKey | RsaKey) -> bytes:
    if isinstance(key, AesKey):
        return base64.b64encode(key.secret) + b"\n"
    return key.private_pem


def _write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to a new 0600 file, then move it into place.

    Writing a fresh file (O_EXCL) and renaming it means an existing file's looser mode
    or another owner never applies to the secret, and no partial file is left.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Never a device, FIFO or link: as root, the rename below would replace
        # /dev/null itself with a file holding the key.
        raise UsageError(
            f"{path} is not a regular file: the key is written only to a file",
            hint="Give a file name, or leave out --file to print the key on stdout.",
        )
    if path.exists() and not overwrite:
        raise ConflictError(f"{path} already exists", hint="Pass --yes to overwrite it.")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise local_error(exc, "create", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise local_error(exc, "write", path) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


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
@click.pass_context
def delete_command(
    ctx: click.Context, name: str, yes: bool, checks: tuple[str, ...], force: bool
) -> None:
    """Remove key NAME from the keyring (for a KMS key: only s3vault's reference)."""
    validate_name(name)
    store = _store(ctx)
    info = _info(store, name)
    app = ctx.ensure_object(AppContext)
    _refuse_if_still_used(app, name, checks, force=force, scan=info is None or info.type != "kms")
    if info is not None and info.type == "kms":
        question = f"Forget KMS key '{name}' ({info.key_id})? The KMS key itself is not changed."
    else:
        question = f"Delete key '{name}'? Objects it wrapped cannot be read without a copy of it."
    confirm_or_abort(question, yes=yes)
    store.delete(name)
    console.print(f"deleted key {name}")
    if info is not None and info.current:
        console.print("there is no current key now: choose one with `s3vault key use NAME`")


# How many objects that still need a key are enough to refuse (and to show).
_USERS_SHOWN = 5


def _refuse_if_still_used(
    app: AppContext, name: str, checks: tuple[str, ...], *, force: bool, scan: bool
) -> None:
    """ConflictError while a synced folder uses key ``name`` or, with ``scan``, objects
    in the configured buckets, the folders' prefixes or the --check places name it."""
    if force:
        return
    config = app.config
    folders = [str(folder.path) for folder in config.folders if folder.key == name]
    if folders:
        raise ConflictError(
            f"key '{name}' encrypts the new files of synced folder(s) {', '.join(folders)}",
            hint="Give those folders another key in the config first (and rotate their "
            "objects), or pass --force.",
        )
    if not scan:
        return  # a KMS-wrapped object does not name its key
    places: list[tuple[S3Url, str | None]] = [
        (_place(text), None) for text in (*config.buckets, *checks)
    ]
    # Each folder's objects keep their instruction files under the folder's suffix.
    places += [
        (S3Url(f.bucket, _as_prefix(f.prefix)), f.instruction_suffix) for f in config.folders
    ]
    if not places:
        err_console.print(
            "note: no bucket was checked for objects that need this key "
            "(list them under `buckets:` in the config, or pass --check s3://BUCKET)",
        )
        return
    users, unreadable = _objects_naming(app, name, places)
    if unreadable and not users:
        raise ConflictError(
            f"the envelopes of some objects in the checked buckets cannot be read, so "
            f"s3vault cannot tell whether they need key '{name}': {'; '.join(unreadable)}",
            hint="Inspect them (`s3vault inspect URL`; give --instruction-suffix if their "
            "envelopes are in instruction files under another suffix), or pass --force.",
        )
    if users:
        shown = ", ".join(users)
        raise ConflictError(
            f"key '{name}' still wraps the data keys of objects in the checked buckets, "
            f"e.g. {shown}",
            hint=f"Rotate them first (`s3vault rotate s3://BUCKET/ --recursive --from-key "
            f"{name} --to-key NEW`), or pass --force to delete it anyway: those objects "
            "then cannot be read without a copy of the key.",
        )


def _as_prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _place(text: str) -> S3Url:
    return parse_s3_url(text if text.startswith("s3://") else f"s3://{text}")


def _objects_naming(
    app: AppContext, name: str, places: list[tuple[S3Url, str | None]]
) -> tuple[list[str], list[str]]:
    """Up to a few objects whose description names key ``name``, and up to a few
    objects whose envelope could not be read (as "URL: why")."""
    from s3vault.vault.objects import ObjectInfo

    found: list[str] = []
    unreadable: list[str] = []
    for place, suffix in places:
        vault = app.vault.with_instruction_suffix(suffix)
        for entry in vault.list(place.bucket, place.key, recursive=True):
            if not isinstance(entry, ObjectInfo):
                continue
            if entry.key_name == name:
                found.append(entry.url)
                if len(found) >= _USERS_SHOWN:
                    return found, unreadable
            elif entry.envelope_error and len(unreadable) < _USERS_SHOWN:
                unreadable.append(f"{entry.url}: {entry.envelope_error}")
    return found, unreadable


def _info(store: KeyStore, name: str) -> KeyInfo | None:
    """The listed info of ``name``; KeyMissingError if the keyring has no such key."""
    for info in store.list():
        if info.name == name:
            return info
    store.get(name)  # not listed: exists only if its entry survived an interrupted write
    return None


@key_group.command(
    "use",
    epilog="""\b
Example:
  s3vault key use laptop-2026
""",
)
@click.argument("name")
@click.pass_context
def use_command(ctx: click.Context, name: str) -> None:
    """Make key NAME the current key: new objects are encrypted with it."""
    _store(ctx).set_current(name)
    console.print(f"{name} is now the current key for new objects")
