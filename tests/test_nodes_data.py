"""Data-shaping nodes (Set, Sort, Limit, Split out, Aggregate), driven through the real planner and engine."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flowboard.engine import RunResult, RunStatus, StepStatus
from flowboard.errors import FlowInvalid

from .nodeflows import plan_of, run


async def run_one(type_id: str, config: dict[str, Any], items: list[dict[str, Any]]) -> RunResult:
    return await run([{"id": "n", "type": type_id, "config": config}], ["t > n"], items)


def problems(nodes: list[dict[str, Any]], edges: list[str]) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        plan_of(nodes, edges)
    return {p.loc: p.message for p in caught.value.problems}


DROP_ALL = {"id": "none", "type": "logic.filter", "config": {"conditions": [{"field": "nothing", "op": "exists"}]}}


# -- Set / transform -------------------------------------------------------------------------------------------------


async def test_set_with_expressions_from_the_item_and_another_node() -> None:
    nodes = [
        {"id": "lookup", "name": "Other node name", "type": "data.set",
         "config": {"fields": [{"name": "x", "value": 42}, {"name": "rate", "value": 1.5}]}},
        {"id": "s", "type": "data.set", "config": {"fields": [
            {"name": "double", "value": "{{ item.n * 2 }}"},
            {"name": "from_other", "value": "{{ nodes['Other node name'].items[0].x }}"},
            {"name": "price.gross", "value": "{{ item.net * nodes['Other node name'].items[0].rate }}"},
            {"name": "label", "value": "#{{ item.n }} for {{ item.who | upper }}"},
            {"name": "fixed", "value": {"nested": [1, 2]}},
        ]}},
    ]
    items = [{"n": 1, "net": 10, "who": "ann"}, {"n": 2, "net": 4, "who": "bob"}]
    result = await run(nodes, ["t > lookup", "lookup > s"], items)
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == [
        {"n": 1, "net": 10, "who": "ann", "x": 42, "rate": 1.5, "double": 2, "from_other": 42,
         "price": {"gross": 15.0}, "label": "#1 for ANN", "fixed": {"nested": [1, 2]}},
        {"n": 2, "net": 4, "who": "bob", "x": 42, "rate": 1.5, "double": 4, "from_other": 42,
         "price": {"gross": 6.0}, "label": "#2 for BOB", "fixed": {"nested": [1, 2]}},
    ]
    assert type(result.output[0]["double"]) is int
    first, second = result.output
    assert first["fixed"] is not second["fixed"]  # no two items share an object


async def test_set_never_changes_the_items_it_was_given() -> None:
    items = [{"customer": {"name": "Ann", "tags": ["a"]}, "old": 1, "gone": True}]
    before = copy.deepcopy(items)
    config = {"rename": [{"from": "old", "to": "meta.new"}], "remove": ["gone", "customer.tags"],
              "fields": [{"name": "customer.name", "value": "Bob"}, {"name": "customer.tags[0]", "value": "b"}]}
    result = await run_one("data.set", config, items)
    assert result.output == [{"customer": {"name": "Bob"}, "meta": {"new": 1}}]
    assert items == before
    assert result.steps["t"].outputs["main"] == before


async def test_set_order_rename_then_set_then_remove_and_keep_only() -> None:
    items = [{"a": 1, "b": 2, "c": 3}]
    config = {"rename": [{"from": "a", "to": "alpha"}], "fields": [{"name": "a", "value": "new"}], "remove": ["b"]}
    result = await run_one("data.set", config, items)
    assert result.output == [{"alpha": 1, "a": "new", "c": 3}]

    config = {**config, "keep_only": True, "fields": [{"name": "d.e", "value": "{{ item.c }}"}]}
    result = await run_one("data.set", config, items)
    assert result.output == [{"alpha": 1, "d": {"e": 3}}]


async def test_set_renaming_a_missing_field_does_nothing() -> None:
    result = await run_one("data.set", {"rename": [{"from": "nope", "to": "x"}], "remove": ["also.nope"]}, [{"a": 1}])
    assert result.output == [{"a": 1}]


async def test_set_into_a_field_that_is_not_an_object_fails_naming_item_and_field() -> None:
    config = {"fields": [{"name": "ok", "value": 1}, {"name": "a.b", "value": 1}]}
    result = await run_one("data.set", config, [{"a": {}}, {"a": 5}])
    assert result.status is RunStatus.failed
    assert result.error is not None
    assert (result.error["item_index"], result.error["field"]) == (1, "fields[1].name")
    assert "'a' holds '5'" in result.error["message"]


async def test_set_bad_config_is_reported_with_locations() -> None:
    nodes = [{"id": "s", "type": "data.set", "config": {"fields": [{"value": 1}], "rename": [{"from": "a"}],
                                                        "keep": True}}]
    found = problems(nodes, ["t > s"])
    assert found == {"nodes[1].config.fields[0].name": "is required", "nodes[1].config.rename[0].to": "is required",
                     "nodes[1].config.keep": "is not a known field; remove it or check its spelling"}


# -- Sort ------------------------------------------------------------------------------------------------------------


PEOPLE = [{"name": "bob", "age": "9"}, {"name": "Ann", "age": 30}, {"name": "carl"}, {"name": "dora", "age": "10"},
          {"name": "eve", "age": None}, {"name": "Al", "age": 30}, {"name": "fay", "age": ""}]


@pytest.mark.parametrize(("by", "expected"), [
    ([{"field": "age"}], ["bob", "dora", "Ann", "Al", "carl", "eve", "fay"]),
    ([{"field": "age", "order": "desc"}], ["Ann", "Al", "dora", "bob", "carl", "eve", "fay"]),
    ([{"field": "age", "order": "desc"}, {"field": "name"}], ["Al", "Ann", "dora", "bob", "carl", "eve", "fay"]),
    ([{"field": "age", "type": "string"}], ["dora", "Ann", "Al", "bob", "carl", "eve", "fay"]),
    ([{"field": "name"}], ["Al", "Ann", "bob", "carl", "dora", "eve", "fay"]),
    ([{"field": "name", "order": "desc", "ignore_case": False}], ["fay", "eve", "dora", "carl", "bob", "Ann", "Al"]),
    ([{"field": "nobody_has_it"}], ["bob", "Ann", "carl", "dora", "eve", "Al", "fay"]),
])
async def test_sort(by: list[dict[str, Any]], expected: list[str]) -> None:
    result = await run_one("data.sort", {"by": by}, PEOPLE)
    assert [p["name"] for p in result.output] == expected


async def test_sort_case_and_dates_and_nested_fields() -> None:
    items = [{"n": "b"}, {"n": "B"}, {"n": "a"}, {"n": "C"}]
    result = await run_one("data.sort", {"by": [{"field": "n"}]}, items)
    assert [i["n"] for i in result.output] == ["a", "b", "B", "C"]
    result = await run_one("data.sort", {"by": [{"field": "n", "ignore_case": False}]}, items)
    assert [i["n"] for i in result.output] == ["B", "C", "a", "b"]

    items = [{"d": {"at": "2024-05-01T10:00:00+02:00"}}, {"d": {"at": "2024-05-01T09:00:00Z"}}, {"d": {}}]
    result = await run_one("data.sort", {"by": [{"field": "d.at", "type": "date"}]}, items)
    assert result.output == [items[0], items[1], items[2]]  # 08:00 UTC before 09:00 UTC
    result = await run_one("data.sort", {"by": [{"field": "d.at", "type": "string"}]}, items)
    assert result.output == [items[1], items[0], items[2]]


async def test_sort_by_number_fails_on_a_value_that_is_no_number() -> None:
    result = await run_one("data.sort", {"by": [{"field": "age", "type": "number"}]},
                           [{"age": 3}, {"age": "x1"}, {}])
    assert result.status is RunStatus.failed
    assert result.error is not None
    assert (result.error["item_index"], result.error["field"]) == (1, "by[0].type")


async def test_sort_limit_split_and_aggregate_are_skipped_without_items() -> None:
    nodes = [DROP_ALL, {"id": "sort", "type": "data.sort", "config": {"by": [{"field": "a"}]}},
             {"id": "limit", "type": "data.limit", "config": {}},
             {"id": "split", "type": "data.split_out", "config": {"field": "a"}},
             {"id": "agg", "type": "data.aggregate", "config": {}}]
    edges = ["t > none", "none > sort", "sort > limit", "limit > split", "split > agg"]
    result = await run(nodes, edges, [{"a": [1]}])
    assert result.status is RunStatus.succeeded
    assert [result.steps[n].status for n in ("sort", "limit", "split", "agg")] == [StepStatus.skipped] * 4
    assert result.output == []


def test_sort_needs_a_key() -> None:
    found = problems([{"id": "s", "type": "data.sort", "config": {}}], ["t > s"])
    assert found == {"nodes[1].config.by": "add a field to sort by"}
    found = problems([{"id": "s", "type": "data.sort", "config": {"by": [{"field": "a", "order": "up"}]}}], ["t > s"])
    assert list(found) == ["nodes[1].config.by[0].order"]


# -- Limit -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "expected"), [
    ({"count": 2}, [0, 1]),
    ({"count": 2, "keep": "last"}, [3, 4]),
    ({"count": 10}, [0, 1, 2, 3, 4]),
    ({"count": 10, "keep": "last"}, [0, 1, 2, 3, 4]),
    ({}, [0, 1, 2, 3, 4]),
])
async def test_limit(config: dict[str, Any], expected: list[int]) -> None:
    result = await run_one("data.limit", config, [{"i": i} for i in range(5)])
    assert [i["i"] for i in result.output] == expected


async def test_limit_zero_skips_what_follows() -> None:
    nodes = [{"id": "n", "type": "data.limit", "config": {"count": 0, "keep": "last"}},
             {"id": "after", "type": "data.set", "config": {}}]
    result = await run(nodes, ["t > n", "n > after"], [{"i": 1}])
    assert result.steps["n"].status is StepStatus.succeeded
    assert result.steps["n"].outputs == {"main": []}
    assert result.steps["after"].status is StepStatus.skipped
    assert problems([{"id": "n", "type": "data.limit", "config": {"count": -1}}], ["t > n"]).keys() == {
        "nodes[1].config.count"}


# -- Split out -------------------------------------------------------------------------------------------------------


ORDER = {"order": 7, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}], "tags": ["x", "y"], "none": []}


@pytest.mark.parametrize(("config", "expected"), [
    ({"field": "lines"}, [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]),
    ({"field": "tags"}, [{"tags": "x"}, {"tags": "y"}]),
    ({"field": "tags", "output_field": "tag"}, [{"tag": "x"}, {"tag": "y"}]),
    ({"field": "lines", "keep_other_fields": True},
     [{"order": 7, "tags": ["x", "y"], "none": [], "sku": "A", "qty": 1},
      {"order": 7, "tags": ["x", "y"], "none": [], "sku": "B", "qty": 2}]),
    ({"field": "order"}, [{"order": 7}]),  # a single value counts as a list of one
])
async def test_split_out(config: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    result = await run_one("data.split_out", config, [ORDER])
    assert result.output == expected
    assert result.steps["t"].outputs["main"] == [ORDER]


async def test_split_out_nested_field_and_items_without_a_list() -> None:
    items = [{"id": 1, "doc": {"rows": [1, 2]}}, {"id": 2, "doc": {"rows": []}}, {"id": 3}, {"id": 4, "doc": None}]
    config = {"field": "doc.rows", "keep_other_fields": True}
    result = await run_one("data.split_out", config, items)
    assert result.output == [{"id": 1, "doc": {}, "rows": 1}, {"id": 1, "doc": {}, "rows": 2}]
    assert items[0] == {"id": 1, "doc": {"rows": [1, 2]}}

    result = await run_one("data.split_out", {**config, "keep_empty": True}, items)
    assert [i["id"] for i in result.output] == [1, 1, 2, 3, 4]
    assert result.output[2:] == items[1:]


# -- Aggregate -------------------------------------------------------------------------------------------------------


ROWS = [{"email": "a@x.org", "user": {"id": 1}}, {"user": {"id": 2}}, {"email": "c@x.org", "user": {}}]


async def test_aggregate_all_items() -> None:
    result = await run_one("data.aggregate", {}, ROWS)
    assert result.output == [{"items": ROWS}]
    result = await run_one("data.aggregate", {"output_field": "rows"}, ROWS[:1])
    assert result.output == [{"rows": ROWS[:1]}]


@pytest.mark.parametrize(("skip_missing", "expected"), [
    (True, {"email": ["a@x.org", "c@x.org"], "user_ids": [1, 2]}),
    (False, {"email": ["a@x.org", None, "c@x.org"], "user_ids": [1, 2, None]}),
])
async def test_aggregate_fields(skip_missing: bool, expected: dict[str, Any]) -> None:
    config = {"mode": "fields", "skip_missing": skip_missing,
              "fields": [{"field": "email"}, {"field": "user.id", "output_field": "user_ids"}]}
    result = await run_one("data.aggregate", config, ROWS)
    assert result.output == [expected]


def test_aggregate_bad_config_is_reported_with_locations() -> None:
    found = problems([{"id": "a", "type": "data.aggregate", "config": {"mode": "fields"}},
                      {"id": "b", "type": "data.aggregate",
                       "config": {"mode": "fields", "fields": [{"field": "a.id"}, {"field": "b.id"}]}}],
                     ["t > a", "t > b"])
    assert found == {"nodes[1].config.fields": "add at least one field to collect",
                     "nodes[2].config.fields": "two fields would be collected into 'id'; give one an output_field"}
