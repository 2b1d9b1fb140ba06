"""Reading JSON from outside: one reader with one set of limits for every place that takes it.

Flow files (CLI, UI and API imports), webhook bodies, form posts, pasted nodes and pinned items all come through
here, so a document that is too big, nested too deeply or not JSON at all is refused the same way everywhere, with
a message that says where: `line 3, column 14` for text, `nodes[0].config.body` for a nesting problem.

- Strict JSON only (orjson): `NaN`, `Infinity`, numbers too big for a double, lone surrogates, trailing commas and
  comments are refused at their place, never turned into null or a guess.
- Nesting: at most `MAX_DEPTH` levels of objects and lists. Deep documents are how a small request makes the
  recursive code after it (validation, expressions, copies, the UI's tree views) overflow its stack. The depth walk
  only runs when the text has more brackets than the limit, so small documents pay two `bytes.count` calls.
- Size: each place passes its own byte limit (a flow file 5 MB, a form 1 MB, a webhook its node's `max_body`).

docs/limits.md lists the limits.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from .errors import format_loc

MAX_DEPTH = 64


class JsonRefused(ValueError):
    """A document that is not taken: `loc` is where (a path or `line L, column C`), `status` the HTTP answer
    (400 malformed or too deep, 413 too big)."""

    def __init__(self, message: str, loc: str = "", status: int = 400):
        super().__init__(f"{loc}: {message}" if loc else message)
        self.message = message
        self.loc = loc
        self.status = status


def read_json(raw: bytes | str, *, max_bytes: int | None, max_depth: int = MAX_DEPTH,
              what: str = "the document") -> Any:
    """Parse `raw` as one strict JSON document within the limits, or raise JsonRefused saying where it is wrong.
    `max_bytes=None`: the caller counted the bytes already (a webhook, while reading the body)."""
    if max_bytes is not None:
        size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
        if size > max_bytes:
            raise JsonRefused(f"{what} is {size:,} bytes; it may be at most {max_bytes:,} bytes", status=413)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JsonRefused(_reason(exc, raw, what, max_depth)) from None
    if _bracket_count(raw) > max_depth:
        check_nesting(value, max_depth, what)
    return value


def check_nesting(value: Any, max_depth: int = MAX_DEPTH, what: str = "the document") -> None:
    """Refuse a parsed value nested deeper than `max_depth`, or holding NaN or an infinity (which arrive from places
    that parsed JSON leniently, or from Python): for values the UI and the API hand over already parsed."""
    path = _first_problem(value, max_depth)
    if path is None:
        return
    where, problem = path
    loc = format_loc(where[:8]) + ("…" if len(where) > 8 else "")
    if problem == "deep":
        raise JsonRefused(f"{what} is nested more than {max_depth} levels deep here; flatten it", loc)
    raise JsonRefused("NaN and Infinity are not JSON numbers; write a number or null", loc)


def _first_problem(value: Any, limit: int) -> tuple[list[str | int], str] | None:
    """The path to the first container past `limit` levels, or to the first non-finite number (recursion stops at
    `limit`, so Python's stack is never at risk)."""

    def walk(node: Any, depth: int) -> tuple[list[str | int], str] | None:
        if isinstance(node, dict):
            pairs: Any = node.items()
        elif isinstance(node, list | tuple):
            pairs = enumerate(node)
        elif isinstance(node, float) and not math.isfinite(node):
            return [], "nan"
        else:
            return None
        if depth > limit:
            return [], "deep"
        for key, child in pairs:
            if isinstance(child, dict | list | tuple | float):
                found = walk(child, depth + 1)
                if found is not None:
                    found[0].insert(0, key if isinstance(key, int) else str(key))
                    return found
        return None

    return walk(value, 1)


def _bracket_count(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def _too_deep_at(raw: bytes | str, end: int, max_depth: int) -> str | None:
    """Where the first bracket past `max_depth` opens (orjson stops only at its own limit of 1024 levels); a small
    scanner that skips strings. Runs only for a document refused for its depth."""
    text = raw if isinstance(raw, str) else raw[:end + 1].decode("utf-8", "replace")
    depth, line, column, in_string, escaped = 0, 1, 0, False, False
    for char in text[:end + 1]:
        column += 1
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return f"at line {line}, column {column}"
        elif char in "]}":
            depth -= 1
        elif char == "\n":
            line, column = line + 1, 0
    return None


def _reason(exc: orjson.JSONDecodeError, raw: bytes | str, what: str, max_depth: int) -> str:
    """orjson's message in plain words, with the line and column."""
    msg = str(exc.msg)
    at = f"at line {exc.lineno}, column {exc.colno}"
    if "zero-length" in msg:
        return f"this is not JSON: {what} is empty"
    if "UTF-8" in msg:
        return "this is not JSON: the bytes are not UTF-8 text"
    if "depth limit" in msg:
        return f"{what} is nested more than {max_depth} levels deep {_too_deep_at(raw, exc.pos, max_depth) or at}; " \
               "flatten it"
    if "infinity when parsed" in msg:
        return f"this is not JSON {at}: the number is too large"
    text = raw[exc.pos:exc.pos + 9] if isinstance(raw, str) else raw[exc.pos:exc.pos + 9].decode("latin-1")
    if text.lstrip("-").startswith(("NaN", "Infinity")):
        return f"this is not JSON {at}: NaN and Infinity are not JSON numbers; write a number or null"
    return f"this is not JSON {at}: {msg}"
