"""Activation: which active flow answers which production trigger, and what a trigger needs to start a run.

```
 Flowboard.activate(flow) ─▶ build_plan (cached per version) ─▶ Activations.activate
                                                                   ├─ each TriggerKind checks the plan and names its
                                                                   │  claims (webhook: "POST echo"); a claim another
                                                                   │  active flow holds refuses the activation
                                                                   └─ each kind adds the flow (webhook: its routes)
 a trigger fires ─▶ RunGate.admit (run mode) ─▶ Launcher (accept | run | start) ─▶ the dispatcher runs it
```

A trigger kind subclasses `TriggerKind` and is added with `Activations.add_kind`. It starts runs through the small
`Launcher` interface below (implemented in `flowboard.runs`), never through the whole app. Deactivating removes a
flow's claims: no new runs start; runs already going finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

from ..engine import Plan, RunResult
from ..errors import FlowboardError, FlowInvalid, Problem
from ..model import RunMode
from ..sdk import Items, Services

log = logging.getLogger("flowboard.triggers")


class RunSkipped(FlowboardError):
    """The flow's run mode is skip and a run of it is going (in any process): this trigger starts nothing."""


class ActivationConflict(FlowInvalid):
    """The flow cannot be activated: a trigger it needs is taken, or set up in a way only a test run can use."""


class Claim(NamedTuple):
    """Something an active flow holds alone, e.g. the webhook route `POST orders/new`."""

    key: Hashable
    label: str  # for messages: "POST /webhook/orders/new"
    node_id: str
    loc: str  # where to point in the flow file: "nodes[0].config.path"


class RunGate:
    """A flow's run mode, shared by all its triggers. `parallel` (default): every trigger starts a run; `queued`: one
    run at a time, in arrival order; `skip`: a trigger that comes while a run is going is ignored.

    Use: `if gate.admit(): held = await gate.wait(); try: ... finally: gate.leave(held)`. `admit` is synchronous, so
    the decision to skip is taken before anything else can start a run."""

    __slots__ = ("_lock", "mode", "running")

    def __init__(self, mode: RunMode = RunMode.parallel):
        self.mode = mode
        self.running = 0  # admitted and not finished (waiting in the queue included)
        self._lock: asyncio.Lock | None = asyncio.Lock() if mode is RunMode.queued else None

    def set_mode(self, mode: RunMode) -> None:
        self.mode = mode
        if mode is RunMode.queued and self._lock is None:
            self._lock = asyncio.Lock()

    def admit(self) -> bool:
        if self.mode is RunMode.skip and self.running:
            return False
        self.running += 1
        return True

    @property
    def queues(self) -> bool:
        """Whether a run may have to wait for its turn (`wait` returns at once otherwise)."""
        return self.mode is RunMode.queued and self._lock is not None

    async def wait(self) -> bool:
        """Wait for this run's turn; True when a queue slot is held (hand it to `leave`)."""
        if self.mode is RunMode.queued and self._lock is not None:
            await self._lock.acquire()  # asyncio.Lock wakes its waiters first in, first out
            return True
        return False

    def leave(self, held: bool) -> None:
        self.running -= 1
        if held and self._lock is not None:
            self._lock.release()


@dataclass(slots=True, eq=False)
class Activation:
    """An active flow as the triggers see it: the plan of the version that was activated."""

    flow_id: str
    name: str
    version: int
    plan: Plan
    gate: RunGate
    claims: list[Claim] = field(default_factory=list)


class TriggerKind:
    """One kind of production trigger. Subclasses name the node types they serve and implement the hooks."""

    name: ClassVar[str] = "trigger"
    node_types: ClassVar[frozenset[str]] = frozenset()

    def trigger_nodes(self, plan: Plan) -> list[str]:
        return [nid for nid in plan.triggers if plan.nodes[nid].cls.type in self.node_types]

    def problems(self, plan: Plan) -> list[Problem]:
        """What keeps this kind from serving the flow in production (beyond what build_plan checks)."""
        return []

    def expression_problems(self, plan: Plan, whose: str | None = None) -> list[Problem]:
        """A problem for each of this kind's trigger nodes whose settings hold expressions: a trigger's settings are
        read once, when the flow is switched on, with no item to work them out for. `whose` names the settings in the
        message ("a webhook's"); None: the node type's title ("the RabbitMQ message trigger's")."""
        index = node_index(plan)
        out = []
        for nid in self.trigger_nodes(plan):
            if plan.nodes[nid].static_config is None:
                name = whose or f"the {plan.nodes[nid].cls.title} trigger's"
                out.append(Problem(f"nodes[{index[nid]}].config", f"{name} settings cannot hold expressions: write "
                                   "the values themselves", nid))
        return out

    def claims(self, plan: Plan) -> list[Claim]:
        return []

    def add(self, activation: Activation) -> None: ...

    def remove(self, flow_id: str) -> None: ...

    def close(self) -> None: ...


class Activations:
    """The active flows of this process, and the trigger kinds that serve them."""

    def __init__(self, kinds: Iterable[TriggerKind] = ()):
        self.kinds: list[TriggerKind] = list(kinds)
        self.active: dict[str, Activation] = {}
        self.gates: dict[str, RunGate] = {}

    def add_kind(self, kind: TriggerKind) -> None:
        self.kinds.append(kind)
        for activation in self.active.values():
            kind.add(activation)

    def kind(self, cls: type[TriggerKind]) -> Any:
        return next(k for k in self.kinds if isinstance(k, cls))

    def check(self, flow_id: str, plan: Plan) -> list[Problem]:
        """Every reason the flow cannot be activated now (its plan is valid already)."""
        problems: list[Problem] = []
        for kind in self.kinds:
            problems.extend(kind.problems(plan))
        held = {claim.key: act for act in self.active.values() if act.flow_id != flow_id for claim in act.claims}
        seen: set[Hashable] = set()
        for claim in self.claims(plan):
            other = held.get(claim.key)
            if other is not None:
                problems.append(Problem(claim.loc, f"{claim.label} is already used by the active flow {other.name!r} "
                                                   f"(id {other.flow_id}); change it here or deactivate that flow",
                                        claim.node_id))
            elif claim.key in seen:
                problems.append(Problem(claim.loc, f"{claim.label} is used by two triggers of this flow",
                                        claim.node_id))
            seen.add(claim.key)
        return problems

    def claims(self, plan: Plan) -> list[Claim]:
        return [claim for kind in self.kinds for claim in kind.claims(plan)]

    def activate(self, flow_id: str, name: str, version: int, plan: Plan) -> Activation:
        """Serve the flow's triggers from `plan` (replacing an earlier version). Raises ActivationConflict."""
        problems = self.check(flow_id, plan)
        if problems:
            raise ActivationConflict(problems)
        gate = self.gates.get(flow_id)
        if gate is None:
            gate = self.gates[flow_id] = RunGate(plan.flow.settings.run_mode)
        else:
            gate.set_mode(plan.flow.settings.run_mode)
        self.deactivate(flow_id)
        activation = Activation(flow_id, name, version, plan, gate, self.claims(plan))
        self.active[flow_id] = activation
        for kind in self.kinds:
            kind.add(activation)
        return activation

    def deactivate(self, flow_id: str) -> bool:
        if self.active.pop(flow_id, None) is None:
            return False
        for kind in self.kinds:
            kind.remove(flow_id)
        return True

    def close(self) -> None:
        for kind in self.kinds:
            kind.close()


# -- starting runs ------------------------------------------------------------------------------------------------


def new_run_id() -> str:
    """A UUIDv7 as 32 hex digits: time first, so new runs land at the end of the runs and steps indexes (a random
    id dirties a random index page per run; in order, a group commit writes the same few pages once)."""
    try:
        rand = _random.pop()
    except IndexError:
        rand = _refill()
    return f"{(time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80 | rand:032x}"


#: The random part of the next run ids, version and variant bits set: `os.urandom` in blocks of 400 (a getrandom
#: system call per run id measured 6% of a webhook call's time)
_random: list[int] = []
_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62


def _refill() -> int:
    block = os.urandom(10 * 400)
    for at in range(0, len(block), 10):
        rand = int.from_bytes(block[at:at + 10], "big")
        _random.append(_VERSION_AND_VARIANT | (rand >> 68) << 64 | rand & (1 << 62) - 1)
    return _random.pop()


os.register_at_fork(after_in_child=_random.clear)  # a forked child must not reuse its parent's random bits




class Launcher(Protocol):
    """What a trigger needs to start runs (`flowboard.runs.Launcher` implements it): accept a run, have it run under
    the flow's run mode, hand it to the dispatcher. The trigger has admitted each run with `activation.gate.admit()`
    first; from then on the launcher owns the admission (it leaves the gate when the run ends or cannot start)."""

    owner: str | None  # who the runs a trigger records belong to: this process, or None (a worker claims each)
    records: bool  # runs are recorded in the store
    services: Services  # what nodes reach the world through (a listening trigger's connection uses them)

    def admit(self, activation: Activation) -> bool:
        """Let a new run of the flow in under its run mode (False: skip mode and a run is going). Synchronous, so
        the decision is taken before anything else can start a run."""
        ...

    def skips(self, activation: Activation) -> bool:
        """Whether the run mode skip is decided where the run is recorded (runs go to other processes, and the flow's
        mode is skip): a trigger that records its runs itself (schedule, table) passes it to the store, which records
        no run while one of the flow is queued or running."""
        ...

    async def accept(self, activation: Activation, node_id: str, items: Items, *, source: str) -> str:
        """Record the run as queued (so no crash can lose it; off the event loop) and then start it in the background.
        Returns its id. Raises
        RunSkipped when runs go to workers, the run mode is skip and a run of the flow is going."""
        ...

    async def run(self, activation: Activation, node_id: str, items: Items, *, source: str) -> RunResult:
        """Run now and wait for the result (a webhook that answers with the flow's result). RunSkipped as `accept`."""
        ...

    def start(self, activation: Activation, node_id: str, items: Items, *, source: str, run_id: str
              ) -> asyncio.Task[Any] | None:
        """Start in the background a run the trigger recorded as queued itself (schedule and table triggers claim
        their fire and create the run in one transaction). Returns its task when it runs in this process."""
        ...

    async def run_flow(self, flow_id: str, items: Items, *, trigger: str | None = None, source: str) -> RunResult:
        """Run a stored flow's newest version now, ungated (an error flow), and wait for the result."""
        ...

    async def run_plan(self, plan: Plan, version: int, node_id: str, items: Items, *, source: str,
                       run_id: str | None = None, created: bool = False) -> RunResult:
        """Run a plan that is not active (the editor's test listener) in this process now, ungated, and wait."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Keep a background task until it ends (closed with the app; its failure is logged)."""
        ...


def node_index(plan: Plan) -> dict[str, int]:
    """Each node's place in the flow file, for a problem's location (`nodes[3].config.path`)."""
    return {node.id: i for i, node in enumerate(plan.flow.nodes)}
