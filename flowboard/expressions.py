"""Expressions in config fields: `{{ item.email }}`, `{{ nodes['Look up'].items[0].days_left }}`.

This is the product's most sensitive boundary (n8n's worst vulnerabilities were expression escapes). Expressions run
in Jinja2's immutable sandbox over plain JSON data only: no attribute starting with `_`, no `format`, no callables
but JSON methods and a small set of filters, no globals, no file, module or environment access.

A string that is exactly one `{{ … }}` keeps the expression's native type (a number stays a number); a string that
mixes text and expressions renders to text. Everything is compiled once per flow version, at plan time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import markupsafe
from jinja2 import TemplateSyntaxError, Undefined, UndefinedError, filters, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import soft_str

from .errors import ExpressionError
from .expression_words import runtime_message, syntax_message
from .frozen import FrozenDict, size_of

_MARK = re.compile(r"{{|{%")
_WHOLE = re.compile(r"^\s*{{(.*)}}\s*$", re.DOTALL)
_FILTERS = ("abs", "capitalize", "default", "d", "dictsort", "first", "float", "groupby", "int", "join", "last",
            "length", "count", "list", "lower", "map", "max", "min", "replace", "reject", "rejectattr", "reverse",
            "round", "select", "selectattr", "slice", "sort", "string", "sum", "title", "tojson", "trim", "truncate",
            "unique", "upper", "batch", "wordcount", "items", "urlencode", "center", "indent", "striptags")
_TESTS_DROP = ("callable",)
#: Methods an expression may call on JSON values (a key of the same name wins: `item.items` is the key "items").
#: Everything else (`format`, `encode`, `to_bytes`, `expandtabs`, `translate`, every `_` name) is refused.
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset({"capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha",
                    "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust",
                    "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
                    "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
                    "swapcase", "title", "upper", "zfill"}),
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    int: frozenset({"is_integer", "bit_length"}),
    float: frozenset({"is_integer"}),
}

# What one evaluation of one config value (for one item) may do. Each limit is a plain message when exceeded; none
# needs a clock, so the same expression on the same data always gets the same answer, on any machine.
MAX_OUTPUT = 1_000_000  # characters of text, or the size (as JSON text) of any one value an expression builds
MAX_BUILT = 10_000_000  # everything it builds along the way, added up
MAX_STEPS = 10_000  # loop rounds and new lists and objects (1 each), filters (3 each) and calls (10 each)
MAX_DEPTH = 40  # calls inside calls (a macro calling itself)
MAX_DIGITS = 3000  # numbers it computes
_CALL_COST = 10
_FILTER_COST = 3
_SEQUENCES = (str, list, tuple, bytes)
_DATA = (str, dict, list, int, float)
_BUILT = (str, list, dict, tuple)
_INT_BITS = int(MAX_DIGITS * 3.33)


class _Missing(Undefined):
    """A missing field reads as None (rendered as empty text), as in n8n; only a chained lookup on it fails."""

    __slots__ = ()


class _Budget:
    """What is left of one evaluation's limits. `memo` keeps the size of every value built so far, so a value built
    from copies of itself (`[x, x]`, nested again and again) is measured in proportion to its parts, not its print."""

    __slots__ = ("built", "depth", "memo", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.built = MAX_BUILT
        self.depth = 0
        self.memo: dict[int, tuple[Any, int]] = {}

    def tick(self, cost: int = 1) -> None:
        self.steps -= cost
        if self.steps < 0:
            raise ExpressionError(f"this expression does too much work (more than {MAX_STEPS:,} loop rounds, filters "
                                  "and calls); make it do less, or split the work over several nodes")

    def measure(self, value: Any) -> int:
        return size_of(value, MAX_OUTPUT, self.memo)

    def charge(self, size: int) -> None:
        """Account for a value of `size` about to be built (or just built)."""
        if size > MAX_OUTPUT:
            raise ExpressionError("this expression would build a text, list or object of more than 1 MB; make it "
                                  "produce less")
        self.built -= size
        if self.built < 0:
            raise ExpressionError("this expression builds more than 10 MB along the way; make it do less")

    def remember(self, value: Any, size: int) -> Any:
        """Keep the size of a list just built, so building on it does not walk it again."""
        self.memo[id(value)] = (value, size)
        return value

    def new(self, value: Any) -> Any:
        self.tick()
        self.charge(self.measure(value))
        return value


_OUTSIDE: Any = object()  # no evaluation is going on (a constant folded at compile time): limits per operation only
_BUDGET: ContextVar[_Budget | None] = ContextVar("flowboard_expression_budget", default=_OUTSIDE)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # the first hook of this evaluation: its budget is made when first needed
        budget = _Budget()
        _BUDGET.set(budget)
    elif budget is _OUTSIDE:
        return _Budget()
    return budget


class _BoundedCode(CodeGenerator):
    """Jinja's code generator with a budget check in each loop round, each `~` concatenation and each list and
    object an expression writes: the places where a short template can do unbounded work without calling anything
    (calls, filters and operators are bounded in `_Sandbox`)."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None,
                               lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        target = node.node
        if isinstance(target, nodes.EnvironmentAttribute) and target.name == "bounded_iter":
            self.write("environment.bounded_iter(")
            self.visit(node.args[0], frame)
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.bounded_new(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.bounded_new(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "store":  # `{% for a, b in … %}`: a target, not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.bounded_new(")
        super().visit_Tuple(node, frame)
        self.write(")")


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCode

    # -- the hooks the generated code calls -------------------------------------------------------------------------

    def bounded_iter(self, iterable: Any) -> Iterator[Any]:
        budget = _budget()
        for value in iterable:
            budget.tick()
            yield value

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        budget = _budget()
        budget.charge(sum(len(p) if type(p) is str else budget.measure(p) for p in parts))
        return "".join([p if type(p) is str else str(p) for p in parts])

    def bounded_new(self, value: Any) -> Any:
        return _budget().new(value)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        if operator == "+":
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                if isinstance(left, str | bytes):
                    budget.charge(len(left) + len(right))
                else:
                    size = budget.measure(left) + budget.measure(right)
                    budget.charge(size)
                    return budget.remember(left + right, size)  # type: ignore[operator]
            return left + right
        if operator == "*":
            return _times(budget, left, right)
        if operator == "**":
            return _power(left, right)
        return _percent(budget, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick(_CALL_COST)
        if not __self.is_safe_callable(__obj):
            raise ExpressionError(_not_callable(__obj))
        owner = getattr(__obj, "__self__", None)
        if type(owner) is str:
            args = _check_text_method(budget, owner, __obj.__name__, args, kwargs)
        if budget.depth >= MAX_DEPTH:
            raise ExpressionError(f"calls in this expression go more than {MAX_DEPTH} levels deep (a macro that "
                                  "calls itself?); make it call less deep")
        budget.depth += 1
        try:
            if isinstance(owner, _DATA):  # a method of the data (safe: checked above)
                kwargs.pop("_loop_vars", None)  # what Jinja's Context.call would drop
                kwargs.pop("_block_vars", None)
                result = __obj(*args, **kwargs)
            else:
                result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        if isinstance(result, _BUILT):
            budget.charge(budget.measure(result))
        return result

    # -- what expressions may read ----------------------------------------------------------------------------------

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `nodes.lookup.items` means the key "items", not dict.items: JSON data reads keys first.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        if attribute.startswith("_"):  # `item._id` is a key (above); `__x__` and the rest are Python's inside
            if isinstance(obj, dict) and not attribute.startswith("__"):
                return self.undefined(obj=obj, name=attribute)  # a missing `_id` is missing, like any field
            return self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja answers an attribute it refuses with an undefined value; say so instead, in words
        raise ExpressionError(f"{attribute!r} cannot be used in an expression: only the data's own fields and a few "
                              "text methods (such as upper, split, replace) can")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        for kind in (str, dict, list, bool, int, float):
            if isinstance(obj, kind):
                return attr in _METHODS.get(kind, ()) and super().is_safe_attribute(obj, attr, value)
        return False  # only JSON data may be inspected

    def is_safe_callable(self, obj: Any) -> bool:
        if obj is _safe_range or obj is dict:  # the only globals
            return True
        owner = getattr(obj, "__self__", None)
        if not isinstance(owner, _DATA):
            return False
        return super().is_safe_callable(obj)


def _not_callable(obj: Any) -> str:
    if isinstance(obj, Undefined):
        return f"{obj._undefined_name!r} is not known in expressions, so it cannot be called"
    return ("this cannot be called in an expression: only range(), dict() and the methods of the data (such as "
            "upper, split or replace) can")


def _counted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts one step each time it is used (`map` uses filters once per element)."""

    @functools.wraps(fn)
    def counted(*args: Any, **kwargs: Any) -> Any:
        _budget().tick(_FILTER_COST)
        return fn(*args, **kwargs)

    return counted


def _times(budget: _Budget, left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _INT_BITS:
            raise ExpressionError(f"numbers in expressions are limited to about {MAX_DIGITS:,} digits")
    else:
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(count, int):
                if isinstance(seq, str | bytes):
                    budget.charge(len(seq) * max(count, 0))
                    break
                size = 2 + (budget.measure(seq) - 2) * max(count, 0)
                budget.charge(size)
                return budget.remember(left * right, size)
    return left * right


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 \
            and left.bit_length() * right > _INT_BITS:
        raise ExpressionError(f"numbers in expressions are limited to about {MAX_DIGITS:,} digits")
    if isinstance(right, int | float) and abs(right) > 100_000:
        raise ExpressionError("exponents above 100,000 are not allowed in expressions")
    return left**right


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _percent(budget: _Budget, left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes):
        widths = 0
        text = left if isinstance(left, str) else left.decode("latin-1")
        for match in _PERCENT.finditer(text):
            for part in match.groups():
                if part == "*":
                    raise ExpressionError("'%*' (a width taken from the values) is not allowed in expressions")
                if part:
                    widths += int(part) if len(part) < 8 else MAX_OUTPUT + 1
        budget.charge(len(left) + widths + budget.measure(right))
    return left % right


def _check_text_method(budget: _Budget, text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                       ) -> tuple[Any, ...]:
    """Methods of a text that can build far more than they are given: check what they would build first."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            budget.charge(max(width, len(text)))
    elif name == "join" and args:
        return (_parts(budget, args[0], len(text)), *args[1:])
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _check_replace(budget, text, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
    return args


def _parts(budget: _Budget, values: Any, separator: int) -> list[Any]:
    """The parts of a join, taken once (they may come from a generator) and counted as they come, so a join that
    would be too long stops at the part that makes it so, not after making every part."""
    parts: list[Any] = []
    total = 0
    for part in values:
        total += budget.measure(part) + separator
        if total > MAX_OUTPUT:
            budget.charge(total)  # refuses, with the size message
        parts.append(part)
    budget.charge(total)
    return parts


def _check_replace(budget: _Budget, text: str, old: str, new: str, count: Any = -1) -> None:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    budget.charge(len(text) + found * max(len(new) - len(old), 0))


# -- filters that can build more than they are given: checked first, then Jinja's own ----------------------------


def _center(value: Any, width: int = 80) -> str:
    if isinstance(width, int):
        _budget().charge(max(width, len(str(value))))
    return filters.do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _budget().charge(len(text) + (text.count("\n") + 1) * max(pad, 0))
    return filters.do_indent(text, width, first, blank)


@pass_eval_context
def _join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    return filters.sync_do_join(eval_ctx, _parts(_budget(), value, len(str(d))), d, attribute)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _check_replace(_budget(), str(s), str(old), str(new), -1 if count is None else count)
    return filters.do_replace(eval_ctx, s, old, new, count)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    if isinstance(slices, int) and slices > 10_000:
        raise ExpressionError("slice() makes at most 10,000 slices in expressions")
    return filters.sync_do_slice(value, slices, fill_with)


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if isinstance(linecount, int) and fill_with is not None:
        _budget().charge(linecount * _budget().measure(fill_with))
    return filters.do_batch(value, linecount, fill_with)


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    if isinstance(start, list | tuple | str):  # adding up lists one by one copies them over and over: add them once
        budget = _budget()
        values = list(iterable)
        if attribute is not None:
            get = filters.make_attrgetter(environment, attribute)
            values = [get(v) for v in values]
        budget.charge(budget.measure(start) + sum(budget.measure(v) for v in values))
        if all(isinstance(v, list | tuple) for v in values) and isinstance(start, list | tuple):
            return [*start, *(x for v in values for x in v)]
        return sum(values, start)
    return filters.sync_do_sum(environment, iterable, attribute, start)


def _string(value: Any) -> str:
    _budget().charge(_budget().measure(value))
    return soft_str(value)


@pass_environment
def _tojson(environment: Any, value: Any, indent: int | None = None) -> Any:
    _budget().charge(_budget().measure(value) * (2 if indent else 1))
    return filters.do_tojson(environment, value, indent)


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        _budget().charge(len(value) * 3)
    return _budget().new(filters.sync_do_list(value))


_BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _center, "indent": _indent, "join": _join, "replace": _replace, "slice": _slice, "batch": _batch,
    "sum": _sum, "string": _string, "tojson": _tojson, "list": _list,
}


def _finalize(value: Any) -> Any:
    """Every `{{ … }}` in a text is checked for size before it becomes text."""
    if type(value) is not str:
        budget = _budget()
        budget.charge(budget.measure(value))
    return value


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=_Missing, autoescape=False, keep_trailing_newline=True, finalize=_finalize)
    env.globals.clear()
    env.globals.update({"range": _safe_range, "dict": dict, "true": True, "false": False, "null": None})
    env.filters = {name: _counted(_BOUNDED_FILTERS.get(name, env.filters[name])) for name in _FILTERS
                   if name in env.filters}
    env.filters["escape"] = env.filters["e"] = _counted(_escape_html)
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
        ast = _ENV.parse(text)
        _refuse_features(ast)
        template = _ENV.template_class.from_code(_ENV, _ENV.compile(ast), _ENV.make_globals(None), None)
    except TemplateSyntaxError as exc:
        raise ExpressionError(syntax_message(text, exc.message or "")) from None

    def render(scope: dict[str, Any]) -> str:
        out: list[str] = []
        total = 0
        for chunk in template.generate(scope):  # counted as it is made: a runaway template stops at the limit
            total += len(chunk)
            if total > MAX_OUTPUT:
                raise ExpressionError("this expression would produce more than 1 MB of text; make it produce less")
            out.append(chunk)
        return "".join(out)

    return _text_with_paths(text, render) or render


_EMBEDDED = re.compile(r"{{[ \t]*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)[ \t]*}}")


def _text_with_paths(text: str, render: Evaluator) -> Evaluator | None:
    """`https://api/x?i={{ item.i }}`: text with plain dotted paths in it, joined without a Jinja context when every
    path reads a key that is there and holds text or a number (which Jinja writes with `str` as well). Anything
    else (a missing key, a list, a bool, a long result) renders the whole text through Jinja, so the answer and the
    errors are always Jinja's. None when the text is not of that form."""
    pieces = _EMBEDDED.split(text)
    literals = pieces[0::2]
    if len(pieces) < 3 or any("{" in part or "}" in part or "\r" in part for part in literals):
        return None
    paths = [tuple(source.split(".")) for source in pieces[1::2]]
    steps = [(literal, path[0], path[1:]) for literal, path in zip(literals, paths, strict=False)]
    tail = literals[-1]

    def join(scope: dict[str, Any]) -> str:
        out: list[str] = []
        for literal, first, rest in steps:
            value = scope.get(first, _ABSENT)
            for name in rest:
                if (type(value) is not FrozenDict and type(value) is not dict) or name not in value:
                    return render(scope)
                value = value[name]
            kind = type(value)
            if kind is str:
                out.append(literal)
                out.append(value)
            elif (kind is int and value.bit_length() < 64) or kind is float:
                out.append(literal)
                out.append(str(value))
            else:
                return render(scope)
        out.append(tail)
        joined = "".join(out)
        return joined if len(joined) <= MAX_OUTPUT else render(scope)

    return join


_FEATURES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Macro, "macros"), (nodes.CallBlock, "call blocks"), (nodes.Import, "imports"),
    (nodes.FromImport, "imports"), (nodes.Include, "includes"), (nodes.Extends, "extends"),
    (nodes.Block, "blocks"))


def _refuse_features(ast: nodes.Template) -> None:
    """Template features an expression in a config field has no use for, and that only widen what it can do."""
    for kind, words in _FEATURES:
        found = next(ast.find_all(kind), None)
        if found is not None:
            raise ExpressionError(f"expression syntax: {words} are not available in expressions (line "
                                  f"{found.lineno}); use a Set node for values you need more than once")


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
            if (type(value) is not FrozenDict and type(value) is not dict) or name not in value:
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
    """Evaluate a compiled config value for one scope, within one budget (`MAX_STEPS`, `MAX_OUTPUT`, …). Raises
    ExpressionError with a plain message for anything that goes wrong."""
    token = _BUDGET.set(None)
    try:
        return fn(scope)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("calls in this expression go too deep; make it call less deep") from None
    except MemoryError:
        raise ExpressionError("this expression needs too much memory; make it do less") from None
    except SecurityError as exc:
        raise ExpressionError(f"not allowed in an expression: {exc}") from None
    except (UndefinedError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ExpressionError(runtime_message(exc)) from None
    except Exception as exc:
        raise ExpressionError(f"the expression failed: {runtime_message(exc)}") from None
    finally:
        _BUDGET.reset(token)


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
