"""Flow-control nodes (If, Filter, Switch, Merge, Wait), driven through the real planner and engine."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowboard.engine import Engine, Event, EventBus, RunResult, RunStatus, StepStatus
from flowboard.errors import FlowInvalid
from flowboard.registry import default_registry

from .nodeflows import plan_of, run

LOGIC_TYPES = ("logic.if", "logic.switch", "logic.merge", "logic.filter", "logic.wait", "data.set", "data.sort",
               "data.limit", "data.split_out", "data.aggregate")




def out(result: RunResult, node_id: str, port: str = "main") -> list[dict[str, Any]]:
    step = result.steps[node_id]
    assert step.status is StepStatus.succeeded, (node_id, step.status, step.error)
    return step.outputs.get(port, [])


def status(result: RunResult, node_id: str) -> StepStatus:
    return result.steps[node_id].status


def problems(nodes: list[dict[str, Any]], edges: list[str]) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        plan_of(nodes, edges)
    return {p.loc: p.message for p in caught.value.problems}


def if_node(conditions: list[dict[str, Any]], combine: str = "and", node_id: str = "if") -> dict[str, Any]:
    return {"id": node_id, "type": "logic.if", "config": {"combine": combine, "conditions": conditions}}


def probe(node_id: str) -> dict[str, Any]:
    """A node that marks the items that reached it (and shows whether it ran)."""
    return {"id": node_id, "type": "data.set", "config": {"fields": [{"name": "reached", "value": node_id}]}}


# -- If --------------------------------------------------------------------------------------------------------------


async def test_if_numbers_written_as_text_compare_as_numbers() -> None:
    items = [{"n": "10"}, {"n": "8"}, {"n": 9.5}]
    result = await run([if_node([{"field": "n", "op": "gt", "value": "9"}])], ["t > if"], items)
    assert out(result, "if", "true") == [{"n": "10"}, {"n": 9.5}]
    assert out(result, "if", "false") == [{"n": "8"}]


async def test_if_type_string_compares_text() -> None:
    items = [{"n": "10"}, {"n": "95"}]
    result = await run([if_node([{"field": "n", "op": "gt", "value": "9", "type": "string"}])], ["t > if"], items)
    assert out(result, "if", "true") == [{"n": "95"}]  # "10" < "9" as text
    assert out(result, "if", "false") == [{"n": "10"}]


async def test_if_dates_compare_as_points_in_time() -> None:
    items = [{"at": "2024-05-01T10:00:00+02:00"}, {"at": "2024-05-01T10:00:00Z"}, {"at": "2024-04-30"}]
    result = await run([if_node([{"field": "at", "op": "lt", "value": "2024-05-01T09:00:00Z"}])], ["t > if"], items)
    # 10:00+02:00 is 08:00 UTC: earlier, although its text sorts later
    assert out(result, "if", "true") == [items[0], items[2]]
    assert out(result, "if", "false") == [items[1]]


async def test_if_branch_not_taken_skips_its_nodes() -> None:
    nodes = [if_node([{"field": "days_left", "op": "lte", "value": 3}]), probe("soon"), probe("later"),
             probe("after_later")]
    edges = ["t > if", "if:true > soon", "if:false > later", "later > after_later"]
    result = await run(nodes, edges, [{"days_left": 1}, {"days_left": "2"}])
    assert result.status is RunStatus.succeeded
    assert [i["reached"] for i in out(result, "soon")] == ["soon", "soon"]
    assert status(result, "later") is StepStatus.skipped
    assert status(result, "after_later") is StepStatus.skipped
    assert result.output == out(result, "soon")


async def test_if_and_or_groups() -> None:
    # (a AND b) OR c
    conditions = [{"combine": "and", "conditions": [{"field": "a", "op": "is_true"}, {"field": "b", "op": "is_true"}]},
                  {"field": "c", "op": "equals", "value": 1}]
    items = [{"id": 1, "a": True, "b": True, "c": 0}, {"id": 2, "a": True, "b": False, "c": 0},
             {"id": 3, "a": False, "b": False, "c": 1}, {"id": 4, "a": False, "b": True, "c": "2"}]
    result = await run([if_node(conditions, combine="or")], ["t > if"], items)
    assert [i["id"] for i in out(result, "if", "true")] == [1, 3]
    assert [i["id"] for i in out(result, "if", "false")] == [2, 4]

    # a AND (b OR c): the same items, another shape
    conditions = [{"field": "a", "op": "is_true"},
                  {"combine": "or", "conditions": [{"field": "b", "op": "is_true"}, {"field": "c", "op": "gte",
                                                                                     "value": "1"}]}]
    result = await run([if_node(conditions)], ["t > if"], items)
    assert [i["id"] for i in out(result, "if", "true")] == [1]


async def test_if_value_expression_is_worked_out_per_item() -> None:
    items = [{"used": 5, "limit": 10}, {"used": 12, "limit": 10}, {"used": 3, "limit": 2}]
    result = await run([if_node([{"field": "used", "op": "lt", "value": "{{ item.limit }}"}])], ["t > if"], items)
    assert out(result, "if", "true") == [items[0]]
    assert out(result, "if", "false") == [items[1], items[2]]


@pytest.mark.parametrize(("condition", "item", "expected"), [
    ({"field": "name", "op": "contains", "value": "ANN", "ignore_case": True}, {"name": "Joanna"}, True),
    ({"field": "name", "op": "contains", "value": "ANN"}, {"name": "Joanna"}, False),
    ({"field": "name", "op": "not_contains", "value": "x"}, {"name": "Joanna"}, True),
    ({"field": "tags", "op": "contains", "value": "3"}, {"tags": [1, 3]}, True),
    ({"field": "tags", "op": "contains", "value": 4}, {"tags": [1, 3]}, False),
    ({"field": "email", "op": "ends_with", "value": "@example.org"}, {"email": "a@example.org"}, True),
    ({"field": "email", "op": "starts_with", "value": "b"}, {"email": "a@example.org"}, False),
    ({"field": "code", "op": "matches", "value": r"^INV-\d{4}$"}, {"code": "INV-2024"}, True),
    ({"field": "code", "op": "matches", "value": r"^inv-\d{4}$"}, {"code": "INV-2024"}, False),
    ({"field": "code", "op": "matches", "value": r"^inv-\d{4}$", "ignore_case": True}, {"code": "INV-2024"}, True),
    ({"field": "note", "op": "is_empty"}, {"note": ""}, True),
    ({"field": "note", "op": "is_empty"}, {}, True),
    ({"field": "note", "op": "is_empty"}, {"note": [0]}, False),
    ({"field": "note", "op": "is_not_empty"}, {"note": {"a": 1}}, True),
    ({"field": "ok", "op": "is_true"}, {"ok": "yes"}, True),
    ({"field": "ok", "op": "is_false"}, {"ok": "yes"}, False),
    ({"field": "ok", "op": "is_false"}, {"ok": 0}, True),
    ({"field": "ok", "op": "exists"}, {"ok": None}, True),
    ({"field": "ok", "op": "not_exists"}, {"ok": None}, False),
    ({"field": "ok", "op": "not_exists"}, {}, True),
    ({"field": "a.b[1].c", "op": "equals", "value": 2}, {"a": {"b": [{"c": 1}, {"c": 2}]}}, True),
    ({"field": "a.b.1.c", "op": "equals", "value": "2"}, {"a": {"b": [{"c": 1}, {"c": 2}]}}, True),
    ({"field": "missing", "op": "gt", "value": 0}, {}, False),
    ({"field": "missing", "op": "lt", "value": 0}, {}, False),
    ({"field": "missing", "op": "not_equals", "value": 0}, {}, True),
    ({"field": "n", "op": "equals", "value": "5"}, {"n": 5.0}, True),
    ({"field": "n", "op": "equals", "value": 5, "type": "string"}, {"n": "5.0"}, False),
    ({"field": "flag", "op": "equals", "value": "true"}, {"flag": True}, True),
    ({"field": "flag", "op": "equals", "value": True, "type": "boolean"}, {"flag": "on"}, True),
    ({"field": "day", "op": "equals", "value": "2024-05-01T00:00:00Z", "type": "date"}, {"day": "2024-05-01"}, True),
    ({"field": "day", "op": "gte", "value": "today", "type": "date"}, {"day": "2000-01-01"}, False),
    ({"field": "name", "op": "equals", "value": "ann", "ignore_case": True}, {"name": "Ann"}, True),
    ({"field": "name", "op": "equals", "value": "ann"}, {"name": "Ann"}, False),
])
async def test_if_tests(condition: dict[str, Any], item: dict[str, Any], expected: bool) -> None:
    result = await run([if_node([condition])], ["t > if"], [item])
    assert out(result, "if", "true" if expected else "false") == [item]
    assert out(result, "if", "false" if expected else "true") == []


async def test_if_field_not_of_the_chosen_type_fails_naming_the_item() -> None:
    nodes = [if_node([{"field": "x", "op": "equals", "value": 1},
                      {"field": "n", "op": "gt", "value": 1, "type": "number"}])]
    result = await run(nodes, ["t > if"], [{"x": 1, "n": 2}, {"x": 1, "n": "lots"}])
    assert result.status is RunStatus.failed
    assert result.error is not None
    assert result.error["node_id"] == "if"
    assert result.error["item_index"] == 1
    assert result.error["field"] == "conditions[1].field"
    assert "'lots'" in result.error["message"] and "not a number" in result.error["message"]


async def test_if_bad_config_is_reported_with_locations() -> None:
    nodes = [
        if_node([{"field": "a", "op": "bigger", "value": 1}], node_id="one"),
        if_node([{"field": "a", "op": "is_empty"}, {"combine": "or", "conditions": [{"op": "equals"}]}],
                node_id="two"),
        if_node([{"field": "a", "op": "gt", "value": "abc", "type": "number"}], node_id="three"),
        if_node([{"field": "a", "op": "matches", "value": "(unclosed"}], node_id="four"),
        if_node([], node_id="five"),
        if_node([{"field": "a", "op": "lt"}], combine="xor", node_id="six"),
    ]
    found = problems(nodes, [f"t > {n['id']}" for n in nodes])
    assert "must be one of" in found["nodes[1].config.conditions[0].op"]
    assert found["nodes[2].config.conditions[1].conditions[0].field"] == "is required"
    assert "not a number" in found["nodes[3].config.conditions[0].value"]
    assert "regular expression" in found["nodes[4].config.conditions[0].value"]
    assert found["nodes[5].config.conditions"] == "add at least one condition"
    assert "needs a value" in found["nodes[6].config.conditions[0].value"]
    assert "must be one of" in found["nodes[6].config.combine"]
    assert len(found) == 7


async def test_if_expression_value_that_breaks_the_type_fails_at_run_time() -> None:
    nodes = [if_node([{"field": "n", "op": "gt", "value": "{{ item.limit }}", "type": "number"}])]
    result = await run(nodes, ["t > if"], [{"n": 1, "limit": 0}, {"n": 1, "limit": "none"}])
    assert result.status is RunStatus.failed
    assert result.error is not None
    assert result.error["item_index"] == 1
    assert "conditions[0].value" in result.error["message"]


# -- Filter ----------------------------------------------------------------------------------------------------------


async def test_filter_keeps_matching_items() -> None:
    nodes = [{"id": "f", "type": "logic.filter", "config": {"combine": "or", "conditions": [
        {"field": "status", "op": "equals", "value": "open"}, {"field": "priority", "op": "gte", "value": "2"}]}}]
    items = [{"status": "open", "priority": 0}, {"status": "done", "priority": "3"}, {"status": "done"}]
    result = await run(nodes, ["t > f"], items)
    assert result.output == items[:2]


async def test_filter_dropping_everything_skips_what_follows() -> None:
    nodes = [{"id": "f", "type": "logic.filter", "config": {"conditions": [{"field": "x", "op": "exists"}]}},
             probe("next")]
    result = await run(nodes, ["t > f", "f > next"], [{"y": 1}])
    assert out(result, "f") == []
    assert status(result, "next") is StepStatus.skipped
    assert result.status is RunStatus.succeeded


# -- Switch ----------------------------------------------------------------------------------------------------------


def switch(rules: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    return {"id": "sw", "type": "logic.switch", "config": {"rules": rules, **config}}


RULES = [
    {"conditions": [{"field": "amount", "op": "gte", "value": 1000}], "output": "big"},
    {"conditions": [{"field": "amount", "op": "gte", "value": 100}], "output": "medium"},
    {"conditions": [{"field": "country", "op": "equals", "value": "DE"}]},  # unnamed: out2
]
INVOICES = [{"id": 1, "amount": "5000", "country": "DE"}, {"id": 2, "amount": 150}, {"id": 3, "amount": 5},
            {"id": 4, "amount": 20, "country": "DE"}]


async def test_switch_sends_each_item_to_its_first_matching_rule() -> None:
    nodes = [switch(RULES), probe("big"), probe("medium"), probe("de")]
    edges = ["t > sw", "sw:big > big", "sw:medium > medium", "sw:out2 > de"]
    result = await run(nodes, edges, INVOICES)
    assert [i["id"] for i in out(result, "sw", "big")] == [1]
    assert [i["id"] for i in out(result, "sw", "medium")] == [2]
    assert [i["id"] for i in out(result, "sw", "out2")] == [4]  # item 1 is DE too, but went to `big` first
    assert [i["id"] for i in out(result, "de")] == [4]
    assert "fallback" not in result.steps["sw"].outputs  # item 3 is dropped


async def test_switch_all_matches_and_fallback() -> None:
    nodes = [switch(RULES, all_matches=True, fallback="output"), probe("big"), probe("medium"), probe("rest")]
    edges = ["t > sw", "sw:big > big", "sw:medium > medium", "sw:fallback > rest"]
    result = await run(nodes, edges, INVOICES)
    assert [i["id"] for i in out(result, "sw", "big")] == [1]
    assert [i["id"] for i in out(result, "sw", "medium")] == [1, 2]
    assert [i["id"] for i in out(result, "sw", "out2")] == [1, 4]
    assert [i["id"] for i in out(result, "rest")] == [3]


async def test_switch_rule_nobody_meets_skips_its_branch() -> None:
    nodes = [switch(RULES, fallback="output"), probe("big"), probe("rest")]
    result = await run(nodes, ["t > sw", "sw:big > big", "sw:fallback > rest"], [{"amount": 1}])
    assert status(result, "big") is StepStatus.skipped
    assert out(result, "rest") == [{"amount": 1, "reached": "rest"}]


async def test_switch_outputs_follow_config_and_bad_ports_are_reported() -> None:
    cls = default_registry().get("logic.switch")
    assert cls is not None
    assert cls.output_ports({"rules": RULES}) == ("big", "medium", "out2")
    assert cls.output_ports({"rules": RULES, "fallback": "output"}) == ("big", "medium", "out2", "fallback")
    nodes = [switch(RULES), probe("a"), probe("b")]
    found = problems(nodes, ["t > sw", "sw:big > a", "sw:fallback > b"])
    assert list(found) == ["edges[2].source_port"]
    assert "'big', 'medium', 'out2'" in found["edges[2].source_port"]
    found = problems(nodes, ["t > sw", "sw:out0 > a", "sw:big > b"])  # `out0` is named `big` here
    assert list(found) == ["edges[1].source_port"]


async def test_switch_bad_config_is_reported_with_locations() -> None:
    rules = [{"conditions": [{"field": "a"}], "output": "Big one"},
             {"conditions": [{"field": "a"}], "output": "fallback"},
             {"conditions": [{"field": "a", "op": "nope"}]}]
    found = problems([switch(rules, fallback="maybe")], ["t > sw"])
    assert set(found) == {"nodes[1].config.rules[0].output", "nodes[1].config.rules[1].output",
                          "nodes[1].config.rules[2].conditions[0].op", "nodes[1].config.fallback"}
    assert found["nodes[1].config.rules[1].output"] == "'fallback' is reserved; choose another output name"
    assert problems([switch([])], ["t > sw"]) == {"nodes[1].config.rules": "add at least one rule"}


# -- Merge -----------------------------------------------------------------------------------------------------------


def merge(**config: Any) -> dict[str, Any]:
    return {"id": "m", "type": "logic.merge", "config": config}


def split(node_id: str, field: str) -> dict[str, Any]:
    return {"id": node_id, "type": "data.split_out", "config": {"field": field}}


ORDERS_AND_CUSTOMERS = [{
    "orders": [{"order": 1, "cust": "7", "note": "from a"}, {"order": 2, "cust": 9}, {"order": 3}],
    "customers": [{"id": 7, "name": "Ann", "note": "from b"}, {"id": 8, "name": "Bob"}, {"id": 7.0, "name": "Ann2"}],
}]
JOINED = [{"order": 1, "cust": "7", "note": "from b", "id": 7, "name": "Ann"},
          {"order": 1, "cust": "7", "note": "from a", "id": 7.0, "name": "Ann2"}]


@pytest.mark.parametrize(("join", "expected"), [
    ("inner", JOINED),
    ("left", [*JOINED, {"order": 2, "cust": 9}, {"order": 3}]),
    ("outer", [*JOINED, {"order": 2, "cust": 9}, {"order": 3}, {"id": 8, "name": "Bob"}]),
])
async def test_merge_combine_by_key(join: str, expected: list[dict[str, Any]]) -> None:
    nodes = [split("orders", "orders"), split("customers", "customers"),
             merge(mode="combine_by_key", key_a="cust", key_b="id", join=join)]
    edges = ["t > orders", "t > customers", "orders > m:a", "customers > m:b"]
    result = await run(nodes, edges, ORDERS_AND_CUSTOMERS)
    assert result.output == expected


async def test_merge_combine_by_key_same_key_name_on_both_sides() -> None:
    data = [{"a": [{"k": "x", "v": 1}, {"k": None, "v": 2}], "b": [{"k": "x", "w": 3}, {"k": None, "w": 4}]}]
    nodes = [split("sa", "a"), split("sb", "b"), merge(mode="combine_by_key", key_a="k")]
    result = await run(nodes, ["t > sa", "t > sb", "sa > m:a", "sb > m:b"], data)
    assert result.output == [{"k": "x", "v": 1, "w": 3}]  # null keys never match


@pytest.mark.parametrize(("config", "expected"), [
    ({"mode": "append"}, [2, 3, 1]),
    ({"mode": "wait"}, [2, 3]),
])
async def test_merge_append_and_wait(config: dict[str, Any], expected: list[int]) -> None:
    nodes = [if_node([{"field": "k", "op": "gt", "value": 1}]), merge(**config)]
    edges = ["t > if", "if:false > m:b", "if:true > m:a"]
    result = await run(nodes, edges, [{"k": 1}, {"k": 2}, {"k": 3}])
    assert [i["k"] for i in result.output] == expected


@pytest.mark.parametrize(("include_unpaired", "expected"), [
    (True, [{"x": 1, "y": "a", "from": "b"}, {"x": 2, "y": "b"}, {"x": 3}]),
    (False, [{"x": 1, "y": "a", "from": "b"}, {"x": 2, "y": "b"}]),
])
async def test_merge_by_position(include_unpaired: bool, expected: list[dict[str, Any]]) -> None:
    data = [{"xs": [{"x": 1, "from": "a"}, {"x": 2}, {"x": 3}], "ys": [{"y": "a", "from": "b"}, {"y": "b"}]}]
    nodes = [split("xs", "xs"), split("ys", "ys"), merge(mode="by_position", include_unpaired=include_unpaired)]
    result = await run(nodes, ["t > xs", "t > ys", "xs > m:a", "ys > m:b"], data)
    assert result.output == expected


async def test_merge_of_a_taken_and_a_skipped_branch_runs_with_what_came() -> None:
    nodes = [if_node([{"field": "ok", "op": "is_true"}]), probe("yes"), probe("no"),
             merge(mode="combine_by_key", key_a="id", join="left"), probe("after")]
    edges = ["t > if", "if:true > yes", "if:false > no", "yes > m:a", "no > m:b", "m > after"]
    result = await run(nodes, edges, [{"id": 1, "ok": True}, {"id": 2, "ok": True}])
    assert status(result, "no") is StepStatus.skipped
    assert status(result, "m") is StepStatus.succeeded
    assert result.steps["m"].inputs == {"a": out(result, "yes"), "b": []}
    assert result.output == [{"id": 1, "ok": True, "reached": "after"}, {"id": 2, "ok": True, "reached": "after"}]


async def test_merge_of_two_skipped_branches_is_skipped() -> None:
    nodes = [{"id": "f", "type": "logic.filter", "config": {"conditions": [{"field": "x", "op": "exists"}]}},
             probe("left"), probe("right"), merge(), probe("after")]
    edges = ["t > f", "f > left", "f > right", "left > m:a", "right > m:b", "m > after"]
    result = await run(nodes, edges, [{"y": 1}])
    assert result.status is RunStatus.succeeded
    for node_id in ("left", "right", "m", "after"):
        assert status(result, node_id) is StepStatus.skipped, node_id
    assert result.output == []


async def test_merge_fed_only_by_empty_outputs_lets_nothing_through() -> None:
    nodes = [{"id": "f", "type": "logic.filter", "config": {"conditions": [{"field": "x", "op": "exists"}]}},
             merge(), probe("after")]
    result = await run(nodes, ["t > f", "f > m:a", "f > m:b", "m > after"], [{"y": 1}])
    assert result.status is RunStatus.succeeded
    assert result.steps["m"].outputs.get("main", []) == []
    assert status(result, "after") is StepStatus.skipped


async def test_merge_needs_a_key_to_combine_by() -> None:
    found = problems([merge(mode="combine_by_key")], ["t > m:a"])
    assert found == {"nodes[1].config.key_a": "combine by key needs key_a: the field to match on"}


# -- Wait ------------------------------------------------------------------------------------------------------------


async def test_wait_delays_then_passes_items_on() -> None:
    nodes = [{"id": "w", "type": "logic.wait", "config": {"seconds": 0.2}}]
    started = time.perf_counter()
    result = await run(nodes, ["t > w"], [{"a": 1}, {"a": 2}])
    assert time.perf_counter() - started >= 0.2
    assert result.output == [{"a": 1}, {"a": 2}]


async def test_wait_until_a_time_from_an_expression() -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    nodes = [{"id": "w", "type": "logic.wait", "config": {"mode": "until", "until": "{{ item.at }}"}}]
    started = time.perf_counter()
    result = await run(nodes, ["t > w"], [{"at": soon}])
    assert 0.15 <= time.perf_counter() - started < 5
    assert result.output == [{"at": soon}]

    started = time.perf_counter()
    result = await run(nodes, ["t > w"], [{"at": "2001-01-01T00:00:00Z"}])  # in the past: no wait
    assert time.perf_counter() - started < 0.1
    assert result.status is RunStatus.succeeded


async def test_wait_refuses_more_than_a_year() -> None:
    later = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    nodes = [{"id": "w", "type": "logic.wait", "config": {"mode": "until", "until": later}}]
    result = await run(nodes, ["t > w"], [{}])
    assert result.status is RunStatus.failed
    assert result.error is not None and result.error["field"] == "until"
    found = problems([{"id": "w", "type": "logic.wait", "config": {"seconds": 400 * 86400}},
                      {"id": "w2", "type": "logic.wait", "config": {"mode": "until", "until": "tomorrow"}}],
                     ["t > w", "t > w2"])
    assert set(found) == {"nodes[1].config.seconds", "nodes[2].config.until"}


async def _started(bus: EventBus, node_ids: set[str]) -> asyncio.Event:
    seen: set[str] = set()
    all_started = asyncio.Event()

    def listen(event: Event) -> None:
        if event.kind == "node.started" and event.node_id in node_ids:
            seen.add(event.node_id)
            if seen == node_ids:
                all_started.set()

    bus.subscribe(listen)
    return all_started


@pytest.mark.parametrize("parallel", [False, True])
async def test_cancelling_the_run_stops_a_wait(parallel: bool) -> None:
    waits = ["w1", "w2"] if parallel else ["w1"]
    nodes = [{"id": w, "type": "logic.wait", "config": {"seconds": 60}} for w in waits] + [probe("after")]
    edges = [f"t > {w}" for w in waits] + [f"{w} > after" for w in waits]
    bus = EventBus()
    engine = Engine(bus=bus)
    started = await _started(bus, set(waits))
    task = asyncio.create_task(engine.run(plan_of(nodes, edges), [{}], run_id="r-cancel"))
    await asyncio.wait_for(started.wait(), 30)
    began = time.perf_counter()
    assert engine.cancel("r-cancel")
    result = await asyncio.wait_for(task, 30)
    assert time.perf_counter() - began < 30  # stopped, not waited out (60 s); generous for a loaded machine
    assert result.status is RunStatus.cancelled
    assert "after" not in result.steps
    for w in waits:  # a node awaited inline (no task) leaves no step when cancelled; one in a task is `cancelled`
        assert w not in result.steps or status(result, w) is StepStatus.cancelled
    if parallel:
        assert {status(result, w) for w in waits} == {StepStatus.cancelled}


# -- the node types as the editor sees them ---------------------------------------------------------------------------


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = list(schema.get("properties", {}).items())
    for sub in schema.get("$defs", {}).values():
        found += _properties(sub)
    return found


@pytest.mark.parametrize("type_id", LOGIC_TYPES)
def test_node_types_describe_themselves(type_id: str) -> None:
    cls = default_registry().get(type_id)
    assert cls is not None
    assert cls.title and cls.icon != "widgets" and cls.description.endswith(".")
    assert cls.side_effects is False
    assert len((cls.__doc__ or "").split()) > 20
    schema = cls.Config.model_json_schema()
    assert cls.Config.model_config.get("extra") == "forbid"
    for name, prop in _properties(schema):
        assert prop.get("description"), f"{type_id}: field {name!r} has no description"
