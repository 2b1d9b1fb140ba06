"""Durable waiting, the app's side: signed resume links, and the sleeper that resumes parked runs at their deadline.

A node parks its run by returning `sdk.Suspend`; the engine records the run as `waiting` with a row in `waits`, and
nothing of it stays in memory. It resumes through `Flowboard.resume_waiting` (a resume link, an approval, the
sleeper), which takes the run in one transaction and runs it again with its recorded steps, on its flow version.

The sleeper is one task per process. It reads the earliest deadline of a parked run (one indexed query), sleeps until
then, and is woken early when this process parks a run. It never polls: without deadlines it sleeps `MAX_SLEEP`
(a safety net for waits parked by another process that died before their time came).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING

from .background import stop
from .store import WaitGone

if TYPE_CHECKING:
    from .services import Flowboard

log = logging.getLogger(__name__)
MAX_SLEEP = 300.0  # seconds the sleeper sleeps at most without a deadline in view
BATCH = 200  # due waits taken per database read
LINK_PATH = "/webhook-waiting"


def resume_token(key: bytes, run_id: str) -> str:
    """The signature in a run's resume link: HMAC-SHA256 of the run id, 40 hex digits."""
    return hmac.new(key, run_id.encode(), hashlib.sha256).hexdigest()[:40]


def token_valid(key: bytes, run_id: str, token: str) -> bool:
    return hmac.compare_digest(resume_token(key, run_id), token)


class Sleeper:
    """Resumes parked runs when their deadline comes."""

    def __init__(self, fb: Flowboard):
        self.fb = fb
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="flowboard-sleeper")

    def wake(self) -> None:
        """A run was parked (or resumed) here: look again at the earliest deadline."""
        self._wake.set()

    async def _loop(self) -> None:
        store = self.fb.store
        while True:
            self._wake.clear()
            try:
                due = await asyncio.to_thread(store.due_waits, time.time(), BATCH)
                for run_id, node_id in due:
                    with contextlib.suppress(WaitGone):  # taken by another process, or resumed meanwhile
                        await self.fb.resume_waiting(run_id, node_id, None, who="timer")
                if len(due) == BATCH:
                    continue
                wake_at = await asyncio.to_thread(store.next_wake)
            except Exception as exc:  # the database is away: try again a little later
                log.warning("could not look for waiting runs to resume: %s", exc)
                wake_at = time.time() + 5
            delay = MAX_SLEEP if wake_at is None else min(max(wake_at - time.time(), 0.0), MAX_SLEEP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop(task)
