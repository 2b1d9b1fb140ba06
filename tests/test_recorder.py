"""The SQL recorder under the real engine, on SQLite and PostgreSQL: what is written, when, and what comes back."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest

from flowboard.engine import Engine, Plan, RunStatus, Step, StepStatus, build_plan, derive_inputs
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins
from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs
from flowboard.store import NotFound, SqlRecorder, Store
from flowboard.store.recorder import _step_row as recorder_row

from . import testnodes
from .conftest import make_flow
from .test_store import BACKENDS, MakeStore, open_stores


def as_stored(steps: dict[str, Step]) -> dict[str, Step]:
    """Steps as the store keeps them: inputs are derived from upstream outputs, not stored."""
    return {nid: dataclasses.replace(step, inputs={}) for nid, step in steps.items()}



class Gate(NodeType):
    """Waits until the test opens it: the run is caught mid-way, with everything before it finished."""

    type = "test.gate"
    title = "Gate"
    category = Category.logic
    entered: ClassVar[asyncio.Event]
    opened: ClassVar[asyncio.Event]

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        Gate.entered.set()
        await Gate.opened.wait()
        return list(inputs["main"])


class Weird(NodeType):
    """Returns an item that is not JSON data, as a buggy node might."""

    type = "test.weird"
    title = "Weird"
    category = Category.logic

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        return [{"thing": object(), "n": 1}]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeStore]:
    yield from open_stores(request.param, tmp_path, monkeypatch)


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


@pytest.fixture(scope="module")
def reg() -> Registry:
    registry = Registry()
    load_builtins(registry)
    registry.register_module(testnodes)
    registry.register(Gate)
    registry.register(Weird)
    return registry


@pytest.fixture
def gate() -> type[Gate]:
    Gate.entered, Gate.opened = asyncio.Event(), asyncio.Event()
    return Gate


def plan(reg: Registry, nodes: list[dict[str, Any]], edges: list[Any], flow_id: str = "f") -> Plan:
    return build_plan(parse_flow(make_flow(nodes, edges, id=flow_id)), reg)


START = {"id": "start", "type": "trigger.manual"}


def add(node_id: str, value: Any = 1) -> dict[str, Any]:
    return {"id": node_id, "type": "test.add", "config": {"field": node_id, "value": value}}


async def test_a_run_round_trips_through_the_engine(store: Store, reg: Registry) -> None:
    p = plan(reg, [START, add("a", "{{ item.n * 2 }}"), {"id": "split", "type": "test.branch"}, add("yes"), add("no"),
                   {"id": "boom", "type": "test.boom", "settings": {"on_error": "continue"}}],
             [("start", "a"), ("a", "split"), ("split", "yes", "yes", "main"), ("split", "no", "no", "main"),
              ("yes", "boom")])
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    result = await engine.run(p, [{"n": 1, "ok": True}, {"n": 2, "ok": False, "text": "ünïcode"}])
    assert result.status is RunStatus.succeeded
    assert store.get_steps(result.run_id) == as_stored(result.steps)
    assert store.get_steps(result.run_id)["no"].outputs["main"][0]["text"] == "ünïcode"
    assert store.get_steps(result.run_id)["boom"].status is StepStatus.failed
    record = store.get_run(result.run_id)
    assert (record.status, record.flow_id, record.trigger, record.owner) == (RunStatus.succeeded, "f", "start",
                                                                             store.owner)
    assert (record.input, record.output, record.error) == ([{"n": 1, "ok": True}, {"n": 2, "ok": False,
                                                                                    "text": "ünïcode"}],
                                                           result.output, None)
    assert (record.started, record.finished) == (result.started, result.finished)

    failing = plan(reg, [START, {"id": "boom", "type": "test.boom"}, add("after")],
                   [("start", "boom"), ("boom", "after")], flow_id="g")
    failed = await engine.run(failing)
    assert failed.status is RunStatus.failed
    assert store.get_run(failed.run_id).error == failed.error
    assert store.get_steps(failed.run_id) == as_stored(failed.steps)
    await recorder.aclose()


async def test_a_queued_run_is_filled_in_and_keeps_what_was_accepted(store: Store, reg: Registry) -> None:
    p = plan(reg, [START, add("a")], [("start", "a")])
    store.create_run("q1", "f", 3, "start", [{"x": 1}], "webhook")
    assert [r.id for r in store.unfinished_runs()] == ["q1"]
    recorder = SqlRecorder(store)
    result = await Engine(recorder=recorder).run(p, [{"x": 1}], run_id="q1")
    record = store.get_run("q1")
    assert (record.status, record.flow_version, record.source, record.input) == (RunStatus.succeeded, 3, "webhook",
                                                                                 [{"x": 1}])
    assert record.output == result.output == [{"x": 1, "a": 1}]
    assert store.unfinished_runs() == []
    recorder.annotate("r2", flow_version=5, source="schedule")
    await Engine(recorder=recorder).run(p, run_id="r2")
    assert (store.get_run("r2").flow_version, store.get_run("r2").source) == (5, "schedule")
    await recorder.aclose()


async def test_pure_steps_wait_in_memory_a_side_effect_commits_everything(make_store: MakeStore, reg: Registry,
                                                                          gate: type[Gate]) -> None:
    store, other = make_store(), make_store()  # `other` reads through its own connections
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)

    pure = plan(reg, [START, add("a"), {"id": "gate", "type": "test.gate"}], [("start", "a"), ("a", "gate")])
    task = asyncio.ensure_future(engine.run(pure, run_id="pure"))
    await gate.entered.wait()
    with pytest.raises(NotFound):
        await asyncio.to_thread(other.get_run, "pure")  # nothing durable happened: nothing written yet
    gate.opened.set()
    await task
    assert set(await asyncio.to_thread(other.get_steps, "pure")) == {"start", "a", "gate"}

    gate.entered.clear()
    gate.opened.clear()
    effect = plan(reg, [START, add("a"), {"id": "call", "type": "test.flaky", "config": {"fail_times": 0}},
                        {"id": "gate", "type": "test.gate"}, add("b")],
                  [("start", "a"), ("a", "call"), ("call", "gate"), ("gate", "b")])
    task = asyncio.ensure_future(engine.run(effect, run_id="effect"))
    await gate.entered.wait()
    seen = await asyncio.to_thread(other.get_steps, "effect")
    assert {nid: s.status for nid, s in seen.items()} == {"start": "succeeded", "a": "succeeded", "call": "succeeded"}
    assert (await asyncio.to_thread(other.get_run, "effect")).status is RunStatus.running
    gate.opened.set()
    result = await task
    assert await asyncio.to_thread(other.get_steps, "effect") == as_stored(result.steps)
    await recorder.aclose()


async def test_an_interrupted_run_is_kept_and_resumes_from_its_steps(store: Store, reg: Registry,
                                                                     gate: type[Gate]) -> None:
    p = plan(reg, [START, add("a"), {"id": "call", "type": "test.flaky", "config": {"fail_times": 0}},
                   {"id": "gate", "type": "test.gate"}, add("b")],
             [("start", "a"), ("a", "call"), ("call", "gate"), ("gate", "b")])
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    run_id = uuid.uuid4().hex  # Flaky counts attempts per run id, across tests
    task = asyncio.ensure_future(engine.run(p, [{"n": 1}], run_id=run_id))
    await gate.entered.wait()
    task.cancel()  # a shutdown, not a user's cancel: the run stays `running`
    with pytest.raises(asyncio.CancelledError):
        await task
    await recorder.aclose()

    [run] = store.unfinished_runs()
    assert (run.id, run.status, run.input, run.trigger) == (run_id, RunStatus.running, [{"n": 1}], "start")
    assert store.claim_run(run.id, store.owner)
    done = store.get_steps(run.id)
    assert {nid: s.status for nid, s in done.items()} == {"start": "succeeded", "a": "succeeded", "call": "succeeded"}
    gate.opened.set()
    recorder = SqlRecorder(store)
    result = await Engine(recorder=recorder).run(p, run.input, run_id=run.id, trigger=run.trigger, done=done,
                                                 started=run.started)
    assert result.status is RunStatus.succeeded and result.output == [{"n": 1, "a": 1, "b": 1}]
    assert testnodes.Flaky.attempts[f"{run_id}:flaky"] == 1  # the side effect did not happen again
    steps = store.get_steps(run.id)
    assert steps == as_stored(result.steps) and set(steps) == {"start", "a", "call", "gate", "b"}
    assert store.get_run(run.id).status is RunStatus.succeeded and store.unfinished_runs() == []
    await recorder.aclose()


async def test_items_that_are_not_json_are_recorded_as_an_error(store: Store, reg: Registry) -> None:
    p = plan(reg, [START, {"id": "weird", "type": "test.weird"}, add("after")], [("start", "weird"),
                                                                                  ("weird", "after")])
    recorder = SqlRecorder(store)
    result = await Engine(recorder=recorder).run(p)
    assert result.status is RunStatus.succeeded  # the engine does not care; the record says what went wrong
    weird = store.get_steps(result.run_id)["weird"]
    assert weird.status is StepStatus.failed
    assert weird.error is not None and "not JSON data" in weird.error["message"]
    assert weird.outputs["main"][0]["thing"].startswith("<object: <object object at")
    record = store.get_run(result.run_id)
    assert record.status is RunStatus.succeeded and record.error is not None
    assert record.output is not None and record.output[0]["n"] == 1
    await recorder.aclose()


async def test_many_concurrent_runs_are_all_recorded(store: Store, reg: Registry) -> None:
    p = plan(reg, [START, add("a"), {"id": "call", "type": "test.flaky", "config": {"fail_times": 0}}, add("b")],
             [("start", "a"), ("a", "call"), ("call", "b")])
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    results = await asyncio.gather(*[engine.run(p, [{"i": i}]) for i in range(60)])
    runs = store.list_runs(limit=100)
    assert len(runs) == 60 and {r.status for r in runs} == {RunStatus.succeeded}
    for result in results[::7]:
        assert store.get_steps(result.run_id) == as_stored(result.steps)
    await recorder.aclose()


async def test_write_start_shows_a_run_at_once_and_closing_the_store_closes_its_recorder(
        store: Store, reg: Registry, gate: type[Gate]) -> None:
    p = plan(reg, [START, {"id": "gate", "type": "test.gate"}], [("start", "gate")])
    recorder = SqlRecorder(store, owner="me", write_start=True)
    task = asyncio.ensure_future(Engine(recorder=recorder).run(p, run_id="early"))
    await gate.entered.wait()
    early = store.get_run("early")
    assert (early.status, early.owner) == (RunStatus.running, "me")
    assert early.heartbeat is not None and store.get_steps("early") == {}
    gate.opened.set()
    await task
    assert store.get_run("early").status is RunStatus.succeeded
    store.close()  # closes the recorder too
    late = await Engine(recorder=recorder).run(p, run_id="late")  # it cannot be recorded: it ends, crashed
    assert late.status is RunStatus.crashed and "the recorder is closed" in late.error["message"]


@pytest.mark.postgres
@pytest.mark.parametrize("make_store", ["postgresql"], indirect=True)
async def test_a_dropped_postgresql_connection_is_replaced(store: Store, reg: Registry) -> None:
    p = plan(reg, [START, add("a")], [("start", "a")])
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    await engine.run(p)
    with store.engine.connect() as conn:  # what a server restart or an idle timeout does to it
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({recorder._conn.info.backend_pid})")
    result = await engine.run(p)
    assert store.get_run(result.run_id).status is RunStatus.succeeded
    await recorder.aclose()


async def test_inputs_are_derived_from_upstream_outputs(make_store: MakeStore, plan_of) -> None:
    store = make_store()
    nodes = [{"id": "t", "type": "trigger.manual"}, {"id": "br", "type": "test.branch"},
             {"id": "yes", "type": "test.add", "config": {"field": "y", "value": 1}},
             {"id": "join", "type": "test.join"}]
    edges = [("t", "br"), ("br", "yes", "yes", "main"), ("yes", "main", "join", "a"), ("br", "no", "join", "b")]
    plan = plan_of(make_flow(nodes, edges))
    result = await Engine(recorder=SqlRecorder(store)).run(plan, [{"ok": True}, {"ok": False}])
    stored = store.get_steps(result.run_id)
    edge_list = [(e.source, e.source_port, e.target, e.target_port) for e in plan.flow.edges]
    derived = derive_inputs(edge_list, stored, [{"ok": True}, {"ok": False}], {"t"})
    assert derived == {nid: step.inputs for nid, step in result.steps.items()}


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "relaxed"])
async def test_one_group_write_keeps_each_runs_outcome_apart(store: Store, durable: bool) -> None:
    """Writes of several runs committed together (one statement on PostgreSQL): a run another process owns and a run
    that ended are refused, with none of their steps, while the others in the same group are written whole; the same
    whether the group must wait for the disk (a side effect) or not."""
    now = time.time()
    store.create_run("taken", "f", 1, "start", [], "test", status=RunStatus.running, owner="someone else")
    store.create_run("ended", "f", 1, "start", [], "test", status=RunStatus.running, owner=store.owner)
    store.mark_run("ended", RunStatus.failed, {"message": "ended elsewhere"})
    store.create_run("mine", "f", 1, "start", [], "test", status=RunStatus.running, owner=store.owner)
    recorder = SqlRecorder(store)

    def step(run_id: str, node_id: str) -> Step:
        return Step(run_id, node_id, StepStatus.succeeded, now, now, outputs={"main": [{"at": node_id}]})

    def run_row(run_id: str, status: str) -> tuple[Any, ...]:
        return (run_id, "f", 1, status, "start", "test", "[]", "[]", None, now, now, now, store.owner, now, None)

    jobs: list[Any] = [
        ("new", run_row("new", "succeeded"), [recorder_row(step("new", "a")), recorder_row(step("new", "b"))], [],
         durable),
        ("taken", run_row("taken", "succeeded"), [recorder_row(step("taken", "a"))], [], durable),
        ("mine", None, [recorder_row(step("mine", "a"))], [], durable),  # steps only: the run row is checked
        ("ended", None, [recorder_row(step("ended", "a"))], [], durable),
    ]
    outcomes = recorder._execute(jobs)
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "RunLost", "NoneType", "RunLost"]
    assert store.get_run("new").status is RunStatus.succeeded and set(store.get_steps("new")) == {"a", "b"}
    assert store.get_steps("new")["b"].outputs == {"main": [{"at": "b"}]}
    assert store.get_run("taken").status is RunStatus.running and store.get_steps("taken") == {}
    assert set(store.get_steps("mine")) == {"a"} and store.get_run("mine").heartbeat is not None
    assert store.get_run("ended").status is RunStatus.failed and store.get_steps("ended") == {}
    await recorder.aclose()


@pytest.mark.postgres
@pytest.mark.parametrize("make_store", ["postgresql"], indirect=True)
async def test_only_groups_without_a_side_effect_skip_waiting_for_the_disk(store: Store, reg: Registry) -> None:
    """PostgreSQL: the writes before and after a node with side effects wait for the disk (so a crash of the database
    never makes it run again); the end of a run whose steps since then have none commits without waiting."""
    p = plan(reg, [START, add("a"), {"id": "call", "type": "test.flaky", "config": {"fail_times": 0}}, add("b")],
             [("start", "a"), ("a", "call"), ("call", "b")])
    recorder = SqlRecorder(store)
    sent: list[str] = []

    class Spy(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **more: Any) -> Any:
            sent.append(str(query))
            return super().execute(query, params, **more)

    recorder._connection().cursor_factory = Spy
    result = await Engine(recorder=recorder).run(p)
    assert result.status is RunStatus.succeeded
    groups = [query for query in sent if query.startswith("WITH written")]
    # before the call (start, a, and the call as started: it is not retry-safe), after it, then the end (b, the run)
    assert len(groups) == 3, sent
    assert "synchronous_commit" not in groups[0] + groups[1] and "synchronous_commit" in groups[2]
    assert set(store.get_steps(result.run_id)) == {"start", "a", "call", "b"}
    await recorder.aclose()


@pytest.mark.parametrize("make_store", ["sqlite"], indirect=True)
async def test_sqlite_checkpoints_happen_on_their_own_thread(store: Store, reg: Registry) -> None:
    """The recorder's commits only append to the WAL (SQLite's own checkpoint is held back to a backstop); a thread of
    its own copies the pages into the database file, and stops with the recorder."""
    database = Path(store.engine.url.database or "")
    p = plan(reg, [START, add("a"), add("b")], [("start", "a"), ("a", "b")])
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    others = set(threading.enumerate())
    await engine.run(p, [{"i": 0}])
    [thread] = [t for t in threading.enumerate() if t.name == "flowboard-checkpoint" and t not in others]
    before = database.stat().st_size
    big = "x" * 2000
    # ~2 MB of WAL: under SQLite's own automatic checkpoint (1,000 pages), so only the thread copies it over
    await asyncio.gather(*[engine.run(p, [{"i": i, "text": big}] * 20) for i in range(16)])
    assert Path(f"{database}-wal").stat().st_size > 1_000_000
    deadline = time.monotonic() + 30
    while database.stat().st_size <= before + 1_000_000:  # only a checkpoint writes to the database file
        assert time.monotonic() < deadline, "no checkpoint copied the recorded runs into the database file"
        await asyncio.sleep(0.02)
    assert len(store.list_runs(limit=100)) == 17
    checkpointer = weakref.ref(recorder._checkpointer)
    await recorder.aclose()
    assert not thread.is_alive()
    gc.collect()
    assert checkpointer() is None, "the closed recorder's checkpointer (and the store's engine it holds) is kept alive"


async def test_accepted_runs_are_recorded_as_queued_before_they_start(store: Store, reg: Registry) -> None:
    """`SqlRecorder.create_run` (a webhook that answers at once): the run is committed as queued with its input before
    the call returns, on PostgreSQL in the writer's group commit (many accepted at once share statements); the run
    then starts from that row."""
    recorder = SqlRecorder(store)
    sent: list[str] = []
    if store.dialect == "postgresql":
        class Spy(psycopg.Cursor):  # type: ignore[type-arg]
            def execute(self, query: Any, params: Any = None, **more: Any) -> Any:
                sent.append(str(query))
                return super().execute(query, params, **more)

        recorder._connection().cursor_factory = Spy
    ids = [f"accepted-{i}" for i in range(40)]
    await asyncio.gather(*(recorder.create_run(run_id, "f", 3, "start", [{"n": i}], "webhook", None)
                           for i, run_id in enumerate(ids)))
    for i, run_id in enumerate(ids):
        run = store.get_run(run_id)
        assert (run.status, run.flow_version, run.trigger, run.source, run.input, run.owner) == \
            (RunStatus.queued, 3, "start", "webhook", [{"n": i}], None)
    if store.dialect == "postgresql":
        groups = [query for query in sent if query.startswith("WITH written")]
        assert 1 <= len(groups) < len(ids), f"{len(groups)} statements for {len(ids)} accepted runs"
    p = plan(reg, [START, add("a")], [("start", "a")])
    result = await Engine(recorder=recorder).run(p, store.get_run(ids[1]).input, run_id=ids[1])
    assert result.status is RunStatus.succeeded
    run = store.get_run(ids[1])
    assert (run.status, run.flow_version, run.source) == (RunStatus.succeeded, 3, "webhook")
    await recorder.aclose()


class ParksWithEffects(NodeType):
    """A node with side effects that parks its run; its resume holds until `held` is set."""

    type = "test.parks_with_effects"
    title = "Parks"
    category = Category.integration
    side_effects = True
    entered: ClassVar[asyncio.Event | None] = None
    held: ClassVar[asyncio.Event | None] = None

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Any:
        from flowboard.sdk import Suspend

        return Suspend(None, data={"asked": True})

    async def resume(self, ctx: Context, config: Any, inputs: Inputs, payload: Any) -> Outputs:
        assert self.entered is not None and self.held is not None
        self.entered.set()
        await self.held.wait()
        return [payload]


@pytest.mark.parametrize("make_store", ["sqlite"], indirect=True)
async def test_a_parked_node_that_resumes_is_not_recorded_as_started_again(store: Store, reg: Registry) -> None:
    """A node with side effects that is not retry-safe is recorded as started before it runs, but the end of its wait
    is no side effect: a stop while it resumes leaves its step waiting, so the next resume ends the wait instead of
    failing the step as interrupted."""
    ParksWithEffects.entered, ParksWithEffects.held = asyncio.Event(), asyncio.Event()
    if "test.parks_with_effects" not in reg:
        reg.register(ParksWithEffects)
    p = plan(reg, [START, {"id": "park", "type": "test.parks_with_effects"}], [("start", "park")])
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    assert p.nodes["park"].unsafe
    store.create_run("parked", "f", None, "start", [{"n": 1}], "manual", status="running", owner=store.owner)
    first = await engine.run(p, [{"n": 1}], run_id="parked")
    assert first.status is RunStatus.waiting
    store.resume_wait("parked", "park", store.owner, {"ok": True})
    done = {nid: s for nid, s in store.get_steps("parked").items() if s.status is StepStatus.succeeded}
    task = asyncio.ensure_future(engine.run(p, [{"n": 1}], run_id="parked", done=done,
                                            waits=store.waits_of("parked")))
    await asyncio.wait_for(ParksWithEffects.entered.wait(), 30)
    task.cancel()  # a stop while it resumes (not a cancel of the run)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.get_steps("parked")["park"].status is StepStatus.waiting
    ParksWithEffects.held.set()
    again = await engine.run(p, [{"n": 1}], run_id="parked", done=done, waits=store.waits_of("parked"))
    assert again.status is RunStatus.succeeded, again.error
    assert again.output == [{"ok": True}]
    await recorder.aclose()


async def test_a_run_that_ends_in_one_write_is_one_row_and_reads_back_the_same(store: Store, reg: Registry) -> None:
    """Its steps are packed in the run row (`runs.steps`), not a `steps` row each; what the store gives back is the
    same, and a retry or the pruning of succeeded runs' items turns them into rows first."""
    import sqlalchemy as sa

    from flowboard.store.store import unpack_steps
    from flowboard.store.tables import runs_t, steps_t

    def stored(run_id: str) -> tuple[int, bool]:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(steps_t).where(steps_t.c.run_id == run_id))
            packed = conn.execute(sa.select(runs_t.c.steps).where(runs_t.c.id == run_id)).scalar()
        return rows.scalar_one(), packed is not None

    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    pure = plan(reg, [START, add("a"), add("b"), {"id": "boom", "type": "test.boom",
                                                     "settings": {"on_error": "continue"}}],
                [("start", "a"), ("a", "b"), ("b", "boom")])
    result = await engine.run(pure, [{"n": 1, "text": "ünïcode \"quoted\""}, {"n": 2}])
    assert result.status is RunStatus.succeeded
    assert stored(result.run_id) == (0, True)
    assert store.get_steps(result.run_id) == as_stored(result.steps)
    assert list(store.get_steps(result.run_id)) == ["start", "a", "b", "boom"]  # the order they finished
    from flowboard.metrics import Collector

    engine_view = type("Fb", (), {"store": store, "engine": engine})()  # what the collector reads of Flowboard
    quantiles = next(m for m in Collector(engine_view).collect()  # type: ignore[arg-type]
                     if m.name == "flowboard_step_seconds").samples
    assert all(sample.value >= 0 for sample in quantiles)  # the packed steps' durations (no steps: NaN)

    call = {"id": "se", "type": "test.flaky", "config": {"fail_times": 0}}  # a node with side effects
    with_side_effect = plan(reg, [START, add("a"), call, add("b")], [("start", "a"), ("a", "se"), ("se", "b")])
    written = await engine.run(with_side_effect, [{"n": 1}])
    assert written.status is RunStatus.succeeded
    assert stored(written.run_id) == (4, False)  # steps were written before its end: rows, as before
    assert store.get_steps(written.run_id) == as_stored(written.steps)

    failing = plan(reg, [START, add("a"), {"id": "boom", "type": "test.boom"}], [("start", "a"), ("a", "boom")])
    failed = await engine.run(failing, [{"n": 1}])
    assert failed.status is RunStatus.failed and stored(failed.run_id) == (0, True)
    assert store.reopen_run(failed.run_id, store.owner, ["start", "a"]) is True  # a retry: the kept steps as rows
    assert stored(failed.run_id) == (2, False)
    assert store.get_steps(failed.run_id) == {k: v for k, v in as_stored(failed.steps).items() if k != "boom"}

    # a start record left by a stopped process beside the steps packed at the end by the one that resumed the run:
    # the packed step is the later word, in what the store gives back and when a retry turns them into rows
    again = await engine.run(failing, [{"n": 1}])
    with store.engine.begin() as conn:
        packed = conn.execute(sa.select(runs_t.c.steps).where(runs_t.c.id == again.run_id)).scalar_one()
        [boom] = [row for row in unpack_steps(again.run_id, packed) if row["node_id"] == "boom"]
        conn.execute(steps_t.insert(), [{**boom, "status": "running", "finished": boom["started"], "error": None}])
    assert store.get_steps(again.run_id)["boom"].status is StepStatus.failed
    assert store.reopen_run(again.run_id, store.owner, ["start", "boom"]) is True
    assert stored(again.run_id) == (2, False)
    assert store.get_steps(again.run_id)["boom"].status is StepStatus.failed

    store.set_settings({"keep_success_data": False})
    store.apply_retention()
    assert stored(result.run_id) == (4, False)
    assert all(step.outputs == {} for step in store.get_steps(result.run_id).values())
    await recorder.aclose()
