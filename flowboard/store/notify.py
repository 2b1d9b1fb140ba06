"""Messages between the processes that share one PostgreSQL database (servers and workers): LISTEN/NOTIFY.

```
 a process: Notices.send("activation", flow_id=...)  ─▶ SELECT pg_notify('flowboard_<schema>', '{"kind": ...}')
 every process: one connection LISTENs ─▶ handler[kind](message)   (its own messages are skipped)
```

One channel per database schema (tests put many Flowboards in one database). A message is a hint to read the store
again (activation changed, cancel this run), never the data itself, so a message lost while a process reconnects
costs at most that hint: the store stays the truth. On SQLite (one process) nothing is sent or heard.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..background import stop

log = logging.getLogger("flowboard.notify")
Handler = Callable[[dict[str, Any]], Any]


class Notices:
    def __init__(self, engine: sa.Engine, sender: str):
        self.engine = engine
        self.sender = sender
        self.enabled = engine.dialect.name == "postgresql"
        self.handlers: dict[str, Handler] = {}
        self._channel: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @property
    def channel(self) -> str:
        if self._channel is None:
            with self.engine.connect() as conn:
                schema = conn.execute(sa.text("SELECT current_schema()")).scalar() or "public"
            self._channel = "flowboard_" + "".join(c if c.isalnum() else "_" for c in schema.lower())[:40]
        return self._channel

    def send(self, kind: str, **data: Any) -> None:
        """Tell the other processes (synchronous: from a thread, or from a command without an event loop)."""
        if not self.enabled:
            return
        payload = json.dumps({"kind": kind, "from": self.sender, **data})
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                             {"channel": self.channel, "payload": payload})
        except Exception as exc:  # the others see it in the store later (a restart, a sweep)
            log.warning("could not tell the other processes about %s: %s", kind, exc)

    def send_batches(self, kind: str, key: str, entries: list[Any], limit: int = 7000) -> int:
        """Tell the other processes about many things in one transaction: `entries` go under `key`, as many per
        message as fit in `limit` bytes (PostgreSQL's payload limit is 8000), in order. Returns the messages sent."""
        if not self.enabled or not entries:
            return 0
        head = json.dumps({"kind": kind, "from": self.sender, key: []})[:-2]  # '{"kind": ..., "<key>": ['
        payloads: list[str] = []
        chunk: list[str] = []
        size = len(head) + 2
        for entry in entries:
            text = json.dumps(entry, separators=(",", ":"))
            if chunk and size + len(text) + 1 > limit:
                payloads.append(head + ",".join(chunk) + "]}")
                chunk, size = [], len(head) + 2
            chunk.append(text)
            size += len(text) + 1
        if chunk:
            payloads.append(head + ",".join(chunk) + "]}")
        try:
            with self.engine.begin() as conn:
                for payload in payloads:
                    conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                                 {"channel": self.channel, "payload": payload})
        except Exception as exc:  # the others see it in the store later (a restart, a sweep)
            log.warning("could not tell the other processes about %s: %s", kind, exc)
            return 0
        return len(payloads)

    def start(self) -> None:
        """Listen from now on (in the running event loop)."""
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="flowboard-notices")

    async def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        channel = await asyncio.to_thread(lambda: self.channel)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f'LISTEN "{channel}"')
                    self.listening.set()
                    async for note in conn.notifies():
                        self._dispatch(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("lost the connection that hears the other processes (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    def _dispatch(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("from") == self.sender:
            return
        handler = self.handlers.get(str(message.get("kind")))
        if handler is None:
            return
        try:
            outcome = handler(message)
            if asyncio.iscoroutine(outcome):
                task = asyncio.ensure_future(outcome)
                task.add_done_callback(_logged)
        except Exception:
            log.exception("could not act on a message of another process: %s", payload[:200])

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop(task)


def _logged(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not act on a message of another process", exc_info=task.exception())
