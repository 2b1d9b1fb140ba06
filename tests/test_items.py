"""Items between nodes: no node can change what another node sees, and every item knows where it came from."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.engine import Engine, RunStatus, StepStatus
from flowboard.errors import FlowInvalid
from flowboard.frozen import FrozenDict, FrozenList, freeze, freeze_parsed, thaw
from flowboard.store import SqlRecorder

from .conftest import make_flow
from .test_store import MakeStore, open_stores
from .testnodes import Mutate

PEOPLE = [
    {"id": 1, "name": "ada", "address": {"city": "London", "geo": {"lat": 51}}, "tags": ["a", "b"],
     "lines": [{"qty": 1}]},
    {"id": 2, "name": "bob", "address": {"city": "Paris", "geo": {"lat": 48}}, "tags": ["c"], "lines": [{"qty": 2}]},
]
T = {"id": "t", "type": "trigger.manual", "name": "Start"}


@pytest.fixture
def make_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeStore]:
    yield from open_stores("sqlite", tmp_path, monkeypatch)


# -- isolation -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(Mutate.WAYS))
async def test_a_node_cannot_change_what_others_see(how: str, plan_of, make_store: MakeStore) -> None:
    """A node that changes its input items in place (nested dicts, lists, the item list itself) fails with a plain
    message; its sibling branch, the upstream node's recorded output and later expressions still see the original."""
    flow = make_flow([
        T,
        {"id": "m", "type": "test.mutate", "config": {"how": how}, "settings": {"on_error": "continue"}},
        {"id": "w", "type": "test.sleep", "config": {"seconds": 0.01}},
        {"id": "s", "type": "test.add", "config": {"field": "seen", "value": "{{ nodes.t.items }}"}},
    ], [("t", "m"), ("t", "w"), ("w", "s")])
    store = make_store()
    engine = Engine(recorder=SqlRecorder(store))
    try:
        result = await engine.run(plan_of(flow), copy.deepcopy(PEOPLE), run_id=f"r-{abs(hash(how))}")
    finally:
        await engine.aclose()
    assert result.status is RunStatus.succeeded
    m = result.steps["m"]
    assert m.status is StepStatus.failed
    assert "changed an item it received" in m.error["message"] and "{**item" in m.error["message"]
    assert result.steps["t"].outputs == {"main": PEOPLE}
    assert result.steps["w"].outputs == {"main": [{**p, "w": True} for p in PEOPLE]}
    assert [i["seen"] for i in result.steps["s"].outputs["main"]] == [PEOPLE, PEOPLE]
    recorded = store.get_steps(result.run_id)
    assert recorded["t"].outputs == {"main": PEOPLE}
    assert recorded["w"].outputs == {"main": [{**p, "w": True} for p in PEOPLE]}


async def test_the_callers_input_and_a_nodes_later_changes_do_not_leak(plan_of, engine: Engine) -> None:
    given = copy.deepcopy(PEOPLE)
    flow = make_flow([T, {"id": "a", "type": "test.add", "config": {"field": "x", "value": 1}}], [("t", "a")])
    result = await engine.run(plan_of(flow), given)
    given[0]["name"] = "changed after the run started"
    given[0]["tags"].append("z")
    assert result.steps["t"].outputs["main"] == PEOPLE
    assert result.output[0]["name"] == "ada"


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (frozen where the other is frozen), keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("text", ['{"hello":"world","n":1,"items":[1,2,3]}', '[]', '{}', '"x"', '3.5', 'null',
                                  '[{"a":[{"b":{}}],"c":[[],[1,[2]]]},{"d":null}]', '{"a":{"b":{"c":[true,false]}}}'])
def test_a_parsed_json_value_frozen_in_place_is_what_freeze_makes(text: str) -> None:
    import orjson

    assert _same(freeze_parsed(orjson.loads(text)), freeze(orjson.loads(text)))


def test_frozen_items_read_and_copy_like_plain_json() -> None:
    item = freeze({"a": {"b": [1, {"c": 2}]}, "s": "x"})
    assert isinstance(item, dict) and isinstance(item["a"]["b"], list)
    assert type(item) is FrozenDict and type(item["a"]["b"]) is FrozenList
    copied = {**item, "s": "y"}
    assert type(copied) is dict and copied["a"] is item["a"]  # a shallow copy shares the frozen inside
    deep = copy.deepcopy(item)
    deep["a"]["b"].append(3)  # a deep copy is plain and changeable
    assert item["a"]["b"] == [1, {"c": 2}]
    assert thaw(item) == {"a": {"b": [1, {"c": 2}]}, "s": "x"} and type(thaw(item)["a"]) is dict
    assert type(item.copy()) is dict and type(item["a"]["b"][:]) is list
    assert freeze(item) is item  # frozen data is not walked again


# -- lineage ---------------------------------------------------------------------------------------------------------

BACK = {"id": "u", "type": "test.add", "name": "Use",
        "config": {"field": "back", "value": "{{ nodes['Look up'].item.id }}"}}
LOOKUP = {"id": "l", "type": "test.add", "name": "Look up",
          "config": {"field": "looked", "value": "{{ item.id * 10 }}"}}
MANY = [{"id": i, "tags": [f"t{i}a", f"t{i}b"], "key": f"k{i}"} for i in range(1, 6)]
COND = {"conditions": [{"field": "id", "op": "not_equals", "value": 2}]}


def reshaping(node: dict[str, Any], port: str = "main") -> tuple[list[dict[str, Any]], list[Any]]:
    """Start → Look up → node (its `port`) → Use."""
    return [T, LOOKUP, node, BACK], [("t", "l"), ("l", "r"), ("r", port, "u", "main")]


LINEAGE_CASES = {
    "filter": reshaping({"id": "r", "type": "logic.filter", "config": COND}),
    "sort": reshaping({"id": "r", "type": "data.sort", "config": {"by": [{"field": "id", "order": "desc"}]}}),
    "limit last": reshaping({"id": "r", "type": "data.limit", "config": {"count": 2, "keep": "last"}}),
    "split out": reshaping({"id": "r", "type": "data.split_out",
                            "config": {"field": "tags", "output_field": "tag", "keep_other_fields": True}}),
    "set": reshaping({"id": "r", "type": "data.set", "config": {"fields": [{"name": "z", "value": "{{ item.id }}"}],
                                                                 "remove": ["tags"]}}),
    "if false": reshaping({"id": "r", "type": "logic.if", "config": COND}, "false"),
    "if true": reshaping({"id": "r", "type": "logic.if", "config": COND}, "true"),
    "switch": reshaping({"id": "r", "type": "logic.switch", "config": {
        "rules": [{"output": "odd", "conditions": [{"field": "id", "op": "matches", "value": "[135]"}]}],
        "fallback": "output"}}, "fallback"),
    "wait": reshaping({"id": "r", "type": "logic.wait", "config": {"seconds": 0}}),
    "sort then filter then split": (
        [T, LOOKUP, {"id": "r1", "type": "data.sort", "config": {"by": [{"field": "key", "order": "desc"}]}},
         {"id": "r2", "type": "logic.filter", "config": COND},
         {"id": "r3", "type": "data.split_out", "config": {"field": "tags", "keep_other_fields": True}}, BACK],
        [("t", "l"), ("l", "r1"), ("r1", "r2"), ("r2", "r3"), ("r3", "u")]),
    "merge by key": (
        [T, LOOKUP, {"id": "other", "type": "data.sort", "config": {"by": [{"field": "id", "order": "desc"}]}},
         {"id": "r", "type": "logic.merge", "config": {"mode": "combine_by_key", "key_a": "key"}}, BACK],
        [("t", "l"), ("t", "other"), ("other", "main", "r", "a"), ("l", "main", "r", "b"), ("r", "u")]),
    "merge by position": (
        [T, LOOKUP, {"id": "other", "type": "data.limit", "config": {"count": 3}},
         {"id": "r", "type": "logic.merge", "config": {"mode": "by_position"}}, BACK],
        [("t", "l"), ("t", "other"), ("l", "main", "r", "a"), ("other", "main", "r", "b"), ("r", "u")]),
    "merge append": (
        [T, LOOKUP, {"id": "f", "type": "logic.filter", "config": COND},
         {"id": "r", "type": "logic.merge", "config": {"mode": "append"}}, BACK],
        [("t", "l"), ("l", "f"), ("t", "main", "r", "a"), ("f", "main", "r", "b"), ("r", "u")]),
}


def lineage_case(case: str) -> tuple[list[dict[str, Any]], list[Any]]:
    nodes, edges = LINEAGE_CASES[case]
    if case == "merge append":  # items of a come straight from the trigger: they have no Look up item
        nodes = [*nodes[:-1], {**BACK, "config": {"field": "back", "value": "{{ nodes['Start'].item.id }}"}}]
    return nodes, edges


@pytest.mark.parametrize("case", sorted(LINEAGE_CASES))
async def test_item_of_an_earlier_node_is_the_matching_one(case: str, plan_of, make_store: MakeStore) -> None:
    nodes, edges = lineage_case(case)
    store = make_store()
    engine = Engine(recorder=SqlRecorder(store))
    try:
        result = await engine.run(plan_of(make_flow(nodes, edges)), copy.deepcopy(MANY))
    finally:
        await engine.aclose()
    assert result.status is RunStatus.succeeded, result.error
    out = result.steps["u"].outputs["main"]
    assert out, "the case must carry items to Use"
    for item in out:
        assert item["back"] == item["id"], item
    assert store.get_steps(result.run_id)["u"].outputs["main"] == out


PLAIN_USE = {"id": "u", "type": "test.add", "name": "Use", "config": {"field": "used", "value": True}}
RECORDED_LINEAGE_CASES = {
    **{case: lineage_case(case) for case in LINEAGE_CASES},
    "filter keeps nothing": ([T, LOOKUP, {"id": "r", "type": "logic.filter", "config": {
        "conditions": [{"field": "id", "op": "gt", "value": 100}]}}, PLAIN_USE],
        [("t", "l"), ("l", "r"), ("r", "u")]),
    "two new items of each": ([T, LOOKUP, {"id": "r", "type": "test.twice"}, PLAIN_USE],
                              [("t", "l"), ("l", "r"), ("r", "u")]),
}


@pytest.mark.parametrize("count", [1, 2, 5])
@pytest.mark.parametrize("case", sorted(RECORDED_LINEAGE_CASES))
async def test_a_recorded_run_stores_the_lineage_an_unrecorded_one_works_out(case: str, count: int, plan_of,
                                                                             make_store: MakeStore) -> None:
    """With recording on, the engine works a step's lineage out as it records it (one item in, one out: "in order")
    instead of leaving it to `infer`; what the store keeps must be what `infer` says, on every shape of node, with
    one item (where that shortcut applies) as with several."""
    plan = plan_of(make_flow(*RECORDED_LINEAGE_CASES[case]))
    store = make_store()
    recording = Engine(recorder=SqlRecorder(store))
    memory = Engine()
    try:
        recorded = await recording.run(plan, copy.deepcopy(MANY[:count]), run_id=f"rec-{count}")
        worked_out = await memory.run(plan, copy.deepcopy(MANY[:count]))
    finally:
        await recording.aclose()
        await memory.aclose()
    assert recorded.status is worked_out.status is RunStatus.succeeded, recorded.error or worked_out.error
    stored = store.get_steps(f"rec-{count}")
    assert {nid: s.lineage for nid, s in stored.items()} == {nid: s.lineage for nid, s in worked_out.steps.items()}
    assert {nid: s.lineage for nid, s in recorded.steps.items()} == {nid: s.lineage for nid, s in
                                                                   worked_out.steps.items()}


async def test_aggregate_item_is_unique_for_one_item_and_refused_for_many(plan_of, engine: Engine) -> None:
    nodes = [T, LOOKUP, {"id": "r", "type": "data.aggregate", "config": {"mode": "fields", "fields": [
        {"field": "id"}]}}, {**BACK, "settings": {"on_error": "continue"}}]
    plan = plan_of(make_flow(nodes, [("t", "l"), ("l", "r"), ("r", "u")]))
    one = await engine.run(plan, [{"id": 7}])
    assert one.output == [{"id": [7], "back": 7}]
    many = await engine.run(plan, [{"id": 7}, {"id": 8}])
    assert many.steps["u"].status is StepStatus.failed
    assert "comes from 2 items of 'Look up'" in many.steps["u"].error["message"]


async def test_item_of_a_node_not_before_this_one_is_refused_in_plain_words(plan_of, engine: Engine) -> None:
    nodes = [T, LOOKUP, {"id": "side", "type": "test.add", "name": "Side", "config": {"field": "s", "value": 1}},
             {**BACK, "config": {"field": "back", "value": "{{ nodes['Side'].item.s }}"}}]
    plan = plan_of(make_flow(nodes, [("t", "l"), ("t", "side"), ("l", "u"), ("side", "u")]))
    ok = await engine.run(plan, [{"id": 1}])  # Use gets items from both: each comes from its own branch
    assert ok.status is RunStatus.failed
    assert "does not come from an item of 'Side'" in ok.error["message"]


# -- names -----------------------------------------------------------------------------------------------------------

DUPLICATE_READS = [
    "{{ nodes['Look up'].items[0].x }}",
    '{{ nodes["Look up"].item.x }}',
    "Total: {{ nodes['Look up'].items | length }}",
    "{% if nodes['Look up'].items %}yes{% endif %}",
    "{{ nodes.lookup.items }}",  # `lookup` is one node's id and the other's name
]


@pytest.mark.parametrize("text", DUPLICATE_READS)
def test_an_expression_naming_two_nodes_is_refused_where_it_is_written(text: str, plan_of) -> None:
    nodes = [T, {"id": "lookup", "type": "test.add", "name": "Look up"},
             {"id": "l2", "type": "test.add", "name": "Look up" if "Look up" in text else "lookup"},
             {"id": "u", "type": "test.add", "config": {"field": "y", "value": text}}]
    with pytest.raises(FlowInvalid) as caught:
        plan_of(make_flow(nodes, [("t", "lookup"), ("lookup", "l2"), ("l2", "u")]))
    problems = caught.value.problems
    assert [p.loc for p in problems] == ["nodes[3].config.value"]
    assert "2 nodes answer to" in problems[0].message and "give them different names" in problems[0].message


def test_two_nodes_with_one_name_are_fine_while_no_expression_names_them(plan_of) -> None:
    nodes = [T, {"id": "a", "type": "test.add", "name": "Same"}, {"id": "b", "type": "test.add", "name": "Same"},
             {"id": "u", "type": "test.add", "config": {"field": "y", "value": "{{ nodes['Other'].items }}"}}]
    plan_of(make_flow(nodes, [("t", "a"), ("a", "b"), ("b", "u")]))


async def test_lineage_survives_recording_and_resume(plan_of, make_store: MakeStore) -> None:
    """A run resumed from its recorded steps (after a crash) still finds the matching items: lineage is stored
    with the steps, compactly ("=" for items passed on in order)."""
    nodes, edges = LINEAGE_CASES["sort then filter then split"]
    plan = plan_of(make_flow(nodes, edges))
    store = make_store()
    engine = Engine(recorder=SqlRecorder(store))
    try:
        first = await engine.run(plan, copy.deepcopy(MANY), run_id="first")
        recorded = store.get_steps("first")
        assert recorded["l"].lineage == {"main": "="}
        assert recorded["r1"].lineage == {"main": [4, 3, 2, 1, 0]}
        assert {nid: s.lineage for nid, s in recorded.items()} == {nid: s.lineage for nid, s in first.steps.items()}
    finally:
        await engine.aclose()
    done = {nid: step for nid, step in recorded.items() if nid != "u"}  # as after a crash before Use ran
    memory = Engine()
    try:
        resumed = await memory.run(plan, copy.deepcopy(MANY), run_id="first", done=done)
    finally:
        await memory.aclose()
    assert resumed.status is RunStatus.succeeded
    assert resumed.steps["u"].outputs == first.steps["u"].outputs
    assert all(item["back"] == item["id"] for item in resumed.output)


async def test_a_node_may_hand_on_the_frozen_list_it_received(plan_of, engine: Engine) -> None:
    flow = make_flow([T, {"id": "p", "type": "test.pass"}, {"id": "p_dict", "type": "test.pass"}],
                     [("t", "p"), ("p", "p_dict")])
    result = await engine.run(plan_of(flow), copy.deepcopy(PEOPLE))
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == PEOPLE
    assert result.steps["p_dict"].lineage == {"main": "="}


async def test_editor_preview_and_data_view_show_lineage(plan_of, registry, engine: Engine) -> None:
    from flowboard.expressions import compile_string, evaluate
    from flowboard.model import parse_flow
    from flowboard.ui.data_view import source_labels
    from flowboard.ui.run_data import RunView

    nodes, edges = LINEAGE_CASES["sort then filter then split"]
    data = make_flow(nodes, edges)
    result = await engine.run(plan_of(data), copy.deepcopy(MANY))
    view = RunView.from_result(result, MANY, "t")
    flow = parse_flow(data)
    scope = view.scope(flow, registry, "u")
    assert evaluate(compile_string("{{ nodes['Look up'].item.id }}"), scope) == scope["item"]["id"] == 5
    sort_step = result.steps["r1"]
    assert source_labels(sort_step, view.inputs_of(flow, "r1")) == {"main": ["5", "4", "3", "2", "1"]}
    split_labels = source_labels(result.steps["r3"], view.inputs_of(flow, "r3"))["main"]
    assert split_labels[:4] == ["1", "1", "2", "2"]
    assert source_labels(result.steps["t"], {}) == {}
