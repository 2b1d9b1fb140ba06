"""Rules: a decision table kept as a data table, applied to each item, so "invoices above 5,000 need two approvers
from finance" is a row that people edit on the Tables page, and every flow that uses the table follows it.

How a rules table reads. Each row is a rule, tried in the table's order (its row numbers). A column whose name ends
with a condition is a condition on the item's field of that name; the other columns are what the rule decides::

    amount is greater than or equal to | department is | approvers | approver_role
    0                                  |               | 1         | manager
    5000                               |               | 2         | finance
    5000                               | research      | 3         | director

An empty condition cell means "any". The conditions are the words of the Filter and Data table nodes (`is`,
`is not`, `is greater than`, `is less than or equal to`, `contains`, `starts with`, `is one of`, ...). With "first
match" an item gets the first matching rule's decisions (with "all matches", one item per matching rule, in order);
items no rule matches leave by the `unmatched` output.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, Item, NodeError, NodeType, Outputs, TableOp

OPS = sorted((op for op in TableOp if op not in (TableOp.empty, TableOp.not_empty)), key=lambda o: -len(o.value))
SYSTEM = ("id", "created_at", "updated_at")


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(min_length=1, description="The data table that holds the rules, e.g. Invoice rules",
                       json_schema_extra={"widget": "table", "expressions": False})
    match: Literal["first", "all"] = Field(
        "first", description="first: the first rule that matches decides. all: every matching rule, one item each.",
        json_schema_extra={"widget": "select", "labels": {"first": "First matching rule",
                                                          "all": "All matching rules"}})


class Rules(NodeType):
    """Applies a rules table (conditions on item fields → decisions) to every item."""

    type = "logic.rules"
    title = "Rules"
    category = Category.logic
    icon = "rule"
    description = "Decide with a rules table that people edit on the Tables page (first or all matching rules)."
    outputs = ("matched", "unmatched")
    Config = RulesConfig

    async def run(self, ctx: Context, config: RulesConfig, inputs: Inputs) -> Outputs:
        schema = await ctx.tables.schema(config.table)
        conditions, decisions = read_columns(schema)
        if not conditions:
            raise NodeError(f"the table {config.table!r} has no condition columns: name at least one column after a "
                            "field and a condition, e.g. 'amount is greater than or equal to'")
        rows = await ctx.tables.find(config.table, limit=10_000)
        matched: list[Item] = []
        unmatched: list[Item] = []
        for item in inputs.get("main") or []:
            hits = [row for row in rows if all(_holds(item.get(field), op, row.get(column), kind)
                                               for column, field, op, kind in conditions)]
            if not hits:
                unmatched.append(item)
            for row in hits[:1] if config.match == "first" else hits:
                matched.append({**item, **{name: row.get(name) for name in decisions}, "rule": row["id"]})
        return {"matched": matched, "unmatched": unmatched}


def read_columns(schema: dict[str, Any]) -> tuple[list[tuple[str, str, TableOp, str]], list[str]]:
    """(condition columns as (column, field, op, type), decision column names) of a rules table's schema."""
    conditions, decisions = [], []
    for column in schema["columns"]:
        name = column["name"]
        op = next((o for o in OPS if name.endswith(" " + o.value) and len(name) > len(o.value) + 1), None)
        if op is None:
            decisions.append(name)
        else:
            conditions.append((name, name[: -len(op.value) - 1].strip(), op, column["type"]))
    return conditions, decisions


def _holds(value: Any, op: TableOp, cell: Any, kind: str) -> bool:
    if cell is None or cell == "":
        return True  # an empty cell: any value
    if op is TableOp.one_of:
        options = cell if isinstance(cell, list) else [c.strip() for c in str(cell).split(",")]
        return _text(value) in {_text(o) for o in options}
    if op in (TableOp.contains, TableOp.starts, TableOp.ends):
        text, needle = _text(value).lower(), _text(cell).lower()
        return needle in text if op is TableOp.contains else (
            text.startswith(needle) if op is TableOp.starts else text.endswith(needle))
    left, right = (_number(value), _number(cell)) if kind == "number" else (value, cell)
    if left is None:
        return op is TableOp.ne
    if op is TableOp.eq:
        return _text(left) == _text(right) if kind != "number" else left == right
    if op is TableOp.ne:
        return _text(left) != _text(right) if kind != "number" else left != right
    try:
        if op is TableOp.gt:
            return bool(left > right)
        if op is TableOp.ge:
            return bool(left >= right)
        if op is TableOp.lt:
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(str(value).replace(",", "")) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()
