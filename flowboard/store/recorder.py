"""The engine's Recorder on SQL: the hot path, so no ORM.

Statements are compiled once from the table metadata (SQLAlchemy Core, per dialect, positional parameters) and run on
one dedicated DBAPI connection with `executemany`; items are serialized with orjson as soon as a step is handed over.

When things are written:
- `run_started` and pure steps (`durable=False`) are buffered in memory, per run;
- a durable call (a node with side effects finished) writes the run row and every buffered step of that run, and
  commits before it returns, so a crash never makes a side effect run twice;
- `run_finished` writes the final run row plus what is still buffered. A run that ends without anything written
  before (no side effects: most webhook runs) is written as ONE row: its steps packed in the run row's `steps`
  column (`_packed`, one JSON array) instead of a `steps` row each, which is most of what SQLite spent per run
  (chain10: 12 step upserts, each a row and a primary-key entry). `Store.get_steps` reads both; a retry
  (`Store.reopen_run`) and the pruning of succeeded runs' items move them into rows first.
Each write is ONE transaction. Every write checks, in that transaction, that this process still owns the run and that
the run is still going (`... WHERE owner = :me AND status IN ('queued', 'running', 'waiting')`): a process that lost
its run (its lease ran out and another process took the run over, or the run was cancelled meanwhile) writes nothing
about it, and the engine is told with `RunLost`. A run that only has pure steps therefore costs one transaction in
all; it shows up in the database when it ends (or at its first side effect). Callers that need a run visible before
that (a webhook run that was accepted, a queued run) create it first with `Store.create_run`, which this recorder then
updates.

SQLite writes run in the event loop, once per loop turn: every write that arrives during one turn of the loop is
committed in one transaction at the start of the next (group commit), and each caller still waits for its own. A
commit writes every page it changed to the WAL, so concurrent runs that share pages (the runs and steps tables and
their indexes) write them once per group instead of once per run. Measured with 32 concurrent webhook calls of a
10-node flow: 64 KiB written and 28 write calls per run with a transaction per write and random run ids, 13 KiB and 5
with group commit and time-ordered run ids (UUIDv7, `triggers.new_run_id`). PostgreSQL writes go to one writer
thread, so the loop is never blocked on the network; writes that arrive while it is busy are committed together in
the same way, as ONE statement (`compile_batch_statement`: the rows as one array per column, upserted from `unnest`),
so a group costs one round trip whatever its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from ..engine.runner import RunInfo
from ..engine.states import GOING, Later, RunLost, RunResult, RunStatus, Step, StepStatus
from .store import SAME_AS_RUN_INPUT, Store, same_as_step
from .tables import runs_t, steps_t, waits_t

RUN_COLUMNS = ("id", "flow_id", "flow_version", "status", "trigger", "source", "input", "output", "error", "created",
               "started", "finished", "owner", "heartbeat", "steps")
STEP_COLUMNS = ("run_id", "node_id", "status", "attempt", "started", "finished", "inputs", "outputs", "error",
                "logs", "lineage")
_KEEP_IF_NULL = ("flow_version", "trigger", "source", "input")  # known when the run was queued, maybe not later

Row = Sequence[Any]
# (run id, run row to upsert or None, step rows to upsert, waits: (run id, node id, resume_at, data, created) to add,
# or (now, run id, node id) to close, durable: a node with side effects finished, so the commit must be on disk)
Job = tuple[str, Row | None, list[Row], list[Row], bool]
_dumps = orjson.dumps
log = logging.getLogger(__name__)
CHECKPOINT_APART = True  # SQLite file: WAL checkpoints on a thread of their own (_Checkpointer); False for A/B runs
_CHECKPOINT_EVERY = 0.01  # seconds from one checkpoint to the next at least (_Checkpointer): small ones, since a
# checkpoint's fsync holds up the commits' writes to the same disk for as long as it takes (docs/engine.md)
_BACKSTOP_PAGES = 20_000  # SQLite's own checkpoint on the recorder's connection, should the thread fall behind


def _dialect(dialect_name: str) -> tuple[Any, sa.Dialect]:
    """The dialect's INSERT (with its ON CONFLICT) and the dialect to compile for, with positional parameters. Each
    imported only when used: a server on SQLite never loads SQLAlchemy's PostgreSQL dialect (start-up time)."""
    if dialect_name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert, sqlite.dialect(paramstyle="qmark")
    from sqlalchemy.dialects import postgresql

    return postgresql.insert, postgresql.psycopg.dialect(paramstyle="format")


def compile_statements(dialect_name: str) -> tuple[str, str, str]:
    """The run and step upserts and the ownership check as SQL text for `dialect_name`, with positional parameters
    (in column order for the upserts; heartbeat, id, owner for the check). The run upsert changes an existing run only
    if it is the writer's and still going: its row count is 0 otherwise."""
    if dialect_name not in ("sqlite", "postgresql"):
        raise ValueError(f"the recorder supports SQLite and PostgreSQL, not {dialect_name}")
    insert, dialect = _dialect(dialect_name)
    going = runs_t.c.status.in_([sa.literal_column(f"'{status}'") for status in GOING])
    unowned = sa.and_(runs_t.c.owner.is_(None), runs_t.c.status == sa.literal_column("'queued'"))  # nobody's yet
    statements = []
    for table, columns, keys, keep in ((runs_t, RUN_COLUMNS, ["id"], _KEEP_IF_NULL),
                                       (steps_t, STEP_COLUMNS, ["run_id", "node_id"], ())):
        stmt = insert(table).values({c: sa.bindparam(c) for c in columns})
        updates = {c: sa.func.coalesce(stmt.excluded[c], table.c[c]) if c in keep else stmt.excluded[c]
                   for c in columns if c not in keys and c not in ("flow_id", "created")}
        guard = sa.and_(sa.or_(runs_t.c.owner == stmt.excluded.owner, unowned), going) if table is runs_t else None
        compiled = stmt.on_conflict_do_update(index_elements=keys, set_=updates, where=guard).compile(dialect=dialect)
        if tuple(compiled.positiontup or ()) != columns:
            raise RuntimeError(f"unexpected parameter order for {table.name}: {compiled.positiontup}")
        statements.append(str(compiled))
    check = runs_t.update().values(heartbeat=sa.bindparam("heartbeat")).where(
        runs_t.c.id == sa.bindparam("id"), sa.or_(runs_t.c.owner == sa.bindparam("owner"), unowned), going,
    ).compile(dialect=dialect)
    if tuple(check.positiontup or ()) != ("heartbeat", "id", "owner"):
        raise RuntimeError(f"unexpected parameter order for the ownership check: {check.positiontup}")
    return statements[0], statements[1], str(check)


_PG_RUN_TYPES = ("text", "text", "int", "text", "text", "text", "text", "text", "text", "float8", "float8", "float8",
                 "text", "float8", "text")
_PG_STEP_TYPES = ("text", "text", "text", "int", "float8", "float8", "text", "text", "text", "text", "text")
_RUN_FLOATS = tuple(i for i, t in enumerate(_PG_RUN_TYPES) if t == "float8")
_STEP_FLOATS = tuple(i for i, t in enumerate(_PG_STEP_TYPES) if t == "float8")


_RELAXED = ", (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"  # this transaction only


def compile_batch_statement(with_steps: bool = True, durable: bool = True, with_checks: bool = True) -> str:
    """PostgreSQL: a whole group of writes as ONE statement (one round trip, one transaction in autocommit), the rows
    passed as one array per column (`unnest`). Parameters: the run columns (RUN_COLUMNS order), then, `with_checks`,
    heartbeat, the ids of the runs only checked (no run row: `check`) and owner, then the step columns (STEP_COLUMNS
    order) if `with_steps`.
    Returns the ids of the runs that were written or checked: the others are lost to this writer, and none of their
    steps is written. The upserts are the ones of `compile_statements`, fed from the arrays instead of VALUES. (Without
    steps the statement does not name the steps table, so a run's end can be written when its steps cannot.)

    Not `durable` (no node with side effects finished in this group): the commit does not wait for the disk
    (`synchronous_commit` off for this transaction alone). It is then as safe as SQLite's WAL with
    `synchronous=NORMAL`: it survives Flowboard being killed, and a crash of the database server or the machine may
    lose the last fraction of a second of such writes, never a step with a side effect (those are always durable:
    a run that loses its end is resumed from its last durable step, and only steps without side effects run again).
    A write that waits for the disk also makes every earlier one durable (the WAL is written in order).

    The ownership check of runs without a run row is left out when there is none (most groups: a run's end carries
    its row): psycopg prepares a statement it runs often, and a plan made while the runs table was small scanned the
    whole table for it in every group, more each time the table grew (451 rows read per recorded run after 30,000
    runs). Groups with checks are not prepared (`_batch`), so each gets a plan for its own ids (the primary key)."""
    run_sql, step_sql, check_sql = compile_statements("postgresql")

    def from_arrays(sql: str, source: str) -> str:
        head, rest = sql.split(" VALUES (", 1)
        _values, tail = rest.split(") ON CONFLICT ", 1)
        return f"{head} SELECT * FROM {source} ON CONFLICT {tail}"

    def unnest(columns: tuple[str, ...], types: tuple[str, ...]) -> str:
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        return f"unnest({arrays}) AS u({', '.join(columns)})"

    by_id = "runs.id = %s::VARCHAR"
    if by_id not in check_sql:
        raise RuntimeError(f"unexpected ownership check: {check_sql}")
    check = check_sql.replace(by_id, "runs.id = ANY(%s::text[])")
    steps = from_arrays(step_sql, f"(SELECT * FROM {unnest(STEP_COLUMNS, _PG_STEP_TYPES)} "
                                  f"WHERE u.run_id IN (SELECT id FROM kept)) AS s")
    sql = (f"WITH written AS ({from_arrays(run_sql, unnest(RUN_COLUMNS, _PG_RUN_TYPES))} RETURNING runs.id), "
           f"{f'checked AS ({check} RETURNING runs.id), ' if with_checks else ''}"
           f"kept AS (SELECT id FROM written{' UNION ALL SELECT id FROM checked' if with_checks else ''})"
           f"{f', stepped AS ({steps})' if with_steps else ''} SELECT id FROM kept"
           f"{'' if durable else _RELAXED}")
    # Parameters in binary (%b): psycopg writes a text array in text form with a regular-expression escape per item
    # (every quote of the JSON): 1.65 ms of CPU for a group of 11 runs, against 66 µs in binary (measured).
    return sql.replace("%s", "%b")


def _columns(rows: list[Row], width: int, floats: tuple[int, ...]) -> list[list[Any]]:
    """Rows as one list per column, for `unnest`; times as floats (an array's items must share one type)."""
    if not rows:
        return [[] for _ in range(width)]
    columns = [list(column) for column in zip(*rows, strict=True)]
    for i in floats:
        columns[i] = [None if v is None else float(v) for v in columns[i]]
    return columns


def compile_wait_statements(dialect_name: str) -> tuple[str, str]:
    """Add a wait (kept as it is when it exists: a wait resumed after a restart keeps its first deadline) and close
    one (its node's step is recorded; the row stays as the record of who resumed it, until the run is deleted), as
    SQL text with positional parameters."""
    insert, dialect = _dialect(dialect_name)
    columns = ("run_id", "node_id", "resume_at", "data", "created")
    add = insert(waits_t).values({c: sa.bindparam(c) for c in columns}).on_conflict_do_nothing().compile(
        dialect=dialect)
    drop = waits_t.update().values(resumed=sa.func.coalesce(waits_t.c.resumed, sa.bindparam("now"))).where(
        waits_t.c.run_id == sa.bindparam("run_id"), waits_t.c.node_id == sa.bindparam("node_id")).compile(
        dialect=dialect)
    if tuple(add.positiontup or ()) != columns or tuple(drop.positiontup or ()) != ("now", "run_id", "node_id"):
        raise RuntimeError("unexpected parameter order for the waits")
    return str(add), str(drop)


class _Pending:
    __slots__ = ("input", "run", "run_id", "steps", "waits", "written")

    def __init__(self, run_id: str, run: list[Any] | None):
        self.run_id = run_id
        self.run = run  # the run row's values in RUN_COLUMNS order
        self.input: list[Any] | None = None  # the run's input items, as the run row holds them
        self.steps: list[Step] = []  # made rows (or packed) when written
        self.waits: list[Row] = []
        self.written = False


class SqlRecorder:
    """Records runs and steps for the engine: `Engine(recorder=SqlRecorder(store))`. One per process and database.

    `owner` defaults to the store's owner id (what `Store.heartbeat` and `Store.claim_run` use). `write_start=True`
    writes the run row at `run_started` already (one more transaction per run) so running runs show up at once."""

    def __init__(self, store: Store, owner: str | None = None, *, write_start: bool = False):
        self.store = store
        self.owner = owner or store.owner
        self.write_start = write_start
        self._run_sql, self._step_sql, self._check_sql = compile_statements(store.dialect)
        self._wait_add_sql, self._wait_drop_sql = compile_wait_statements(store.dialect)
        self._pg = store.dialect == "postgresql"
        self._batch_sql: dict[tuple[bool, bool, bool], str] | None = None  # (steps?, durable?, checks?) -> SQL
        if self._pg:
            self._batch_sql = {(steps, durable, checks): compile_batch_statement(steps, durable, checks)
                               for steps in (True, False) for durable in (True, False) for checks in (True, False)}
        self._raw: Any = None  # SQLAlchemy's pooled wrapper, kept to give the connection back
        self._conn: Any = None  # the DBAPI connection
        self._pending: dict[str, _Pending] = {}
        self._meta: dict[str, tuple[int | None, str | None]] = {}
        self._writer = _Writer(self._execute) if self._pg else None
        self._group: list[tuple[Job, asyncio.Future[None]]] | None = None  # SQLite: writes waiting for this turn
        self._checkpointer: _Checkpointer | None = None  # SQLite file: copies the WAL into the database, off the loop
        self._closed = False
        store.recorders.add(self)

    def annotate(self, run_id: str, *, flow_version: int | None = None, source: str | None = None) -> None:
        """Say which flow version and source a run that was not created with `create_run` has; call before
        `Engine.run`. (The engine's RunInfo does not carry them.)"""
        self._meta[run_id] = (flow_version, source)

    async def create_run(self, run_id: str, flow_id: str, flow_version: int | None, trigger: str | None,
                         input: list[dict[str, Any]], source: str | None, owner: str | None) -> None:
        """Accept a run to start in the background (`queued`, as `Store.create_run`), committed before this returns,
        so a crash cannot lose it. On PostgreSQL it joins the writer's group commit: the runs accepted while the
        writer is busy go in one statement with the steps and ends of the runs going (one round trip), where each
        took a transaction of its own from a thread. On SQLite it is `Store.create_run` in a thread (the group commit
        there is on the event loop, which must not wait for SQLite's write lock). `run_id` must be new
        (`triggers.new_run_id`): on PostgreSQL the row is upserted as the recorder's other writes are."""
        if self._writer is None:
            await asyncio.to_thread(self.store.create_run, run_id, flow_id, flow_version, trigger, input, source,
                                    RunStatus.queued.value, owner)
            return
        now = time.time()
        row = (run_id, flow_id, flow_version, RunStatus.queued.value, trigger, source, _json(input), None, None, now,
               None, None, owner, now if owner else None, None)
        await self._writer.submit((run_id, row, [], [], True))

    # -- the Recorder protocol --------------------------------------------------------------------------------------

    def run_started(self, info: RunInfo) -> Awaitable[None]:
        """(Not a coroutine: nothing to wait for unless `write_start`.)"""
        flow_version, source = self._meta.pop(info.run_id, (None, None))
        try:
            given = _dumps(info.input).decode()
        except TypeError:
            given = _lenient(info.input)
        row = [info.run_id, info.flow_id, flow_version, "running", info.trigger, source, given,
               None, None, info.started, info.started, None, self.owner, time.time(), None]
        pending = self._pending.get(info.run_id)
        if pending is None:
            pending = self._pending[info.run_id] = _Pending(info.run_id, row)
        else:
            pending.run = row
        pending.input = info.input
        if self.write_start:
            return self._write(pending)
        return _NOTHING_TO_WAIT_FOR

    async def steps_finished(self, run_id: str, steps: list[Step], durable: bool) -> None:
        pending = self._pending.get(run_id)
        if pending is None:  # steps of a run this recorder did not see start (a single-node rerun, say)
            pending = self._pending[run_id] = _Pending(run_id, None)
        pending.steps.extend(steps)
        for step in steps:
            if step.wait is not None:
                pending.waits.append(_wait_row(step))
        if durable:
            await self._write(pending, durable=True)

    def run_finished(self, result: RunResult, steps: list[Step] | None = None) -> Awaitable[None]:
        """(Not a coroutine: most runs wait for their group commit's future alone, one coroutine less to suspend and
        resume.)"""
        pending = self._pending.pop(result.run_id, None) or _Pending(result.run_id, None)
        if steps:  # the run's last steps, none with side effects: written with its end
            if pending.steps:
                pending.steps.extend(steps)
            else:
                pending.steps = steps
            for step in steps:
                if step.wait is not None:
                    pending.waits.append(_wait_row(step))
        row = pending.run
        if row is None:  # not seen starting: the upsert keeps what the store has for input, trigger, ...
            row = pending.run = [result.run_id, result.flow_id, None, None, None, None, None, None, None,
                                 result.started, result.started, None, self.owner, None, None]
        error = result.error
        try:
            output = _dumps(result.output).decode()
        except TypeError:
            output = _lenient(result.output)
            error = error or {"message": "the run's output is not JSON data; it was stored as text where needed"}
        status = row[3] = _RUN_STATUS[result.status]
        row[7] = output
        row[8] = None if error is None else _json(error)
        row[10] = result.started
        row[11] = None if status == "waiting" else result.finished
        if self._writer is None and pending.steps and not pending.written and not pending.waits and status in _ENDED:
            # Most runs on SQLite: the whole run in one row, its steps packed in it (none of them written before),
            # joined to this loop turn's group commit here (what `_write` and `_join_group` do, one call less each)
            if self._closed:
                raise RuntimeError("the recorder is closed")
            row[13] = time.time()
            row[14] = _packed(pending.steps, pending.input)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            group = self._group
            if group is None:
                group = self._group = []
                loop.call_soon(self._commit_group)
            group.append(((pending.run_id, row, _NO_ROWS, _NO_ROWS, False), future))  # (the run is popped: no
            return future  # one changes its row list any more)
        return self._write(pending, final=True)

    # -- writing ----------------------------------------------------------------------------------------------------

    async def _write(self, pending: _Pending, final: bool = False, durable: bool = False) -> None:
        if self._closed:
            raise RuntimeError("the recorder is closed")
        run = None
        steps, pending.steps = pending.steps, []
        waits, pending.waits = pending.waits, []
        if pending.run is not None and (final or not pending.written):
            pending.run[13] = time.time()
            if final and steps and not waits and not pending.written and pending.run[3] in _ENDED:
                # The whole run in one row: its steps packed in it (runs.steps), none of them written before
                pending.run[14] = _packed(steps, pending.input)
                steps = []
            run = tuple(pending.run)
        rows = [_step_row(step, pending.input) for step in steps]
        if run is None and not rows:
            return
        job = (pending.run_id, run, rows, waits, durable)
        try:
            if self._writer is None:
                await self._join_group(job)
            else:
                await self._writer.submit(job)
        except RunLost:
            self._pending.pop(pending.run_id, None)  # nothing more is written about it
            raise
        pending.written = True

    async def _join_group(self, job: Job) -> None:
        """SQLite: commit `job` with every other write of this loop turn, and wait for that commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._group is None:
            self._group = []
            loop.call_soon(self._commit_group)
        self._group.append((job, future))
        await future

    def _commit_group(self) -> None:
        group, self._group = self._group, None
        if not group:
            return
        outcomes = _outcomes(self._execute, [job for job, _ in group])
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue
            try:
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)
            except RuntimeError:  # closing after the loop: nobody waits any more
                pass
        if self._checkpointer is not None:
            self._checkpointer.wake()

    def _connection(self) -> Any:
        if self._conn is None:
            if self._closed:
                raise RuntimeError("the recorder is closed")
            self._raw = self.store.engine.raw_connection()
            self._conn = self._raw.driver_connection
            self._conn.rollback()  # start clean whatever the pool did (pre-ping)
            database = self.store.engine.url.database or ":memory:"
            if not self._pg and CHECKPOINT_APART and database != ":memory:" and "mode=memory" not in database:
                self._checkpointer = _Checkpointer(self.store.engine)
                self._checkpointer.watch(self)  # a recorder dropped unclosed ends its thread too
                self._conn.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
            if self._pg:  # the one-statement batch is its own transaction; the other writes say BEGIN themselves
                self._conn.autocommit = True
        return self._conn

    def _execute(self, jobs: list[Job]) -> list[RunLost | None]:
        """Write `jobs` in one transaction; per job, None or RunLost (nothing of that job was written). On
        PostgreSQL, a dropped connection is replaced once."""
        try:
            return self._transaction(jobs)
        except Exception:
            if not self._pg or self._conn is None or not (self._conn.closed or self._conn.broken):
                raise
            self._discard(invalidate=True)
            return self._transaction(jobs)

    def _transaction(self, jobs: list[Job]) -> list[RunLost | None]:
        if self._batch_sql is not None and _batchable(jobs):
            return self._batch(jobs)
        conn = self._connection()
        cursor = conn.cursor()
        outcomes: list[RunLost | None] = []
        try:
            # SQLite: take the write lock now (waits up to busy_timeout); PostgreSQL: the connection is in autocommit
            cursor.execute("BEGIN" if self._pg else "BEGIN IMMEDIATE")
            for run_id, run, steps, waits, _durable in jobs:
                # The run row first: its upsert (or the check) holds the row until the commit, so no claim can slip
                # between the check and the steps.
                if run is not None:
                    cursor.execute(self._run_sql, run)
                else:
                    cursor.execute(self._check_sql, (time.time(), run_id, self.owner))
                if cursor.rowcount != 1:
                    outcomes.append(RunLost(run_id))
                    continue
                if steps:
                    cursor.executemany(self._step_sql, steps)
                for wait in waits:
                    cursor.execute(self._wait_add_sql if len(wait) == 5 else self._wait_drop_sql, wait)
                outcomes.append(None)
            conn.commit()
            return outcomes
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            cursor.close()

    def _batch(self, jobs: list[Job]) -> list[RunLost | None]:
        """PostgreSQL: `jobs` (no waits, one per run) in one statement, one round trip."""
        runs = [job[1] for job in jobs if job[1] is not None]
        checked = [job[0] for job in jobs if job[1] is None]
        steps: dict[tuple[str, str], Row] = {}
        for job in jobs:
            for row in job[2]:
                steps[row[0], row[1]] = row  # one row per step: the last one recorded wins, as in separate upserts
        params: list[Any] = _columns(runs, len(RUN_COLUMNS), _RUN_FLOATS)
        if checked:
            params += [time.time(), checked, self.owner]
        if steps:
            params += _columns(list(steps.values()), len(STEP_COLUMNS), _STEP_FLOATS)
        assert self._batch_sql is not None
        cursor = self._connection().cursor()
        try:
            durable = any(job[4] for job in jobs)
            # With checks: not prepared, so the plan is made for these ids (see compile_batch_statement)
            cursor.execute(self._batch_sql[bool(steps), durable, bool(checked)], params,
                           prepare=False if checked else None)
            kept = {row[0] for row in cursor.fetchall()}
        finally:
            cursor.close()
        return [None if job[0] in kept else RunLost(job[0]) for job in jobs]

    def _discard(self, invalidate: bool = False) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        raw, self._raw, self._conn = self._raw, None, None
        if raw is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    raw.invalidate()
                else:
                    raw.close()

    def flush(self) -> None:
        """Write everything buffered (runs still going stay `running`). Not for use while runs are in flight on
        PostgreSQL; `close` calls it."""
        jobs: list[Job] = []
        for pending in self._pending.values():
            run = tuple(pending.run) if pending.run is not None and not pending.written else None
            if run is not None or pending.steps:
                rows = [_step_row(step, pending.input) for step in pending.steps]
                jobs.append((pending.run_id, run, rows, pending.waits, True))
                pending.steps, pending.waits = [], []
                pending.written = True
        if not jobs:
            return
        failed = [e for e in _outcomes(self._execute, jobs) if e is not None and not isinstance(e, RunLost)]
        if failed:
            raise failed[0]

    def close(self) -> None:
        """Write what is buffered (so an interrupted run resumes from there) and give the connection back."""
        if self._closed:
            return
        if self._writer is not None:
            self._writer.stop()
        try:
            self._commit_group()  # writes of this loop turn that were still waiting for their commit
            self.flush()
        except Exception:  # closing must not fail: say what was lost, then let go
            log.exception("the recorder could not write its buffered steps while closing")
        finally:
            self._pending.clear()
            self._closed = True
            self._discard()

    async def aclose(self) -> None:
        if self._writer is None:
            self.close()
        else:
            await asyncio.to_thread(self.close)


class _Checkpointer:
    """SQLite: one thread that copies the WAL back into the database file (`PRAGMA wal_checkpoint(PASSIVE)`) after
    the recorder's commits, at most once every `_CHECKPOINT_EVERY` seconds, on its own connection.

    Left to SQLite, the commit that takes the WAL past 1,000 pages does it, and with `synchronous=NORMAL` a checkpoint
    is where both fsyncs happen: the event loop stood still for 10-120 ms every few dozen group commits (bench/engine.py
    chain of Set nodes, 32 concurrent runs). A PASSIVE checkpoint never blocks a writer, so the loop only commits. The
    recorder's own connection keeps an automatic checkpoint at `_BACKSTOP_PAGES`, should this thread fall behind."""

    def __init__(self, engine: sa.Engine):
        self._engine = engine
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowboard-checkpoint", daemon=True)
        self._thread.start()
        self._watching: weakref.finalize[Any, Any] | None = None

    def watch(self, owner: object) -> None:
        """Stop when `owner` is gone without closing it. (Held by Python's finalize registry until `stop`, so that
        stopping lets go of it and of the store's engine: a closed recorder keeps nothing alive.)"""
        self._watching = weakref.finalize(owner, self.let_go)

    def wake(self) -> None:
        if not self._wanted.is_set():
            self._wanted.set()

    def let_go(self) -> None:
        self._stopped.set()
        self._wanted.set()

    def stop(self) -> None:
        if self._watching is not None:
            self._watching.detach()
        self.let_go()
        self._thread.join()

    def _loop(self) -> None:
        raw = None
        try:
            while True:
                self._wanted.wait()
                if self._stopped.is_set():
                    return
                self._wanted.clear()
                try:
                    if raw is None:
                        raw = self._engine.raw_connection()
                    cursor = raw.cursor()
                    try:
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        cursor.fetchall()
                    finally:
                        cursor.close()
                except Exception:  # the next commit wakes us again; the backstop checkpoint covers a lasting fault
                    log.warning("copying the SQLite write-ahead log into the database failed", exc_info=True)
                    if raw is not None:
                        with contextlib.suppress(Exception):
                            raw.invalidate()
                        raw = None
                if self._stopped.wait(_CHECKPOINT_EVERY):
                    return
        finally:
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.close()


class _Writer:
    """One thread that owns the PostgreSQL writes: takes every job waiting, commits them together, answers each."""

    def __init__(self, execute: Execute):
        self._execute = execute
        self._queue: queue.SimpleQueue[tuple[Job, asyncio.AbstractEventLoop, asyncio.Future[None]] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="flowboard-recorder", daemon=True)
        self._thread.start()

    async def submit(self, job: Job) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the recorder is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((job, loop, future))
        await future

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        while True:  # whatever slipped in while stopping is answered, not left waiting forever
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                with contextlib.suppress(RuntimeError):
                    left[1].call_soon_threadsafe(_resolve, left[2], RuntimeError("the recorder is closed"))

    def _loop(self) -> None:
        running = True
        while running:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    running = False
                    break
                batch.append(more)
            outcomes = _outcomes(self._execute, [job for job, _, _ in batch])
            answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
            for (_, loop, future), outcome in zip(batch, outcomes, strict=True):
                answers.setdefault(loop, []).append((future, outcome))
            for loop, pairs in answers.items():  # one wake-up of each loop per batch, not one per write
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_resolve_all, pairs)


Execute = Callable[[list[Job]], list[RunLost | None]]


def _batchable(jobs: list[Job]) -> bool:
    """One statement can write these: no waits to add or close, and each run once (an upsert touches a row once)."""
    return all(not job[3] for job in jobs) and len({job[0] for job in jobs}) == len(jobs)


def _outcomes(execute: Execute, jobs: list[Job]) -> list[BaseException | None]:
    """Each job's outcome: all in one transaction; if that fails, one job per transaction, so one bad job does not
    fail the others."""
    try:
        return list(execute(jobs))
    except Exception as exc:
        if len(jobs) == 1:
            return [exc]
    outcomes: list[BaseException | None] = []
    for job in jobs:
        try:
            outcomes.extend(execute([job]))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _resolve_all(pairs: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, outcome in pairs:
        _resolve(future, outcome)


def _resolve(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


# -- serialization ------------------------------------------------------------------------------------------------


_STATUS = {status: status.value for status in StepStatus}  # a plain str (an enum's `.value` is a slow property)


def _stored_outputs(step: Step, run_input: list[Any] | None) -> Any:
    """A step's outputs as stored. Inputs are not stored: they are the upstream steps' outputs along the flow's edges
    (as in n8n), derived when a run is shown (`engine.derive_inputs`). That halves what a run writes. A step that
    hands on the run's input items unchanged (a trigger) points at the run row's copy instead of writing them again,
    and one that passes on the items it got points at the step they came from."""
    outputs = step.outputs
    main = outputs.get("main")
    if main and run_input and main[0] is run_input[0] and len(outputs) == 1 and len(main) == len(run_input) \
            and all(map(operator.is_, main, run_input)):  # (new items fail at the first)
        return _SAME_AS_RUN_INPUT_VALUE
    same = step.same_as
    if same is not None:  # items passed on unchanged: a reference to the step they came from
        return {port: same_as_step(*same[port]) if port in same else items for port, items in outputs.items()}
    return outputs


def _step_row(step: Step, run_input: list[Any] | None = None) -> Row:
    try:
        return (step.run_id, step.node_id, _STATUS[step.status], step.attempt, step.started, step.finished,
                "{}", _dumps(_stored_outputs(step, run_input)).decode(),
                None if step.error is None else _dumps(step.error).decode(),
                _dumps(step.logs).decode() if step.logs else None,
                None if step.lineage is None else _dumps(step.lineage).decode())
    except TypeError as exc:  # orjson.JSONEncodeError: a node handed over something that is not JSON data
        error = {"message": f"the node's items are not JSON data and were stored as text ({exc})",
                 "node_id": step.node_id, "original_error": step.error}
        return (step.run_id, step.node_id, "failed", step.attempt, step.started, step.finished,
                _lenient(step.inputs), _lenient(step.outputs), _lenient(error), _lenient(step.logs or None), None)


_ENDED = frozenset(status.value for status in RunStatus if status.finished)
_RUN_STATUS = {status: status.value for status in RunStatus}  # a plain str (an enum's `.value` is a slow property)
_NO_ROWS: list[Row] = []  # (never changed)


class _Nothing:
    """An awaitable that is done at once (without a coroutine to make and run)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_NOTHING_TO_WAIT_FOR = _Nothing()
_Fragment = orjson.Fragment


_NO_INPUTS: dict[str, Any] = {}


def _packed(steps: list[Step], run_input: list[Any] | None) -> str:
    """Steps as the JSON array of `runs.steps` (`store.PACKED_STEP_COLUMNS`: a step row without its run id, its JSON
    columns as JSON), one entry per node, the last one recorded; in one `orjson.dumps`. When something is not JSON
    data, the steps go through `_step_row` (which says so in the step that has it) and their texts are spliced in."""
    last = {step.node_id: step for step in steps}
    first = run_input[0] if run_input else _MISSING
    entries = []
    for s in last.values():
        outputs = s.outputs
        if s.same_as is not None or ((main := outputs.get("main")) and main[0] is first):
            outputs = _stored_outputs(s, run_input)  # (a step passing on items it got: what new items never do)
        lineage = s._lineage
        if lineage.__class__ is Later:  # `Step.lineage`, without the property
            lineage = s._lineage = lineage.work(s.inputs, s.outputs, None)
        entries.append((s.node_id, _STATUS[s.status], s.attempt, s.started, s.finished, _NO_INPUTS, outputs,
                        s.error, s.logs or None, lineage))
    try:
        return _dumps(entries).decode()
    except TypeError:
        rows = [_step_row(step, run_input) for step in last.values()]
        return _dumps([(r[1], r[2], r[3], r[4], r[5], _Fragment(r[6]), _Fragment(r[7]),
                        None if r[8] is None else _Fragment(r[8]), None if r[9] is None else _Fragment(r[9]),
                        None if r[10] is None else _Fragment(r[10])) for r in rows]).decode()


def _wait_row(step: Step) -> Row:
    wait = step.wait or {}
    if wait.get("done"):
        return (step.finished, step.run_id, step.node_id)
    return (step.run_id, step.node_id, wait.get("resume_at"), _lenient(wait.get("data") or {}), step.finished)


_MISSING: Any = object()
_SAME_AS_RUN_INPUT_VALUE = {"main": SAME_AS_RUN_INPUT}


def _json(value: Any, fallback: Any = _MISSING) -> str | None:
    if value is None:
        return None
    try:
        return _dumps(value).decode()
    except TypeError:
        if fallback is not _MISSING:
            return fallback
        return _lenient(value)


def _lenient(value: Any) -> str:
    """JSON at any price: what orjson cannot write becomes a descriptive string."""
    try:
        return _dumps(value, default=_describe, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return _dumps({"unserializable": _describe(value)}).decode()


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = "?"
    return f"<{type(value).__name__}: {text[:200]}>"
