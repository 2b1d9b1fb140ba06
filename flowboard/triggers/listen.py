"""Listening triggers: an active flow started by the messages of a broker or cache (RabbitMQ, MQTT, Redis, NATS).

Any node type becomes one by implementing `listen(ctx, config, emit)` (see `flowboard.sdk.NodeType.listen`); this one
trigger kind runs them all, so a broker is one small node file and no code here.

```
 activate(flow) ─▶ ListenerTriggers.add ─▶ one task per listening trigger node:
     loop: "Connecting to X" ─▶ await node.listen(ctx, config, emit)      (ctx.connected() ─▶ "Connected to X")
           lost (raised or returned) ─▶ "Reconnecting to X: connection refused, next try in 4 s" ─▶ sleep (backoff)
 emit(items) ─▶ Launcher.admit (the flow's run mode) ─▶ Launcher.run ─▶ the run, recorded
 deactivate ─▶ the task is cancelled (the node closes its connection); runs already going finish
```

The kind needs only a `Launcher` (admit a run, run it, the node services), never the whole application.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ..engine import Plan, RunResult, RunStatus
from ..errors import NodeError, Problem
from ..sdk import Items, Listening, NodeType, RunOutcome
from .base import Activation, Launcher, TriggerKind

log = logging.getLogger("flowboard.triggers.listen")
_SAID = re.compile(r"^cannot (connect to|reach) [^:]{1,40}: ")
IN_FLIGHT = 256  # runs one listener may have going at once (emit without wait); more wait for a free slot


@dataclass(slots=True)
class ConnectionState:
    """A listening trigger's connection, as the flows page says it."""

    service: str
    up: bool = False
    detail: str = ""
    reason: str = ""
    retry_at: float | None = None

    def text(self, now: float | None = None) -> str:
        if self.up:
            return f"Connected to {self.service}" + (f" ({self.detail})" if self.detail else "")
        if self.retry_at is None:
            return f"Connecting to {self.service}"
        wait = max(0, math.ceil(self.retry_at - (time.time() if now is None else now)))
        return f"Reconnecting to {self.service}: {self.reason}, next try in {wait} s"


@dataclass(slots=True, eq=False)
class Listener:
    activation: Activation
    node_id: str
    impl: NodeType
    config: Any
    state: ConnectionState
    task: asyncio.Task[None] | None = None
    runs: set[asyncio.Task[Any]] = field(default_factory=set)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))


class ListenerTriggers(TriggerKind):
    name = "listen"
    #: pause before reconnecting: `backoff` seconds, doubled after each failed try, at most `backoff_max`
    backoff = 1.0
    backoff_max = 30.0

    def __init__(self, launcher: Launcher):
        self.launcher = launcher
        self.listeners: dict[tuple[str, str], Listener] = {}

    def trigger_nodes(self, plan: Plan) -> list[str]:
        return [nid for nid in plan.triggers if plan.nodes[nid].cls.listens()]

    def problems(self, plan: Plan) -> list[Problem]:
        return self.expression_problems(plan)

    def add(self, activation: Activation) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # activated outside the server (CLI): the server starts the listeners when it starts
        for nid in self.trigger_nodes(activation.plan):
            planned = activation.plan.nodes[nid]
            if planned.static_config is None:
                continue
            entry = Listener(activation, nid, planned.impl, planned.static_config,
                             ConnectionState(planned.cls.service or planned.cls.title))
            self.listeners[(activation.flow_id, nid)] = entry
            entry.task = loop.create_task(self._serve(entry), name=f"listen {activation.flow_id}/{nid}")

    def remove(self, flow_id: str) -> None:
        for key in [k for k in self.listeners if k[0] == flow_id]:
            entry = self.listeners.pop(key)
            if entry.task is not None:
                entry.task.cancel()

    def close(self) -> None:
        for key in list(self.listeners):
            self.remove(key[0])

    def states(self, flow_id: str) -> list[ConnectionState]:
        return [entry.state for (fid, _), entry in self.listeners.items() if fid == flow_id]

    # -- the connection loop ----------------------------------------------------------------------------------------

    async def _serve(self, entry: Listener) -> None:
        state, flow_id, service = entry.state, entry.activation.flow_id, entry.state.service
        failures = 0

        def connected(detail: str) -> None:
            state.up, state.detail, state.reason, state.retry_at = True, detail, "", None
            log.info("flow %s: trigger %s connected to %s %s", flow_id, entry.node_id, service, detail)

        ctx = Listening(flow_id=flow_id, node_id=entry.node_id, services=self.launcher.services, connected=connected)

        async def emit(items: Items, *, wait: bool = False) -> RunOutcome:
            return await self._emit(entry, items, wait)

        while True:
            try:
                await entry.impl.listen(ctx, entry.config, emit)
                reason = "the connection ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = describe(exc, ctx.secrets)
            if state.up:
                failures = 0
            delay = min(self.backoff_max, self.backoff * 2 ** failures)
            failures += 1
            state.up, state.reason, state.retry_at = False, reason, time.time() + delay
            log.warning("flow %s: trigger %s lost %s: %s; next try in %.3g s", flow_id, entry.node_id, service,
                        reason, delay)
            await asyncio.sleep(delay)

    async def _emit(self, entry: Listener, items: Items, wait: bool) -> RunOutcome:
        if self.listeners.get((entry.activation.flow_id, entry.node_id)) is not entry:
            raise asyncio.CancelledError()  # switched off: the message stays with the broker
        if not wait:
            await entry.slots.acquire()
        if not self.launcher.admit(entry.activation):
            if not wait:
                entry.slots.release()
            return "skipped"
        source = entry.state.service.lower()
        task = asyncio.ensure_future(self.launcher.run(entry.activation, entry.node_id, list(items), source=source))
        entry.runs.add(task)
        task.add_done_callback(entry.runs.discard)
        if not wait:
            def done(task: asyncio.Task[RunResult]) -> None:
                entry.slots.release()
                _report(task)

            task.add_done_callback(done)
            return "started"
        result = await asyncio.shield(task)  # a cancelled listener leaves the run to finish
        return "succeeded" if result.status in (RunStatus.succeeded, RunStatus.waiting) else "failed"


def _report(task: asyncio.Task[RunResult]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a run started by a message could not run", exc_info=task.exception())


def describe(exc: BaseException, secrets: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """Why a connection failed, in a few plain words, with no secret in it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "the host name is not known"
        if isinstance(current, ConnectionResetError | BrokenPipeError):
            return "the connection was cut"
        if isinstance(current, TimeoutError):
            return "no answer in time"
        current = current.__cause__ or current.__context__
    text = exc.message if isinstance(exc, NodeError) else (str(exc).strip() or type(exc).__name__)
    text = text.splitlines()[0] if text else type(exc).__name__
    text = _SAID.sub("", text)  # "Reconnecting to NATS: cannot connect to NATS: ..." says it twice
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "•••")
    return text[:200]
