"""The table-change trigger's server side: reads the data tables' change log in order and starts one run per change
that an active flow's Table change trigger wants.

```
 a row changes ─(same transaction)─▶ table_changes (the outbox)
 TableService.changed() ─▶ poke ─▶ _drain(trigger): changes after its cursor ─▶ match (events, columns, conditions)
     ─▶ claim_changes: move the cursor AND create the queued runs, one transaction ─▶ Launcher.start
```

Exactly once: the cursor moves only together with the runs it covers (compare-and-set), so two servers never both
start a change's run, and a crash after the claim leaves queued runs that the next start resumes. Wake-ups come from
this process's changes at once, and from other processes' changes within `POLL` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..datatables import TableSchema, ValueInvalid, row_matches
from ..errors import Problem
from ..store.datatables import TableNotFound
from ..tables import MAX_DEPTH
from .base import Activation, Launcher, TriggerKind, new_run_id, node_index

if TYPE_CHECKING:
    from ..engine import Plan
    from ..tables import TableService

log = logging.getLogger("flowboard.triggers.table")
TABLE_TRIGGER = "trigger.table"
POLL = 2.0  # seconds: how soon changes made by another process start their runs
BATCH = 500  # changes read and claimed at once


@dataclass(slots=True, eq=False)
class Entry:
    activation: Activation
    node_id: str
    config: Any  # TableTriggerConfig
    table_id: str = ""
    schema: TableSchema | None = None
    cursor: int | None = None


class TableTriggers(TriggerKind):
    name = "table"
    node_types = frozenset({TABLE_TRIGGER})

    def __init__(self, launcher: Launcher, tables: TableService):
        self.launcher = launcher
        self.tables = tables
        self.entries: dict[tuple[str, str], Entry] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        tables.listeners.append(self.poke)

    def problems(self, plan: Plan) -> list[Problem]:
        index = node_index(plan)
        out = self.expression_problems(plan, "a table change trigger's")
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is None:
                continue
            try:
                info = self.tables.tables.get(config.table)
                row_matches({}, config.conditions, info.schema)
                for column in config.columns:
                    if info.schema.column(column) is None:
                        raise ValueInvalid(f"there is no column {column!r} in {info.name}")
            except TableNotFound as exc:
                out.append(Problem(f"nodes[{index[nid]}].config.table", str(exc), nid))
            except ValueInvalid as exc:
                out.append(Problem(f"nodes[{index[nid]}].config", str(exc), nid))
        return out

    def add(self, activation: Activation) -> None:
        for nid in self.trigger_nodes(activation.plan):
            config = activation.plan.nodes[nid].static_config
            if config is None:
                continue
            entry = self.entries[(activation.flow_id, nid)] = Entry(activation, nid, config)
            try:  # where it starts is fixed now: a change made right after activating is never missed
                self._locate(entry)
            except Exception:
                log.exception("flow %s: the table change trigger %s cannot start yet", activation.flow_id, nid)
        if self.entries:
            self._ensure_task()
            self.poke()

    def remove(self, flow_id: str) -> None:
        for key in [k for k in self.entries if k[0] == flow_id]:
            del self.entries[key]

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # activated outside the server's loop (CLI): the server picks it up when it starts
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._loop())

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            for entry in list(self.entries.values()):
                try:
                    await self._drain(entry)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("flow %s: the table change trigger %s failed; it tries again shortly",
                                  entry.activation.flow_id, entry.node_id)
                    entry.cursor = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)
            self._wake.clear()

    async def _drain(self, entry: Entry) -> None:
        launcher, activation = self.launcher, entry.activation
        tables = self.tables.tables
        flow_id = activation.flow_id
        if entry.cursor is None:
            await asyncio.to_thread(self._locate, entry)
        while self.entries.get((flow_id, entry.node_id)) is entry and entry.cursor is not None:
            cursor = entry.cursor
            changes = await asyncio.to_thread(tables.changes, cursor, BATCH, entry.table_id)
            if not changes:
                return
            gate = activation.gate
            runs: list[tuple[str, dict[str, Any]]] = []
            for change in changes:
                if not self._wanted(entry, change):
                    continue
                item = _item(entry.config.table, change)
                if change["depth"] >= MAX_DEPTH:
                    log.warning("flow %s: change %s of %s not run: it was made by a flow that table changes started "
                                "%d times in a row (a flow that changes the table it watches?)", flow_id,
                                change["id"], entry.config.table, change["depth"])
                    continue
                if not gate.admit():
                    log.info("flow %s: change %s skipped: a run is going and the run mode is skip", flow_id,
                             change["id"])
                    continue
                runs.append((new_run_id(), item))
            record = launcher.records
            try:
                won = await asyncio.to_thread(tables.claim_changes, flow_id, entry.node_id, cursor,
                                              changes[-1]["id"], runs, flow_version=activation.version,
                                              owner=launcher.owner, record=record,
                                              idle_only=launcher.skips(activation))
            except BaseException:
                for _ in runs:
                    gate.leave(False)
                raise
            if won is None:  # a run of the flow is going (in some process) and its run mode is skip
                for _ in runs:
                    gate.leave(False)
                log.info("flow %s: %d change(s) skipped: a run is going and the run mode is skip", flow_id, len(runs))
                runs = []
            elif not won:  # another server moved on, or the flow was switched off: start over from the database
                for _ in runs:
                    gate.leave(False)
                entry.cursor = None
                return
            entry.cursor = changes[-1]["id"]
            for run_id, item in runs:
                task = launcher.start(activation, entry.node_id, [item], source="table", run_id=run_id)
                if task is not None:  # runs here: its depth is known without a store read (else read from its item)
                    self.tables.set_depth(run_id, item["depth"])
                    task.add_done_callback(functools.partial(self._forget, run_id))

    def _forget(self, run_id: str, _: object) -> None:
        self.tables.forget(run_id)

    def _locate(self, entry: Entry) -> None:
        tables = self.tables.tables
        info = tables.get(entry.config.table)
        entry.table_id, entry.schema = info.id, info.schema
        entry.cursor = tables.trigger_cursor(entry.activation.flow_id, entry.node_id)

    def _wanted(self, entry: Entry, change: dict[str, Any]) -> bool:
        config = entry.config
        if change["op"] not in config.events:
            return False
        if change["op"] == "update" and config.columns:
            old, new = change["old"] or {}, change["new"] or {}
            if not any(old.get(c) != new.get(c) for c in config.columns):
                return False
        if config.conditions and entry.schema is not None:
            row = change["new"] if change["new"] is not None else change["old"]
            try:
                return row_matches(row or {}, list(config.conditions), entry.schema)
            except ValueInvalid:
                return False
        return True


def _item(table: str, change: dict[str, Any]) -> dict[str, Any]:
    old, new = change["old"], change["new"]
    changed = sorted(k for k in (new or {}) if k != "updated_at" and (old or {}).get(k) != new.get(k)) \
        if old is not None and new is not None else []
    return {"event": change["op"], "table": table, "row": new if new is not None else old, "old": old, "new": new,
            "changed": changed, "change_id": change["id"], "via": change["via"], "depth": change["depth"] + 1,
            "changed_at": change["created"]}
