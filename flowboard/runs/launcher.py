"""The launcher: the one place runs start. Triggers see it through the small `flowboard.triggers.Launcher` interface
(accept a run, run it under the flow's run mode, hand it to the dispatcher); the app uses it for manual runs too."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..engine import Engine, Plan, RunResult, RunStatus
from ..model import RunMode
from ..sdk import Items
from ..triggers import Activation, RunSkipped, new_run_id
from .dispatch import Dispatcher, InProcess, RunOrder

if TYPE_CHECKING:
    from ..store import SqlRecorder, Store

log = logging.getLogger("flowboard.runs")


class Launcher:
    """Accepts runs and hands them to the dispatcher (in-process unless one is given)."""

    def __init__(self, store: Store, engine: Engine, recorder: SqlRecorder | None,
                 plans: Callable[[str, int | None], Plan], owner: str | None,
                 dispatcher: Dispatcher | None = None):
        self.store = store
        self.engine = engine
        self.recorder = recorder
        self.plans = plans  # (flow id, version or None for the newest) -> the cached plan
        self.owner = owner  # who the runs it records as queued belong to; None: the worker that claims one
        self.records = recorder is not None
        self.services = engine.services
        self.tasks: set[asyncio.Task[Any]] = set()  # runs started in the background
        #: Runs go to other processes (workers): the skip run mode is decided in the store, across processes.
        self.shared = False
        self.dispatcher: Dispatcher = dispatcher or InProcess(engine, recorder, self.spawn)

    # -- for triggers -----------------------------------------------------------------------------------------------

    def admit(self, activation: Activation) -> bool:
        return activation.gate.admit()

    async def accept(self, activation: Activation, node_id: str, items: Items, *, source: str) -> str:
        """Accept a run to go in the background (the caller answers at once): the run is written as `queued` first, in
        one transaction, so an accepted run survives a crash (it is resumed at the next start), and only then handed
        to the dispatcher. The write leaves the event loop (on PostgreSQL it joins the recorder's group commit, see
        `SqlRecorder.create_run`), so the loop serves other calls meanwhile; a caller that
        is cancelled while it waits (its client went away) does not stop it: the run recorded is also dispatched.
        The gate must have admitted it. Returns the run id."""
        task = asyncio.ensure_future(self._accept(activation, node_id, items, source))
        self.tasks.add(task)
        task.add_done_callback(self._accepted)
        return await asyncio.shield(task)

    def _accepted(self, task: asyncio.Task[str]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and not isinstance(task.exception(), (RunSkipped, type(None))):
            log.error("a run could not be accepted", exc_info=task.exception())

    async def _accept(self, activation: Activation, node_id: str, items: Items, source: str) -> str:
        run_id = new_run_id()
        if self.records:
            try:
                if self.skips(activation):
                    if not await asyncio.to_thread(self.store.create_run_if_idle, run_id, activation.flow_id,
                                                   activation.version, node_id, items, source):
                        raise RunSkipped(f"a run of flow {activation.flow_id} is going and its run mode is skip")
                else:
                    assert self.recorder is not None
                    await self.recorder.create_run(run_id, activation.flow_id, activation.version, node_id, items,
                                                   source, self.owner)
            except BaseException:
                activation.gate.leave(False)
                raise
        self.dispatcher.submit(self._order(activation, node_id, items, source, run_id, self.records),
                               activation.gate)
        return run_id

    async def run(self, activation: Activation, node_id: str, items: Items, *, source: str) -> RunResult:
        """Run now under the flow's run mode (the gate admitted it) and wait for the result. No validation, no
        database read: the plan was built at activation."""
        order = RunOrder(new_run_id(), activation.flow_id, activation.version, activation.plan, node_id, items, source,
                         False)
        if self.records and self.skips(activation):
            try:
                idle = await asyncio.to_thread(self.store.create_run_if_idle, order.run_id, order.flow_id,
                                               order.version, node_id, items, source)
            except BaseException:
                activation.gate.leave(False)
                raise
            if not idle:
                activation.gate.leave(False)
                raise RunSkipped(f"a run of flow {activation.flow_id} is going and its run mode is skip")
            order.created = True
        return await self.dispatcher.run(order, activation.gate)

    def skips(self, activation: Activation) -> bool:
        return self.shared and activation.gate.mode is RunMode.skip

    def start(self, activation: Activation, node_id: str, items: Items, *, source: str, run_id: str
              ) -> asyncio.Task[Any] | None:
        return self.dispatcher.submit(self._order(activation, node_id, items, source, run_id, self.records),
                                      activation.gate)

    async def run_plan(self, plan: Plan, version: int, node_id: str, items: Items, *, source: str,
                       run_id: str | None = None, created: bool = False) -> RunResult:
        """Run `plan` in this process now, ungated (an editor's test call, an API run), and wait for the result.
        `created`: the run row exists already (`Store.create_run`)."""
        order = RunOrder(run_id or new_run_id(), plan.flow.id, version, plan, node_id, items, source, created)
        return await InProcess(self.engine, self.recorder, self.spawn).run(order, None)

    async def run_flow(self, flow_id: str, items: Items | None = None, *, trigger: str | None = None,
                       source: str = "manual") -> RunResult:
        """Run a stored flow's newest version now and wait for it. The run is recorded and survives a crash."""
        stored = self.store.get_flow(flow_id)
        plan = self.plans(flow_id, stored.version)
        run_id = uuid.uuid4().hex
        trigger = trigger or plan.default_trigger()
        if self.recorder is not None:  # the run exists before it starts, so no crash can lose it
            self.store.create_run(run_id, flow_id, stored.version, trigger, items or [], source,
                                  status=RunStatus.running.value, owner=self.store.owner)
        return await self.engine.run(plan, items, run_id=run_id, trigger=trigger)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a run could not run", exc_info=task.exception())

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    @staticmethod
    def _order(activation: Activation, node_id: str, items: Items, source: str, run_id: str, created: bool
               ) -> RunOrder:
        return RunOrder(run_id, activation.flow_id, activation.version, activation.plan, node_id, items, source,
                        created)
