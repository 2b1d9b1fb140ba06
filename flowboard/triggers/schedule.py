"""The scheduler: fires the schedule triggers of active flows.

```
 Activations ─add/remove─▶ ScheduleTriggers.entries ─wake─▶ one asyncio task: sleep until the earliest fire
                                                             ├─ claim (flow, node, time) in the database: an INSERT
                                                             │  under a primary key, so one process wins
                                                             └─ the winner starts the run (run mode applies)
```

Exactly once: the claim and the queued run row are one transaction, so across restarts and any number of servers on
one database each scheduled time gets one run, and a claimed fire whose server dies runs at the next start (resume).
After downtime, a trigger's `missed` setting decides: `skip` the scheduled times that passed, or `run_once` (one run
for all of them, claimed under the latest). The task sleeps until the next fire (at most a minute at a time, so wall
clock changes are noticed) and wakes at once when a flow is activated or deactivated; it never polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from .base import Activation, Launcher, TriggerKind, new_run_id

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("flowboard.triggers.schedule")

SCHEDULE = "trigger.schedule"
MAX_SLEEP = 60.0  # seconds; a long sleep is cut so a changed wall clock is noticed


@dataclass(slots=True, eq=False)
class Entry:
    """One schedule trigger of one active flow."""

    activation: Activation
    node_id: str
    rule: Any  # flowboard.nodes.schedule.Rule
    timezone: str
    missed: str  # skip | run_once
    catch_up: bool  # look for scheduled times missed while no server ran (False when a new version replaces one)
    next_fire: int | None = None  # None until started

    @property
    def key(self) -> tuple[str, str]:
        return (self.activation.flow_id, self.node_id)


class ScheduleTriggers(TriggerKind):
    name = "schedule"
    node_types = frozenset({SCHEDULE})

    def __init__(self, launcher: Launcher, store: Store):
        self.launcher = launcher
        self.store = store  # the schedule claims (`claim_schedule_fire`)
        self.entries: dict[tuple[str, str], Entry] = {}
        self._replaced: set[tuple[str, str]] = set()  # removed a moment ago, maybe coming back as a new version
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- TriggerKind ------------------------------------------------------------------------------------------------

    def problems(self, plan: Any) -> list[Problem]:
        return self.expression_problems(plan, "a schedule's")

    def add(self, activation: Activation) -> None:
        from ..nodes.schedule import rule_for

        plan = activation.plan
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is None:
                continue
            timezone = config.timezone or plan.flow.settings.timezone
            key = (activation.flow_id, nid)
            self.entries[key] = Entry(activation, nid, rule_for(config, timezone), timezone, config.missed,
                                      catch_up=key not in self._replaced)
        self._replaced.difference_update(k for k in list(self._replaced) if k[0] == activation.flow_id)
        self._poke()

    def remove(self, flow_id: str) -> None:
        for key in [k for k in self.entries if k[0] == flow_id]:
            del self.entries[key]
            self._replaced.add(key)
        self._poke()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # -- the task ---------------------------------------------------------------------------------------------------

    def _poke(self) -> None:
        """Recompute now: start the task if a loop runs (the CLI activates without one), or wake it."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._task is None or self._task.done():
            if not self.entries:
                return
            self._task = asyncio.ensure_future(self._run())
            self._task.add_done_callback(_task_done)
        self._wake.set()

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            wake.clear()
            self._replaced.clear()
            for entry in [e for e in self.entries.values() if e.next_fire is None]:
                await self._guard(self._start(entry))
            now = time.time()
            due = [e for e in self.entries.values() if e.next_fire is not None and e.next_fire <= now]
            for entry in sorted(due, key=lambda e: e.next_fire or 0):
                if self.entries.get(entry.key) is entry:  # not removed meanwhile
                    await self._guard(self._fire(entry))
            if due:
                continue
            upcoming = [e.next_fire for e in self.entries.values() if e.next_fire is not None]
            delay = min(upcoming) - time.time() if upcoming else None
            if delay is not None and delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(delay, MAX_SLEEP) if delay is not None else None)

    async def _guard(self, step: Any) -> None:
        """One trigger's trouble (the database went away) must not stop the others: log, and retry later."""
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the scheduler failed a step; it goes on with the next fire")
            await asyncio.sleep(1.0)

    async def _start(self, entry: Entry) -> None:
        """Pick up a trigger: read its state, deal with scheduled times missed while no server ran it, plan the next."""
        flow_id, nid = entry.key
        now = time.time()
        last = await asyncio.to_thread(self.store.start_schedule, flow_id, nid, math.floor(now))
        entry.next_fire = entry.rule.next_after(now)
        latest = entry.rule.last_at_or_before(now)
        if latest is not None and latest > last:
            await self._missed(entry, last, latest, now, restart=entry.catch_up)
        log.info("flow %s: schedule %s fires next at %s", flow_id, nid, _iso(entry.next_fire, entry.timezone))

    async def _fire(self, entry: Entry) -> None:
        fire = entry.next_fire
        assert fire is not None
        now = time.time()
        entry.next_fire = entry.rule.next_after(max(now, fire))
        if entry.rule.next_after(fire) <= now:  # more than one period late: the machine slept, or the loop stalled
            latest = entry.rule.last_at_or_before(now)
            await self._missed(entry, fire - 1, latest if latest is not None else fire, now, restart=True)
            return
        await self._claim_and_run(entry, fire, now, missed=0)

    async def _missed(self, entry: Entry, after: int, latest: int, now: float, restart: bool) -> None:
        """The scheduled times in (after, latest] passed without a run."""
        from ..nodes.schedule import count_between

        flow_id, nid = entry.key
        count = count_between(entry.rule, after, latest)
        if restart and entry.missed == "run_once":
            log.info("flow %s: schedule %s missed %d time(s) up to %s; running once for them", flow_id, nid, count,
                     _iso(latest, entry.timezone))
            await self._claim_and_run(entry, latest, now, missed=count)
            return
        if restart:
            log.info("flow %s: schedule %s skips %d missed time(s) up to %s", flow_id, nid, count,
                     _iso(latest, entry.timezone))
        await asyncio.to_thread(self.store.skip_schedule_fires, flow_id, nid, latest)

    async def _claim_and_run(self, entry: Entry, fire: int, now: float, missed: int) -> None:
        from ..nodes.schedule import fire_item

        launcher, activation = self.launcher, entry.activation
        flow_id, nid = entry.key
        gate = activation.gate
        if not gate.admit():
            log.info("flow %s: schedule %s at %s skipped: a run is going and the run mode is skip", flow_id, nid,
                     _iso(fire, entry.timezone))
            return
        item = fire_item(fire, now, entry.timezone, missed)
        record = launcher.records
        run_id = new_run_id()
        try:
            won = await asyncio.to_thread(self.store.claim_schedule_fire, flow_id, nid, fire, owner=launcher.owner,
                                          run_id=run_id if record else None, flow_version=activation.version,
                                          items=[item], missed=missed, idle_only=launcher.skips(activation))
        except BaseException:
            gate.leave(False)
            raise
        if not won:  # another server took it, or the flow was switched off there, or (None) a run of it is going
            gate.leave(False)
            if won is None:
                log.info("flow %s: schedule %s at %s skipped: a run is going (in some process) and the run mode is "
                         "skip", flow_id, nid, _iso(fire, entry.timezone))
            return
        launcher.start(activation, nid, [item], source="schedule", run_id=run_id)


def _task_done(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the scheduler stopped", exc_info=task.exception())


def _iso(t: float, timezone: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(t, ZoneInfo(timezone)).isoformat()
