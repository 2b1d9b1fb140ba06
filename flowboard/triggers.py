"""Activation: which active flow answers which production trigger, and how a triggered run starts.

```
 Flowboard.activate(flow) ─▶ build_plan (cached per version) ─▶ Activations.activate
                                                                   ├─ each TriggerKind checks the plan and names its
                                                                   │  claims (webhook: "POST echo"); a claim another
                                                                   │  active flow holds refuses the activation
                                                                   └─ each kind adds the flow (webhook: its routes)
 a trigger fires ─▶ RunGate.admit (run mode) ─▶ run_triggered ─▶ Engine.run(plan)   (no validation per run)
```

A trigger kind (webhook here; schedule, form, table change later) subclasses `TriggerKind` and is added with
`Activations.add_kind`. Deactivating removes a flow's claims: no new runs start; runs already going finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from .engine import Plan, RunResult
from .errors import FlowInvalid, Problem
from .model import RunMode
from .sdk import Items

if TYPE_CHECKING:
    from .services import Flowboard

log = logging.getLogger("flowboard.triggers")


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
        self.tasks: set[asyncio.Task[Any]] = set()  # runs started in the background (respond immediately)

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

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a triggered run could not run", exc_info=task.exception())

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for kind in self.kinds:
            kind.close()


# -- starting runs ------------------------------------------------------------------------------------------------


def new_run_id() -> str:
    """A UUIDv7 as 32 hex digits: time first, so new runs land at the end of the runs and steps indexes (a random
    id dirties a random index page per run; in order, a group commit writes the same few pages once)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_random_bytes(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | rand & (1 << 62) - 1
    return f"{value:032x}"


class _RandomPool:
    """`os.urandom` in blocks: a getrandom system call per run id measured 6% of a webhook call's time."""

    __slots__ = ("_at", "_block")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._block = b""
        self._at = 0

    def __call__(self, n: int) -> bytes:
        at = self._at
        if at + n > len(self._block):
            self._block, at = os.urandom(4096), 0
        self._at = at + n
        return self._block[at:at + n]


_random_bytes = _RandomPool()
os.register_at_fork(after_in_child=_random_bytes.reset)  # a forked child must not reuse its parent's bytes


async def run_triggered(fb: Flowboard, plan: Plan, version: int, node_id: str, items: Items, *, source: str,
                        run_id: str | None = None, created: bool = False) -> RunResult:
    """Run `plan` from trigger `node_id` now and wait for the result. No validation, no database read: the plan was
    built at activation. `created`: the run row exists already (`Store.create_run`), the recorder updates it."""
    run_id = run_id or new_run_id()
    recorder = fb.recorder
    if recorder is not None and not created:
        recorder.annotate(run_id, flow_version=version, source=source)
    return await fb.engine.run(plan, items, run_id=run_id, trigger=node_id)


async def run_gated(fb: Flowboard, activation: Activation, node_id: str, items: Items, *, source: str,
                    run_id: str | None = None, created: bool = False) -> RunResult:
    """`run_triggered` under the flow's run mode, for a trigger that `activation.gate.admit()` let in."""
    gate = activation.gate
    held = False
    try:
        held = await gate.wait()
        return await run_triggered(fb, activation.plan, activation.version, node_id, items, source=source,
                                   run_id=run_id, created=created)
    finally:
        gate.leave(held)


def accept(fb: Flowboard, activation: Activation, node_id: str, items: Items, *, source: str) -> str:
    """Accept a run to go in the background (the caller answers at once): the run is written as `queued` first, in
    one transaction, so an accepted run survives a crash (it is resumed at the next start). The gate must have
    admitted it. Returns the run id."""
    run_id = new_run_id()
    created = False
    if fb.recorder is not None:
        try:
            fb.store.create_run(run_id, activation.flow_id, activation.version, node_id, items, source,
                                status="queued", owner=fb.owner)
        except BaseException:
            activation.gate.leave(False)
            raise
        created = True
    fb.triggers.spawn(run_gated(fb, activation, node_id, items, source=source, run_id=run_id, created=created))
    return run_id


# -- webhooks -----------------------------------------------------------------------------------------------------

WEBHOOK = "trigger.webhook"
RESPOND = "webhook.respond"
ALWAYS_HIDDEN = frozenset({"authorization", "proxy-authorization"})  # never put in an item, recorded or logged


@dataclass(slots=True, eq=False)
class WebhookEndpoint:
    """One webhook trigger node of one flow, ready to answer: everything the route needs, worked out once."""

    flow_id: str
    node_id: str
    path: str
    config: Any  # the node's WebhookConfig (validated once, at plan time)
    plan: Plan
    version: int
    respond_nodes: tuple[str, ...]  # webhook.respond nodes, in the flow's order
    hidden: frozenset[str]  # lower-case header names left out of the item
    activation: Activation | None = None  # None for a test listener
    listener: asyncio.Future[RunResult] | None = None  # set for a test listener
    keep: frozenset[str] | None = None  # lower-case header names put in the item; None: all but `hidden`


class WebhookTriggers(TriggerKind):
    """The webhook routing table: `routes[path][method]` for active flows, `tests[path][method]` for test listeners
    (one call each, then they are gone)."""

    name = "webhook"
    node_types = frozenset({WEBHOOK})

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, WebhookEndpoint]] = {}
        self.tests: dict[str, dict[str, WebhookEndpoint]] = {}

    def problems(self, plan: Plan) -> list[Problem]:
        index = _node_index(plan)
        return [Problem(f"nodes[{index[nid]}].config", "a webhook's settings cannot hold expressions", nid)
                for nid in self.trigger_nodes(plan) if plan.nodes[nid].static_config is None]

    def claims(self, plan: Plan) -> list[Claim]:
        index = _node_index(plan)
        out = []
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is None:
                continue
            for method in config.methods:
                out.append(Claim(("webhook", method, config.path), f"{method} /webhook/{config.path}", nid,
                                 f"nodes[{index[nid]}].config.path"))
        return out

    def endpoints(self, plan: Plan, version: int, flow_id: str) -> list[WebhookEndpoint]:
        respond = tuple(nid for nid in plan.order if plan.nodes[nid].cls.type == RESPOND)
        out = []
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is None:
                continue
            auth = config.auth
            hidden = set(ALWAYS_HIDDEN)
            if auth.type == "header":
                hidden.add(auth.name.lower())
            elif auth.type == "hmac":
                hidden.add(auth.header.lower())
            names = getattr(config, "headers", None)
            keep = None if names is None or "*" in names else frozenset(names) - hidden
            out.append(WebhookEndpoint(flow_id, nid, config.path, config, plan, version, respond, frozenset(hidden),
                                       keep=keep))
        return out

    def add(self, activation: Activation) -> None:
        for ep in self.endpoints(activation.plan, activation.version, activation.flow_id):
            ep.activation = activation
            methods = self.routes.setdefault(ep.path, {})
            for method in ep.config.methods:
                methods[method] = ep

    def remove(self, flow_id: str) -> None:
        _drop(self.routes, flow_id)

    # -- test calls (the editor's "listen for a test call") ----------------------------------------------------------

    def listen(self, flow_id: str, plan: Plan, version: int, future: asyncio.Future[RunResult]) -> list[str]:
        """Answer the flow's webhook test URLs once, resolving `future` with the run. Returns the paths."""
        self.stop_listening(flow_id)
        endpoints = self.endpoints(plan, version, flow_id)
        if not endpoints:
            raise ActivationConflict([Problem("nodes", "the flow has no webhook trigger to listen on")])
        index = _node_index(plan)
        problems = [Problem(f"nodes[{index[ep.node_id]}].config.path", f"/webhook-test/{ep.path} is being listened "
                            f"on by the editor of flow {other.flow_id!r}; stop listening there first", ep.node_id)
                    for ep in endpoints for method in ep.config.methods
                    if (other := self.tests.get(ep.path, {}).get(method)) is not None]
        if problems:
            raise ActivationConflict(problems)
        for ep in endpoints:
            ep.listener = future
            methods = self.tests.setdefault(ep.path, {})
            for method in ep.config.methods:
                methods[method] = ep
        future.add_done_callback(lambda _: self.stop_listening(flow_id, future))
        return [ep.path for ep in endpoints]

    def stop_listening(self, flow_id: str, future: asyncio.Future[RunResult] | None = None) -> None:
        for path, methods in list(self.tests.items()):
            for method, ep in list(methods.items()):
                if ep.flow_id == flow_id and (future is None or ep.listener is future):
                    del methods[method]
                    if future is None and ep.listener is not None and not ep.listener.done():
                        ep.listener.cancel()
            if not methods:
                del self.tests[path]

    def close(self) -> None:
        for flow_id in {ep.flow_id for methods in self.tests.values() for ep in methods.values()}:
            self.stop_listening(flow_id)


def _drop(table: dict[str, dict[str, WebhookEndpoint]], flow_id: str) -> None:
    for path, methods in list(table.items()):
        for method in [m for m, ep in methods.items() if ep.flow_id == flow_id]:
            del methods[method]
        if not methods:
            del table[path]


def _node_index(plan: Plan) -> dict[str, int]:
    return {node.id: i for i, node in enumerate(plan.flow.nodes)}
