"""Edit the config file as a person would: keep its comments, order and layout.

The GUI writes the same YAML file the CLI and automation read. A round-trip YAML
library (ruamel.yaml) changes only the values asked for; every edit is validated
against the schema (`s3vault.config.model.Config`) before the file is replaced
atomically, so a bad value never reaches the disk. A config with ``managed_by`` set
belongs to automation (Ansible, Terraform): the GUI shows it read-only.

    config = edit(path, lambda doc: set_value(doc, ("defaults", "format"), "v2"))
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from s3vault.config.model import Config
from s3vault.errors import ConfigError, RefusedError, local_error
from s3vault.private import private_dir

Document = CommentedMap


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode: comments, order and quoting survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def read_document(path: Path) -> Document:
    """The file as an editable mapping; an empty one when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return CommentedMap()
    except OSError as exc:
        raise local_error(exc, "read the config file", path) from None
    try:
        data = _yaml().load(text)
    except YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


FieldProblem = tuple[tuple[str | int, ...], str]
"""Where a value is wrong (``("agent", "workers")``, ``("folders", 0, "delete")``) and why."""


def field_problems(doc: Document) -> list[FieldProblem]:
    """Every schema error of the document, by field; [] when it is valid (a form shows
    each next to its field)."""
    try:
        Config.model_validate(_plain(doc))
    except ValidationError as exc:
        return [(tuple(err["loc"]), err["msg"]) for err in exc.errors()]
    return []


def validate(doc: Document, path: Path | None = None) -> Config:
    """The document checked against the schema; ConfigError naming each bad field."""
    try:
        return Config.model_validate(_plain(doc))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}: {problems}") from None


def is_managed(doc: Document) -> bool:
    return bool(doc.get("managed_by"))


def set_value(doc: Document, path: Sequence[str], value: Any) -> None:
    """Set ``doc[a][b]… = value``, creating sections; None removes the setting (default)."""
    *sections, name = path
    target = doc
    for section in sections:
        child = target.get(section)
        if not isinstance(child, CommentedMap):
            if value is None:
                return
            child = CommentedMap()
            target[section] = child
        target = child
    if value is None:
        target.pop(name, None)
    else:
        target[name] = value


def write_document(path: Path, doc: Document) -> None:
    """Replace the file atomically (temp file in the same folder, fsync, rename), 0600."""
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    try:  # what is written must read back as the same settings (a round-trip check)
        same = _plain(_yaml().load(buffer.getvalue()) or {}) == _plain(doc)
    except YAMLError:
        same = False
    if not same:
        raise ConfigError(
            f"the edited config for {path} would not read back the same; nothing was written",
            hint="Edit the file by hand (a bug in the round trip of its layout).",
        )
    private_dir(path.parent, tighten=False)  # a folder of the user's choosing: only if new
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(buffer.getvalue())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise local_error(exc, "write the config file", path) from None


def edit(path: Path, change: Callable[[Document], None], *, force: bool = False) -> Config:
    """Read, change, validate, write; the new Config. Refused for a managed config
    (unless ``force``); nothing is written when the result is invalid."""
    doc = read_document(path)
    if is_managed(doc) and not force:
        raise RefusedError(
            f"{path} is managed by {doc['managed_by']}: the app shows it read-only",
            hint="Change it where it is provisioned (its Ansible role or Terraform module).",
        )
    change(doc)
    config = validate(doc, path)
    write_document(path, doc)
    return config


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (for pydantic)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
