"""A process's lease on the runs it runs: renewed by one background task, one UPDATE for all of them.

An owner holds a run as long as it keeps renewing (`Store.heartbeat`), however quiet the run is (a long HTTP call, a
wait in memory), so `Store.claim_run` in another process (`flowboard resume`, a second server) never takes a live run.
A process that stops renewing for `LEASE` seconds (paused, swapped out, its database unreachable) may find its runs
taken over when it wakes up. It then must not go on with them: each renewal asks which live runs it lost and stops
them (`on_lost`), the recorder refuses to write a lost run (it checks the owner in every write), and before a node
with side effects starts, the engine asks `fresh()` and, when the last renewal is too old, `confirm()`s the run first,
so a process that wakes up from a pause never repeats a side effect that its successor has made.

```
 every LEASE/3:  UPDATE runs SET heartbeat = now WHERE owner = :me AND status IN ('queued', 'running')
                 SELECT id FROM runs WHERE id IN (:live) AND (owner <> :me OR status is final)  ─▶ on_lost(id)
```
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ..background import stop
from .store import LEASE, Store

log = logging.getLogger(__name__)


class Lease:
    """The engine's `Lease` on a store: `Engine(lease=Lease(store, owner, engine.active_runs, engine.abandon))`."""

    def __init__(self, store: Store, owner: str, live: Callable[[], Iterable[str]],
                 on_lost: Callable[[str], object], duration: float | None = None):
        self.store = store
        self.owner = owner
        self.duration = duration or LEASE
        self._live = live
        self._on_lost = on_lost
        self._valid_until = 0.0  # monotonic: until then no other process can have taken our runs
        self._task: asyncio.Task[None] | None = None
        self._renewing: asyncio.Future[set[str]] | None = None

    def hold(self) -> None:
        """Keep renewing from now on (starts the background task once; the engine calls it as each run starts)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep(), name="flowboard-lease")

    def fresh(self) -> bool:
        """True while the last renewal is recent enough that no other process can have claimed our runs (a third of
        the lease is kept as a margin)."""
        return time.monotonic() < self._valid_until

    async def confirm(self, run_id: str) -> bool:
        """Renew now and say whether this process still owns `run_id`."""
        return run_id not in await self.renew()

    async def renew(self) -> set[str]:
        """Renew the lease on every run we own; returns the live runs we lost (and has `on_lost` stop them).
        Concurrent callers share one renewal."""
        if self._renewing is None:
            renewing = self._renewing = asyncio.ensure_future(self._renew())
            renewing.add_done_callback(self._renewed)
        return await asyncio.shield(self._renewing)

    def _renewed(self, future: asyncio.Future[set[str]]) -> None:
        if self._renewing is future:
            self._renewing = None

    async def _renew(self) -> set[str]:
        since = time.monotonic()  # before the UPDATE: our heartbeat in the database is at least this recent
        live = list(self._live())
        lost = await asyncio.to_thread(self._beat, live)
        self._valid_until = since + self.duration * 2 / 3
        for run_id in lost:
            log.warning("run %s was taken over by another process while this one was not renewing its lease; "
                        "stopping it here", run_id)
            self._on_lost(run_id)
        return lost

    def _beat(self, live: list[str]) -> set[str]:
        self.store.heartbeat(self.owner)
        return self.store.lost_runs(self.owner, live) if live else set()

    async def _keep(self) -> None:
        while True:
            try:
                await self.renew()
            except Exception as exc:  # the database is away: try again soon; `fresh()` turns false meanwhile
                log.warning("could not renew the lease on this process's runs: %s", exc)
            await asyncio.sleep(self.duration / 3)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop(task)
