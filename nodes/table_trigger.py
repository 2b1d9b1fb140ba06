"""Table change trigger: starts an active flow when rows of a data table are added, changed or removed.

Every change, whoever makes it (the grid, the API, a CSV import, a Data table node), is written to the table's change
log in the same transaction as the change itself; the server reads that log in order and starts one run per change
that matches, claiming it in the database together with the run, so each change starts exactly one run: none is lost
in a crash, none runs twice. The run's item::

    {"event": "update", "table": "Employees", "row": {...new row...}, "old": {...row before...},
     "new": {...}, "changed": ["days_left"], "change_id": 812, "via": "grid", "depth": 1}

`row` is the new row (the old one for a removal). `depth` counts table-change runs that led to this one: a flow that
changes the table it listens to stops after a few rounds instead of looping forever.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs, TableCondition

Event = Literal["insert", "update", "delete"]


class TableTriggerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(min_length=1, description="The data table to watch, as named on the Tables page",
                       json_schema_extra={"widget": "table", "expressions": False})
    events: list[Event] = Field(default_factory=lambda: ["insert", "update", "delete"], min_length=1,
                                description="Which changes start the flow: rows added (insert), changed (update) or "
                                "removed (delete)", json_schema_extra={
                                    "widget": "chips", "expressions": False,
                                    "labels": {"insert": "a row is added", "update": "a row is changed",
                                               "delete": "a row is removed"}})
    columns: list[str] = Field(default_factory=list, description="Only when one of these columns changed (for "
                               "changed rows). Empty: any column.",
                               json_schema_extra={"widget": "table_column", "table_field": "table",
                                                  "expressions": False})
    conditions: list[TableCondition] = Field(default_factory=list, description="Only rows that meet every condition, "
                                             "e.g. status is approved (checked on the new row; on the removed row for "
                                             "removals)", json_schema_extra={"expressions": False})


class TableTrigger(NodeType):
    """Started by the server's table-change feed (flowboard/triggers/table.py); a manual run passes its items on."""

    type = "trigger.table"
    title = "Table change"
    category = Category.trigger
    icon = "table_view"
    description = "Start the flow when rows of a data table are added, changed or removed."
    inputs = ()
    Config = TableTriggerConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself

    async def run(self, ctx: Context, config: TableTriggerConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [_example(config)]


def _example(config: TableTriggerConfig) -> dict[str, Any]:
    """What a run started by hand gets: the shape of a real change, so the next nodes can be set up."""
    return {"event": config.events[0], "table": config.table, "row": {}, "old": None, "new": {}, "changed": [],
            "change_id": 0, "via": "manual", "depth": 0}
