"""The scheduler, as a user of a flow sees it: what ran, what was skipped, in what order, with what items."""

from __future__ import annotations

import asyncio
import gc

import pytest

from flowboard.engine import Engine, EventBus, RunStatus, StepStatus
from flowboard.errors import FlowInvalid

from .conftest import make_flow
from .testnodes import Flaky, Sleep

T = {"id": "t", "type": "trigger.manual"}


def add(nid: str, field: str, value: object, **settings: object) -> dict:
    node = {"id": nid, "type": "test.add", "config": {"field": field, "value": value}}
    if settings:
        node["settings"] = settings
    return node


async def test_chain_passes_items_and_output_is_last_node(plan_of, engine: Engine) -> None:
    plan = plan_of(make_flow([T, add("a", "a", 1), add("b", "b", 2)], [("t", "a"), ("a", "b")]))
    result = await engine.run(plan, [{"n": 1}, {"n": 2}])
    assert result.status is RunStatus.succeeded
    assert result.output == [{"n": 1, "a": 1, "b": 2}, {"n": 2, "a": 1, "b": 2}]
    assert [s.status for s in result.steps.values()] == [StepStatus.succeeded] * 3
    assert result.steps["b"].inputs == {"main": [{"n": 1, "a": 1}, {"n": 2, "a": 1}]}


async def test_manual_trigger_uses_test_items_without_input(plan_of, engine: Engine) -> None:
    plan = plan_of(make_flow([{**T, "config": {"items": [{"who": "test"}]}}, add("a", "a", 1)], [("t", "a")]))
    assert (await engine.run(plan)).output == [{"who": "test", "a": 1}]
    assert (await engine.run(plan, [{"who": "real"}])).output == [{"who": "real", "a": 1}]


async def test_branches_run_concurrently(plan_of, engine: Engine) -> None:
    Sleep.log.clear()
    nodes = [T] + [{"id": f"s{i}", "type": "test.sleep", "config": {"seconds": 0.1}} for i in range(5)]
    plan = plan_of(make_flow(nodes, [("t", f"s{i}") for i in range(5)]))
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await engine.run(plan, [{}])
    elapsed = loop.time() - start
    assert result.status is RunStatus.succeeded
    assert elapsed < 0.3, f"five 100 ms branches took {elapsed:.3f} s: they did not overlap"
    starts = sorted(s for _, s, _ in Sleep.log)
    assert starts[-1] - starts[0] < 0.05


async def test_concurrency_is_bounded_per_run(plan_of, engine: Engine) -> None:
    Sleep.log.clear()
    nodes = [T] + [{"id": f"s{i}", "type": "test.sleep", "config": {"seconds": 0.05}} for i in range(4)]
    plan = plan_of(make_flow(nodes, [("t", f"s{i}") for i in range(4)], settings={"max_concurrency": 2}))
    start = asyncio.get_running_loop().time()
    await engine.run(plan, [{}])
    assert asyncio.get_running_loop().time() - start >= 0.1  # two waves of two
    spans = sorted((s, e) for _, s, e in Sleep.log)
    for i, (s, _) in enumerate(spans):
        overlapping = sum(1 for s2, e2 in spans if s2 <= s < e2)
        assert overlapping <= 2, f"{overlapping} nodes ran at once at span {i}"


async def test_untaken_branch_is_skipped_and_merge_waits_for_all(plan_of, engine: Engine) -> None:
    nodes = [T, {"id": "br", "type": "test.branch"}, add("yes", "path", "yes"), add("no", "path", "no"),
             add("after_no", "x", 1), {"id": "join", "type": "test.join"}]
    edges = [("t", "br"), ("br", "yes", "yes", "main"), ("br", "no", "no", "main"), ("no", "after_no"),
             ("yes", "main", "join", "a"), ("after_no", "main", "join", "b")]
    result = await engine.run(plan_of(make_flow(nodes, edges)), [{"ok": True}])
    assert result.steps["yes"].status is StepStatus.succeeded
    assert result.steps["no"].status is StepStatus.skipped
    assert result.steps["after_no"].status is StepStatus.skipped
    assert result.steps["join"].status is StepStatus.succeeded
    assert result.output == [{"ok": True, "path": "yes"}]


async def test_retries_with_backoff_then_succeed(plan_of, engine: Engine) -> None:
    node = {"id": "f", "type": "test.flaky", "config": {"fail_times": 2},
            "settings": {"retries": 2, "retry_backoff": 0.01}}
    result = await engine.run(plan_of(make_flow([T, node], [("t", "f")])), [{"v": 1}])
    assert result.status is RunStatus.succeeded
    assert result.steps["f"].attempt == 3
    assert Flaky.attempts[f"{result.run_id}:flaky"] == 3


async def test_failure_stops_run_with_located_error(plan_of, engine: Engine) -> None:
    nodes = [T, {"id": "boom", "type": "test.boom", "name": "Divide"}, add("after", "x", 1)]
    result = await engine.run(plan_of(make_flow(nodes, [("t", "boom"), ("boom", "after")])), [{}])
    assert result.status is RunStatus.failed
    assert result.error is not None
    assert result.error["node_id"] == "boom"
    assert "ZeroDivisionError: division by zero" in result.error["message"]
    assert "after" not in result.steps


async def test_on_error_continue_and_error_port(plan_of, engine: Engine) -> None:
    nodes = [T, {"id": "c", "type": "test.boom", "settings": {"on_error": "continue"}}, add("next", "seen", True)]
    result = await engine.run(plan_of(make_flow(nodes, [("t", "c"), ("c", "next")])), [{"v": 1}])
    assert result.status is RunStatus.succeeded
    assert result.steps["c"].status is StepStatus.failed
    assert result.output[0]["seen"] is True and "division by zero" in result.output[0]["error"]["message"]

    nodes = [T, {"id": "e", "type": "test.boom", "settings": {"on_error": "error_port"}}, add("ok", "path", "ok"),
             add("handler", "path", "handled")]
    edges = [("t", "e"), ("e", "main", "ok", "main"), ("e", "error", "handler", "main")]
    result = await engine.run(plan_of(make_flow(nodes, edges)), [{"v": 1}])
    assert result.status is RunStatus.succeeded
    assert result.steps["ok"].status is StepStatus.skipped
    assert result.output[0]["path"] == "handled"


async def test_timeout_fails_the_node(plan_of, engine: Engine) -> None:
    node = {"id": "slow", "type": "test.sleep", "config": {"seconds": 5}, "settings": {"timeout": 0.05}}
    result = await engine.run(plan_of(make_flow([T, node], [("t", "slow")])), [{}])
    assert result.status is RunStatus.failed
    assert result.error is not None and result.error["message"] == "timed out after 0.05 s"


async def test_disabled_node_passes_items_through(plan_of, engine: Engine) -> None:
    nodes = [T, add("off", "x", 1, disabled=True), add("on", "y", 2)]
    result = await engine.run(plan_of(make_flow(nodes, [("t", "off"), ("off", "on")])), [{"v": 0}])
    assert result.output == [{"v": 0, "y": 2}]


async def test_cancel_a_running_run(plan_of, engine: Engine) -> None:
    plan = plan_of(make_flow([T, {"id": "slow", "type": "test.sleep", "config": {"seconds": 600}}, add("a", "x", 1)],
                             [("t", "slow"), ("slow", "a")]))
    task = asyncio.create_task(engine.run(plan, [{}], run_id="r-cancel"))
    await asyncio.sleep(0.05)
    assert engine.active_runs == ["r-cancel"]
    assert engine.cancel("r-cancel")
    result = await asyncio.wait_for(task, 30)  # stopped, not slept out
    assert result.status is RunStatus.cancelled
    assert result.steps["slow"].status is StepStatus.cancelled
    assert "a" not in result.steps
    assert engine.active_runs == []


async def test_events_stream_node_states(plan_of) -> None:
    bus = EventBus()
    seen: list[tuple[str, str | None, str | None]] = []
    bus.subscribe(lambda e: seen.append((e.kind, e.node_id, e.status)))
    engine = Engine(bus=bus)
    nodes = [T, {"id": "br", "type": "test.branch"}, add("yes", "p", 1), add("no", "p", 0)]
    edges = [("t", "br"), ("br", "yes", "yes", "main"), ("br", "no", "no", "main")]
    await engine.run(plan_of(make_flow(nodes, edges)), [{"ok": True}])
    assert seen[0] == ("run.started", None, "running")
    assert ("node.started", "br", "running") in seen
    assert ("node.finished", "br", "succeeded") in seen
    assert ("node.skipped", "no", "skipped") in seen
    assert seen[-1] == ("run.finished", None, "succeeded")
    assert seen.index(("node.started", "yes", "running")) > seen.index(("node.finished", "br", "succeeded"))


async def test_done_steps_are_not_run_again(plan_of, engine: Engine) -> None:
    """What resume after a crash relies on: finished steps come back from the store and are not redone."""
    node = {"id": "f", "type": "test.flaky", "config": {"fail_times": 0, "key": "once"}}
    plan = plan_of(make_flow([T, node, add("a", "x", 1)], [("t", "f"), ("f", "a")]))
    first = await engine.run(plan, [{"v": 1}], run_id="r-resume")
    assert Flaky.attempts["r-resume:once"] == 1
    done = {nid: first.steps[nid] for nid in ("t", "f")}
    again = await engine.run(plan, [{"v": 1}], run_id="r-resume", done=done)
    assert Flaky.attempts["r-resume:once"] == 1
    assert again.output == [{"v": 1, "x": 1}]


async def test_expressions_see_item_and_other_nodes(plan_of, engine: Engine) -> None:
    nodes = [T, {**add("look", "days_left", 12), "name": "Look up"},
             add("msg", "text", "{{ item.name }} has {{ nodes['Look up'].items[0].days_left }} days"),
             add("num", "double", "{{ nodes.look.items[0].days_left * 2 }}")]
    result = await engine.run(plan_of(make_flow(nodes, [("t", "look"), ("look", "msg"), ("msg", "num")])),
                              [{"name": "Ada"}])
    assert result.output[0]["text"] == "Ada has 12 days"
    assert result.output[0]["double"] == 24  # a whole-field expression keeps its native type


def collect_all() -> None:
    """Collect until a pass finds nothing. One pass may not free all there is: a `weakref.finalize` callback that
    the pass runs (an earlier test's recorder, say) lets go of what it held only then, for the next pass to free."""
    for _ in range(10):
        if not gc.collect():
            return


async def test_a_finished_run_leaves_no_reference_cycles(plan_of, engine: Engine) -> None:
    """A run's objects go when it ends, by reference counting: a cycle (a node view that calls back into its run)
    kept every run and its items alive until the garbage collector found it, and made the collector work on every
    run. With expressions that read other nodes (`nodes[...].item`, `.items`) and without."""
    flows = [(make_flow([T, add("a", "a", 1), add("b", "b", "{{ nodes['a'].item.a + 1 }}"),
                         add("c", "c", "{{ nodes.b.items | length }}")], [("t", "a"), ("a", "b"), ("b", "c")]),
              {"n": 0, "a": 1, "b": 2, "c": 2}),
             (make_flow([T, add("a", "a", 1), add("b", "b", "{{ item.a }}")], [("t", "a"), ("a", "b")]),
              {"n": 0, "a": 1, "b": 1})]
    for flow, first in flows:
        plan = plan_of(flow)
        await engine.run(plan, [{"n": 1}])
        collect_all()  # garbage of earlier tests is not counted as the runs'
        gc.disable()
        try:
            results = [await engine.run(plan, [{"n": i}, {"n": i + 1}]) for i in range(20)]
            found = gc.collect()
        finally:
            gc.enable()
        assert [r.status for r in results] == [RunStatus.succeeded] * 20
        assert results[0].output[0] == first
        assert found == 0, f"20 runs left {found} objects in reference cycles"


def test_plan_reports_every_graph_problem_at_once(plan_of) -> None:
    nodes = [T, add("a", "x", 1), add("b", "x", 1), add("lonely", "x", 1), {"id": "br", "type": "test.branch"}]
    edges = [("t", "a"), ("a", "b"), ("b", "a"), ("t", "br"), ("br", "maybe", "a", "main"), ("t", "ghost")]
    with pytest.raises(FlowInvalid) as info:
        plan_of(make_flow(nodes, edges))
    text = str(info.value)
    assert "edges[4].source_port: node 'br' has no output 'maybe' (it has 'yes', 'no')" in text
    assert "edges[5].target: there is no node with id 'ghost'" in text
    assert "loop (a → b → a)" in text or "loop (b → a → b)" in text
