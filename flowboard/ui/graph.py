"""The Flow model <-> the canvas graph, and merging the canvas's edits into the editor's working copy.

A node on the canvas carries its config, settings, version and pinned items as extra keys, which the canvas keeps
(also on copied nodes). The working copy stays the truth for every node it knows, so a `change` from the canvas
(a move, a connection) never undoes an inspector edit that the canvas has not been sent yet. The canvas's own copy is
adopted only where it differs from what was last sent to it: a new node (palette, paste) or undo/redo.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from pydantic import ValidationError

from ..engine.scope import node_name
from ..jsonlimits import JsonRefused, check_nesting
from ..model import MAX_FLOW_BYTES, Edge, Flow, Node, NodeSettings, OnError
from ..registry import Registry

log = logging.getLogger(__name__)
Graph = tuple[list[dict[str, Any]], list[dict[str, Any]]]
_CORE = ("id", "type", "name", "position", "inputs", "outputs", "disabled")


def ports(node: Node, registry: Registry) -> tuple[list[str], list[str]]:
    """The node's input and output ports as the engine sees them (a switch's outputs follow its rules)."""
    cls = registry.get(node.type, node.version)
    if cls is None:
        return ["main"], ["main"]
    try:
        outputs = list(cls.output_ports(node.config))
    except Exception:  # half-edited config: fall back to the declared ports
        outputs = list(cls.outputs)
    if node.settings.on_error is OnError.error_port and "error" not in outputs:
        outputs.append("error")
    return list(cls.inputs), outputs


def display_name(node: Node, registry: Registry) -> str:
    return node_name(node, registry.get(node.type, node.version))


def node_dict(node: Node, registry: Registry) -> dict[str, Any]:
    inputs, outputs = ports(node, registry)
    settings = node.settings.model_dump(mode="json", exclude_defaults=True, exclude={"disabled"})
    out: dict[str, Any] = {
        "id": node.id, "type": node.type, "name": display_name(node, registry),
        "position": {"x": node.position.x, "y": node.position.y}, "inputs": inputs, "outputs": outputs,
        "disabled": node.settings.disabled, "version": node.version, "config": node.config, "settings": settings,
    }
    if node.pinned is not None:
        out["pinned"] = node.pinned
    return out


def edge_dict(edge: Edge) -> dict[str, Any]:
    return {"source": edge.source, "source_port": edge.source_port, "target": edge.target,
            "target_port": edge.target_port}


def to_canvas(flow: Flow, registry: Registry) -> Graph:
    return [node_dict(n, registry) for n in flow.nodes], [edge_dict(e) for e in flow.edges]


def _fingerprint(node: dict[str, Any]) -> str:
    """What of a canvas node the working copy owns: its name and extra keys (not position, ports, disabled)."""
    extra = {k: v for k, v in node.items() if k not in _CORE}
    return json.dumps([node.get("name"), extra], sort_keys=True, default=str)


def node_from_canvas(data: dict[str, Any], registry: Registry) -> Node:
    """A node the canvas made (palette, paste, undo); raises ValidationError if it cannot be one, JsonRefused if its
    config or pinned items break the limits every JSON from outside keeps (a pasted node is clipboard content)."""
    for key in ("config", "pinned"):
        check_nesting(data.get(key), what=f"its {key}")
    if len(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)) > MAX_FLOW_BYTES:
        raise JsonRefused(f"it is bigger than {MAX_FLOW_BYTES:,} bytes, the most a whole flow may have")
    settings = dict(data.get("settings") or {})
    settings["disabled"] = bool(data.get("disabled"))
    config = data.get("config")
    cls = registry.get(str(data.get("type")))
    name = str(data.get("name") or "")
    return Node.model_validate({
        "id": data["id"], "type": data.get("type"), "version": data.get("version") or (cls.version if cls else 1),
        "name": "" if cls is not None and name == cls.title else name,
        "position": data.get("position") or {}, "config": config if isinstance(config, dict) else {},
        "settings": NodeSettings.model_validate(settings), "pinned": data.get("pinned"),
    })


class CanvasSync:
    """Remembers what the canvas holds of each node, to merge its `change` events into the working copy."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.sent: dict[str, str] = {}
        self.refused: list[str] = []  # why nodes of the last `merge` were left out, for the editor to show

    def graph(self, flow: Flow) -> Graph:
        """The graph to send to the canvas; from now on that is what it holds."""
        nodes, edges = to_canvas(flow, self.registry)
        self.sent = {n["id"]: _fingerprint(n) for n in nodes}
        return nodes, edges

    def nodes(self, flow: Flow, ids: set[str]) -> list[dict[str, Any]]:
        """These nodes as the canvas should now hold them (for FlowCanvas.update_nodes); from now on they are."""
        nodes = [node_dict(n, self.registry) for n in flow.nodes if n.id in ids]
        self.sent.update((n["id"], _fingerprint(n)) for n in nodes)
        return nodes

    def merge(self, flow: Flow, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> tuple[Flow, list[str]]:
        """The working copy after a canvas `change`, and the ids of nodes whose config/settings the canvas replaced
        (new nodes, undo/redo). Nodes the canvas cannot express as a flow node are dropped with a warning."""
        known = {n.id: n for n in flow.nodes}
        self.refused = []
        merged: list[Node] = []
        adopted: list[str] = []
        for data in nodes:
            node_id = str(data.get("id"))
            old = known.get(node_id)
            fingerprint = _fingerprint(data)
            if old is not None and self.sent.get(node_id) == fingerprint:
                position = data.get("position") or {}
                settings = old.settings.model_copy(update={"disabled": bool(data.get("disabled"))})
                merged.append(old.model_copy(update={
                    "position": old.position.model_copy(update={"x": position.get("x", 0), "y": position.get("y", 0)}),
                    "settings": settings}))
                continue
            try:
                node = node_from_canvas(data, self.registry)
            except (ValidationError, KeyError) as exc:
                log.warning("the canvas sent a node that is not a flow node (%s): %s", node_id, exc)
                continue
            except JsonRefused as exc:
                self.refused.append(f"The node {node_id} was left out: {exc}.")
                continue
            self.sent[node_id] = fingerprint
            merged.append(node)
            adopted.append(node_id)
        ids = {n.id for n in merged}
        for gone in set(self.sent) - ids:
            del self.sent[gone]
        new_edges = [Edge(source=e["source"], source_port=e.get("source_port") or "main", target=e["target"],
                          target_port=e.get("target_port") or "main")
                     for e in edges if e.get("source") in ids and e.get("target") in ids]
        return flow.model_copy(update={"nodes": merged, "edges": new_edges}), adopted
