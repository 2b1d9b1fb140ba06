"""The names the editor gives nodes: never two alike, and saying what the node does once its config says it.

A new node is called by its type's title ("Send email", then "Send email 2"). When its config is edited, a node the
editor named takes the name its type suggests for that config (`NodeType.name_for`: "Find rows in Employees"), unless
the user renamed it or another node's expressions refer to it by name (renaming it would break them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..engine.scope import node_name
from ..model import Flow
from ..registry import Registry
from ..sdk import NodeType

_NUMBERED = re.compile(r"^(.*?)(?: \d+)?$", re.S)


def base_name(name: str) -> str:
    """"Send email 2" -> "Send email"."""
    match = _NUMBERED.match(name)
    return match.group(1) if match else name


def unique(name: str, taken: set[str]) -> str:
    """`name`, or the first of "name 2", "name 3", ... that no other node has."""
    if name not in taken:
        return name
    base = base_name(name)
    number = 2
    while f"{base} {number}" in taken:
        number += 1
    return f"{base} {number}"


def suggestion(cls: type[NodeType], config: Mapping[str, Any]) -> str | None:
    try:
        name = cls.name_for(config)
    except Exception:  # a third-party node's naming must never break editing
        return None
    name = " ".join(str(name).split()) if name else ""
    return name[:80] or None


def given_by_editor(name: str, cls: type[NodeType], config: Mapping[str, Any]) -> bool:
    """Whether `name` is one the editor gave (the title or the config's suggestion, maybe numbered)."""
    return not name or base_name(name) in {cls.title, suggestion(cls, config)}


def referred_to(flow: Flow, node_id: str, name: str) -> bool:
    """Whether another node's config names this node (`nodes['Look up']`, `nodes["Look up"]`, `nodes.Lookup`)."""
    text = json.dumps([n.config for n in flow.nodes if n.id != node_id], ensure_ascii=False)
    return any(form in text for form in (f"'{name}'", json.dumps(f'"{name}"', ensure_ascii=False)[1:-1],
                                         f"nodes.{name}"))


def name_after_edit(flow: Flow, registry: Registry, node_id: str, config: Mapping[str, Any]) -> str | None:
    """The node's new name now that its config is `config`, or None to keep the name it has."""
    node = next((n for n in flow.nodes if n.id == node_id), None)
    cls = registry.get(node.type, node.version) if node is not None else None
    if node is None or cls is None:
        return None
    wanted = suggestion(cls, config)
    current = node_name(node, cls)
    if not wanted or not given_by_editor(node.name, cls, node.config) or base_name(current) == wanted:
        return None
    if referred_to(flow, node_id, current):
        return None
    return unique(wanted, taken_names(flow, registry, node_id))


def taken_names(flow: Flow, registry: Registry, node_id: str) -> set[str]:
    """The names of the flow's other nodes."""
    return {node_name(n, registry.get(n.type, n.version)) for n in flow.nodes if n.id != node_id}
