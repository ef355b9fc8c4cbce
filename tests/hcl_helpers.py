"""installer/terraform read with python-hcl2, and a small evaluator for its expressions.

No Terraform binary can be installed here, so the tests render the module themselves:
`TerraformModule` loads every ``.tf`` file of a folder (python-hcl2, strings without
their quotes, ``${...}`` marking expressions) and `TerraformModule.evaluate` computes a
value, e.g. ``local.s3vault_config``, for given variables and resource attributes.

The evaluator knows only what the module uses: literals (numbers, ``"..${x}.."``
templates, true/false/null), references (``var.X``, ``local.X``, ``data.T.N.A``,
``T.N[0].A``, a ``for`` or ``dynamic`` iterator), ``[a, b]``, ``{k = v}``,
``[for x in xs : e]``, ``( )``, ``!``, ``==``, ``!=``, ``&&``, ``||`` and
``c ? a : b``. Anything else raises `Unsupported`: an expression the tests cannot
read fails them instead of being misread. As in Terraform, both branches of a
conditional are evaluated and only the chosen one's error counts, and a template
that is one interpolation (``"${x}"``) is that value, not its text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

Scope = Mapping[str, Any]
Expr = Callable[[Scope], Any]

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|(?P<str>\")"
    r"|(?P<op>==|!=|&&|\|\||[\[\]{}(),.:?=!]))"
)


class Unsupported(Exception):
    """An expression outside what this evaluator knows."""


class EvalError(Exception):
    """An expression Terraform would also refuse (an unknown name, a null in a template)."""


def load_tf(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


class TerraformModule:
    """The blocks of a Terraform module folder (its ``.tf`` files, not sub-folders)."""

    def __init__(self, folder: Path) -> None:
        self.files = {p.name: load_tf(p) for p in sorted(folder.glob("*.tf"))}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        for parsed in self.files.values():
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("output", []):
                self.outputs.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for kind, into in (("resource", self.resources), ("data", self.data)):
                for block in parsed.get(kind, []):
                    for rtype, named in block.items():
                        for name, body in named.items():
                            into[(rtype, name)] = body

    def variable_values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every variable: the given value, else its default (a required one must be given)."""
        values: dict[str, Any] = {}
        for name, block in self.variables.items():
            if name in given:
                values[name] = given[name]
            elif "default" in block:
                values[name] = block["default"]
            else:
                raise EvalError(f"variable {name} is required")
        unknown = set(given) - set(self.variables)
        if unknown:
            raise EvalError(f"no such variables: {sorted(unknown)}")
        return values

    def scope(self, variables: Mapping[str, Any], objects: Mapping[str, Any]) -> dict[str, Any]:
        """Names for `evaluate`: var, local (lazy), and ``objects`` (data, resource types)."""
        scope: dict[str, Any] = dict(objects)
        scope["var"] = self.variable_values(variables)
        scope["local"] = _Locals(self.locals, scope)
        return scope

    def evaluate(self, value: Any, scope: Scope) -> Any:
        return evaluate(value, scope)


class _Locals(Mapping[str, Any]):
    """``local.X``, each computed when first asked for (locals refer to each other)."""

    def __init__(self, raw: Mapping[str, Any], scope: Scope) -> None:
        self._raw, self._scope, self._done = raw, scope, dict[str, Any]()

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            if name not in self._raw:
                raise EvalError(f"no local named {name}")
            self._done[name] = evaluate(self._raw[name], self._scope)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def evaluate(value: Any, scope: Scope) -> Any:
    """The value of something python-hcl2 returned: objects, tuples and templates."""
    if isinstance(value, dict):
        return {key: evaluate(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate(item, scope) for item in value]
    if isinstance(value, str):
        return _template(value)(scope)
    return value


def render_block(body: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """A block's arguments evaluated and its nested blocks rendered, ``dynamic`` ones
    expanded (``for_each`` over a list; the iterator is the block type's name).

    Nested blocks are the values that are lists of objects (python-hcl2's shape).
    """
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "dynamic":
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[key] = [render_block(block, scope) for block in value]
        else:
            out[key] = evaluate(value, scope)
    for dynamic in body.get("dynamic", []):
        for block_type, spec in dynamic.items():
            if set(spec) - {"for_each", "content"}:
                raise Unsupported(f"dynamic {block_type} with {sorted(spec)}")
            for index, item in enumerate(evaluate(spec["for_each"], scope)):
                inner = {**scope, block_type: {"key": index, "value": item}}
                for content in spec["content"]:
                    out.setdefault(block_type, []).append(render_block(content, inner))
    return out


# ---- parsing -------------------------------------------------------------------------


def _template(text: str) -> Expr:
    """A string's value: its literal parts and ``${...}`` interpolations joined."""
    parts: list[str | Expr] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            parts.append(text[pos:])
            break
        parts.append(text[pos:start])
        parser = _Parser(text, start + 2)
        parts.append(parser.expression())
        parser.expect("}")
        pos = parser.pos
    parts = [p for p in parts if p != ""]
    if len(parts) == 1 and callable(parts[0]):
        return parts[0]  # "${x}" is x itself

    def join(scope: Scope) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            item = part(scope)
            if item is None:
                raise EvalError(f"a null value in the template {text!r}")
            if isinstance(item, bool):
                item = "true" if item else "false"
            if isinstance(item, dict | list):
                raise EvalError(f"a collection in the template {text!r}")
            out.append(str(item))
        return "".join(out)

    return join


class _Parser:
    """Recursive descent over one expression of ``text`` from ``pos``."""

    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos

    def peek(self) -> tuple[str, str]:
        match = _TOKEN.match(self.text, self.pos)
        if not match or match.end() == match.start():
            rest = self.text[self.pos :].strip()
            if not rest:
                return ("end", "")
            raise Unsupported(f"cannot read {rest[:30]!r} in {self.text!r}")
        kind = match.lastgroup or ""
        return kind, match.group(kind)

    def take(self) -> tuple[str, str]:
        token = self.peek()
        match = _TOKEN.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()
        return token

    def accept(self, op: str) -> bool:
        if self.peek() == ("op", op):
            self.take()
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            raise Unsupported(f"expected {op!r} at {self.text[self.pos :][:30]!r} in {self.text!r}")

    def expression(self) -> Expr:
        cond = self.binary(0)
        if not self.accept("?"):
            return cond
        yes = self.expression()
        self.expect(":")
        no = self.expression()

        def choose(scope: Scope) -> Any:
            # Terraform evaluates both and reports only the chosen branch's error.
            results: dict[bool, tuple[Any, EvalError | None]] = {}
            for branch, expr in ((True, yes), (False, no)):
                try:
                    results[branch] = (expr(scope), None)
                except EvalError as exc:
                    results[branch] = (None, exc)
            value, error = results[_boolean(cond(scope))]
            if error is not None:
                raise error
            return value

        return choose

    _LEVELS = (("||",), ("&&",), ("==", "!="))

    def binary(self, level: int) -> Expr:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in self._LEVELS[level]:
                return left
            self.take()
            left = _operator(op, left, self.binary(level + 1))

    def unary(self) -> Expr:
        if self.accept("!"):
            inner = self.unary()
            return lambda scope: not _boolean(inner(scope))
        return self.postfix(self.primary())

    def postfix(self, expr: Expr) -> Expr:
        while True:
            if self.accept("."):
                kind, name = self.take()
                if kind not in ("name", "num"):
                    raise Unsupported(f"attribute {name!r} in {self.text!r}")
                expr = _attribute(expr, name)
            elif self.peek() == ("op", "["):
                self.take()
                index = self.expression()
                self.expect("]")
                expr = _index(expr, index)
            else:
                return expr

    def primary(self) -> Expr:
        kind, token = self.take()
        if kind == "num":
            number = float(token) if "." in token else int(token)
            return lambda scope: number
        if kind == "str":
            return self.string()
        if kind == "name":
            if token in ("true", "false", "null"):
                constant = {"true": True, "false": False, "null": None}[token]
                return lambda scope: constant
            if self.peek() == ("op", "("):
                raise Unsupported(f"function {token}() in {self.text!r}")
            return lambda scope: _name(scope, token)
        if token == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token == "[":
            return self.tuple_or_for()
        if token == "{":
            return self.object()
        raise Unsupported(f"{token!r} in {self.text!r}")

    def string(self) -> Expr:
        """A quoted string inside an expression: find its end (templates nest), parse it."""
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if self.text.startswith("${", self.pos):
                depth += 1
                self.pos += 2
                continue
            if ch == "{" and depth:
                depth += 1  # an object inside the interpolation
            elif ch == "}" and depth:
                depth -= 1
            elif ch == '"' and not depth:
                body = self.text[start : self.pos]
                self.pos += 1
                if "\\" in body:
                    raise Unsupported(f"an escape in the string {body!r}")
                return _template(body)
            elif ch == '"' and depth:
                # A string inside an interpolation inside this string.
                inner = _Parser(self.text, self.pos + 1)
                inner.string()
                self.pos = inner.pos
                continue
            self.pos += 1
        raise Unsupported(f"unterminated string in {self.text!r}")

    def tuple_or_for(self) -> Expr:
        if self.peek() == ("name", "for"):
            self.take()
            _, var = self.take()
            if not self.accept(","):
                key_var = None
            else:
                key_var, (_, var) = var, self.take()
            if self.take() != ("name", "in"):
                raise Unsupported(f"for without in: {self.text!r}")
            collection = self.expression()
            self.expect(":")
            body = self.expression()
            if self.peek() == ("name", "if"):
                raise Unsupported(f"for with if: {self.text!r}")
            self.expect("]")
            if key_var is not None:
                raise Unsupported(f"for with an index: {self.text!r}")
            return lambda scope: [body({**scope, var: item}) for item in collection(scope)]
        items: list[Expr] = []
        while not self.accept("]"):
            items.append(self.expression())
            if not self.accept(","):
                self.expect("]")
                break
        return lambda scope: [item(scope) for item in items]

    def object(self) -> Expr:
        pairs: list[tuple[str, Expr]] = []
        while not self.accept("}"):
            kind, key = self.take()
            if kind == "str":
                end = self.text.index('"', self.pos)
                key, self.pos = self.text[self.pos : end], end + 1
            elif kind != "name":
                raise Unsupported(f"object key {key!r} in {self.text!r}")
            if not self.accept("="):
                self.expect(":")
            pairs.append((key, self.expression()))
            if not self.accept(","):
                self.expect("}")
                break
        return lambda scope: {key: value(scope) for key, value in pairs}


# ---- evaluating ----------------------------------------------------------------------


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvalError(f"{value!r} is not a bool")
    return value


def _operator(op: str, left: Expr, right: Expr) -> Expr:
    if op == "==":
        return lambda scope: left(scope) == right(scope)
    if op == "!=":
        return lambda scope: left(scope) != right(scope)
    if op == "&&":
        return lambda scope: _boolean(left(scope)) and _boolean(right(scope))
    return lambda scope: _boolean(left(scope)) or _boolean(right(scope))


def _name(scope: Scope, name: str) -> Any:
    if name not in scope:
        raise EvalError(f"unknown name {name}")
    return scope[name]


def _attribute(expr: Expr, name: str) -> Expr:
    def get(scope: Scope) -> Any:
        target = expr(scope)
        if not isinstance(target, Mapping) or name not in target:
            raise EvalError(f"no attribute {name} in {target!r}")
        return target[name]

    return get


def _index(expr: Expr, index: Expr) -> Expr:
    def get(scope: Scope) -> Any:
        target, at = expr(scope), index(scope)
        try:
            return target[at]
        except (IndexError, KeyError, TypeError):
            raise EvalError(f"no element {at!r} in {target!r}") from None

    return get
