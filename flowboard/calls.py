"""Flows calling flows (the Call flow node): `ctx.flows.call(...)` runs a stored flow as a child run.

- The child is a recorded run of its own (source "call"), on the called flow's newest version, started from its
  *When called by another flow* trigger (else its default trigger). With `wait`, the caller waits and gets the
  child's result; the child's failure fails the calling node with the child's message; cancelling the caller
  cancels the child.
- A called flow that parks (an approval, a durable wait) parks its caller too (`Suspend`, with the child's run id in
  the wait's data); when the child ends, in this process or another, after any restarts, `child_finished` resumes
  the caller with the child's result, and the Call flow node passes it on (or fails with the child's error).
- Loops: `call_problems` refuses, at activation, a flow whose Call flow nodes lead back to itself (through any chain of
  stored flows); at run time a call nested deeper than `MAX_DEPTH` stops with an error (a chain changed since).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel

from .engine import RunResult, RunStatus
from .errors import NodeError, Problem
from .sdk import Items, Suspend
from .store.tables import waits_t
from .triggers import TriggerKind, new_run_id, node_index

if TYPE_CHECKING:
    from .engine import Plan
    from .services import Flowboard

log = logging.getLogger("flowboard.calls")
CALL = "logic.call_flow"
CALLED = "trigger.called"
MAX_DEPTH = 10


class FlowCalls:
    def __init__(self, fb: Flowboard):
        self.fb = fb
        self._depth: dict[str, int] = {}  # run id -> how deep in calls it is (0: not called)
        self.children: set[str] = set()  # runs started by a call in this process (the rest are found in the store)

    def for_run(self, run_id: str, node_id: str = "") -> BoundCalls:
        return BoundCalls(self, run_id, node_id)

    async def call(self, caller: str, flow: str, items: Items, wait: bool) -> Items:
        fb = self.fb
        depth = self._depth.get(caller, 0) + 1
        if depth > MAX_DEPTH:
            raise NodeError(f"flows call each other more than {MAX_DEPTH} levels deep; a flow seems to call itself "
                            "round a circle of flows")
        try:
            flow_id = await asyncio.to_thread(fb.find_flow, flow)
            stored = await asyncio.to_thread(fb.store.get_flow, flow_id)
            plan = fb.plan(flow_id, stored.version)
        except LookupError as exc:
            raise NodeError(f"the flow to call cannot be found: {exc}") from None
        trigger = next((nid for nid in plan.triggers if plan.nodes[nid].cls.type == CALLED), None) \
            or plan.default_trigger()
        run_id = new_run_id()
        if fb.recorder is not None:
            await asyncio.to_thread(fb.store.create_run, run_id, flow_id, stored.version, trigger, items, "call",
                                    status=RunStatus.running.value, owner=fb.owner)
        self._depth[run_id] = depth
        self.children.add(run_id)
        task = asyncio.ensure_future(fb.engine.run(plan, items, run_id=run_id, trigger=trigger))
        task.add_done_callback(lambda _: self._depth.pop(run_id, None))
        if not wait:
            fb.launcher.tasks.add(task)
            task.add_done_callback(fb.launcher.tasks.discard)
            return [{"run_id": run_id, "flow": stored.flow.name, "started": True}]
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            fb.engine.cancel(run_id)  # the caller stops: so does the flow it called
            await asyncio.gather(task, return_exceptions=True)
            raise
        if result.status is RunStatus.waiting:  # it parked: so does the caller, until it ends
            raise Suspend(data={"child_run": run_id, "flow": stored.flow.name})
        return outcome(stored.flow.name, result.status.value, result.output, result.error, run_id)

    def is_child(self, plan: Any, trigger: str, run_id: str) -> bool:
        """Whether a concluded run may have a caller waiting for it (cheap: no store read)."""
        return run_id in self.children or plan.nodes[trigger].cls.type == CALLED

    async def child_finished(self, result: RunResult) -> None:
        """A called run ended: resume the caller parked on it, with its result (retried briefly, in case the end came
        before the caller's wait was written)."""
        self.children.discard(result.run_id)
        needle = f'%"child_run":"{result.run_id}"%'
        query = sa.select(waits_t.c.run_id, waits_t.c.node_id, waits_t.c.data).where(
            waits_t.c.resumed.is_(None), sa.type_coerce(waits_t.c.data, sa.Text).like(needle))
        for attempt in range(20):
            def find() -> list[Any]:
                with self.fb.store.engine.connect() as conn:
                    return list(conn.execute(query))

            rows = await asyncio.to_thread(find)
            if rows:
                break
            if result.run_id not in self._depth and attempt > 2:
                return  # started by hand or by another process's call that is not waiting: nobody to tell
            await asyncio.sleep(0.25)
        for parent, node, data in rows:
            payload = {"status": result.status.value, "output": list(result.output), "error": result.error,
                       "run_id": result.run_id, "flow": (data or {}).get("flow")}
            try:
                await self.fb.resume_waiting(parent, node, payload, who=f"the called flow's run {result.run_id}")
            except Exception as exc:  # resumed meanwhile (another process), or the caller is gone
                log.info("caller %s of run %s was not resumed: %s", parent, result.run_id, exc)


def outcome(flow: str | None, status: str, output: Items, error: dict[str, Any] | None, run_id: str) -> Items:
    """The calling node's output for a called run that ended: its items, or a NodeError with its message."""
    if status != RunStatus.succeeded.value:
        error = error or {}
        where = f" at node {error['node_id']!r}" if error.get("node_id") else ""
        raise NodeError(f"the called flow {flow!r} {status}{where}: {error.get('message', 'no message')}",
                        data={"run_id": run_id})
    return list(output)


class BoundCalls:
    """`ctx.flows` (the SDK's Flows) for one run."""

    __slots__ = ("calls", "node_id", "run_id")

    def __init__(self, calls: FlowCalls, run_id: str, node_id: str = ""):
        self.calls = calls
        self.run_id = run_id
        self.node_id = node_id

    async def call(self, flow: str, items: Items, *, wait: bool = True) -> Items:
        return await self.calls.call(self.run_id, flow, items, wait)


class CallChecks(TriggerKind):
    """Not a trigger: the activation check that a flow's calls never lead back to it."""

    name = "calls"

    def __init__(self, fb: Flowboard):
        self.fb = fb

    def problems(self, plan: Plan) -> list[Problem]:
        index = node_index(plan)
        out = []
        for nid in plan.order:
            fields = flow_fields(plan.nodes[nid].cls)
            config: Any = plan.nodes[nid].static_config
            if not fields or config is None:
                continue
            for field in fields:
                target = value_at(config, field)
                if not isinstance(target, str) or not target:
                    continue
                chain = self._chain_back(plan.flow.id, target)
                if chain is not None:
                    names = " → ".join([plan.flow.name, *chain])
                    out.append(Problem(f"nodes[{index[nid]}].config.{field}", f"the calls go round in a circle "
                                       f"({names}); a flow must not call itself, directly or through others", nid))
        return out

    def _chain_back(self, start: str, first: str) -> list[str] | None:
        """The flow names from `first` back to `start` along stored Call flow nodes, or None if there is no way."""
        seen: set[str] = set()
        stack: list[tuple[str, list[str]]] = [(first, [])]
        while stack:
            key, path = stack.pop()
            try:
                flow_id = self.fb.find_flow(key)
                flow = self.fb.store.get_flow(flow_id).flow
            except LookupError:
                continue
            path = [*path, flow.name]
            if flow_id == start:
                return path
            if flow_id in seen:
                continue
            seen.add(flow_id)
            for node in flow.nodes:
                cls = self.fb.registry.get(node.type, node.version)
                for field in flow_fields(cls) if cls is not None else ():
                    target = value_at(node.config, field)
                    if isinstance(target, str) and target:
                        stack.append((target, path))
        return None


def flow_fields(cls: Any) -> tuple[str, ...]:
    """The config fields of a node type that name a flow to call (the flow picker: Call flow, Loop over items, the
    HTTP request's flow for each page), as dotted paths into the config (`pagination.each_page`)."""
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        return ()
    return tuple(dict.fromkeys(_flow_paths(config, "", 0)))


def _flow_paths(model: type[BaseModel], prefix: str, depth: int) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("widget") == "flow":
            yield prefix + name
        elif depth < 3:
            for sub in _models_in(field.annotation):
                yield from _flow_paths(sub, f"{prefix}{name}.", depth + 1)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models a field holds: itself, or the members of a union (a discriminated one: pagination)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def value_at(config: Any, path: str) -> Any:
    """The value at a dotted path of a config (a model or the flow file's dict); None where there is none."""
    for part in path.split("."):
        if isinstance(config, BaseModel):
            config = getattr(config, part, None)
        elif isinstance(config, dict):
            config = config.get(part)
        else:
            return None
    return config
