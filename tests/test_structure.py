"""The structure of `s3vault/` as docs/architecture.md draws it, checked from the source.

Each top-level part of the package is a layer that may import only the layers listed
for it in `ALLOWED` (imports point down); the pure format layer only the standard
library, `s3vault.errors` and `cryptography`; no module imports another module's
private names; there is no import cycle between modules; and no module grows past
`MAX_LINES`. Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "s3vault"
MAX_LINES = 500

# Layer -> the layers it may import (besides itself). Leaves first.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "etag": set(),
    "localfile": set(),
    "private": set(),
    "process": {"errors"},
    "config": {"errors"},
    "crypto": {"errors"},
    "remote": {"errors", "config", "etag"},
    "keys": {"errors", "config", "crypto", "remote", "private"},
    "vault": {"errors", "config", "crypto", "keys", "remote", "etag", "localfile"},
    "sync": {"errors", "config", "etag", "localfile", "vault", "private"},
    "agent": {"errors", "config", "keys", "vault", "sync", "private", "process"},
    "embedded": {"errors"},
    # The desktop app: a face like the CLI, over the vault and the agent's socket; it
    # never runs the sync engine (only the agent does).
    "gui": {"errors", "config", "keys", "vault", "agent", "localfile", "etag", "private", ""},
    "cli": {
        "errors",
        "config",
        "crypto",
        "keys",
        "remote",
        "vault",
        "sync",
        "agent",
        "embedded",
        "gui",  # only `s3vault gui`, lazily: the extra `gui` may be absent
        "private",
        "process",
        "",  # s3vault/__init__.py: the version
    },
    "__main__": {"cli"},
    "": set(),
}
CRYPTO_THIRD_PARTY = {"cryptography"}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(name: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names], node.lineno


def layer(module: str) -> str:
    """``s3vault.sync.engine`` -> ``sync``; ``s3vault`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = dict(modules())
NAMES = set(MODULES)


def resolve(target: str, names: list[str]) -> list[str]:
    """The s3vault modules an import reaches (``from pkg import mod`` reaches pkg.mod)."""
    reached = [target] if target in NAMES else []
    reached += [f"{target}.{n}" for n in names if f"{target}.{n}" in NAMES]
    return reached


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, names, _ in imports(name, path):
            if target.startswith("s3vault"):
                graph[name].update(r for r in resolve(target, names) if r != name)
    return graph


def test_every_module_is_in_a_known_layer() -> None:
    unknown = sorted({layer(m) for m in MODULES} - set(ALLOWED))
    assert unknown == [], f"add these parts of s3vault/ to ALLOWED: {unknown}"


def test_imports_point_down_only() -> None:
    wrong = []
    for name, path in MODULES.items():
        here = layer(name)
        for target, _, line in imports(name, path):
            if not target.startswith("s3vault"):
                continue
            there = layer(target)
            if there != here and there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert wrong == []


def test_sync_reaches_s3_the_keys_and_the_format_only_through_the_vault() -> None:
    # Also implied by ALLOWED; spelled out because it is the rule most tempting to bend.
    assert {"remote", "crypto", "keys"}.isdisjoint(ALLOWED["sync"])
    assert {"remote", "crypto"}.isdisjoint(ALLOWED["agent"])


def test_the_format_layer_imports_only_the_standard_library_errors_and_cryptography() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    wrong = []
    for name, path in MODULES.items():
        if layer(name) != "crypto":
            continue
        for target, _, line in imports(name, path):
            top = target.split(".")[0]
            ok = (
                top in stdlib
                or top in CRYPTO_THIRD_PARTY
                or target == "s3vault.errors"
                or (layer(target) == "crypto" and target.startswith("s3vault"))
            )
            if not ok:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert wrong == []


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = []
    for name, path in MODULES.items():
        for target, names, line in imports(name, path):
            if not target.startswith("s3vault") or target == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                where = path.relative_to(PACKAGE.parent)
                wrong.append(f"{where}:{line} takes {private} from {target}")
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    graph = edges()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ importing its own modules is how packages export.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_longer_than_the_limit(name: str) -> None:
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by job"


def test_only_the_demo_command_uses_the_embedded_services() -> None:
    # s3vault.embedded needs the `demo` extra: a headless agent never imports it.
    users = {
        name
        for name, path in MODULES.items()
        for target, _, _ in imports(name, path)
        if layer(target) == "embedded" and layer(name) != "embedded"
    }
    assert users == {"s3vault.cli.demo_command"}


def test_no_test_module_imports_from_a_conftest() -> None:
    # Two conftest.py files (tests/ and tests/reliability/) both load as `conftest`:
    # an import from it gets whichever loaded last. Shared test code lives in modules.
    tests_dir = Path(__file__).parent
    offenders = [
        str(path.relative_to(tests_dir))
        for path in sorted(tests_dir.rglob("*.py"))
        if re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M)
    ]
    assert offenders == []
