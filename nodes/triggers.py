"""Triggers: what starts a run. A trigger has no inputs; its output is the run's first items."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs


class ManualConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Test data: the items a run starts with when you press Run (one row per item, one column per "
                    "field).",
        json_schema_extra={"widget": "json"},
    )


class Manual(NodeType):
    """Starts the flow when you press Run in the editor, call the API or use `flowboard run`.

    The run's input items come out as they are; with no input, the configured test items (or one empty item)."""

    type = "trigger.manual"
    title = "Manual trigger"
    category = Category.trigger
    icon = "play_circle"
    description = "Start the flow by hand: the Run button, the API or the command line."
    inputs = ()
    Config = ManualConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself

    async def run(self, ctx: Context, config: ManualConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [dict(item) for item in config.items] or [{}]
