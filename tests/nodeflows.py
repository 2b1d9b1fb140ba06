"""Short flows for node tests: a manual trigger `t`, the nodes given, and edges written as `"a:port > b:port"`."""

from __future__ import annotations

from typing import Any

from flowboard.engine import Engine, Plan, RunResult, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry


def edge(spec: str) -> dict[str, str]:
    """`"a:port > b:port"`, ports optional (main)."""
    src, dst = (part.strip() for part in spec.split(">"))
    source, _, source_port = src.partition(":")
    target, _, target_port = dst.partition(":")
    return {"source": source, "source_port": source_port or "main", "target": target,
            "target_port": target_port or "main"}


def plan_of(nodes: list[dict[str, Any]], edges: list[str]) -> Plan:
    flow = parse_flow({"name": "test", "nodes": [{"id": "t", "type": "trigger.manual"}, *nodes],
                       "edges": [edge(e) for e in edges]})
    return build_plan(flow, default_registry())


async def run(nodes: list[dict[str, Any]], edges: list[str], items: list[dict[str, Any]]) -> RunResult:
    return await Engine().run(plan_of(nodes, edges), items)
