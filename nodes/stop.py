"""Stop with error: end the run as failed, with a message in your words (and start the error flow, if one is set)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, NodeError, NodeType, Outputs


class StopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="Why the run stops, e.g. Not enough days left for "
                         "{{ item.employee }}")


class StopWithError(NodeType):
    """Fails the run on purpose when items reach it; a branch that is not taken does not stop anything."""

    type = "logic.stop"
    title = "Stop with error"
    category = Category.logic
    icon = "report"
    description = "End the run as failed, with your message."
    outputs = ()
    Config = StopConfig

    async def run(self, ctx: Context, config: StopConfig, inputs: Inputs) -> Outputs:
        raise NodeError(config.message, item_index=0)
