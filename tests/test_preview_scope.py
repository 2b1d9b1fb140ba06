"""The expression preview and the engine resolve `nodes[...]` the same way: by id, and by the name on the canvas
(the node's own name, or its type's title when it has none). Every expression the field picker offers runs."""

from __future__ import annotations

from typing import Any

from flowboard import expressions
from flowboard.engine import Engine, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.ui.graph import display_name
from flowboard.ui.run_data import RunView

REGISTRY = default_registry()
# A default-named trigger (its file name is empty: it goes by "Manual trigger"), a named node, a name with a quote.
UPSTREAM = [
    {"id": "t", "type": "trigger.manual", "config": {"items": [{"employee": "ada", "days": 3}]}},
    {"id": "look", "type": "data.set", "name": "Look up leave",
     "config": {"fields": [{"name": "days_left", "value": 12}, {"name": "who.name", "value": "Ada"}]}},
    {"id": "q", "type": "data.set", "name": "Ada's \"quoted\" step",
     "config": {"fields": [{"name": "ok", "value": True}]}},
    {"id": "limit", "type": "data.limit"},
]
EDGES = [("t", "look"), ("look", "q"), ("q", "limit")]
CORPUS = [
    "{{ nodes['Manual trigger'].items[0].employee }}",
    "{{ nodes.t.items[0].days }}",
    "{{ nodes['Look up leave'].items[0].days_left - item.days }}",
    "{{ nodes.look.items[0].who.name }} has {{ nodes['Look up leave'].items | length }} item",
    "{{ nodes['Manual trigger'].status }}",
    "{{ nodes['Look up leave'].output.main[0].employee | upper }}",
    "{{ item.ok and nodes['Manual trigger'].items[0].days > 2 }}",
]


def flow_with(expressions_: list[str]) -> Any:
    fields = [{"name": f"e{i}", "value": text} for i, text in enumerate(expressions_)]
    nodes = [*UPSTREAM, {"id": "probe", "type": "data.set", "config": {"fields": fields, "keep_only": True}}]
    edges = [*EDGES, ("limit", "probe")]
    return parse_flow({"name": "scope", "nodes": nodes, "edges": [
        {"source": s, "source_port": "main", "target": t, "target_port": "main"} for s, t in edges]})


async def engine_and_preview(texts: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    flow = flow_with(texts)
    result = await Engine().run(build_plan(flow, REGISTRY), None)
    assert result.status.value == "succeeded", result.error
    engine = result.steps["probe"].outputs["main"][0]
    view = RunView.from_result(result, None, "t")
    scope = view.scope(flow, REGISTRY, "probe")
    preview = {f"e{i}": expressions.evaluate(expressions.compile_string(t), scope) for i, t in enumerate(texts)}
    return engine, preview


async def test_the_preview_gives_what_the_run_gives() -> None:
    engine, preview = await engine_and_preview(CORPUS)
    assert preview == engine
    assert engine["e0"] == "ada" and engine["e2"] == 9 and engine["e3"] == "Ada has 1 item"


async def test_every_field_the_picker_offers_runs_and_names_nodes_as_the_canvas_does() -> None:
    flow = flow_with([])
    result = await Engine().run(build_plan(flow, REGISTRY), None)
    offered = RunView.from_result(result, None, "t").field_names(flow, REGISTRY, "probe")
    refs = {o.split("]")[0] + "]" for o in offered if o.startswith("nodes[")}
    canvas = {display_name(n, REGISTRY) for n in flow.nodes if n.id not in ("probe",)}
    assert refs == {f"nodes[{name!r}]" for name in canvas}, refs  # names, never internal ids
    assert "nodes['Manual trigger'].items[0].employee" in offered
    engine, preview = await engine_and_preview([f"{{{{ {o} }}}}" for o in offered])
    assert preview == engine
    assert all(v is not None for v in engine.values()), engine
