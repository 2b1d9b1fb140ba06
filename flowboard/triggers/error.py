"""Error flows: when a run fails, the flow named in its settings (`error_flow`) runs from its Error trigger.

`ErrorFlows` subscribes to the run-finished events of the process (`Flowboard.finished`), so it sees every run this
process concludes: manual, webhook, schedule, form, resumed; a worker process starts the error flows of the runs it
concludes. Test runs in the editor do not start it (their error is shown
right there). A run started by an Error trigger never starts an error flow (no loops, also not through a chain
A → B → A). The item carries ids, names, times, the error message and the failed node's input
items: never credentials, never node settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..engine import Plan, RunResult, RunStatus
from ..store import NotFound
from .base import Launcher

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("flowboard.triggers.error")

ERROR_TRIGGER = "trigger.error"
TEST_SOURCES = frozenset({"editor", "webhook-test"})  # test runs: the editor shows their error, no error flow


def wanted(plan: Plan, trigger: str, result: RunResult) -> bool:
    """Does this concluded run start an error flow?"""
    if result.status is not RunStatus.failed or not plan.flow.settings.error_flow:
        return False
    node = plan.nodes.get(trigger)
    return node is None or node.cls.type != ERROR_TRIGGER


def error_item(plan: Plan, result: RunResult, source: str | None) -> dict[str, Any]:
    error = result.error or {}
    node_id = error.get("node_id")
    step = result.steps.get(node_id) if node_id else None
    planned = plan.nodes.get(node_id) if node_id else None
    return {
        "flow": {"id": plan.flow.id, "name": plan.flow.name},
        "run": {"id": result.run_id, "started": _iso(result.started), "finished": _iso(result.finished),
                "source": source},
        "error": {"node_id": node_id, "node_name": planned.name if planned else None,
                  "message": str(error.get("message") or "the run failed")},
        "items": [item for items in step.inputs.values() for item in items] if step else [],
    }


class ErrorFlows:
    """Starts the error flow of every failed run it hears of (`finished` is the run-finished subscriber)."""

    def __init__(self, launcher: Launcher, store: Store, plans: Callable[[str], Plan]):
        self.launcher = launcher
        self.store = store
        self.plans = plans  # a stored flow's plan (newest version); raises NotFound
        self.tasks: set[asyncio.Task[Any]] = set()

    def finished(self, plan: Plan, trigger: str, result: RunResult) -> None:
        if result.status is RunStatus.failed and wanted(plan, trigger, result):  # (most runs: no call)
            task = asyncio.ensure_future(self.run(plan, result))
            self.tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("an error flow could not run", exc_info=task.exception())

    async def settle(self, timeout: float = 10.0) -> None:
        """At shutdown: let the error flows that are going finish (a while), then stop them (they resume at restart)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        for task in list(self.tasks):
            task.cancel()

    async def run(self, plan: Plan, result: RunResult) -> RunResult | None:
        """Run the failed flow's error flow with the error item; None when there is none to run (logged), or the run
        was a test run in the editor (its error is shown right there)."""
        target = plan.flow.settings.error_flow
        assert target
        try:
            source = (await asyncio.to_thread(self.store.get_run, result.run_id)).source
        except NotFound:  # not recorded (record=False)
            source = None
        if source in TEST_SOURCES:
            return None
        try:
            target_plan = await asyncio.to_thread(self.plans, target)
        except NotFound:
            log.warning("flow %s (%s) failed, and its error flow %r does not exist", plan.flow.id, plan.flow.name,
                        target)
            return None
        except Exception as exc:  # the error flow is not valid
            log.warning("flow %s failed, and its error flow %r cannot run: %s", plan.flow.id, target, exc)
            return None
        trigger = next((nid for nid in target_plan.triggers if target_plan.nodes[nid].cls.type == ERROR_TRIGGER),
                       None)
        if trigger is None:
            log.warning("flow %s failed, and its error flow %r has no Error trigger to start from", plan.flow.id,
                        target)
            return None
        log.info("run %s of flow %s failed; running error flow %s", result.run_id, plan.flow.id, target)
        return await self.launcher.run_flow(target, [error_item(plan, result, source)], trigger=trigger,
                                            source="error")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
