"""Data table: find, add, change and remove rows of one of Flowboard's own data tables (the Tables page).

Each input item gets the node's settings rendered for it (`{{ item.employee }}` in a condition), so one node looks up
or changes the rows that belong to each item. "Change a number safely" is the atomic conditional update: `take 3 from
days_left where employee is ada and days_left is at least 3` either applies completely or not at all, and two runs at
the same moment can never both spend the same days. Its items say whether it applied (`applied`), so an If node can
route "not enough days" elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import (
    Category,
    Context,
    Inputs,
    Item,
    NodeError,
    NodeType,
    Outputs,
    TableChange,
    TableCondition,
    TableSort,
    plain,
)

TABLE = {"widget": "table"}  # the editor offers the data tables by name
COLUMN = {"widget": "table_column", "table_field": "table"}  # ... and the chosen table's columns


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnValue(_Strict):
    column: str = Field(description="The column to fill", json_schema_extra=COLUMN)
    value: Any = Field(default=None, description="Its value, e.g. {{ item.days }}")


Conditions = Annotated[list[TableCondition], Field(
    default_factory=list, description="Which rows: each condition compares a column with a value, e.g. employee is "
    "{{ item.employee }}. No condition means every row.")]
Match = Annotated[Literal["all", "any"], Field(
    "all", description="all: a row must meet every condition. any: meeting one is enough.",
    json_schema_extra={"widget": "select", "labels": {"all": "every condition", "any": "any condition"}})]


class Find(_Strict):
    operation: Literal["find"] = Field(title="Find", description="Find rows")
    conditions: Conditions
    match: Match
    sort: list[TableSort] = Field(default_factory=list, description="The order of the rows found")
    limit: int = Field(50, ge=1, le=10_000, description="At most this many rows per item")


class Add(_Strict):
    operation: Literal["insert"] = Field(title="Add", description="Add rows")
    values: list[ColumnValue] = Field(default_factory=list, description="The new row's values. Leave empty to take "
                                      "every field of the item whose name is a column.")


class Update(_Strict):
    operation: Literal["update"] = Field(title="Change", description="Change rows")
    conditions: Conditions
    match: Match
    values: list[ColumnValue] = Field(min_length=1, description="The new values of the rows found")


class Upsert(_Strict):
    operation: Literal["upsert"] = Field(title="Add or change", description="Add or change rows by the key column")
    values: list[ColumnValue] = Field(default_factory=list, description="The row's values, with the key column. "
                                      "Leave empty to take every field of the item whose name is a column.")


class Delete(_Strict):
    operation: Literal["delete"] = Field(title="Remove", description="Remove rows")
    conditions: list[TableCondition] = Field(min_length=1, description="Which rows to remove, e.g. employee is "
                                             "{{ item.employee }}")
    match: Match


class ChangeSafely(_Strict):
    operation: Literal["change"] = Field(title="Change a number",
                                         description="Change a number safely (only if a condition holds)")
    conditions: Conditions
    match: Match
    changes: list[TableChange] = Field(min_length=1, description="What to change, e.g. days_left decrease by "
                                       "{{ item.days }}")


Operation = Annotated[Find | Add | Update | Upsert | Delete | ChangeSafely, Field(discriminator="operation")]


class TableConfig(_Strict):
    table: str = Field(min_length=1, description="The data table, as named on the Tables page",
                       json_schema_extra=TABLE)
    action: Operation = Field(default_factory=lambda: Find(operation="find"), json_schema_extra={"widget": "union"})


class DataTable(NodeType):
    """Reads and writes one of Flowboard's data tables."""

    type = "data.table"
    common = True
    title = "Data table"
    category = Category.integration
    icon = "table_chart"
    description = "Find, add, change or remove rows of a data table (see the Tables page)."
    Config = TableConfig
    side_effects = True

    @classmethod
    def name_for(cls, config: Mapping[str, Any]) -> str | None:
        table = plain(config.get("table"))
        action = config.get("action")
        operation = action.get("operation", "find") if isinstance(action, dict) else "find"
        words = {"find": "Find rows in", "insert": "Add rows to", "update": "Change rows in",
                 "upsert": "Add or change rows in", "delete": "Remove rows from", "change": "Change numbers in"}
        return f"{words.get(operation, 'Use')} {table}" if table else None

    @classmethod
    def suggest(cls, config: Mapping[str, Any], fields: Mapping[str, Any], others: Sequence[Mapping[str, Any]],
                tables: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """The table, when there is only one; and for finding rows without a condition yet: the rows whose column
        is the items' field of the same name, the key column first (employee is {{ item.employee }})."""
        tables = tables or {}
        out: dict[str, Any] = {}
        table = config.get("table")
        if not table and len(tables) == 1:
            table = out["table"] = next(iter(tables))
        action = config.get("action")
        action = action if isinstance(action, Mapping) else {}
        if action.get("operation", "find") != "find" or action.get("conditions") or not isinstance(table, str):
            return out
        column = next((c for c in tables.get(table, ()) if f".{c}" in fields and c.isidentifier()), None)
        if column is not None:
            out["action"] = {"operation": "find", "conditions": [
                {"column": column, "op": "is", "value": f"{{{{ item.{column} }}}}"}]}
        return out

    @classmethod
    def changes_world(cls, config: Mapping[str, Any]) -> bool:
        action = config.get("action")
        return not (action is None or (isinstance(action, dict) and action.get("operation", "find") == "find"))

    async def run(self, ctx: Context, config: TableConfig, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        tables = ctx.tables
        action = config.action
        if isinstance(action, (Add, Upsert)):
            columns: set[str] | None = None
            if not action.values:  # the item's fields that are columns
                schema = await tables.schema(config.table)
                columns = {c["name"] for c in schema["columns"]}
            rows = [_row(item, cfg.action, columns) for _, item, cfg in ctx.each(items)]
            done = await (tables.insert(config.table, rows) if isinstance(action, Add)
                          else tables.upsert(config.table, rows))
            return done
        out: list[Item] = []
        for index, item, cfg in ctx.each(items):
            act = cfg.action
            try:
                if isinstance(act, Find):
                    out += await tables.find(cfg.table, act.conditions, sort=act.sort, limit=act.limit,
                                             match=act.match)
                elif isinstance(act, Update):
                    out += await tables.update(cfg.table, act.conditions, _values(act.values), match=act.match)
                elif isinstance(act, Delete):
                    out += await tables.delete(cfg.table, act.conditions, match=act.match)
                elif isinstance(act, ChangeSafely):
                    rows = await tables.change(cfg.table, act.conditions, act.changes, match=act.match)
                    out.append({**item, "applied": bool(rows), "rows": rows})
            except NodeError as exc:
                if exc.item_index is None:
                    exc.item_index = index
                raise
        return out


def _values(values: list[ColumnValue]) -> Item:
    return {v.column: v.value for v in values}


def _row(item: Item, action: Any, columns: set[str] | None) -> Item:
    if action.values or columns is None:
        return _values(action.values)
    return {k: v for k, v in item.items() if k in columns}
