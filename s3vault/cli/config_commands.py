"""`s3vault config`: validate the config file, print its schema and the effective settings."""

from __future__ import annotations

import json
from pathlib import Path

import click

from s3vault.cli.context import AppContext
from s3vault.cli.output import console, emit_json
from s3vault.config.load import config_path, env_variables, load_config
from s3vault.config.model import Config

pass_app = click.make_pass_decorator(AppContext)


@click.group("config")
def config_group() -> None:
    """Inspect and validate the declarative config file."""


@config_group.command(
    epilog="\b\nExamples:\n  s3vault config validate\n"
    "  s3vault config validate /etc/s3vault.yaml --json"
)
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def validate(app: AppContext, path: Path | None, as_json: bool) -> None:
    """Check the config file (PATH, --config, or the default); exit 2 when invalid."""
    chosen = path or config_path(app.config_path)
    load_config(chosen)
    if as_json:
        emit_json({"valid": True, "path": str(chosen) if chosen else None})
    else:
        console.print(f"{chosen or 'built-in defaults'}: valid")


@config_group.command(epilog="\b\nExample:\n  s3vault config schema > s3vault.schema.json")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Accepted for scripts that always pass it: the schema is JSON anyway.",
)
def schema(as_json: bool) -> None:
    """Print the JSON Schema of the config file (for editors, Ansible and Terraform)."""
    click.echo(json.dumps(Config.model_json_schema(), indent=2))


@config_group.command(epilog="\b\nExample:\n  s3vault config show --json")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the effective settings (file + environment overrides + defaults)."""
    data = app.config.model_dump(mode="json")
    if as_json:
        emit_json(data)
    else:
        console.print_json(json.dumps(data))


@config_group.command(
    "env", epilog="\b\nExamples:\n  s3vault config env\n  s3vault config env --json"
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of the variables.")
def env_list(as_json: bool) -> None:
    """List the environment variables that override settings."""
    variables = [
        {"variable": variable, "setting": f"{section}.{field_name}"}
        for variable, (section, field_name) in sorted(env_variables().items())
    ]
    if as_json:
        emit_json(variables)
        return
    for entry in variables:
        click.echo(f"{entry['variable']}\t{entry['setting']}")
