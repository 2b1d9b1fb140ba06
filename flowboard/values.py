"""What node modules share (through `flowboard.sdk`): dotted paths into items (`get_path`), typed value reading
(`to_number`, `to_date`, `to_bool`, `to_text`), and the URL path type of the triggers that answer HTTP (`UrlPath`).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

# -- paths and typed values ------------------------------------------------------------------------------------------

MISSING: Any = object()
_INDEX = re.compile(r"\[(\d+)\]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})


@functools.lru_cache(maxsize=4096)
def split_path(path: str) -> tuple[str, ...]:
    """`order.lines[0].qty` → ('order', 'lines', '0', 'qty'). Cached: paths come from configs, a few per flow."""
    return tuple(part for part in _INDEX.sub(r".\1", path).split(".") if part != "")


def child(container: Any, part: str) -> Any:
    """One step down a path: a dict key, or a list index written as digits. MISSING when there is none."""
    if isinstance(container, dict):
        return container.get(part, MISSING)
    if isinstance(container, list) and part.isdigit():
        index = int(part)
        return container[index] if index < len(container) else MISSING
    return MISSING


def get_path(item: Any, path: str, default: Any = MISSING) -> Any:
    """The value at a dotted path (`order.lines[0].qty`, `items.0`), or `default` (MISSING unless given) when there is
    none. A top-level key that itself contains dots wins over the path."""
    if isinstance(item, dict) and path in item:
        return item[path]
    value = item
    for part in split_path(path):
        value = child(value, part)
        if value is MISSING:
            return default
    return value


def to_number(value: Any) -> int | float | None:
    """A number, or a text that is exactly one ("10", " 2.5 ", "1e3"); None otherwise. True/False are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if value == value else None  # NaN compares with nothing
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return float(text) if any(c in text for c in ".eE") else int(text)
    return None


def to_date(value: Any) -> datetime | None:
    """An ISO 8601 date or date-time (a time zone-less one is read as UTC), or "now"/"today"; None otherwise."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    word = text.lower()
    if word in ("now", "today"):
        now = datetime.now(UTC)
        return now if word == "now" else now.replace(hour=0, minute=0, second=0, microsecond=0)
    if not _ISO_DATE.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_bool(value: Any) -> bool | None:
    """True/False, 1/0, or a text such as "yes", "false", "on"; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if value is None or value is MISSING:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# -- URL paths -----------------------------------------------------------------------------------------------------

_PATH = re.compile(r"^[A-Za-z0-9_~\-][A-Za-z0-9._~\-]*(/[A-Za-z0-9_~\-][A-Za-z0-9._~\-]*)*$")


def _clean_path(value: Any) -> Any:
    return value.strip().strip("/") if isinstance(value, str) else value


def _check_path(value: str) -> str:
    if not _PATH.match(value) or any(part in (".", "..") for part in value.split("/")):
        raise ValueError("use letters, digits, '-', '_', '.' and '~', in parts separated by '/' (e.g. orders/new)")
    return value


#: A URL path a trigger answers on (webhook, form): surrounding slashes dropped, no `.` or `..` parts.
UrlPath = Annotated[str, BeforeValidator(_clean_path), AfterValidator(_check_path)]
