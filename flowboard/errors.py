"""Typed errors. Each carries where it happened, so the editor and the CLI can point at it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow: where (`nodes[3].config.url`) and what, in plain words."""

    loc: str
    message: str
    node_id: str | None = None

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message

    def as_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "message": self.message, "node_id": self.node_id}


class FlowboardError(Exception):
    """Base of every error Flowboard raises on purpose."""


class FlowInvalid(FlowboardError):
    """The flow cannot run or be saved; `problems` lists every reason at once."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NodeError(FlowboardError):
    """A node failed. Raise it from `run()` for a clean message; any other exception is wrapped in one.
    `retryable=False` says that trying again would fail the same way (bad input, a refused request): the node's
    retries are skipped."""

    retryable: bool = True

    def __init__(self, message: str, *, item_index: int | None = None, field: str | None = None,
                 node_id: str | None = None, data: Any = None, retryable: bool | None = None):
        if retryable is not None:
            self.retryable = retryable
        self.message = message
        self.item_index = item_index
        self.field = field
        self.node_id = node_id
        self.data = data
        super().__init__(message)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        for key in ("node_id", "item_index", "field"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


class ExpressionError(NodeError):
    """An expression could not be read or evaluated. The same data gives the same error: never retried."""

    retryable = False


class RunCancelled(FlowboardError):
    """The run was cancelled by a user."""


_PLAIN = {
    "extra_forbidden": "is not a known field; remove it or check its spelling",
    "missing": "is required",
    "string_pattern_mismatch": "has characters that are not allowed here",
    "url_parsing": "is not a valid URL",
    "url_scheme": "is not a valid URL (it must start with http:// or https://)",
    "int_parsing": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
}


_BOUNDS = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "too_short": "must have at least {min_length} entries",
    "too_long": "must have at most {max_length} entries",
}


def format_loc(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation(exc: ValidationError, data: Any = None, prefix: Sequence[str | int] = (),
                             node_id: str | None = None) -> list[Problem]:
    """Turn pydantic's errors into located, plain-word problems."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        kind = err["type"]
        message = _PLAIN.get(kind)
        ctx = err.get("ctx", {})
        if kind in _BOUNDS:
            message = _BOUNDS[kind].format(**ctx)
        elif kind == "value_error":
            message = str(err.get("ctx", {}).get("error", err["msg"]))
        elif kind in ("literal_error", "enum"):
            message = f"must be one of {err.get('ctx', {}).get('expected', '')}"
        elif message is None:
            message = err["msg"][0].lower() + err["msg"][1:] if err["msg"] else kind
        nid = node_id
        if nid is None and len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int) and isinstance(data, dict):
            nodes = data.get("nodes")
            if isinstance(nodes, list) and loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
                found = nodes[loc[1]].get("id")
                nid = found if isinstance(found, str) else None  # an id that is not text names no node
        problems.append(Problem(format_loc([*prefix, *loc]), message, nid))
    return problems
