"""Expressions in config fields: `{{ item.email }}`, `{{ nodes['Look up'].items[0].days_left }}`.

This is the product's most sensitive boundary (n8n's worst vulnerabilities were expression escapes). Expressions run
in Jinja2's immutable sandbox over plain JSON data only: no attribute starting with `_`, no `format`, no callables
but JSON methods and a small set of filters, no globals, no file, module or environment access.

A string that is exactly one `{{ … }}` keeps the expression's native type (a number stays a number); a string that
mixes text and expressions renders to text. Everything is compiled once per flow version, at plan time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import markupsafe
from jinja2 import TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import ExpressionError
from .expression_words import runtime_message, syntax_message

_MARK = re.compile(r"{{|{%")
_WHOLE = re.compile(r"^\s*{{(.*)}}\s*$", re.DOTALL)
_UNSAFE_ATTRS = frozenset({"format", "format_map", "mro", "gi_frame", "gi_code", "cr_frame", "cr_code", "f_globals",
                           "func_globals", "im_func"})
_FILTERS = ("abs", "capitalize", "default", "d", "dictsort", "first", "float", "groupby", "int", "join", "last",
            "length", "count", "list", "lower", "map", "max", "min", "replace", "reject", "rejectattr", "reverse",
            "round", "select", "selectattr", "slice", "sort", "string", "sum", "title", "tojson", "trim", "truncate",
            "unique", "upper", "batch", "wordcount", "items", "urlencode", "center", "indent", "striptags")
_TESTS_DROP = ("callable",)
MAX_OUTPUT = 1_000_000


class _Missing(Undefined):
    """A missing field reads as None (rendered as empty text), as in n8n; only a chained lookup on it fails."""

    __slots__ = ()


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # `'x' * 10**9` or `9 ** 9 ** 9` would take the server down: bound what one expression may build.
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 1000:
                raise SecurityError("exponents above 1000 are not allowed in expressions")
            return left**right
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | list) and isinstance(count, int) and len(seq) * count > MAX_OUTPUT:
                raise SecurityError("the expression would build more than 1 MB")
        return left * right

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `nodes.lookup.items` means the key "items", not dict.items: JSON data reads keys first.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or attr in _UNSAFE_ATTRS:
            return False
        if not isinstance(obj, dict | list | str | int | float | bool | type(None)):
            return False  # only JSON data may be inspected
        return super().is_safe_attribute(obj, attr, value)

    def is_safe_callable(self, obj: Any) -> bool:
        if obj is _safe_range or obj is dict:  # the only globals
            return True
        owner = getattr(obj, "__self__", None)
        if not isinstance(owner, dict | list | str | int | float):
            return False
        return super().is_safe_callable(obj)


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=_Missing, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()
    env.globals.update({"range": _safe_range, "dict": dict, "true": True, "false": False, "null": None})
    env.filters = {name: env.filters[name] for name in _FILTERS if name in env.filters}
    env.filters["escape"] = env.filters["e"] = _escape_html
    for name in _TESTS_DROP:
        env.tests.pop(name, None)
    return env


def _escape_html(value: Any) -> str:
    """`{{ item.name | e }}`: text made safe to put in HTML (an email's HTML part). A plain str, not Markup."""
    return str(markupsafe.escape("" if value is None else value))


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > 10_000:
        raise SecurityError("range() is limited to 10,000 numbers in expressions")
    return rng


_ENV = _make_env()

Evaluator = Callable[[dict[str, Any]], Any]


def has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return _MARK.search(value) is not None
    if isinstance(value, dict):
        return any(has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(has_expression(v) for v in value)
    return False


def compile_string(text: str) -> Evaluator:
    """Compile one config string. Raises ExpressionError (with Jinja's line info) on bad syntax."""
    whole = _WHOLE.match(text)
    try:
        if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
            source = whole.group(1).strip()
            expr = _ENV.compile_expression(source, undefined_to_none=False)
            path = _plain_path(source)
            if path is not None:
                return _path_reader(path, expr)
            return lambda scope: _native(expr(**scope))
        template = _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise ExpressionError(syntax_message(text, exc.message or "")) from None

    def render(scope: dict[str, Any]) -> str:
        out = template.render(scope)
        if len(out) > MAX_OUTPUT:
            raise ExpressionError("the expression produced more than 1 MB of text")
        return out

    return render


_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")


def _plain_path(source: str) -> tuple[str, ...] | None:
    """`item.body.id` as its names, for a whole expression that is only a dotted path of plain names."""
    return tuple(source.split(".")) if _PATH.fullmatch(source) else None


def _path_reader(path: tuple[str, ...], expr: Any) -> Evaluator:
    """`{{ item.body }}` without Jinja (a template context per call costs more than the rest of a node): walks the
    dicts key by key, which is what the sandbox does for a key that is there (`_Sandbox.getattr` reads keys first).
    Anything else (a missing key, a list, a name that is not in the scope) goes to the compiled expression, so the
    answer and the errors are always Jinja's."""
    first, rest = path[0], path[1:]

    def read(scope: dict[str, Any]) -> Any:
        value = scope.get(first, _ABSENT)
        for name in rest:
            if type(value) is not dict or name not in value:
                return _native(expr(**scope))
            value = value[name]
        if value is _ABSENT or isinstance(value, Undefined | range):
            return _native(expr(**scope))
        return value

    return read


_ABSENT: Any = object()


def _native(value: Any) -> Any:
    if isinstance(value, Undefined):
        return None
    if isinstance(value, range):
        return list(value)
    return value


def compile_value(value: Any) -> Callable[[dict[str, Any]], Any] | None:
    """Compile a JSON config value into an evaluator, or None if it holds no expression."""
    if isinstance(value, str):
        return compile_string(value) if _MARK.search(value) else None
    if isinstance(value, dict):
        parts = {k: compile_value(v) for k, v in value.items()}
        if not any(parts.values()):
            return None
        fixed = {k: v for k, v in value.items() if parts[k] is None}
        live = [(k, f) for k, f in parts.items() if f is not None]

        def eval_dict(scope: dict[str, Any]) -> dict[str, Any]:
            out = dict(fixed)
            for key, fn in live:
                out[key] = fn(scope)
            return out

        return eval_dict
    if isinstance(value, list):
        items = [compile_value(v) for v in value]
        if not any(items):
            return None
        pairs = list(zip(value, items, strict=True))
        return lambda scope: [f(scope) if f is not None else v for v, f in pairs]
    return None


def evaluate(fn: Evaluator, scope: dict[str, Any]) -> Any:
    try:
        return fn(scope)
    except ExpressionError:
        raise
    except SecurityError as exc:
        raise ExpressionError(f"not allowed in an expression: {exc}") from None
    except (UndefinedError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ExpressionError(runtime_message(exc)) from None
    except Exception as exc:
        raise ExpressionError(f"the expression failed: {runtime_message(exc)}") from None


def expression_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Locations inside a config value that hold expressions (for plan-time checks)."""
    if isinstance(value, str):
        return [path] if _MARK.search(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in expression_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in expression_paths(v, (*path, i))]
    return []


def referenced_nodes(text: str) -> set[str]:
    """Node names or ids an expression string reads as `nodes['Look up']`, `nodes["x"]` or `nodes.x`."""
    try:
        ast = _ENV.parse(text)
    except TemplateSyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.find_all((nodes.Getitem, nodes.Getattr)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "nodes"):  # type: ignore[attr-defined]
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found


def referenced_names(text: str) -> set[str]:
    """Top-level names an expression string reads (for the editor's picker and for checks)."""
    try:
        ast = _ENV.parse(text)
    except TemplateSyntaxError:
        return set()
    return {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
