"""Data tables as the edges use them: the grid, the REST API and nodes (`ctx.tables`) all go through `TableService`,
which runs the store's work off the event loop, records who made each change, and wakes the table-change triggers.

Loops: a change made by a run that a table change started carries that run's depth; the table-change trigger refuses
to start a run deeper than `MAX_DEPTH` (a flow that updates the table it listens to would otherwise run forever).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from .datatables import Change, Condition, Sort
from .errors import NodeError
from .sdk import Item, Items
from .store.datatables import ChangeSource, DataTables, TableError

MAX_DEPTH = 5  # table-change runs started by table-change runs started by ... at most this deep


class TableService:
    def __init__(self, tables: DataTables, run_source: Callable[[str], tuple[str | None, Items]] | None = None):
        self.tables = tables
        self._run_source = run_source  # run id -> (source, input items), to learn a resumed run's depth
        self._depth: dict[str, int] = {}
        self.listeners: list[Callable[[], None]] = []  # called after every committed change (in the loop)

    # -- for the grid and the API: the store's methods, off the loop -----------------------------------------------

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = await asyncio.to_thread(getattr(self.tables, method), *args, **kwargs)
        if method in _WRITES:
            self.changed()
        return result

    def changed(self) -> None:
        for listener in list(self.listeners):
            listener()

    # -- for nodes --------------------------------------------------------------------------------------------------

    def set_depth(self, run_id: str, depth: int) -> None:
        """A run started by a table change `depth - 1` deep (the trigger calls this before the run starts)."""
        self._depth[run_id] = depth

    def forget(self, run_id: str) -> None:
        self._depth.pop(run_id, None)

    def depth(self, run_id: str) -> int:
        depth = self._depth.get(run_id)
        if depth is None:
            depth = 0
            if self._run_source is not None:
                try:
                    source, items = self._run_source(run_id)
                except LookupError:
                    source, items = None, []
                if source == "table" and items and isinstance(items[0].get("depth"), int):
                    depth = items[0]["depth"]
            self._depth[run_id] = depth
        return depth

    def for_run(self, run_id: str) -> NodeTables:
        return NodeTables(self, run_id)


_WRITES = frozenset({"insert", "update", "update_row", "upsert", "delete", "delete_rows", "conditional_update",
                     "import_csv", "drop", "change_column", "drop_column", "add_column", "rename_column"})


class NodeTables:
    """`ctx.tables` (the SDK's `Tables`): the service bound to one run, errors as NodeError."""

    __slots__ = ("run_id", "service")

    def __init__(self, service: TableService, run_id: str):
        self.service = service
        self.run_id = run_id

    def _source(self) -> ChangeSource:
        return ChangeSource(via="node", run_id=self.run_id, depth=self.service.depth(self.run_id))

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self.service.call(method, *args, **kwargs)
        except (TableError, ValueError) as exc:
            raise NodeError(str(exc)) from None

    async def schema(self, table: str) -> dict[str, Any]:
        info = await self._call("get", table)
        return dict(info.schema.model_dump(mode="json", exclude={"columns": {"__all__": {"storage"}}}))

    async def find(self, table: str, conditions: Sequence[Condition] = (), *, sort: Sequence[Sort] = (),
                   limit: int | None = 100, match: str = "all") -> Items:
        return list(await self._call("find", table, conditions, sort, limit=limit, match=match))

    async def insert(self, table: str, rows: Sequence[Item]) -> Items:
        return list(await self._call("insert", table, rows, self._source()))

    async def update(self, table: str, conditions: Sequence[Condition], values: Item, *, match: str = "all"
                     ) -> Items:
        return list(await self._call("update", table, conditions, values, self._source(), match=match))

    async def upsert(self, table: str, rows: Sequence[Item]) -> Items:
        return list(await self._call("upsert", table, rows, self._source()))

    async def delete(self, table: str, conditions: Sequence[Condition], *, match: str = "all") -> Items:
        return list(await self._call("delete", table, conditions, self._source(), match=match))

    async def change(self, table: str, conditions: Sequence[Condition], changes: Sequence[Change], *,
                     match: str = "all") -> Items:
        return list(await self._call("conditional_update", table, conditions, changes, self._source(), match=match))
