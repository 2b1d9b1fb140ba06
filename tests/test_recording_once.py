"""Items are written once: a trigger hands on the run's input, which the run row holds, so its step points at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flowboard.engine import Engine, RunStatus, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.store import SqlRecorder, Store
from flowboard.store.store import unpack_steps
from flowboard.store.tables import runs_t, steps_t
from flowboard.triggers import new_run_id

from .conftest import make_flow
from .test_store import BACKENDS, MakeStore, open_stores


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    stores: Iterator[MakeStore] = open_stores(request.param, tmp_path, monkeypatch)
    make = next(stores)
    yield make()
    for _ in stores:  # the generator's clean-up
        pass


def _raw_outputs(store: Store, run_id: str) -> dict[str, Any]:
    """The outputs as written: in `steps` rows, or packed in the run row (a run that ended in one write)."""
    with store.engine.connect() as conn:
        outputs = {row.node_id: row.outputs for row in conn.execute(
            sa.select(steps_t.c.node_id, steps_t.c.outputs).where(steps_t.c.run_id == run_id))}
        packed = conn.execute(sa.select(runs_t.c.steps).where(runs_t.c.id == run_id)).scalar()
    if packed is not None:
        outputs.update({row["node_id"]: row["outputs"] for row in unpack_steps(run_id, packed)})
    return outputs


INPUTS: list[list[dict[str, Any]]] = [
    [{"n": 1}],
    [{"n": 1}, {"n": 2, "text": "ünïcode", "deep": {"list": [1, {"x": None}]}}],
    [{"body": {"hello": "world"}, "query": {}, "headers": {"content-type": "application/json"}, "method": "POST",
      "path": "echo"}],
]


@pytest.mark.parametrize("trigger", ["trigger.manual", "trigger.webhook"])
@pytest.mark.parametrize("items", INPUTS)
async def test_a_triggers_items_are_written_once_and_read_back(store: Store, trigger: str,
                                                               items: list[dict[str, Any]]) -> None:
    config = {"path": "once"} if trigger == "trigger.webhook" else {}
    flow = make_flow([{"id": "t", "type": trigger, "config": config},
                      {"id": "s", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}],
                     [("t", "s")], id="once")
    plan = build_plan(parse_flow(flow), default_registry())
    engine = Engine(recorder=SqlRecorder(store))
    result = await engine.run(plan, items, run_id=new_run_id(), trigger="t")
    assert result.status is RunStatus.succeeded
    raw = _raw_outputs(store, result.run_id)
    assert raw["t"] == {"main": {"$same_as": "run.input"}}  # not a second copy of the items
    assert raw["s"]["main"] == [{**item, "seen": True} for item in items]  # new items are written in full
    steps = store.get_steps(result.run_id)
    assert steps["t"].outputs == {"main": items} == result.steps["t"].outputs
    assert store.get_run(result.run_id).input == items
    await engine.aclose()


async def test_a_trigger_that_makes_its_own_items_writes_them(store: Store) -> None:
    """No input: the manual trigger's items are its own, not the run's input, so they are written."""
    flow = make_flow([{"id": "t", "type": "trigger.manual", "config": {"items": [{"a": 1}]}}], [], id="own")
    plan = build_plan(parse_flow(flow), default_registry())
    engine = Engine(recorder=SqlRecorder(store))
    result = await engine.run(plan, [], run_id=new_run_id(), trigger="t")
    assert _raw_outputs(store, result.run_id)["t"] == {"main": [{"a": 1}]}
    assert store.get_steps(result.run_id)["t"].outputs == {"main": [{"a": 1}]}
    await engine.aclose()


async def test_items_a_node_passes_on_unchanged_are_written_once(store: Store) -> None:
    """Filter, Limit, If and a switched-off node hand on the very items they got: their steps point at the step the
    items came from (following references to references); a node that builds new items writes them in full."""
    seen = {"conditions": [{"field": "seen", "op": "is_true"}]}
    flow = make_flow([
        {"id": "t", "type": "trigger.manual"},
        {"id": "s", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}},
        {"id": "f", "type": "logic.filter", "config": seen},
        {"id": "off", "type": "data.set", "config": {"fields": [{"name": "x", "value": 1}]},
         "settings": {"disabled": True}},
        {"id": "lim", "type": "data.limit", "config": {"count": 10}},
        {"id": "if", "type": "logic.if", "config": seen},
        {"id": "again", "type": "data.set", "config": {"fields": [{"name": "again", "value": True}]}},
        {"id": "few", "type": "data.limit", "config": {"count": 1}},  # fewer items: new list, written in full
    ], [("t", "s"), ("s", "f"), ("f", "off"), ("off", "lim"), ("lim", "main", "if", "main"),
        ("if", "true", "again", "main"), ("again", "few")], id="passing")
    plan = build_plan(parse_flow(flow), default_registry())
    engine = Engine(recorder=SqlRecorder(store))
    items = [{"n": 1}, {"n": 2, "deep": {"list": [1, {"x": None}]}}]
    result = await engine.run(plan, items, run_id=new_run_id(), trigger="t")
    assert result.status is RunStatus.succeeded, result.error
    raw = _raw_outputs(store, result.run_id)
    assert raw["f"] == {"main": {"$same_as": "step", "node": "s", "port": "main"}}
    assert raw["off"] == {"main": {"$same_as": "step", "node": "f", "port": "main"}}
    assert raw["lim"] == {"main": {"$same_as": "step", "node": "off", "port": "main"}}
    assert raw["if"] == {"true": {"$same_as": "step", "node": "lim", "port": "main"}, "false": []}
    assert raw["s"]["main"] == [{**item, "seen": True} for item in items]
    assert raw["again"]["main"] == [{**item, "seen": True, "again": True} for item in items]
    assert raw["few"]["main"] == [{**items[0], "seen": True, "again": True}]
    steps = store.get_steps(result.run_id)
    assert {k: s.outputs for k, s in steps.items()} == {k: s.outputs for k, s in result.steps.items()}
    steps["f"].outputs["main"][0]["changed"] = True  # each step read back holds its own copy
    assert "changed" not in steps["s"].outputs["main"][0] and "changed" not in steps["lim"].outputs["main"][0]
    await engine.aclose()
