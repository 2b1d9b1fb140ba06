"""What an expression sees of the nodes before it (`nodes[...]`): one definition, for the engine and the editor.

A node is reachable by its id and by the name shown on the canvas: its own name, or its type's title when it has none
(`nodes['Manual trigger']`). The editor's expression preview builds its scope from these same functions, so a preview
and the run never disagree about which names exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Flow, Node
from ..registry import Registry
from ..sdk import NodeType
from .states import Step

Items = list[dict[str, Any]]


def node_name(node: Node, cls: type[NodeType] | None) -> str:
    """The name a node goes by on the canvas and in expressions."""
    return node.name or (cls.title if cls is not None else node.id)


def node_view(outputs: Mapping[str, Items] | None, status: str) -> dict[str, Any]:
    """`nodes['Look up']` for one finished node: its first port's items, every port's items, its status."""
    return {"items": next(iter(outputs.values()), []) if outputs else [], "output": outputs or {}, "status": status}


def nodes_scope(flow: Flow, registry: Registry, steps: Mapping[str, Step]) -> dict[str, Any]:
    """`nodes` for a recorded run: every node that has a step, under its id and under its name."""
    out: dict[str, Any] = {}
    for node in flow.nodes:
        step = steps.get(node.id)
        if step is None:
            continue
        view = node_view(step.outputs, step.status.value)
        out[node.id] = view
        out[node_name(node, registry.get(node.type, node.version))] = view
    return out
