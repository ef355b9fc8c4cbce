"""`s3vault key migrate --to file|keyring`: move the master keys to the other key store."""

from __future__ import annotations

import click

from s3vault.cli.context import AppContext, ask_passphrase
from s3vault.cli.output import console, emit_json


@click.command(
    "migrate",
    epilog="""\b
Examples:
  S3VAULT_PASSPHRASE=... S3VAULT_KEYSTORE_PASSPHRASE_ENV=S3VAULT_PASSPHRASE \\
      s3vault key migrate --to file
  s3vault key migrate --to keyring --keep --json

\b
The source is the key store the config uses now (keystore.type); the target's
settings come from the same config (keystore.path and the passphrase source for the
file, keyring.service for the keyring). Each key is read back from the target before
it is deleted from the source (unless --keep). Afterwards, set keystore.type (or
S3VAULT_KEYSTORE_TYPE) to the target. Running it again changes nothing. Other
material under a name the target already has is refused (exit 8) unless --force.
""",
)
@click.option(
    "--to",
    "target_type",
    type=click.Choice(["file", "keyring"]),
    required=True,
    help="The key store to move the keys to.",
)
@click.option("--keep", is_flag=True, help="Leave the keys in the source as well.")
@click.option("--force", is_flag=True, help="Replace other keys of the same names in the target.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def migrate_command(
    ctx: click.Context, target_type: str, keep: bool, force: bool, as_json: bool
) -> None:
    """Move every master key (and which one is current) to the file keystore or the keyring."""
    from s3vault.keys.migrate import Migration, migrate_keys
    from s3vault.keys.open import keystore_from_config

    app = ctx.ensure_object(AppContext)
    source_type = app.config.keystore.type
    if source_type == target_type:
        # Already there (a re-run after the config was switched): nothing to do.
        migration = Migration([], changed=False)
        where = app.keystore.where
    else:
        target = keystore_from_config(
            app.config,
            ask_passphrase,
            store_type="file" if target_type == "file" else "keyring",
        )
        migration = migrate_keys(app.keystore, target, keep=keep, force=force)
        where = target.where
    if as_json:
        emit_json(
            {
                "from": source_type,
                "to": target_type,
                "keys": [{"name": name, "result": result} for name, result in migration.keys],
                "changed": migration.changed,
                "kept": keep,
            }
        )
        return
    if source_type == target_type:
        console.print(f"the config already uses {where}: nothing to migrate")
        return
    for name, result in migration.keys:
        console.print(f"{result}: key {name} in {where}")
    if not migration.keys:
        console.print(f"no keys to migrate; {where} is unchanged")
    elif not keep:
        console.print(f"removed {len(migration.keys)} key(s) from {app.keystore.where}")
    console.print(
        f"next: set `keystore: {{type: {target_type}}}` in the config "
        f"(or S3VAULT_KEYSTORE_TYPE={target_type})"
    )
