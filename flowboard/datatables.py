"""Data tables, the words: column types, a table's schema, the conditions of a find, and how a value becomes a
column's value. Knows neither SQL nor NiceGUI: the store keeps the rows (`store/datatables.py`), the grid, the nodes
and the API all read and check values through this one module, so they refuse the same things with the same words.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RESERVED = ("id", "created_at", "updated_at")  # every row has these; no column may take their names
NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")


class ColumnType(StrEnum):
    text = "text"
    number = "number"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"
    choice = "choice"
    user = "user"
    json = "json"


TYPE_WORDS = {
    ColumnType.text: "text",
    ColumnType.number: "a number",
    ColumnType.boolean: "yes or no",
    ColumnType.date: "a date (2026-12-24)",
    ColumnType.datetime: "a date and time (2026-12-24 09:30)",
    ColumnType.choice: "one of the choices",
    ColumnType.user: "a user name",
    ColumnType.json: "JSON data",
}


class ValueInvalid(ValueError):
    """A value does not fit its column; the message is a plain sentence naming the column. `problems` holds each
    problem when there are several (a row's values), so callers can prefix them with where they are."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


class Column(BaseModel):
    """One column. `key` (in the table) makes it unique and required; rows are found and upserted by it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The column's name, as people and expressions use it, e.g. days_left")
    type: ColumnType = Field(default=ColumnType.text, description="What the column holds")
    required: bool = Field(default=False, description="Every row must have a value here")
    unique: bool = Field(default=False, description="No two rows may have the same value here")
    indexed: bool = Field(default=False, description="Finds by this column stay fast on large tables")
    default: Any = Field(default=None, description="The value a new row gets when it has none")
    choices: list[str] = Field(default_factory=list, description="The allowed values of a choice column")
    #: The column's name in the database: stable through renames, never shown. Given by the store.
    storage: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not NAME.match(value):
            raise ValueError("a column name has 1 to 64 characters and no control characters")
        if value.lower() in RESERVED:
            raise ValueError(f"{value!r} is kept for every row's own field; choose another column name")
        return value

    @model_validator(mode="after")
    def _check(self) -> Column:
        if self.type is ColumnType.choice and not self.choices:
            raise ValueError(f"the choice column {self.name!r} needs at least one choice")
        if self.default is not None:
            self.default = convert(self.default, self)
        return self


class TableSchema(BaseModel):
    """A table's name and columns. `key` names the column rows are looked up and upserted by (optional)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The table's name, e.g. Employees")
    columns: list[Column] = Field(default_factory=list)
    key: str | None = Field(default=None, description="The column that identifies a row, e.g. employee")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not NAME.match(value):
            raise ValueError("a table name has 1 to 64 characters and no control characters")
        return value

    @model_validator(mode="after")
    def _check(self) -> TableSchema:
        seen: set[str] = set()
        for column in self.columns:
            if column.name.lower() in seen:
                raise ValueError(f"two columns are called {column.name!r}; column names must differ")
            seen.add(column.name.lower())
        if self.key is not None:
            key = self.column(self.key)
            if key is None:
                raise ValueError(f"the key column {self.key!r} is not one of the columns")
            key.unique = key.required = True
        return self

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def plain_errors(exc: ValidationError) -> str:
    """A schema's validation errors as plain sentences: `columns.2.name: a column name has ...`."""
    out = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {message}" if where else message)
    return "; ".join(out)


# -- values ----------------------------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "y", "1", "on", "ja", "oui", "si"}
_FALSE = {"false", "no", "n", "0", "off", "nein", "non"}


def convert(value: Any, column: Column) -> Any:
    """`value` as `column` stores it, or ValueInvalid in plain words. None and "" mean "no value"."""
    if value is None or (isinstance(value, str) and value.strip() == "" and column.type is not ColumnType.text):
        return None
    kind = column.type
    try:
        if kind is ColumnType.text or kind is ColumnType.user:
            if isinstance(value, (dict, list)):
                raise ValueError
            return value if isinstance(value, str) else _plain(value)
        if kind is ColumnType.number:
            return _number(value)
        if kind is ColumnType.boolean:
            return _boolean(value)
        if kind is ColumnType.date:
            return _date(value)
        if kind is ColumnType.datetime:
            return _datetime(value)
        if kind is ColumnType.choice:
            text = str(value).strip()
            if text not in column.choices:
                raise ValueInvalid(f"{column.name}: {text!r} is not one of the choices ({', '.join(column.choices)})")
            return text
        if kind is ColumnType.json:
            if isinstance(value, str):
                return orjson.loads(value)
            orjson.dumps(value)
            return value
    except ValueInvalid:
        raise
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        pass
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ValueInvalid(f"{column.name}: {shown} is not {TYPE_WORDS[kind]}")


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        number: float | int = value
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):  # 1,234.5
            text = text.replace(",", "")
        number = float(text)
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError
        if number.is_integer() and abs(number) < 2**53:
            return int(number)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat() if len(text) >= 10 else dt.date.fromisoformat(
            text).isoformat()
    except ValueError:
        for fmt in ("%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y"):
            try:
                return dt.datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
        raise


def _datetime(value: Any) -> str:
    """ISO 8601 in UTC with a fixed shape (`2026-12-24T09:30:00Z`), so text order is time order."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip().replace(" ", "T", 1)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    shape = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(shape)


def convert_row(values: dict[str, Any], schema: TableSchema, *, partial: bool = False) -> dict[str, Any]:
    """A row's values checked against the schema: unknown columns and bad values are refused, all at once.
    `partial`: an update, so missing columns stay as they are and defaults are not applied."""
    problems = []
    out: dict[str, Any] = {}
    for name in values:
        if name in RESERVED:
            continue
        if schema.column(name) is None:
            known = ", ".join(c.name for c in schema.columns) or "none yet"
            problems.append(f"{name}: there is no such column in {schema.name} (its columns: {known})")
    for column in schema.columns:
        if column.name not in values:
            if not partial:
                out[column.name] = column.default
            continue
        try:
            out[column.name] = convert(values[column.name], column)
        except ValueInvalid as exc:
            problems.append(str(exc))
    if not partial:
        problems += [f"{c.name}: a value is required" for c in schema.columns if c.required and out.get(c.name) is None]
    else:
        problems += [f"{c.name}: a value is required" for c in schema.columns
                     if c.required and c.name in out and out[c.name] is None]
    if problems:
        raise ValueInvalid("; ".join(problems), problems)
    return out


# -- finding rows ----------------------------------------------------------------------------------------------------

class Op(StrEnum):
    eq = "is"
    ne = "is not"
    gt = "is greater than"
    ge = "is greater than or equal to"
    lt = "is less than"
    le = "is less than or equal to"
    contains = "contains"
    starts = "starts with"
    ends = "ends with"
    empty = "is empty"
    not_empty = "is not empty"
    one_of = "is one of"


NO_VALUE = (Op.empty, Op.not_empty)


class Condition(BaseModel):
    """`days_left` `is greater than or equal to` `3`."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The column to look at; id is the row's own number",
                        json_schema_extra={"widget": "table_column", "table_field": "table"})
    op: Op = Field(default=Op.eq, title="Comparison", description="How to compare")
    value: Any = Field(default=None, description="What to compare with (a list for 'is one of')")


class Sort(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The column to sort by", json_schema_extra={"widget": "table_column",
                                                                               "table_field": "table"})
    descending: bool = False


class Change(BaseModel):
    """One column's change in a conditional update: set it, or add to or take from a number."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The column to change", json_schema_extra={"widget": "table_column",
                                                                              "table_field": "table"})
    action: str = Field(default="set", pattern="^(set|increase by|decrease by)$", title="Change",
                        description="set it, increase by, or decrease by")
    value: Any = None


def check_conditions(conditions: list[Condition], schema: TableSchema) -> list[tuple[Column | None, Op, Any]]:
    """Conditions with their columns and converted values (None for the row id), or ValueInvalid naming each."""
    problems: list[str] = []
    out: list[tuple[Column | None, Op, Any]] = []
    for i, cond in enumerate(conditions, 1):
        value: Any
        if cond.column == "id":
            try:
                value = [int(v) for v in cond.value] if cond.op is Op.one_of else (
                    None if cond.op in NO_VALUE else int(cond.value))
            except (TypeError, ValueError):
                problems.append(f"condition {i}: the row id is a whole number")
                continue
            out.append((None, cond.op, value))
            continue
        column = schema.column(cond.column)
        if column is None:
            problems.append(f"condition {i}: there is no column {cond.column!r} in {schema.name}")
            continue
        if cond.op in (Op.contains, Op.starts, Op.ends) and column.type not in (
                ColumnType.text, ColumnType.user, ColumnType.choice, ColumnType.json):
            problems.append(f"condition {i}: {cond.op.value!r} works on text columns, and {column.name} holds "
                            f"{TYPE_WORDS[column.type]}")
            continue
        try:
            if cond.op in NO_VALUE:
                value = None
            elif cond.op is Op.one_of:
                values = cond.value if isinstance(cond.value, list) else [
                    v.strip() for v in str(cond.value).split(",")]
                value = [convert(v, column) for v in values]
            elif cond.op in (Op.contains, Op.starts, Op.ends):
                value = str(cond.value if cond.value is not None else "")
            else:
                value = convert(cond.value, column)
                if value is None:
                    problems.append(f"condition {i}: give a value to compare {column.name} with, or use 'is empty'")
                    continue
        except ValueInvalid as exc:
            problems.append(f"condition {i}: {exc}")
            continue
        out.append((column, cond.op, value))
    if problems:
        raise ValueInvalid("; ".join(problems))
    return out


def row_matches(row: dict[str, Any], conditions: list[Condition], schema: TableSchema, match: str = "all") -> bool:
    """Whether `row` (as the store gives it) meets the conditions, decided in Python the way the database would."""
    checked = check_conditions(conditions, schema)
    results = []
    for column, op, value in checked:
        current = row.get("id") if column is None else row.get(column.name)
        results.append(_holds(current, op, value))
    if not results:
        return True
    return any(results) if match == "any" else all(results)


def _holds(current: Any, op: Op, value: Any) -> bool:
    if op is Op.empty:
        return current is None or current == ""
    if op is Op.not_empty:
        return not (current is None or current == "")
    if op is Op.ne:
        return current != value
    if op is Op.one_of:
        return current in value
    if current is None:
        return False
    if op is Op.eq:
        return bool(current == value)
    if op in (Op.contains, Op.starts, Op.ends):
        text = (current if isinstance(current, str) else orjson.dumps(current).decode()).lower()
        needle = str(value).lower()
        return needle in text if op is Op.contains else (
            text.startswith(needle) if op is Op.starts else text.endswith(needle))
    try:
        if op is Op.gt:
            return bool(current > value)
        if op is Op.ge:
            return bool(current >= value)
        if op is Op.lt:
            return bool(current < value)
        return bool(current <= value)
    except TypeError:
        return False
