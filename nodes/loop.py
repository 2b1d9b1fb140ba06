"""Loop over items: the items in batches of N, each batch run through the loop's body, the results collected.

n8n draws this as a node whose "loop" output is wired back into its own input (Loop Over Items, formerly Split in
Batches). Flowboard's flows are acyclic graphs, checked before a run, so the body is a flow of its own: the flow this
node calls once per batch, one batch after the other, with the Call flow machinery (a recorded child run per batch,
its errors and cancellation passed back, calls in a circle refused when the flow is switched on). The body starts
with *When called by another flow*; the items its last node gives are collected, in batch order, on `done`.
docs/engine.md ("Loops") says why it is built this way.
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, Item, NodeError, NodeType, Outputs, Suspend


class LoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str = Field(
        min_length=1, title="Flow for each batch", description="The flow each batch runs through (the loop's body), "
        "by its name, e.g. Send one batch. It starts with 'When called by another flow'.",
        json_schema_extra={"widget": "flow", "expressions": False})
    batch_size: int = Field(10, ge=1, le=10_000, description="How many items go through the body at once",
                            json_schema_extra={"expressions": False})
    pause_seconds: float = Field(
        0, ge=0, le=3600, title="Pause between batches (seconds)", description="How long to wait between two "
        "batches, e.g. to stay under an API's rate limit (0: go on at once)", json_schema_extra={"expressions": False})


class Loop(NodeType):
    """Runs a flow once per batch of items and collects what each batch gave."""

    type = "logic.loop"
    title = "Loop over items"
    category = Category.logic
    icon = "repeat"
    description = "Send the items through another flow in batches of N, one batch after the other, and collect " \
                  "the results."
    outputs = ("done",)
    Config = LoopConfig
    side_effects = True  # the body may change the world: a crash never runs the batches twice

    async def run(self, ctx: Context, config: LoopConfig, inputs: Inputs) -> Outputs:
        items = list(inputs.get("main") or [])
        size = config.batch_size
        count = (len(items) + size - 1) // size
        done: list[Item] = []
        for number, start in enumerate(range(0, len(items), size), 1):
            if number > 1 and config.pause_seconds:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.cancelled.wait(), config.pause_seconds)
            ctx.check_cancelled()
            where = f"batch {number} of {count} (items {start + 1} to {min(start + size, len(items))})"
            try:
                done.extend(await ctx.flows.call(config.flow, items[start:start + size]))
            except Suspend:
                raise NodeError(f"{where}: the flow {config.flow!r} waits (for an approval or a long wait), and a "
                                "loop's body must finish by itself. Put the waiting after the loop, or call that "
                                "flow with a Call flow node.") from None
            except NodeError as exc:
                raise NodeError(f"{where}: {exc}", data=exc.data) from None
            ctx.log.info("%s: done", where)
            ctx.progress(len(done), f"{number} of {count} batches done", done)
        return {"done": done}
