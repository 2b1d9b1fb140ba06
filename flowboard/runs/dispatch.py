"""The dispatcher: where an accepted run runs. One interface, two implementations: `InProcess` (the engine of this
process, today's behaviour and the default on SQLite) and `ProcrastinateDispatcher` (a job for `flowboard worker`
processes, on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..engine import Engine, Plan, RunResult
from ..sdk import Items

if TYPE_CHECKING:
    from ..store import SqlRecorder
    from ..triggers import RunGate


@dataclass(slots=True, eq=False)
class RunOrder:
    """One run to go: the plan of the flow version it runs on, from which trigger, with which items."""

    run_id: str
    flow_id: str
    version: int
    plan: Plan
    node_id: str
    items: Items
    source: str
    created: bool  # the run row exists already (recorded as queued); else the recorder writes it as it starts


class Dispatcher(Protocol):
    async def run(self, order: RunOrder, gate: RunGate | None) -> RunResult:
        """Run it under the gate (the flow's run mode; admitted already) and wait for the result."""
        ...

    def submit(self, order: RunOrder, gate: RunGate | None) -> asyncio.Task[Any] | None:
        """Have it run in the background (it is recorded as queued). Returns its task when it runs here."""
        ...


class InProcess:
    """Runs in this process's engine. The gate is the flow's in-memory run mode: `queued` runs wait for their turn,
    and the run leaves the gate when it ends."""

    def __init__(self, engine: Engine, recorder: SqlRecorder | None,
                 spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]):
        self.engine = engine
        self.recorder = recorder
        self.spawn = spawn

    async def run(self, order: RunOrder, gate: RunGate | None) -> RunResult:
        held = False
        try:
            if gate is not None and gate.queues:
                held = await gate.wait()
            if self.recorder is not None and not order.created:
                self.recorder.annotate(order.run_id, flow_version=order.version, source=order.source)
            return await self.engine.run(order.plan, order.items, run_id=order.run_id, trigger=order.node_id)
        finally:
            if gate is not None:
                gate.leave(held)

    def submit(self, order: RunOrder, gate: RunGate | None) -> asyncio.Task[Any]:
        return self.spawn(self.run(order, gate))
