"""The ready-set scheduler: runs a Plan once.

A node is ready when every distinct upstream node has finished or been skipped. Ready nodes run concurrently (bounded by
the flow's `max_concurrency`); when only one node can run it is awaited inline, with no task, which is what keeps a
chain's per-node cost low. A node whose inputs carried no item is skipped (branch not taken), visibly. Finished steps
go to the recorder after each wave, before any node that depends on them starts.

How a run ends, whatever happens:
- a node fails (its `run` raised): the run is `failed` (on_error=stop), its other nodes are stopped;
- anything else raises (the recorder cannot write, an event listener raises, a bug here): the run is `crashed` with
  the reason recorded, its node tasks are cancelled, every node that was running gets its final event, and
  `run.finished` is published, so no view shows a node running forever;
- the process loses the run (`RunLost`: its lease ran out and another process took the run over): the run stops at
  once and nothing more is written about it; the other process goes on with it;
- the task is cancelled without `Engine.cancel` (shutdown): the run stays `running` in the store and resumes later.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import random
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import NodeError
from ..frozen import FrozenList, ItemChanged, freeze_items
from ..model import OnError
from ..sdk import Context, Items, Services, Suspend
from .events import Event, EventBus, Progress
from .lineage import LATER, SAME, Tracer, flat_inputs, infer
from .plan import Plan, PlannedNode
from .scope import node_view
from .states import RunLost, RunResult, RunStatus, Step, StepStatus, Waiting

log = logging.getLogger(__name__)
MAX_RETRY_DELAY = 300.0  # seconds: the backoff between retries doubles up to this, never beyond
#: A wait due within this many seconds is slept in memory (its run stays `running`, its wait recorded so a crash
#: resumes it at the same deadline); a longer one parks the run as `waiting` and frees it.
IN_MEMORY_WAIT = 5.0
#: A node's progress (`Context.progress`) reaches the views at most this often, in seconds; the latest always does.
PROGRESS_EVERY = 0.1


@dataclass(slots=True)
class RunInfo:
    run_id: str
    flow_id: str
    trigger: str
    input: Items
    started: float


class Recorder(Protocol):
    """What the engine asks of persistence. The store implements it; the engine never sees SQL."""

    def run_started(self, info: RunInfo) -> Awaitable[None]: ...

    async def steps_finished(self, run_id: str, steps: list[Step], durable: bool) -> None:
        """`durable`: a node with side effects finished; write everything before the run goes on."""

    def run_finished(self, result: RunResult, steps: list[Step] | None = None) -> Awaitable[None]:
        """`steps`: the run's last steps, not handed over before and none with side effects (one call, not two).
        (Awaitable: a coroutine, or a recorder's own future to wait for.)"""


class Lease(Protocol):
    """This process's hold on the runs it runs (`store.Lease`): renewed in the background while runs go, so that no
    other process takes a live run over, however quiet it is."""

    def hold(self) -> None:
        """Keep the lease renewed (called as each run starts)."""

    def fresh(self) -> bool:
        """True while no other process can have taken our runs over (the last renewal is recent enough)."""

    async def confirm(self, run_id: str) -> bool:
        """Renew now; False when the run was taken over meanwhile."""


class Engine:
    """Runs plans. One per process; holds the shared services, the recorder and the event bus."""

    def __init__(self, services: Services | None = None, recorder: Recorder | None = None,
                 bus: EventBus | None = None, lease: Lease | None = None):
        self.services = services or Services()
        self.recorder = recorder
        self.bus = bus or EventBus()
        #: Checked before each node with side effects starts: a process that was paused past its lease confirms it
        #: still owns the run before making a call its successor may have made already.
        self.lease = lease
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._runs: dict[str, _Run] = {}
        self._cancel_requested: set[str] = set()
        self._lost: set[str] = set()
        #: The signed URL that resumes a waiting run (`{{ run.resume_url }}` in expressions); set by the app.
        self.resume_url: Callable[[str], str] | None = None
        #: Called with (plan, trigger node id, result) when a run concludes (not when it is interrupted); must not
        #: raise or block. The app uses it to start error flows.
        self.on_finished: Callable[[Plan, str, RunResult], None] | None = None
        #: What runs the runs, in the words of a step interrupted by its stop ("a stop of Flowboard")
        self.host = "Flowboard"

    async def run(self, plan: Plan, input_items: Items | None = None, *, run_id: str | None = None,
                  trigger: str | None = None, done: dict[str, Step] | None = None,
                  started: float | None = None, waits: dict[str, Waiting] | None = None,
                  park: bool = True) -> RunResult:
        """Run `plan` from `trigger` (default: its manual trigger) with `input_items` as the trigger's input.
        `done` holds steps finished before a crash or a wait: they are not run again; a `running` one was started
        and never finished (a stop interrupted it): its node runs again if it is retry-safe, else its step fails
        with a message asking to check what it sends to. `waits` holds the recorded
        waits of nodes that suspended the run: a resumed one gives its node's output from its payload, one still
        waiting goes on waiting until its recorded deadline (the node does not run again). `park=False` keeps waits
        with a deadline in memory, however long (the editor's test runs, which a person watches)."""
        run = _Run(self, plan, run_id or uuid.uuid4().hex, trigger or plan.default_trigger(),
                   input_items if input_items is not None else [], done or {}, started)
        if waits:
            run.waits = waits
        run.park = park
        return await run.execute()

    def cancel(self, run_id: str) -> bool:
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        self._cancel_requested.add(run_id)
        task.cancel()
        return True

    def abandon(self, run_id: str) -> bool:
        """Stop a run this process lost (another process took it over): no final state, nothing more recorded."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        self._lost.add(run_id)
        task.cancel()
        return True

    def progress(self, run_id: str, node_id: str) -> Progress | None:
        """What a node still running here last said of its progress (`Context.progress`), or None."""
        run = self._runs.get(run_id)
        return run.partial.get(node_id) if run is not None else None

    def runs_here(self, run_id: str) -> bool:
        """Whether the run is going in this engine (not only heard of from another process)."""
        return run_id in self._tasks

    @property
    def active_runs(self) -> list[str]:
        return list(self._tasks)

    async def aclose(self) -> None:
        await self.services.aclose()


class _Run:
    __slots__ = ("cancel_event", "crash", "current", "done", "durable", "engine", "failure", "flow_id", "info", "input",
                 "live", "lost", "park", "parked", "partial", "plan", "progress_due", "progress_sent", "publish",
                 "recorder", "remaining", "run_id", "scope_nodes", "started", "steps", "tracer", "trigger", "unflushed",
                 "waits")

    def __init__(self, engine: Engine, plan: Plan, run_id: str, trigger: str, input_items: Items,
                 done: dict[str, Step], started: float | None):
        first = plan.nodes.get(trigger)
        if first is None or not first.is_trigger:
            raise ValueError(f"{trigger!r} is not a trigger of flow {plan.flow.id!r}")
        self.engine = engine
        self.plan = plan
        self.run_id = run_id
        self.flow_id = plan.flow.id
        self.trigger = trigger
        self.input = input_items if input_items.__class__ is FrozenList else freeze_items(input_items)
        self.done = done
        self.started = started or time.time()
        self.recorder = engine.recorder
        self.publish = engine.bus.publish if engine.bus.active else None
        self.remaining = dict(plan.upstream_counts)
        self.steps: dict[str, Step] = {}
        self.unflushed: list[Step] = []
        self.durable = False
        self.failure: Step | None = None
        self.scope_nodes: dict[str, Any] = {}
        #: The node and input item an expression is being evaluated for, for `nodes['X'].item`:
        #: (node, its inputs, the item, positions of its input items by id, built when first needed)
        self.current: list[Any] | None = None
        self.tracer: Tracer | None = None
        self.cancel_event = asyncio.Event()
        self.live: dict[str, float] = {}  # node id -> when it started, for nodes started and not finished
        self.partial: dict[str, Progress] = {}  # node id -> its last progress, while it runs
        self.progress_due: dict[str, asyncio.TimerHandle] = {}  # node id -> its next progress event, when one waits
        self.progress_sent: dict[str, float] = {}  # node id -> when its last progress event went (monotonic)
        self.crash: BaseException | None = None  # what stopped the run outside any node
        self.lost = False
        self.waits: dict[str, Waiting] = {}  # recorded waits, when the run resumes
        self.parked: list[str] = []  # nodes waiting beyond this run's time in memory: the run ends `waiting`
        self.park = True
        self.info = None if self.recorder is None else RunInfo(run_id, self.flow_id, trigger, self.input,
                                                              self.started)  # (only a recorder reads it)

    # -- the loop ---------------------------------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        engine, plan = self.engine, self.plan
        task = asyncio.current_task()
        if task is not None:
            engine._tasks[self.run_id] = task
        engine._runs[self.run_id] = self
        if engine.lease is not None:
            engine.lease.hold()
        running: dict[asyncio.Future[Step], PlannedNode] = {}
        status = RunStatus.succeeded
        try:
            if self.recorder is not None:
                await self.recorder.run_started(self.info)  # type: ignore[arg-type]
            if self.publish:
                self.publish(Event("run.started", self.run_id, self.flow_id, status="running"))
            ready: deque[str] = deque()
            for nid in plan.triggers:
                if nid != self.trigger:
                    self._skip(plan.nodes[nid], ready)
            first = plan.nodes[self.trigger]
            if first.cls.passes_input and self.input and self.trigger not in self.done \
                    and self.trigger not in self.waits and not first.node.settings.disabled:
                self._finish(first, self._passed_input(first), ready)  # what running it would give, made here
            else:
                ready.append(self.trigger)
            limit = plan.flow.settings.max_concurrency
            while ready or running:
                while ready and len(running) < limit:
                    pn = plan.nodes[ready.popleft()]
                    if pn.id in self.done and self.done[pn.id].status is not StepStatus.running:
                        self._finish(pn, self.done[pn.id], ready, restored=True)
                    elif not pn.is_trigger and not self._has_input(pn):
                        self._skip(pn, ready)
                    elif not running and not ready:  # the only runnable node: no task needed
                        step = await self._run_node(pn)
                        self._finish(pn, step, ready)
                        if self.durable or self.failure is not None:
                            break
                    else:
                        running[asyncio.ensure_future(self._run_node(pn))] = pn
                if running and (not ready or len(running) >= limit):
                    finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for fut in finished:
                        self._finish(running.pop(fut), fut.result(), ready)
                if self.durable:  # a side effect happened: write it down before anything builds on it
                    await self._flush()
                if self.failure is not None:
                    status = RunStatus.failed
                    await self._stop(running)
                    break
            if self.parked and status is RunStatus.succeeded:
                status = RunStatus.waiting  # nothing else can run before the parked nodes resume
        except asyncio.CancelledError:
            await self._stop(running)
            if self.run_id in engine._lost:
                self.lost = True
            elif self.run_id not in engine._cancel_requested:
                raise  # shutdown or crash: the run stays `running` in the store and resumes at the next start
            status = RunStatus.cancelled
        except RunLost:
            self.lost = True
            await self._stop(running)
        except Exception as exc:  # not a node's failure (that is a failed step): the engine, recorder or a listener
            log.exception("run %s of flow %s crashed", self.run_id, self.flow_id)
            self.crash = exc
            status = RunStatus.crashed
            await self._stop(running)
        finally:
            engine._tasks.pop(self.run_id, None)
            engine._runs.pop(self.run_id, None)
            engine._cancel_requested.discard(self.run_id)
            engine._lost.discard(self.run_id)
            # the node views call back into this run (`nodes['X'].item`): a reference cycle that would keep the run
            # and all its items alive until the garbage collector looks for cycles, costing it time on every run
            self.scope_nodes.clear()
        if self.recorder is None and not self.lost:
            return self._concluded(self._result(status))  # nothing to write: no coroutine for it
        return await self._conclude(status)

    def _passed_input(self, pn: PlannedNode) -> Step:
        """The step of a trigger that hands on the items it is given (`passes_input`), as `_run_node` makes it."""
        started = self.live[pn.id] = time.time()
        if self.publish:
            self.publish(Event("node.started", self.run_id, self.flow_id, pn.id, "running"))
        given = self.input
        step = Step(self.run_id, pn.id, StepStatus.succeeded, started, time.time(), 1, {"main": given},
                    {pn.output_ports[0]: FrozenList(given)})
        step._lineage = LATER
        return step

    def _has_input(self, pn: PlannedNode) -> bool:
        """Whether an upstream node that ran (was not skipped) sent items to `pn` (or, for a node that runs on empty
        inputs, whether one ran at all)."""
        steps = self.steps
        for source, port, _ in pn.in_edges:
            step = steps.get(source)
            if step is None or step.status in _NOT_FED:
                continue
            if step.outputs.get(port) or pn.cls.runs_on_empty:
                return True
        return False

    def _gather(self, pn: PlannedNode) -> dict[str, Items]:
        """The node's input items per port: its upstream outputs along its edges, in lineage order. Items are frozen,
        so a port fed by one edge gets that output list itself, uncopied."""
        in_edges = pn.in_edges
        if len(in_edges) == 1 and len(pn.input_ports) == 1:
            source, source_port, port = in_edges[0]
            if port == pn.input_ports[0]:
                step = self.steps.get(source)
                items = step.outputs.get(source_port) if step is not None else None
                return {port: items or _EMPTY}
        inputs: dict[str, Items] = {}
        steps = self.steps
        for source, source_port, port in in_edges:
            step = steps.get(source)
            items = step.outputs.get(source_port) if step is not None else None
            have = inputs.get(port)
            if have is None:
                inputs[port] = items or _EMPTY
            elif items:
                inputs[port] = FrozenList(have + items)
        for port in pn.input_ports:
            if port not in inputs:
                inputs[port] = _EMPTY
        return inputs

    async def _stop(self, running: dict[asyncio.Future[Step], PlannedNode]) -> None:
        """Stop every node still running. A node that finished meanwhile keeps its step (a failure stays a failure);
        the others get a `cancelled` step. Each gets its final event."""
        self.cancel_event.set()
        for fut in running:
            fut.cancel()
        if running:
            await asyncio.wait(running)
        for fut, pn in running.items():
            step = fut.result() if not fut.cancelled() and fut.exception() is None else None
            if step is not None:
                self._end(pn, step)
        running.clear()
        now = time.time()
        for nid, since in list(self.live.items()):  # started, never finished (the inline node, or one that raised)
            self._end(self.plan.nodes[nid], Step(self.run_id, nid, StepStatus.cancelled, since, now))

    def _end(self, pn: PlannedNode, step: Step) -> None:
        """A node's last word while the run stops: recorded unless the run was lost, and its final event."""
        self.live.pop(pn.id, None)
        if self.partial:
            self._progress_over(pn.id)
        if not self.lost:
            self._record(pn, step)
        kind = {StepStatus.failed: "node.failed", StepStatus.cancelled: "node.cancelled"}.get(step.status,
                                                                                               "node.finished")
        self._publish_safely(Event(kind, self.run_id, self.flow_id, pn.id, step.status.value, step.count,
                                   step.error["message"] if step.error else None))

    def _publish_safely(self, event: Event) -> None:
        """Publish an event of a run that is stopping: a listener that raises must not keep it from the others."""
        if self.engine.bus.active:
            self.engine.bus.publish_safely(event)

    async def _flush(self) -> None:
        steps, self.unflushed = self.unflushed, []
        durable, self.durable = self.durable, False
        try:
            await self.recorder.steps_finished(self.run_id, steps, durable)  # type: ignore[union-attr]
        except RunLost:
            raise
        except Exception as exc:
            raise _NotRecorded(exc) from exc

    async def _conclude(self, status: RunStatus) -> RunResult:
        if self.lost:
            return self._lost()
        result = self._result(status)
        if self.recorder is not None:
            try:
                if self.durable:
                    await self._flush()
                await self.recorder.run_finished(result, self.unflushed)  # (the run records nothing after this)
            except RunLost:
                self.lost = True
                return self._lost()
            except Exception as exc:
                log.exception("could not record the end of run %s", self.run_id)
                if result.status is not RunStatus.crashed:
                    result.status = RunStatus.crashed
                    result.error = _crash_error("Flowboard could not record the run's steps", exc)
                try:  # the run row alone: its unwritten steps are dropped with the recorder's buffer
                    await self.recorder.run_finished(result)
                except RunLost:
                    self.lost = True
                    return self._lost()
                except Exception:
                    log.exception("could not record that run %s crashed; it stays `running` in the database until "
                                  "the next start resumes it", self.run_id)
        return self._concluded(result)

    def _result(self, status: RunStatus) -> RunResult:
        error = None
        if isinstance(self.crash, _NotRecorded):
            error = _crash_error("Flowboard could not record the run's steps", self.crash.cause)
        elif self.crash is not None:
            error = _crash_error("Flowboard stopped the run because of an error outside its nodes", self.crash)
        elif self.failure is not None:
            error = {"node_id": self.failure.node_id, **(self.failure.error or {})}
        elif status is RunStatus.cancelled:
            error = {"message": "the run was cancelled"}
        return RunResult(self.run_id, self.flow_id, status, self.started, time.time(), self._output(), self.steps,
                         error)

    def _concluded(self, result: RunResult) -> RunResult:
        """Tell the views and the end-of-run hook that the run ended (recorded, when something records)."""
        if self.engine.bus.active:  # (an event is a frozen dataclass: not made for nobody)
            self._publish_safely(Event("run.finished", self.run_id, self.flow_id, status=result.status.value,
                                       message=result.error["message"] if result.error else None))
        if self.engine.on_finished is not None:
            try:
                self.engine.on_finished(self.plan, self.trigger, result)
            except Exception:
                log.exception("the end-of-run hook failed for run %s", self.run_id)
        return result

    def _lost(self) -> RunResult:
        """The run goes on in another process: tell this process's listeners it stopped here; record nothing."""
        error = {"message": str(RunLost(self.run_id))}
        self._publish_safely(Event("run.finished", self.run_id, self.flow_id, status=RunStatus.crashed.value,
                                   message=error["message"]))
        return RunResult(self.run_id, self.flow_id, RunStatus.crashed, self.started, time.time(), [], self.steps,
                         error)

    def _output(self) -> Items:
        for nid in reversed(self.plan.sinks):
            step = self.steps.get(nid)
            if step is not None and step.status is StepStatus.succeeded:
                outputs = step.outputs
                if len(outputs) == 1:
                    return next(iter(outputs.values()))
                return [item for items in outputs.values() for item in items]
        return []

    # -- progress of a running node ---------------------------------------------------------------------------------

    def _progress(self, node_id: str, count: int, message: str | None, items: Items | None) -> None:
        """`Context.progress`: keep what the node said, and tell the views, at most every PROGRESS_EVERY seconds
        (the latest is sent when that time is up). Listeners are asked live: a view opened after the run started
        (the run page) hears it too."""
        if node_id not in self.live:
            return  # a late word from a node that ended (a task it left behind)
        now = time.monotonic()
        self.partial[node_id] = Progress(count, message, items, time.time())
        if node_id in self.progress_due:
            return  # an event is due: it sends the latest
        wait = self.progress_sent.get(node_id, -PROGRESS_EVERY) + PROGRESS_EVERY - now
        if wait <= 0:
            self._send_progress(node_id)
        else:
            self.progress_due[node_id] = asyncio.get_running_loop().call_later(wait, self._send_progress, node_id)

    def _send_progress(self, node_id: str) -> None:
        self.progress_due.pop(node_id, None)
        progress = self.partial.get(node_id)
        if progress is None or node_id not in self.live:
            return
        self.progress_sent[node_id] = time.monotonic()
        if self.engine.bus.active:
            self._publish_safely(Event("node.progress", self.run_id, self.flow_id, node_id, "running",
                                       progress.count, progress.message))

    def _progress_over(self, node_id: str) -> None:
        self.partial.pop(node_id, None)
        self.progress_sent.pop(node_id, None)
        due = self.progress_due.pop(node_id, None)
        if due is not None:
            due.cancel()

    # -- one node ---------------------------------------------------------------------------------------------------

    def _record(self, pn: PlannedNode, step: Step) -> None:
        self.steps[pn.id] = step
        if self.recorder is not None:
            self._write(pn, step)

    def _write(self, pn: PlannedNode, step: Step) -> None:
        """The step goes to the recorder with the next flush."""
        if len(pn.in_edges) == 1 and step.outputs:
            step.same_as = self._passed_on(pn, step)
        self.unflushed.append(step)
        if pn.cls.side_effects:
            self.durable = True

    def _passed_on(self, pn: PlannedNode, step: Step) -> dict[str, tuple[str, str]] | None:
        """Where the step's output came from when the node handed on the items it got from its one upstream port,
        unchanged (the same list, or the same items in the same order) on one of its outputs, the others empty (a
        Filter, an If, a switched-off node): that port, so the items are written once."""
        source, source_port, _ = pn.in_edges[0]
        upstream = self.steps.get(source)
        theirs = upstream.outputs.get(source_port) if upstream is not None else None
        if not theirs:
            return None
        outputs = step.outputs
        if len(theirs) == 1 and len(outputs) == 1:  # one item in (most chains): its lineage is known here already
            (port, items), = outputs.items()
            if len(items) != 1:  # none out, or several: `infer` works their lineage out if it is read
                return None
            if step._lineage is LATER:  # one item out came from it, new or not (what `infer` says)
                step._lineage = {port: SAME}
            return {port: (source, source_port)} if items[0] is theirs[0] else None
        found = None
        first = theirs[0]
        for port, items in outputs.items():
            if not items:
                continue
            if found is not None or items[0] is not first or len(items) != len(theirs) or not (
                    items is theirs or all(map(operator.is_, items, theirs))):  # new items fail at the first
                return None
            found = port
        if found is None:
            return None
        if step._lineage is LATER:  # what `infer` says of items passed on as they came, without working it out
            step._lineage = {port: SAME for port in step.outputs}
        return {found: (source, source_port)}

    def _finish(self, pn: PlannedNode, step: Step, ready: deque[str], restored: bool = False) -> None:
        if restored:
            step.outputs = {port: freeze_items(items) for port, items in step.outputs.items()}
            self.steps[pn.id] = step
        else:
            del self.live[pn.id]
            if self.partial:
                self._progress_over(pn.id)
            self._record(pn, step)
        status = step.status
        if status is _WAITING:  # its branch stops here until it resumes
            self.parked.append(pn.id)
            if self.publish:
                self.publish(Event("node.waiting", self.run_id, self.flow_id, pn.id, "waiting"))
            return
        if status is _FAILED and pn.node.settings.on_error is OnError.stop:
            self.failure = step
            if self.publish:
                self.publish(Event("node.failed", self.run_id, self.flow_id, pn.id, step.status.value, step.count,
                                   step.error["message"] if step.error else None))
            return
        self._release(pn, ready)
        if self.plan.reads_nodes:
            view = node_view(step.outputs, _STATUS[step.status], lambda: self._matching_item(pn))
            self.scope_nodes[pn.id] = view
            self.scope_nodes[pn.name] = view
        if self.publish:
            kind = "node.failed" if step.status is StepStatus.failed else "node.finished"
            self.publish(Event(kind, self.run_id, self.flow_id, pn.id, _STATUS[step.status], step.count,
                               step.error["message"] if step.error else None))

    def _skip(self, pn: PlannedNode, ready: deque[str]) -> None:
        now = time.time()
        self._record(pn, Step(self.run_id, pn.id, StepStatus.skipped, now, now))
        self._release(pn, ready)
        if self.publish:
            self.publish(Event("node.skipped", self.run_id, self.flow_id, pn.id, "skipped"))

    def _release(self, pn: PlannedNode, ready: deque[str]) -> None:
        remaining = self.remaining
        for target in pn.targets:
            left = remaining[target] - 1
            remaining[target] = left
            if left == 0:
                ready.append(target)

    async def _run_node(self, pn: PlannedNode) -> Step:
        """Run the node, with its retries. Its step's outputs are frozen and carry their lineage (`_sealed`)."""
        inputs: dict[str, Items] = {"main": self.input} if pn.is_trigger else self._gather(pn)
        node = pn.node
        settings = node.settings
        lease = self.engine.lease
        if pn.cls.side_effects and lease is not None and not lease.fresh() and not await lease.confirm(self.run_id):
            raise RunLost(self.run_id)  # we were paused past our lease: another process may have made this call
        started = self.live[pn.id] = time.time()
        if self.publish:
            self.publish(Event("node.started", self.run_id, self.flow_id, pn.id, "running"))
        if settings.disabled:
            passed = list(flat_inputs(inputs))
            return _sealed(Step(self.run_id, pn.id, StepStatus.succeeded, started, time.time(), 1, inputs,
                                {pn.output_ports[0]: passed} if pn.output_ports else {}), None)
        if pn.unsafe and self.recorder is not None and pn.id not in self.waits:  # (a wait's end is no side effect)
            interrupted = self.done.get(pn.id)
            if interrupted is not None:  # started before a stop, never finished: it may have happened, or not
                return _sealed(self._failed_step(pn, inputs, self._interrupted(pn), interrupted.started,
                                                 interrupted.attempt), None)
            # Recorded as started (with whatever waits to be written) before it can change anything, so that a run
            # resumed after a stop in the middle knows this step may have happened and does not do it again
            self.unflushed.append(Step(self.run_id, pn.id, StepStatus.running, started, started))
            self.durable = True
            await self._flush()
        attempt = 1
        logs: list[str] | None = None
        while True:
            try:
                config_for = pn.constant_for
                if config_for is not None:
                    config = pn.static_config
                else:
                    config_for = self._config_for(pn, inputs)
                    first = next((items[0] for items in inputs.values() if items), None)
                    config = config_for(first)
                # (positional: a class called with keywords takes a slower path, about 0.35 µs per step)
                ctx = Context(self.run_id, self.flow_id, pn.id, pn.name, attempt, self.engine.services, config_for,
                              self.cancel_event, self._progress)
                logs = ctx.logs
                waited = self.waits.get(pn.id)
                if waited is not None:  # it suspended the run before: it does not run again
                    if waited.resumed:
                        return _sealed(await self._resumed(pn, ctx, config, inputs, waited.payload, started), None)
                    return _sealed(await self._suspended(pn, ctx, config, inputs, Suspend(waited.resume_at,
                                                                                         data=waited.data),
                                                         started, recorded=True), None)
                try:
                    if settings.timeout is None:
                        result = await pn.impl.run(ctx, config, inputs)
                    else:
                        try:
                            async with asyncio.timeout(settings.timeout):
                                result = await pn.impl.run(ctx, config, inputs)
                        except TimeoutError:
                            # a node with side effects may have done its work before it ran out of time (the
                            # database committed, the server acted): trying again could do it twice, unless the node
                            # says not
                            unsafe = pn.unsafe
                            raise NodeError(f"timed out after {settings.timeout:g} s" + (
                                "; not retried, since it may have done its work already" if unsafe and settings.retries
                                else ""), retryable=not unsafe) from None
                except Suspend as suspend:
                    result = suspend
                cls = result.__class__
                if (cls is FrozenList or cls is list) and pn.output_ports:  # the usual answer: one output's items
                    outputs: dict[str, Items] = {pn.output_ports[0]: result}  # type: ignore[dict-item]
                elif isinstance(result, Suspend):
                    return _sealed(await self._suspended(pn, ctx, config, inputs, result, started), None)
                else:
                    outputs = _outputs(pn, result)
                return _sealed(Step(self.run_id, pn.id, _SUCCEEDED, started, time.time(), attempt, inputs, outputs,
                                    None, logs), ctx._pairs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _error(pn, exc)
                if attempt <= settings.retries and getattr(exc, "retryable", True):
                    delay = min(settings.retry_backoff * (2 ** (attempt - 1)), MAX_RETRY_DELAY)
                    attempt += 1
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    if pn.cls.side_effects and lease is not None and not lease.fresh() \
                            and not await lease.confirm(self.run_id):
                        raise RunLost(self.run_id) from None
                    continue
                failed = self._failed_step(pn, inputs, error, started, attempt)
                if logs is not None:
                    failed.logs = logs
                return _sealed(failed, None)

    async def _suspended(self, pn: PlannedNode, ctx: Context, config: Any, inputs: dict[str, Items],
                         suspend: Suspend, started: float, recorded: bool = False) -> Step:
        """A node suspended the run. A wait due soon is slept here, recorded first so that a crash resumes it at the
        same deadline; any other gives a `waiting` step, and the run parks when nothing else can run."""
        wait = {"resume_at": suspend.resume_at, "data": suspend.data}
        waiting = Step(self.run_id, pn.id, StepStatus.waiting, started, time.time(), ctx.attempt, inputs, {},
                       wait=wait)
        soon = suspend.resume_at is not None and suspend.resume_at - time.time() <= IN_MEMORY_WAIT
        if suspend.resume_at is None or not (soon or self.recorder is None or not self.park):
            return waiting  # (a run nothing records cannot park: it sleeps in memory)
        if not recorded and self.recorder is not None:  # with the steps before it: the record reads whole
            self.unflushed.append(waiting)
            self.durable = True
            await self._flush()
        delay = suspend.resume_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return await self._resumed(pn, ctx, config, inputs, None, started)

    async def _resumed(self, pn: PlannedNode, ctx: Context, config: Any, inputs: dict[str, Items], payload: Any,
                       started: float) -> Step:
        """The step of a node whose wait ended: its `resume` gives the output (a failure there is the node's)."""
        try:
            outputs = _outputs(pn, await pn.impl.resume(ctx, config, inputs, payload))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            step = self._failed_step(pn, inputs, _error(pn, exc), started, ctx.attempt)
            step.wait = {"done": True}
            return step
        return Step(self.run_id, pn.id, StepStatus.succeeded, started, time.time(), ctx.attempt, inputs, outputs,
                    wait={"done": True})

    def _interrupted(self, pn: PlannedNode) -> dict[str, Any]:
        """The error of a step that a stop interrupted while it ran: its node may have done its work, or not."""
        try:
            target = pn.cls.target(pn.node.config)
        except Exception:
            target = "where this step sends to"
        return {"message": f"this step was interrupted by a stop of {self.engine.host} while it was sending; it may "
                           f"or may not have happened; check {target} and run it again",
                "node_id": pn.id, "interrupted": True}

    def _failed_step(self, pn: PlannedNode, inputs: dict[str, Items], error: dict[str, Any], started: float,
                     attempt: int) -> Step:
        outputs: dict[str, Items] = {}
        mode = pn.node.settings.on_error
        if mode is not OnError.stop:
            failed = [{**item, "error": error} for items in inputs.values() for item in items] or [{"error": error}]
            port = "error" if mode is OnError.error_port else (pn.output_ports[0] if pn.output_ports else None)
            if port is not None:
                outputs[port] = failed
        return Step(self.run_id, pn.id, StepStatus.failed, started, time.time(), attempt, inputs, outputs, error)

    def _config_for(self, pn: PlannedNode, inputs: dict[str, Items]) -> Any:
        run: dict[str, Any] = {"id": self.run_id, "flow_id": self.flow_id, "started": self.started}
        if pn.reads_run and self.engine.resume_url is not None:  # an HMAC: only for a node that may read it
            run["resume_url"] = self.engine.resume_url(self.run_id)
        base = {"items": inputs.get("main") or next(iter(inputs.values()), []), "nodes": self.scope_nodes,
                "input": self.input, "run": run}

        current: list[Any] = [pn, inputs, None, None]

        def config_for(item: Any) -> Any:
            scope = dict(base)
            scope["item"] = item if item is not None else {}
            current[2] = item
            self.current = current
            return pn.config_for(scope)

        return config_for

    def _matching_item(self, target: PlannedNode) -> Any:
        """`nodes['X'].item`: the item of X that the item being worked on came from."""
        current = self.current
        if current is None:
            return None
        pn, inputs, item, positions = current
        if positions is None:
            flat = flat_inputs(inputs)
            positions = current[3] = {}
            for index in range(len(flat) - 1, -1, -1):
                positions[id(flat[index])] = index
        if self.tracer is None:
            self.tracer = Tracer({nid: p.in_edges for nid, p in self.plan.nodes.items()}, self.steps)
        return self.tracer.item(pn.id, positions.get(id(item)), target.id, target.name)


_EMPTY: Items = FrozenList()
_STATUS = {status: status.value for status in StepStatus}  # a plain str (an enum's `.value` is a slow property)
_NOT_FED = frozenset({StepStatus.skipped, StepStatus.cancelled})
_SUCCEEDED, _WAITING, _FAILED = StepStatus.succeeded, StepStatus.waiting, StepStatus.failed


def _sealed(step: Step, pairs: Any) -> Step:
    """The step with its outputs frozen, so no later node can change them, and their lineage: worked out now when
    the node said where new items came from (`ctx.paired` knows them by identity, before freezing), else when
    something reads it (`Step.lineage`: most runs nobody does unless they are recorded)."""
    outputs = step.outputs
    if pairs is None:
        step._lineage = LATER
    else:
        step._lineage = infer(step.inputs, outputs, pairs)
    for port, items in outputs.items():
        if items.__class__ is not FrozenList:
            outputs[port] = freeze_items(items)
    return step


def _outputs(pn: PlannedNode, result: Any) -> dict[str, Items]:
    if type(result) is list or type(result) is FrozenList:
        if not pn.output_ports:
            raise NodeError("this node has no outputs but returned items", retryable=False)
        return {pn.output_ports[0]: result}
    if type(result) is dict:
        for port, items in result.items():
            if port not in pn.output_ports:
                raise NodeError(f"returned items for an output {port!r} it does not have", retryable=False)
            if type(items) is not list and type(items) is not FrozenList:
                raise NodeError(f"returned {type(items).__name__} for output {port!r}; outputs are lists of items",
                                retryable=False)
        return result
    if result is None:
        return {}
    raise NodeError(f"returned {type(result).__name__}; a node returns a list of items or a dict of them per output",
                    retryable=False)


class _NotRecorded(Exception):
    """The recorder failed to write a run's steps."""

    def __init__(self, cause: Exception):
        self.cause = cause
        super().__init__(str(cause))


def _crash_error(reason: str, exc: BaseException) -> dict[str, Any]:
    return {"message": f"{reason}: {type(exc).__name__}: {exc}" if str(exc) else f"{reason}: {type(exc).__name__}",
            "crashed": True, "trace": "".join(traceback.format_exception(exc, limit=-4))[-2000:]}


def _error(pn: PlannedNode, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, NodeError):
        err = exc.as_dict()
    elif isinstance(exc, ItemChanged):  # a node bug, said in a node developer's words, without the trace
        err = {"message": f"the node changed an item it received: {exc}"}
    else:
        err = {"message": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
               "trace": "".join(traceback.format_exception(exc, limit=-3))[-2000:]}
    err["node_id"] = pn.id
    return err
