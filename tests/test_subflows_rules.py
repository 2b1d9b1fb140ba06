"""Business rules stored once: Call flow (results, errors, cancellation, loops), the Rules node over a data table
that people edit, and Stop with error. On a real Flowboard with SQLite in tmp_path."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from flowboard.calls import MAX_DEPTH
from flowboard.datatables import Column, ColumnType, Condition, TableSchema
from flowboard.engine import Event, RunStatus
from flowboard.errors import FlowInvalid
from flowboard.services import Flowboard


@pytest.fixture
async def fb(tmp_path: Path) -> Any:
    board = Flowboard(data_dir=tmp_path)
    yield board
    await board.aclose()


def called(flow_id: str, name: str, body: list[dict[str, Any]], inputs: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    nodes = [{"id": "called", "type": "trigger.called", "config": {"inputs": inputs or []}}, *body]
    ids = [n["id"] for n in nodes]
    return {"id": flow_id, "name": name, "nodes": nodes,
            "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(ids)]}


def caller(flow_id: str, target: str, mode: str = "wait") -> dict[str, Any]:
    return {"id": flow_id, "name": f"Caller {flow_id}", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "call", "name": "Check the rules", "type": "logic.call_flow", "config": {"flow": target, "mode": mode}},
    ], "edges": [{"source": "start", "target": "call"}]}


DOUBLE = [{"id": "double", "type": "data.set", "config": {"fields": [{"name": "twice",
                                                                       "value": "{{ item.n * 2 }}"}]}}]


async def test_a_call_returns_the_called_flows_result(fb: Flowboard) -> None:
    fb.import_flow(called("double", "Double it", DOUBLE, [{"name": "n"}]))
    fb.import_flow(caller("main", "Double it"))
    result = await fb.run_flow("main", [{"n": 2}, {"n": 5}])
    assert result.status is RunStatus.succeeded
    assert [i["twice"] for i in result.output] == [4, 10]
    child = [r for r in fb.store.list_runs("double") if r.source == "call"]
    assert len(child) == 1 and child[0].status is RunStatus.succeeded


async def test_the_called_flow_changes_reach_every_caller(fb: Flowboard) -> None:
    fb.import_flow(called("rule", "Rule", DOUBLE))
    fb.import_flow(caller("a", "Rule"))
    fb.import_flow(caller("b", "rule"))  # by id works too
    assert (await fb.run_flow("a", [{"n": 1}])).output[0]["twice"] == 2
    stored = fb.store.get_flow("rule")
    changed = fb.parse(called("rule", "Rule", [{"id": "double", "type": "data.set", "config": {
        "fields": [{"name": "twice", "value": "{{ item.n * 3 }}"}]}}]))
    fb.save_flow(changed, stored.version)
    assert (await fb.run_flow("a", [{"n": 1}])).output[0]["twice"] == 3
    assert (await fb.run_flow("b", [{"n": 2}])).output[0]["twice"] == 6


async def test_errors_pass_back_to_the_caller_in_words(fb: Flowboard) -> None:
    fb.import_flow(called("strict", "Strict", [{"id": "stop", "type": "logic.stop", "config": {
        "message": "{{ item.n }} is too many"}}], [{"name": "n"}]))
    fb.import_flow(caller("main", "Strict"))
    failed = await fb.run_flow("main", [{"n": 9}])
    assert failed.status is RunStatus.failed
    assert "the called flow 'Strict' failed at node 'stop': 9 is too many" in failed.error["message"]
    missing = await fb.run_flow("main", [{"m": 1}])
    assert "item 1 has no 'n', which this flow needs from its callers" in missing.error["message"]
    fb.import_flow(caller("nowhere", "No such flow"))
    gone = await fb.run_flow("nowhere", [{}])
    assert "the flow to call cannot be found" in gone.error["message"]


async def finished(fb: Flowboard, run_id: str, timeout: float = 15) -> Any:
    for _ in range(int(timeout / 0.05)):
        run = fb.store.get_run(run_id)
        if run.status.finished:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} is still {fb.store.get_run(run_id).status.value}")


async def test_a_called_flow_that_parks_parks_its_caller_until_it_ends(fb: Flowboard) -> None:
    """The called flow waits durably (as an approval would): the caller parks too, holding nothing in memory, and
    goes on with the called flow's result when it ends."""
    fb.import_flow(called("later", "Later", [{"id": "wait", "type": "logic.wait", "config": {"seconds": 6}},
                                             *DOUBLE]))
    fb.import_flow(caller("main", "Later"))
    fb.start_waiting()
    result = await fb.run_flow("main", [{"n": 21}])
    assert result.status is RunStatus.waiting
    (child,) = fb.store.list_runs("later")
    assert child.status is RunStatus.waiting and child.source == "call"
    done = await finished(fb, result.run_id, timeout=30)
    assert done.status is RunStatus.succeeded and done.output == [{"n": 21, "twice": 42}]
    assert fb.store.get_run(child.id).status is RunStatus.succeeded


async def test_cancelling_a_caller_cancels_the_flow_it_waits_for(fb: Flowboard) -> None:
    fb.import_flow(called("slow", "Slow", [{"id": "wait", "type": "logic.wait", "config": {"seconds": 600}}]))
    fb.import_flow(caller("main", "Slow"))
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.waiting
    (child,) = fb.store.list_runs("slow")
    assert fb.cancel(result.run_id)
    assert fb.store.get_run(result.run_id).status is RunStatus.cancelled
    assert fb.store.get_run(child.id).status is RunStatus.cancelled
    assert not fb.cancel(result.run_id)  # once


async def test_cancelling_a_running_caller_cancels_the_running_child(fb: Flowboard) -> None:
    fb.import_flow(called("busy", "Busy", [{"id": "code", "type": "code", "config": {
        "code": "import time\ntime.sleep(20)\nreturn items", "timeout": 60}}]))
    fb.import_flow(caller("main", "Busy"))
    task = asyncio.ensure_future(fb.run_flow("main", [{}]))
    for _ in range(400):
        children = fb.store.list_runs("busy")
        if children and len(fb.engine.active_runs) >= 2:
            break
        await asyncio.sleep(0.05)
    parent = next(r for r in fb.engine.active_runs if r != children[0].id)
    assert fb.cancel(parent)
    result = await asyncio.wait_for(task, 20)
    assert result.status is RunStatus.cancelled
    assert (await finished(fb, children[0].id)).status is RunStatus.cancelled


async def test_start_and_go_on_does_not_wait(fb: Flowboard) -> None:
    fb.import_flow(called("later", "Later", DOUBLE))
    fb.import_flow(caller("main", "Later", mode="start"))
    result = await fb.run_flow("main", [{"n": 4}])
    assert result.status is RunStatus.succeeded and result.output[0]["started"] is True
    child_id = result.output[0]["run_id"]
    for _ in range(600):  # up to 30 s on a loaded machine
        if fb.store.get_run(child_id).status.finished:
            break
        await asyncio.sleep(0.05)
    assert fb.store.get_run(child_id).output == [{"n": 4, "twice": 8}]


async def test_calls_that_go_round_in_a_circle_are_refused(fb: Flowboard) -> None:
    fb.import_flow({**caller("a", "Flow B"), "name": "Flow A"})
    fb.import_flow({**called("b", "Flow B", [{"id": "call", "type": "logic.call_flow",
                                               "config": {"flow": "Flow A"}}])})
    with pytest.raises(FlowInvalid, match=r"the calls go round in a circle \(Flow A → Flow B → Flow A\)"):
        fb.activate("a")
    fb.import_flow({**caller("self", "Myself"), "name": "Myself"})
    with pytest.raises(FlowInvalid, match="a flow must not call itself"):
        fb.activate("self")
    # Not switched on, run by hand: the depth limit stops it with an error instead of looping forever.
    result = await fb.run_flow("self", [{}])
    assert result.status is RunStatus.failed
    assert f"more than {MAX_DEPTH} levels deep" in result.error["message"]


# -- Loop over items -------------------------------------------------------------------------------------------------

def looper(flow_id: str, body: str, batch_size: int, pause: float = 0) -> dict[str, Any]:
    return {"id": flow_id, "name": f"Loop {flow_id}", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "loop", "name": "Each batch", "type": "logic.loop",
         "config": {"flow": body, "batch_size": batch_size, "pause_seconds": pause}},
    ], "edges": [{"source": "start", "target": "loop"}]}


async def test_a_loop_runs_its_body_once_per_batch_and_collects_the_results_in_order(fb: Flowboard) -> None:
    body = [{"id": "size", "type": "data.set", "config": {"fields": [
        {"name": "twice", "value": "{{ item.n * 2 }}"}, {"name": "batch_of", "value": "{{ items | length }}"}]}}]
    fb.import_flow(called("body", "Double a batch", body, [{"name": "n"}]))
    fb.import_flow(looper("main", "Double a batch", 2))
    events: list[Event] = []
    fb.bus.subscribe(events.append)
    result = await fb.run_flow("main", [{"n": n} for n in range(1, 6)])
    assert result.status is RunStatus.succeeded, result.error
    assert [i["twice"] for i in result.output] == [2, 4, 6, 8, 10]
    said = [(e.count, e.message) for e in events if e.kind == "node.progress" and e.run_id == result.run_id]
    assert said[0] == (2, "1 of 3 batches done")  # the canvas badge counts up as batches finish (at most 10/s)
    assert [i["batch_of"] for i in result.output] == [2, 2, 2, 2, 1]  # the body sees its batch as its items
    children = sorted(fb.store.list_runs("body"), key=lambda r: r.started)
    assert [len(r.input) for r in children] == [2, 2, 1]  # one run per batch, one after the other
    assert all(r.source == "call" and r.status is RunStatus.succeeded for r in children)
    assert [i["n"] for r in children for i in r.input] == [1, 2, 3, 4, 5]


async def test_a_failing_batch_names_itself_and_the_batches_before_it_stay_done(fb: Flowboard) -> None:
    body = [{"id": "check", "type": "logic.stop", "config": {"message": "{{ item.n }} is too big"}}]
    gate = {"id": "small", "type": "logic.filter", "config": {"conditions": [
        {"field": "n", "op": "gte", "type": "number", "value": 3}]}}
    fb.import_flow(called("body", "Refuse big ones", [gate, *body]))
    fb.import_flow(looper("main", "Refuse big ones", 2))
    result = await fb.run_flow("main", [{"n": n} for n in range(1, 6)])
    assert result.status is RunStatus.failed
    message = result.error["message"]
    assert message.startswith("batch 2 of 3 (items 3 to 4): the called flow 'Refuse big ones' failed"), message
    assert "3 is too big" in message
    runs = sorted(fb.store.list_runs("body"), key=lambda r: r.started)
    assert [r.status for r in runs] == [RunStatus.succeeded, RunStatus.failed]  # batch 3 never started


async def test_a_loop_body_that_waits_is_refused_in_words(fb: Flowboard) -> None:
    fb.import_flow(called("later", "Later", [{"id": "wait", "type": "logic.wait", "config": {"seconds": 600}}]))
    fb.import_flow(looper("main", "Later", 10))
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.failed
    assert "a loop's body must finish by itself" in result.error["message"]


async def test_a_loop_pausing_between_batches_stops_at_once_when_cancelled(fb: Flowboard) -> None:
    fb.import_flow(called("body", "Body", DOUBLE))
    fb.import_flow(looper("main", "Body", 1, pause=600))
    task = asyncio.ensure_future(fb.run_flow("main", [{"n": 1}, {"n": 2}]))
    for _ in range(400):
        if fb.store.list_runs("body") and fb.engine.active_runs:
            break
        await asyncio.sleep(0.05)
    (run_id,) = fb.engine.active_runs
    assert fb.cancel(run_id)
    result = await asyncio.wait_for(task, 20)
    assert result.status is RunStatus.cancelled
    assert len(fb.store.list_runs("body")) == 1


async def test_a_loop_whose_body_calls_back_is_refused(fb: Flowboard) -> None:
    fb.import_flow({**looper("a", "Flow B", 5), "name": "Flow A"})
    fb.import_flow(called("b", "Flow B", [{"id": "loop", "type": "logic.loop", "config": {"flow": "Flow A"}}]))
    with pytest.raises(FlowInvalid, match=r"the calls go round in a circle \(Flow A → Flow B → Flow A\)"):
        fb.activate("a")


# -- Rules ---------------------------------------------------------------------------------------------------------

def invoice_rules(fb: Flowboard) -> None:
    fb.tables.tables.create(TableSchema(name="Invoice rules", columns=[
        Column(name="amount is greater than or equal to", type=ColumnType.number),
        Column(name="department is"), Column(name="approvers", type=ColumnType.number), Column(name="role")]))
    fb.tables.tables.insert("Invoice rules", [
        {"amount is greater than or equal to": 5000, "department is": "research", "approvers": 3, "role": "director"},
        {"amount is greater than or equal to": 5000, "approvers": 2, "role": "finance"},
        {"amount is greater than or equal to": 0, "approvers": 1, "role": "manager"},
    ])


def rules_flow(match: str = "first") -> dict[str, Any]:
    return {"id": "route", "name": "Route invoices", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "rules", "type": "logic.rules", "config": {"table": "Invoice rules", "match": match}},
        {"id": "ok", "type": "data.set", "config": {"fields": [{"name": "routed", "value": True}]}},
        {"id": "nothing", "type": "data.set", "config": {"fields": [{"name": "routed", "value": False}]}},
    ], "edges": [{"source": "start", "target": "rules"},
                 {"source": "rules", "source_port": "matched", "target": "ok"},
                 {"source": "rules", "source_port": "unmatched", "target": "nothing"}]}


INVOICES = [{"amount": 120, "department": "sales"}, {"amount": "7,500", "department": "sales"},
            {"amount": 9000, "department": "Research"}, {"amount": 9000, "department": "research"},
            {"amount": -5, "department": "sales"}]


async def test_the_rules_table_routes_each_item(fb: Flowboard) -> None:
    invoice_rules(fb)
    fb.import_flow(rules_flow())
    result = await fb.run_flow("route", INVOICES)
    steps = fb.store.get_steps(result.run_id)
    matched = steps["rules"].outputs["matched"]
    assert [(i["approvers"], i["role"]) for i in matched] == [(1, "manager"), (2, "finance"), (2, "finance"),
                                                             (3, "director")]
    assert [i["amount"] for i in steps["rules"].outputs["unmatched"]] == [-5]


async def test_editing_a_rule_changes_the_next_run(fb: Flowboard) -> None:
    invoice_rules(fb)
    fb.import_flow(rules_flow())
    first = await fb.run_flow("route", [{"amount": 6000, "department": "sales"}])
    assert fb.store.get_steps(first.run_id)["rules"].outputs["matched"][0]["approvers"] == 2
    await fb.tables.call("update", "Invoice rules", [Condition(column="role", value="finance")],
                         {"amount is greater than or equal to": 10000})
    second = await fb.run_flow("route", [{"amount": 6000, "department": "sales"}])
    assert fb.store.get_steps(second.run_id)["rules"].outputs["matched"][0]["approvers"] == 1


async def test_all_matches_gives_one_item_per_rule(fb: Flowboard) -> None:
    invoice_rules(fb)
    fb.import_flow(rules_flow("all"))
    result = await fb.run_flow("route", [{"amount": 9000, "department": "research"}])
    matched = fb.store.get_steps(result.run_id)["rules"].outputs["matched"]
    assert [i["role"] for i in matched] == ["director", "finance", "manager"]


async def test_a_table_without_conditions_is_explained(fb: Flowboard) -> None:
    fb.tables.tables.create(TableSchema(name="Invoice rules", columns=[Column(name="amount"),
                                                                       Column(name="role")]))
    fb.import_flow(rules_flow())
    result = await fb.run_flow("route", [{"amount": 1}])
    assert result.status is RunStatus.failed
    assert "has no condition columns" in result.error["message"]
    assert "'amount is greater than or equal to'" in result.error["message"]
