"""A run always ends, and ends right: whatever raises outside a node (a listener, the recorder), the run is `crashed`
with its reason recorded, its nodes stopped, and every view gets the final events. State changes follow the allowed
transitions, and a writer that does not own a run writes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from flowboard.engine import (
    RUN_TRANSITIONS,
    Engine,
    Event,
    RunLost,
    RunResult,
    RunStatus,
    Step,
    StepStatus,
    build_plan,
    runner,
    transition_allowed,
)
from flowboard.engine.runner import RunInfo
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins
from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs
from flowboard.store import SqlRecorder, Store, TransitionRefused

from . import testnodes
from .conftest import make_flow
from .test_store import BACKENDS, MakeStore, open_stores


class Stubborn(NodeType):
    """Turns its cancellation into a failure, as a node cleaning up badly would."""

    type = "test.stubborn"
    title = "Stubborn"
    category = Category.logic
    entered: ClassVar[asyncio.Event]

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        Stubborn.entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("could not clean up") from None
        return []


class Counted(NodeType):
    """Counts its runs, then waits on a shared gate (the resume test holds every run there at once)."""

    type = "test.counted"
    title = "Counted"
    category = Category.logic
    inside: ClassVar[int] = 0
    opened: ClassVar[asyncio.Event]
    all_in: ClassVar[asyncio.Event]
    expected: ClassVar[int] = 0

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        Counted.inside += 1
        if Counted.inside == Counted.expected:
            Counted.all_in.set()
        await Counted.opened.wait()
        return list(inputs["main"])


@pytest.fixture(scope="module")
def reg() -> Registry:
    registry = Registry()
    load_builtins(registry)
    registry.register_module(testnodes)
    registry.register(Stubborn)
    registry.register(Counted)
    return registry


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeStore]:
    yield from open_stores(request.param, tmp_path, monkeypatch)


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


START = {"id": "start", "type": "trigger.manual"}


def add(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": "test.add", "config": {"field": node_id, "value": 1}}


def a_flow(reg: Registry, nodes: list[dict[str, Any]], edges: list[Any]) -> Any:
    return build_plan(parse_flow(make_flow(nodes, edges, id="f")), reg)


def diamond(reg: Registry) -> Any:
    """start → a → (b, slow) → c: a wave with two nodes in flight, one of them slow."""
    return a_flow(reg, [START, add("a"), add("b"), {"id": "slow", "type": "test.sleep", "config": {"seconds": 0.2}},
                        {"id": "c", "type": "test.join"}],
                  [("start", "a"), ("a", "b"), ("a", "slow"), ("b", "main", "c", "a"), ("slow", "main", "c", "b")])


class Watcher:
    """A well-behaved listener: checks that every node that started got a final event, and the run its end."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def check_complete(self, status: str) -> None:
        started = {e.node_id for e in self.events if e.kind == "node.started"}
        ended = {e.node_id for e in self.events if e.kind in ("node.finished", "node.failed", "node.cancelled")}
        assert started <= ended, f"nodes left running in the view: {started - ended}"
        assert [e.status for e in self.events if e.kind == "run.finished"] == [status]


# -- listeners that raise ---------------------------------------------------------------------------------------------

KINDS = ["run.started", "node.started", "node.finished"]


@pytest.mark.parametrize(("kind", "nth"), [(k, n) for k in KINDS for n in (1, 2, 4)])
async def test_a_listener_that_raises_crashes_the_run_with_its_reason(store: Store, reg: Registry, kind: str,
                                                                      nth: int) -> None:
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    watcher = Watcher()
    seen = itertools.count(1)

    def bad(event: Event) -> None:
        if event.kind == kind and next(seen) == nth:
            raise ValueError(f"listener bug on {kind}")

    engine.bus.subscribe(bad)  # first: it runs before the watcher on every event
    engine.bus.subscribe(watcher)
    result = await engine.run(diamond(reg))
    if kind == "run.started" and nth > 1:  # never happens: the run ends normally
        assert result.status is RunStatus.succeeded
        return
    assert result.status is RunStatus.crashed, result.summary()
    assert f"listener bug on {kind}" in result.error["message"]
    record = store.get_run(result.run_id)
    assert record.status is RunStatus.crashed and f"listener bug on {kind}" in record.error["message"]
    watcher.check_complete("crashed")
    assert engine.active_runs == [] and recorder._pending == {}
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []  # no node task left behind
    await recorder.aclose()


# -- a recorder that fails --------------------------------------------------------------------------------------------


class FailingRecorder(SqlRecorder):
    """A real SQL recorder whose Nth write fails, as a full disk or a lost connection would."""

    def __init__(self, store: Store, fail_at: int):
        super().__init__(store, write_start=True)
        self.calls = 0
        self.fail_at = fail_at

    def _count(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(f"disk full (write {self.calls})")

    async def run_started(self, info: RunInfo) -> None:
        self._count()
        await super().run_started(info)

    async def steps_finished(self, run_id: str, steps: list[Step], durable: bool) -> None:
        self._count()
        await super().steps_finished(run_id, steps, durable)

    async def run_finished(self, result: RunResult, steps: list[Step] | None = None) -> None:
        self._count()
        await super().run_finished(result, steps)


def side_effect_chain(reg: Registry) -> Any:
    """Every node has side effects, so each step is written before the next: many writes that can fail."""
    return a_flow(reg, [START, *({"id": f"s{i}", "type": "test.flaky", "config": {"fail_times": 0, "key": f"s{i}"}}
                                 for i in range(4))],
                  [("start", "s0"), ("s0", "s1"), ("s1", "s2"), ("s2", "s3")])


@pytest.mark.parametrize("fail_at", range(1, 7))  # run start, four steps, run end
async def test_a_recorder_failing_at_any_write_ends_the_run_crashed(store: Store, reg: Registry,
                                                                    fail_at: int) -> None:
    recorder = FailingRecorder(store, fail_at)
    engine = Engine(recorder=recorder)
    watcher = Watcher()
    engine.bus.subscribe(watcher)
    result = await engine.run(side_effect_chain(reg))
    assert result.status is RunStatus.crashed
    assert f"disk full (write {fail_at})" in result.error["message"]
    record = store.get_run(result.run_id)  # the second try writes the run row alone
    assert record.status is RunStatus.crashed and "disk full" in record.error["message"]
    watcher.check_complete("crashed")
    assert recorder._pending == {} and engine.active_runs == []
    await recorder.aclose()


async def test_a_dropped_steps_table_mid_run_ends_the_run_crashed(store: Store, reg: Registry) -> None:
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    watcher = Watcher()

    def drop_after_first(event: Event) -> None:
        watcher(event)
        if event.kind == "node.finished" and event.node_id == "s1":
            with store.engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE steps"))

    engine.bus.subscribe(drop_after_first)
    result = await engine.run(side_effect_chain(reg))
    assert result.status is RunStatus.crashed
    assert "could not record" in result.error["message"] and "steps" in result.error["message"]
    record = store.get_run(result.run_id)
    assert record.status is RunStatus.crashed and "steps" in record.error["message"]
    assert [e.node_id for e in watcher.events if e.kind == "node.started"] == ["start", "s0", "s1"]
    watcher.check_complete("crashed")
    await recorder.aclose()


# -- stopping ---------------------------------------------------------------------------------------------------------


async def test_a_node_failing_while_the_run_stops_gets_its_failed_event(reg: Registry) -> None:
    Stubborn.entered = asyncio.Event()
    p = a_flow(reg, [START, {"id": "stubborn", "type": "test.stubborn"}, {"id": "boom", "type": "test.boom"}],
               [("start", "stubborn"), ("start", "boom")])
    engine = Engine()
    watcher = Watcher()
    engine.bus.subscribe(watcher)
    result = await engine.run(p)
    assert result.status is RunStatus.failed and result.error["node_id"] == "boom"
    assert result.steps["stubborn"].status is StepStatus.failed
    assert "could not clean up" in result.steps["stubborn"].error["message"]
    failed = [(e.node_id, e.message) for e in watcher.events if e.kind == "node.failed"]
    assert ("stubborn", "RuntimeError: could not clean up") in failed and any(n == "boom" for n, _ in failed)
    watcher.check_complete("failed")


async def test_cancelling_mid_wave_gives_every_running_node_a_final_event(reg: Registry) -> None:
    engine = Engine()
    watcher = Watcher()
    engine.bus.subscribe(watcher)
    task = asyncio.ensure_future(engine.run(diamond(reg), run_id="stop-me"))
    while not any(e.kind == "node.started" and e.node_id == "slow" for e in watcher.events):
        await asyncio.sleep(0.01)
    assert engine.cancel("stop-me")
    result = await task
    assert result.status is RunStatus.cancelled and result.steps["slow"].status is StepStatus.cancelled
    watcher.check_complete("cancelled")


# -- retries ----------------------------------------------------------------------------------------------------------

PERMANENT = [
    ("an expression error", {"field": "x", "value": "{{ item.n + 'text' }}"}),
    ("a config invalid after rendering", {"field": "{{ item.n }}"}),
]


@pytest.mark.parametrize(("what", "config"), PERMANENT, ids=[p[0] for p in PERMANENT])
async def test_errors_that_recur_identically_are_not_retried(reg: Registry, what: str, config: dict[str, Any]) -> None:
    p = a_flow(reg, [START, {"id": "a", "type": "test.add", "config": config,
                             "settings": {"retries": 5, "retry_backoff": 60}}], [("start", "a")])
    result = await asyncio.wait_for(Engine().run(p, [{"n": 1}]), 10)  # six tries a minute apart would take hours
    assert result.status is RunStatus.failed
    assert result.steps["a"].attempt == 1, what


async def test_other_errors_are_retried_with_a_capped_backoff(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_RETRY_DELAY", 0.01)
    p = a_flow(reg, [START, {"id": "f", "type": "test.flaky", "config": {"fail_times": 2},
                             "settings": {"retries": 3, "retry_backoff": 3600}}], [("start", "f")])
    result = await asyncio.wait_for(Engine().run(p, [{"n": 1}]), 10)  # uncapped, the second try is an hour away
    assert result.status is RunStatus.succeeded and result.steps["f"].attempt == 3


# -- transitions and owners -------------------------------------------------------------------------------------------


def test_every_state_change_follows_the_allowed_transitions(store: Store) -> None:
    pairs = list(itertools.product(RunStatus, RunStatus))
    for i, (old, new) in enumerate(pairs):
        run_id = f"t{i}"
        store.create_run(run_id, "f", 1, "start", [], "test", status=old, owner="me")
        if transition_allowed(old, new):
            store.mark_run(run_id, new, owner="me")
            assert store.get_run(run_id).status is new
        else:
            with pytest.raises(TransitionRefused, match=f"it cannot become {new.value}"):
                store.mark_run(run_id, new, owner="me")
            assert store.get_run(run_id).status is old
    refused = [(o, n) for o, n in pairs if not transition_allowed(o, n)]
    assert (RunStatus.cancelled, RunStatus.succeeded) in refused and (RunStatus.succeeded, RunStatus.failed) in refused
    assert len(refused) >= 14 and RUN_TRANSITIONS[RunStatus.succeeded] == frozenset()


def test_a_process_that_does_not_own_a_run_cannot_change_it(store: Store) -> None:
    store.create_run("r", "f", 1, "start", [], "test", status=RunStatus.running, owner="me")
    for status in RunStatus:
        with pytest.raises(TransitionRefused):
            store.mark_run("r", status, owner="someone else")
    assert store.get_run("r").status is RunStatus.running and store.get_run("r").owner == "me"


async def test_a_late_recorder_write_never_changes_an_ended_or_taken_run(store: Store) -> None:
    """The recorder's corpus: each final state, and a run another process took; none of the writes lands."""
    now = time.time()
    cases = [(status, store.owner) for status in RunStatus if status.finished] + [(RunStatus.running, "other")]
    recorder = SqlRecorder(store)
    for i, (status, owner) in enumerate(cases):
        run_id = f"late{i}"
        store.create_run(run_id, "f", 1, "start", [], "test", status=RunStatus.running, owner=owner)
        if status is not RunStatus.running:
            store.mark_run(run_id, status, {"message": "ended elsewhere"})
        before = store.get_run(run_id)
        step = Step(run_id, "a", StepStatus.succeeded, now, now, outputs={"main": [{"late": True}]})
        with pytest.raises(RunLost):
            await recorder.steps_finished(run_id, [step], durable=True)
        with pytest.raises(RunLost):
            await recorder.run_finished(RunResult(run_id, "f", RunStatus.succeeded, now, now, [], {}))
        assert store.get_run(run_id) == before and store.get_steps(run_id) == {}, status
    await recorder.aclose()


# -- resuming ---------------------------------------------------------------------------------------------------------


async def test_resume_starts_every_unfinished_run_at_once(tmp_path: Path, reg: Registry,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from flowboard.services import Flowboard

    monkeypatch.delenv("FLOWBOARD_DATABASE_URL", raising=False)
    fb = Flowboard(data_dir=tmp_path, registry=reg)
    flow = parse_flow(make_flow([START, {"id": "hold", "type": "test.counted"}], [("start", "hold")], id="held"))
    version = fb.store.save_flow(flow, expected_version=None)
    dead = "elsewhere:999999999:gone"  # a process of another host whose lease ran out long ago
    for i in range(5):
        fb.store.create_run(f"r{i}", "held", version, "start", [{"i": i}], "test", status=RunStatus.running,
                            owner=dead)
    with fb.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET heartbeat = 0"))
    Counted.inside, Counted.expected = 0, 5
    Counted.opened, Counted.all_in = asyncio.Event(), asyncio.Event()
    resume = asyncio.ensure_future(fb.resume_unfinished())
    await asyncio.wait_for(Counted.all_in.wait(), 10)  # one after another, the first would hold the rest back
    Counted.opened.set()
    results = await resume
    assert sorted(r.run_id for r in results) == [f"r{i}" for i in range(5)]
    assert {r.status for r in results} == {RunStatus.succeeded}
    assert {fb.store.get_run(f"r{i}").owner for i in range(5)} == {fb.owner}
    await fb.aclose()
