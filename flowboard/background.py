"""Background tasks a long-lived object owns (the lease renewer, the listener for other processes, the waiting runs'
timer): how one is stopped."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended, whatever it raised (its own loop logs what matters)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
