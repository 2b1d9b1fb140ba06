"""Sub-flows: business rules kept in ONE flow that many flows call.

*When called by another flow* is the called flow's trigger: it declares the fields its items must have (its inputs),
so a caller that forgets one gets a clear error before anything runs. *Call flow* runs a stored flow with the items
it receives: it waits and passes on that flow's result (its last node's items), or starts it and goes on at once.
A change saved to the called flow reaches every caller on its next call. Calls cannot loop: a flow that calls itself
(directly or round a circle of flows) is refused when it is switched on, and calls nested deeper than a limit stop
with an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, NodeError, NodeType, Outputs, plain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Input(_Strict):
    name: str = Field(min_length=1, description="The field's name, e.g. amount")
    required: bool = Field(True, description="A caller must give it")
    description: str = Field("", description="What it is, for the people who call this flow")


class CalledConfig(_Strict):
    inputs: list[Input] = Field(default_factory=list, description="The fields each item from a caller must have. "
                                "Empty: any items are taken.", json_schema_extra={"expressions": False})


class Called(NodeType):
    """The start of a flow that other flows call with the Call flow node."""

    type = "trigger.called"
    title = "When called by another flow"
    category = Category.trigger
    icon = "call_received"
    description = "Start this flow when another flow calls it (Call flow node), with that flow's items."
    inputs = ()
    Config = CalledConfig

    async def run(self, ctx: Context, config: CalledConfig, inputs: Inputs) -> Outputs:
        items = list(inputs.get("main") or [])
        missing = [(i, field.name) for i, item in enumerate(items) for field in config.inputs
                   if field.required and item.get(field.name) in (None, "")]
        if missing:
            index, name = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NodeError(f"item {index + 1} has no {name!r}, which this flow needs from its callers{more}",
                            item_index=index)
        return items or [{}]


class CallConfig(_Strict):
    flow: str = Field(min_length=1, description="The flow to run, by its name (or id), e.g. Invoice rules",
                      json_schema_extra={"widget": "flow", "expressions": False})
    mode: Literal["wait", "start"] = Field(
        "wait", description="wait: run it and pass on its result. start: start it and go on at once (its result "
        "is not waited for).", json_schema_extra={"widget": "select", "labels": {
            "wait": "Wait for its result", "start": "Start it and go on"}})


class CallFlow(NodeType):
    """Runs another stored flow with this node's items."""

    type = "logic.call_flow"
    title = "Call flow"
    category = Category.logic
    icon = "call_made"
    description = "Run another flow with these items and pass on its result: rules kept in one place, used by many."
    Config = CallConfig
    side_effects = True  # the called flow may change the world: never run twice after a crash

    @classmethod
    def name_for(cls, config: Mapping[str, Any]) -> str | None:
        flow = plain(config.get("flow"))
        return f"Run {flow}" if flow else None

    async def run(self, ctx: Context, config: CallConfig, inputs: Inputs) -> Outputs:
        return await ctx.flows.call(config.flow, list(inputs.get("main") or []), wait=config.mode == "wait")

    async def resume(self, ctx: Context, config: CallConfig, inputs: Inputs, payload: Any) -> Outputs:
        """The called flow parked and has now ended: its result (or its error)."""
        if not isinstance(payload, dict):  # a deadline cannot resume this node; kept for safety
            raise NodeError(f"the called flow {config.flow!r} did not end")
        if payload.get("status") != "succeeded":
            error = payload.get("error") or {}
            where = f" at node {error['node_id']!r}" if error.get("node_id") else ""
            raise NodeError(f"the called flow {config.flow!r} {payload.get('status')}{where}: "
                            f"{error.get('message', 'no message')}", data={"run_id": payload.get("run_id")})
        return list(payload.get("output") or [])
