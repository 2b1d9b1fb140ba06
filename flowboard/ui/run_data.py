"""A run as the editor shows it: each node's state, input and output items, and the data expressions can see.

Steps store outputs only; a node's input items are its upstream steps' outputs along the flow's edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..engine import RunResult, Step, StepStatus, derive_inputs
from ..engine.lineage import Tracer, flat_inputs, in_edges_by_node
from ..engine.scope import node_name, nodes_scope
from ..model import Flow
from ..registry import Registry
from ..store import RunRecord, Store

Items = list[dict[str, Any]]
Statuses = dict[str, dict[str, Any] | None]  # node id -> canvas badge ({"state", "count", "message"}), None clears
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_FIELD_NAMES = 80


@dataclass(slots=True)
class RunView:
    run_id: str
    flow_id: str
    status: str
    started: float | None
    finished: float | None
    input: Items
    trigger: str | None
    steps: dict[str, Step] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    flow_version: int | None = None
    source: str | None = None

    @classmethod
    def from_result(cls, result: RunResult, input_items: Items | None, trigger: str | None,
                    flow_version: int | None = None) -> RunView:
        return cls(result.run_id, result.flow_id, result.status.value, result.started, result.finished,
                   list(input_items or []), trigger, dict(result.steps), result.error, flow_version, "editor")

    @classmethod
    def from_store(cls, store: Store, run: RunRecord) -> RunView:
        return cls(run.id, run.flow_id, run.status.value, run.started or run.created, run.finished, run.input,
                   run.trigger, store.get_steps(run.id), run.error, run.flow_version, run.source)

    @property
    def finished_ok(self) -> bool:
        return self.status == "succeeded"

    def inputs(self, flow: Flow) -> dict[str, dict[str, Items]]:
        """Each node's input items, per port."""
        edges = [e.key for e in flow.edges]
        derived = derive_inputs(edges, self.steps, self.input, {self.trigger} if self.trigger else set())
        for node_id, step in self.steps.items():  # steps of a run in memory still carry their exact inputs
            if step.inputs:
                derived[node_id] = step.inputs
        return derived

    def inputs_of(self, flow: Flow, node_id: str) -> dict[str, Items]:
        """A node's input items, per port. For a node this run did not reach (added or connected since), what its
        upstream steps passed along its edges: so a new node shows the fields it will get, ready to drag."""
        if node_id not in self.steps:
            out: dict[str, Items] = {}
            for edge in flow.edges:
                upstream = self.steps.get(edge.source) if edge.target == node_id else None
                if upstream is not None:
                    out.setdefault(edge.target_port, []).extend(upstream.outputs.get(edge.source_port, []))
            return out
        return self.inputs(flow).get(node_id, {})

    def branch_items(self, flow: Flow, node_id: str) -> Items:
        """For a node whose input branch carried no items in this run (an If's untaken side): the items the node
        before passed on its other outputs, which have the same fields; so there are still fields to drag."""
        out: Items = []
        for edge in flow.edges:
            upstream = self.steps.get(edge.source) if edge.target == node_id else None
            if upstream is not None:
                out.extend(item for items in upstream.outputs.values() for item in items[:5])
        return out

    def statuses(self) -> Statuses:
        """The canvas badges for this run: {node id: {"state", "count", "message"}}."""
        out: Statuses = {}
        for node_id, step in self.steps.items():
            message = (step.error or {}).get("message") if step.error else None
            count = step.count if step.status in (StepStatus.succeeded, StepStatus.failed) else None
            out[node_id] = {"state": step.status.value, "count": count, "message": message}
        return out

    def scope(self, flow: Flow, registry: Registry, node_id: str) -> dict[str, Any]:
        """What an expression in `node_id`'s config sees, as in the engine: item, items, nodes, input, run."""
        inputs = self.inputs_of(flow, node_id)
        items = inputs.get("main") or next(iter(inputs.values()), [])
        tracer = Tracer(in_edges_by_node(e.key for e in flow.edges), self.steps)
        position = next((i for i, x in enumerate(flat_inputs(inputs)) if items and x is items[0]), None)
        nodes = nodes_scope(flow, registry, self.steps, lambda nid, name: tracer.item(node_id, position, nid, name))
        return {"item": items[0] if items else {}, "items": items, "nodes": nodes, "input": self.input,
                "run": {"id": self.run_id, "flow_id": self.flow_id, "started": self.started}}

    def field_names(self, flow: Flow, registry: Registry, node_id: str) -> list[str]:
        """Expressions worth offering in `node_id`'s picker: its input items' fields, then earlier nodes' fields,
        by the names the canvas shows (`nodes['Look up'].items[0].days_left`)."""
        by_id = {n.id: n for n in flow.nodes}
        out: list[str] = []
        inputs = self.inputs_of(flow, node_id)
        items = inputs.get("main") or next(iter(inputs.values()), [])
        out.extend(f"item{path}" for path in paths(items))
        for upstream in ancestors(flow, node_id):
            step = self.steps.get(upstream)
            if step is None or not step.outputs:
                continue
            node = by_id.get(upstream)
            name = node_name(node, registry.get(node.type, node.version)) if node else upstream
            ref = f"nodes[{name!r}]"
            first = next(iter(step.outputs.values()), [])
            out.extend(f"{ref}.items[0]{path}" for path in paths(first[:1]))
        return list(dict.fromkeys(out))[:MAX_FIELD_NAMES]


def paths(items: Items, depth: int = 3) -> list[str]:
    """`.email`, `.customer.name`, `['first name']` for the fields of the first few items."""
    return list(field_values(items, depth))


def field_values(items: Items, depth: int = 3) -> dict[str, Any]:
    """Each field path of the first few items (as `paths`) with its first value that is not empty."""
    out: dict[str, Any] = {}

    def walk(value: Any, prefix: str, level: int) -> None:
        if not isinstance(value, dict) or level > depth:
            return
        for key, child in value.items():
            path = f"{prefix}.{key}" if _IDENT.match(str(key)) else f"{prefix}[{str(key)!r}]"
            if out.get(path) is None:
                out[path] = child
            walk(child, path, level + 1)

    for item in items[:5]:
        walk(item, "", 1)
    return out


def ancestors(flow: Flow, node_id: str) -> list[str]:
    """Every node upstream of `node_id`, nearest first."""
    parents: dict[str, list[str]] = {}
    for e in flow.edges:
        parents.setdefault(e.target, []).append(e.source)
    seen: list[str] = []
    frontier = [node_id]
    while frontier:
        nxt: list[str] = []
        for nid in frontier:
            for parent in parents.get(nid, []):
                if parent not in seen and parent != node_id:
                    seen.append(parent)
                    nxt.append(parent)
        frontier = nxt
    return seen


def upstream_flow(flow: Flow, node_id: str) -> Flow:
    """The part of `flow` that leads to `node_id` (its ancestors and itself): what "Run this node" runs."""
    keep = {node_id, *ancestors(flow, node_id)}
    return flow.model_copy(update={"nodes": [n for n in flow.nodes if n.id in keep],
                                   "edges": [e for e in flow.edges if e.source in keep and e.target in keep]})
