"""Find, read and validate the config file, then apply environment overrides.

Precedence (highest first): command-line options, ``S3VAULT_<SECTION>_<NAME>``
environment variables, the config file, built-in defaults. The file is
``--config PATH``, else ``$S3VAULT_CONFIG``, else ``config.yaml`` in the user
config dir (e.g. ``~/.config/s3vault/config.yaml``) when it exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
from pydantic import BaseModel, ValidationError

from s3vault.config.model import Config, KeyringSettings, KeystoreSettings
from s3vault.errors import ConfigError, NotFoundError

ENV_PREFIX = "S3VAULT_"
_M = TypeVar("_M", bound=BaseModel)


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("s3vault")) / "config.yaml"


def config_path(explicit: Path | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The file to read, or None when there is none (defaults apply)."""
    if explicit is not None:
        return explicit
    if environ.get("S3VAULT_CONFIG"):
        return Path(environ["S3VAULT_CONFIG"]).expanduser()
    default = default_config_path()
    return default if default.exists() else None


def load_config(explicit: Path | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the config; ConfigError (exit 2) names the bad field."""
    path = config_path(explicit, environ)
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_file(path)
    from_env = _apply_env(data, environ)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_problems(exc), path, from_env) from None


@dataclass(frozen=True)
class KeySettings:
    """The two sections that say where the master keys are."""

    keyring: KeyringSettings
    keystore: KeystoreSettings


def load_key_settings(
    explicit: Path | None = None, environ: Mapping[str, str] = os.environ
) -> KeySettings:
    """The ``keyring`` and ``keystore`` sections only, from the same file and variables
    as `load_config`, with the same errors (ConfigError, exit 2).

    For the key commands that need nothing else (`key list`, `generate`, ...): the
    other sections are not validated here, which spares building every model's
    validator (the largest part of such a command's start-up); an unknown top-level
    name is still an error. `s3vault config validate` and every other command check
    the whole file.
    """
    path = config_path(explicit, environ)
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_file(path)
    from_env = _apply_env(data, environ)
    problems = [
        (name, "Extra inputs are not permitted") for name in data if name not in Config.model_fields
    ]
    keyring = _section(data, "keyring", KeyringSettings, problems)
    keystore = _section(data, "keystore", KeystoreSettings, problems)
    if keyring is None or keystore is None or problems:
        raise _invalid(problems, path, from_env)
    return KeySettings(keyring=keyring, keystore=keystore)


def _section(
    data: dict[str, Any], name: str, model: type[_M], problems: list[tuple[str, str]]
) -> _M | None:
    """Section ``name`` of ``data`` validated by ``model``; None and ``problems`` added
    (located as in the whole file) if it is not valid."""
    try:
        return model.model_validate(data.get(name, {}))
    except ValidationError as exc:
        problems += [(f"{name}.{where}" if where else name, why) for where, why in _problems(exc)]
        return None


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    """pydantic's errors as (dotted location, message); a model-wide one has no location."""
    return [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]


def _invalid(
    problems: Iterable[tuple[str, str]], path: Path | None, from_env: dict[tuple[str, str], str]
) -> ConfigError:
    """The validation errors, each blamed on where its value came from.

    A value set by an environment variable is reported under that variable's name:
    the file may not even mention the setting.
    """
    in_file: list[str] = []
    in_env: list[str] = []
    for where, msg in problems:
        loc = tuple(where.split(".")) if where else ()
        variable = from_env.get((loc[0], loc[1])) if len(loc) >= 2 else None
        if variable is not None:
            in_env.append(f"{variable}: {msg}")
        else:
            in_file.append(f"{where}: {msg}")
    parts = []
    if in_env:
        parts.append("invalid environment variable " + "; ".join(in_env))
    if in_file:
        where = f" in {path}" if path else ""
        parts.append(f"invalid configuration{where}: " + "; ".join(in_file))
    hint = "`s3vault config env` lists the variables; " if in_env else ""
    return ConfigError(
        "; ".join(parts), hint=hint + "`s3vault config schema` prints the JSON Schema."
    )


def _read_file(path: Path) -> dict[str, Any]:
    import yaml  # here: with no config file (defaults and variables), not needed

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {path} is not valid YAML/JSON{_yaml_problem(exc)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _yaml_problem(exc: Exception) -> str:
    """Where and what the YAML error is, on one line (PyYAML's text spans several)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = [str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x]
    return f"{where}: {', '.join(what) or exc}"


def env_variables() -> dict[str, tuple[str, str]]:
    """Every supported override: variable name -> (section, field)."""
    names: dict[str, tuple[str, str]] = {}
    for section, info in Config.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for field_name in annotation.model_fields:
                names[f"{ENV_PREFIX}{section}_{field_name}".upper()] = (section, field_name)
    return names


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Set the overrides in ``data``; which (section, field) each variable set."""
    applied: dict[tuple[str, str], str] = {}
    for variable, (section, field_name) in env_variables().items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"config section '{section}' must be a mapping")
        target[field_name] = value
        applied[(section, field_name)] = variable
    return applied
