"""What an expression sees of the nodes before it (`nodes[...]`): one definition, for the engine and the editor.

A node is reachable by its id and by the name shown on the canvas: its own name, or its type's title when it has none
(`nodes['Manual trigger']`). The editor's expression preview builds its scope from these same functions, so a preview
and the run never disagree about which names exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..model import Flow, Node
from ..registry import Registry
from ..sdk import NodeType
from .lineage import NodeView
from .states import Step

Items = list[dict[str, Any]]


def node_name(node: Node, cls: type[NodeType] | None) -> str:
    """The name a node goes by on the canvas and in expressions."""
    return node.name or (cls.title if cls is not None else node.id)


def node_view(outputs: Mapping[str, Items] | None, status: str, item: Callable[[], Any] | None = None
              ) -> dict[str, Any]:
    """`nodes['Look up']` for one finished node: its first port's items, every port's items, its status, and (with
    `item`, which finds it) `item`: the item of that node the current item came from (engine/lineage.py)."""
    view = {"items": next(iter(outputs.values()), []) if outputs else [], "output": outputs or {}, "status": status}
    return view if item is None else NodeView(view, item)


def nodes_scope(flow: Flow, registry: Registry, steps: Mapping[str, Step],
                item: Callable[[str, str], Any] | None = None) -> dict[str, Any]:
    """`nodes` for a recorded run: every node that has a step, under its id and under its name. `item(id, name)`
    finds `nodes[name].item`."""
    out: dict[str, Any] = {}
    for node in flow.nodes:
        step = steps.get(node.id)
        if step is None:
            continue
        name = node_name(node, registry.get(node.type, node.version))
        find = None if item is None else (lambda nid=node.id, name=name: item(nid, name))
        view = node_view(step.outputs, step.status.value, find)
        out[node.id] = view
        out[name] = view
    return out
