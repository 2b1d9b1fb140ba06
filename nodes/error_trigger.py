"""Error trigger: starts an error flow when a run of another flow fails.

A flow names its error flow in its settings (`settings.error_flow`: the error flow's id). When a run of it ends
`failed`, the error flow runs from its Error trigger (active or not) with one item::

    {"flow": {"id", "name"}, "run": {"id", "started", "finished", "source"},
     "error": {"node_id", "node_name", "message"}, "items": [...the failed node's input items...]}

Times are ISO 8601 in UTC. No credentials and no node settings are ever part of it. A run started by an Error
trigger never starts an error flow itself, so a failing error flow cannot loop.
"""

from __future__ import annotations

from flowboard.sdk import Category, Context, EmptyConfig, Inputs, NodeType, Outputs

EXAMPLE = {
    "flow": {"id": "example", "name": "Example flow"},
    "run": {"id": "0" * 32, "started": "2025-01-01T09:00:00+00:00", "finished": "2025-01-01T09:00:01+00:00",
            "source": "schedule"},
    "error": {"node_id": "call_api", "node_name": "Call the API", "message": "this is an example error"},
    "items": [{"example": True}],
}


class ErrorTrigger(NodeType):
    """Starts this flow when a run of another flow fails, if that flow names this one as its error flow (flow
    settings: error flow). The item tells which flow, which run and which node failed, with the error message and
    the items the node was given: `{"flow": {"id", "name"}, "run": {"id", "started", "finished", "source"},
    "error": {"node_id", "node_name", "message"}, "items": [...]}`. The error flow need not be active. Its own
    failures start no error flow (no loops). Run by hand, it starts with an example item."""

    type = "trigger.error"
    title = "Error trigger"
    category = Category.trigger
    icon = "report"
    description = "Start this flow when a run of another flow fails."
    inputs = ()
    Config = EmptyConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself

    async def run(self, ctx: Context, config: EmptyConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [dict(EXAMPLE)]
