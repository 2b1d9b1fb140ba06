"""The stream of run events that the editor, the runs page and the API subscribe to.

Publishing costs nothing when nobody listens: the engine checks `bus.active` before building an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class Event:
    # run.started | node.started | node.progress | node.finished | node.failed | node.skipped | node.cancelled |
    # run.finished
    kind: str
    run_id: str
    flow_id: str
    node_id: str | None = None
    status: str | None = None
    count: int | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "run_id": self.run_id, "flow_id": self.flow_id}
        for key in ("node_id", "status", "count", "message"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.data:
            out["data"] = self.data
        return out


@dataclass(slots=True)
class Progress:
    """How far a running node has got, as it last said (`Context.progress`): items so far, a sentence, and the
    items so far (or the latest ones) to look at while it runs. Kept by the engine until the node ends."""

    count: int
    message: str | None
    items: list[dict[str, Any]] | None
    at: float


Listener = Callable[[Event], None]
log = logging.getLogger(__name__)


class EventBus:
    """Synchronous fan-out to listeners; `stream()` adapts it to an async iterator for one consumer."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, event: Event) -> None:
        """Call every listener. A listener that raises stops the run that published (it ends `crashed`): listeners
        are part of the system, and one that fails is a bug to see, not to hide. The others still get the event first,
        so no view misses a step because another listener failed."""
        failure: Exception | None = None
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def publish_safely(self, event: Event) -> None:
        """Call every listener, each whatever the others do (a failure is logged): for the final events of a run that
        is stopping, which every view must get."""
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %s of run %s", event.kind, event.run_id)

    @contextlib.asynccontextmanager
    async def stream(self, run_id: str | None = None) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def put(event: Event) -> None:
            if run_id is None or event.run_id == run_id:
                queue.put_nowait(event)

        unsubscribe = self.subscribe(put)
        try:
            yield queue
        finally:
            unsubscribe()
