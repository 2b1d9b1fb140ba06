"""Runs on `flowboard worker` processes, fed by Procrastinate over PostgreSQL.

```
 server: Launcher.accept ─▶ runs row `queued` (no owner) ─commit─▶ defer job {run_id}   (queueing lock "run:<id>")
 worker: job ─▶ Store.claim_run (compare-and-set) ─▶ plan of the stored flow version ─▶ Engine.run ─▶ recorded
 sweep (each worker, every few seconds):
     stalled jobs of dead workers (Procrastinate heartbeats) ─▶ retry_job       (the run resumes from its steps)
     queued runs without a job (the server died between the commit and the defer) ─▶ defer again
```

A job carries the run id only: the worker reads the run (flow, version, trigger, items) and rebuilds the plan from the
stored flow version. Exactly once: a run is executed by the one process that claimed it in the store (its lease is
renewed while it goes); a second job for the same run (a sweep racing a slow defer, a stalled job retried) finds it
claimed and waits its turn through Procrastinate's retry (`RunBusy`), or finds it finished and does nothing. A flow
whose run mode is `queued` defers its jobs with a Procrastinate lock per flow, so its runs go one at a time, in
order, across all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..engine import Event, RunResult, RunStatus
from ..model import RunMode
from ..store import LEASE
from ..store.tables import runs_t
from .dispatch import RunOrder

if TYPE_CHECKING:
    import procrastinate

    from ..services import Flowboard
    from ..store import Store
    from ..triggers import RunGate

log = logging.getLogger("flowboard.worker")

QUEUE = "runs"
TASK = "flowboard.run"
SWEEP = max(1.0, LEASE / 3)  # seconds between two recovery sweeps of a worker
#: Seconds without a heartbeat after which Procrastinate takes a worker for dead and its jobs are tried again
#: (`FLOWBOARD_WORKER_STALLED`). Generous: a worker that is only slow (a loaded machine) must not lose its place; its
#: runs are safe either way (a run has one owner in the store).
STALLED = float(os.environ.get("FLOWBOARD_WORKER_STALLED") or 30.0)
ANNOUNCE = 0.01  # seconds a worker gathers started and ended runs, and node events, into one batch of notices
MAX_PENDING = 50_000  # node events waiting to be sent beyond which new ones are dropped (run ends never are)
CLEANUP = 600.0  # seconds between two clean-ups of ended jobs by one worker
KEEP_JOBS_HOURS = 24  # an ended job is deleted after this; its run stays in the runs table
GRACE = 5.0  # seconds a queued run may wait for its job to be deferred before a sweep defers it again
_SCHEMA_LOCK = 0x466C6F77  # advisory lock key while one process creates Procrastinate's tables ("Flow")


class RunBusy(Exception):
    """The run is being run by another live process: try the job again later (Procrastinate's retry)."""


def conninfo(url: str) -> str:
    """libpq connection string of a SQLAlchemy PostgreSQL URL (`postgresql+psycopg://u@h/db` -> `postgresql://...`)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("workers need PostgreSQL: set FLOWBOARD_DATABASE_URL to a postgresql:// URL "
                         f"(it is {parsed.get_backend_name()})")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(url: str, run: Callable[[str], Coroutine[Any, Any, None]] | None = None) -> procrastinate.App:
    """The Procrastinate app on Flowboard's database, with the run task registered: `run(run_id)` in a worker; a
    server only defers."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(url)))
    retry = procrastinate.RetryStrategy(wait=max(1, int(LEASE / 3)), retry_exceptions={RunBusy})
    app.task(name=TASK, queue=QUEUE, retry=retry, pass_context=False)(run or _not_here)
    return app


async def _not_here(run_id: str) -> None:
    raise RuntimeError("runs are run by `flowboard worker` processes, not here")


async def ensure_schema(app: procrastinate.App) -> None:
    """Create Procrastinate's tables once (several processes may start at the same moment)."""
    pool = app.connector.pool  # type: ignore[attr-defined]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
        if row is None or row[0] is None:
            log.info("creating Procrastinate's tables")
            await conn.execute(app.schema_manager.get_schema())


def job_options(order_flow_id: str, run_id: str, mode: RunMode) -> dict[str, Any]:
    options: dict[str, Any] = {"queueing_lock": f"run:{run_id}"}
    if mode is RunMode.queued:
        options["lock"] = f"flow:{order_flow_id}"
    return options


async def defer(app: procrastinate.App, flow_id: str, run_id: str, mode: RunMode) -> bool:
    """Enqueue the run's job; False when a job for it is waiting already (the queueing lock)."""
    import procrastinate.exceptions

    try:
        await app.tasks[TASK].configure(**job_options(flow_id, run_id, mode)).defer_async(run_id=run_id)
    except procrastinate.exceptions.AlreadyEnqueued:
        return False
    return True


class ProcrastinateDispatcher:
    """The server's dispatcher when runs go to workers: the run is recorded as queued, then its job deferred. The
    server runs nothing itself; `run` (answer with the result) waits for the run to end in the store."""

    def __init__(self, url: str, store: Store, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]):
        self.app = make_app(url)
        self.store = store
        self.spawn = spawn
        self.poll = 1.0  # seconds between two reads of a run that a caller waits for (a worker's notice is sooner)
        self._open: asyncio.Task[Any] | None = None
        self._waiting: dict[str, asyncio.Future[None]] = {}  # run id -> resolved when a worker says it ended

    async def ready(self) -> procrastinate.App:
        """The app, its connection pool open (once, on first use, in the server's event loop)."""
        opening = self._open
        if opening is None or (opening.done() and (opening.cancelled() or opening.exception() is not None)):
            opening = self._open = asyncio.ensure_future(self._start())  # first use, or the last try failed
        await asyncio.shield(opening)
        return self.app

    async def _start(self) -> None:
        await self.app.open_async()
        await ensure_schema(self.app)

    async def aclose(self) -> None:
        opening = self._open
        if opening is not None and opening.done() and not opening.cancelled() and opening.exception() is None:
            await self.app.close_async()

    async def resume(self, flow_id: str, run_id: str, mode: RunMode) -> None:
        """A parked run was taken to resume (`Store.resume_wait`, no owner): a worker runs it."""
        await defer(await self.ready(), flow_id, run_id, mode)

    async def run(self, order: RunOrder, gate: RunGate | None) -> RunResult:
        if gate is not None:
            gate.leave(False)  # run modes hold in the queue (a lock per flow), not in this process
        if not order.created:
            await asyncio.to_thread(self.store.create_run, order.run_id, order.flow_id, order.version,
                                    order.node_id, order.items, order.source, RunStatus.queued.value, None)
        await defer(await self.ready(), order.flow_id, order.run_id, order.plan.flow.settings.run_mode)
        return await self.wait_for(order.run_id)

    def submit(self, order: RunOrder, gate: RunGate | None) -> None:
        if gate is not None:
            gate.leave(False)
        self.spawn(self._defer(order))
        return None

    async def _defer(self, order: RunOrder) -> None:
        try:
            await defer(await self.ready(), order.flow_id, order.run_id, order.plan.flow.settings.run_mode)
        except Exception:  # the run stays queued; a worker's sweep defers it again
            log.exception("run %s could not be enqueued now; a worker will pick it up", order.run_id)

    async def wait_for(self, run_id: str) -> RunResult:
        """The run's result once it ended or parked: read from the store when its worker says so (NOTIFY), and every
        `poll` seconds in case that notice was missed."""
        ended = self._waiting.setdefault(run_id, asyncio.get_running_loop().create_future())
        try:
            while True:
                run = await asyncio.to_thread(self.store.get_run, run_id)
                if run.status.finished or run.status is RunStatus.waiting:
                    steps = await asyncio.to_thread(self.store.get_steps, run_id)
                    return RunResult(run.id, run.flow_id, run.status, run.started or run.created,
                                     run.finished or time.time(), run.output or [], steps, run.error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ended), self.poll)
                if ended.done():  # heard, but it goes on (a retried job): wait for the next notice
                    ended = self._waiting[run_id] = asyncio.get_running_loop().create_future()
        finally:
            if self._waiting.get(run_id) is ended:
                del self._waiting[run_id]

    def ended(self, run_id: str) -> None:
        """A worker said the run ended or parked."""
        future = self._waiting.get(run_id)
        if future is not None and not future.done():
            future.set_result(None)


class Worker:
    """`flowboard worker`: runs the queue's jobs with this process's engine, and sweeps for lost work."""

    def __init__(self, fb: Flowboard, concurrency: int = 16):
        self.fb = fb
        fb.engine.host = "the worker that ran it"  # the words of a step its stop interrupted
        self.app = make_app(str(fb.store.engine.url.render_as_string(hide_password=False)), self.run_job)
        self.concurrency = concurrency
        #: What to tell the servers in the next notices, in order: [run id, flow id, status] (a run started or
        #: ended) or [run id, flow id, status, node id, kind, item count] (a node's event)
        self._ends: list[list[Any]] = []
        self._announcing: asyncio.Task[None] | None = None
        self.dropped = 0  # node events not sent because the servers could not be told fast enough
        fb.bus.subscribe(self._node_event)  # node by node, the servers' editors and runs pages follow runs here
        self._next_cleanup = time.monotonic() + CLEANUP
        self.swept = 0  # runs and jobs the sweeps handed back (for the log and the tests)

    async def run_job(self, run_id: str) -> None:
        """One job: claim the run, run it from its recorded steps on its flow version; tell the servers it started and
        ended."""
        result = await self.fb.run_claimed(
            run_id, lambda run: self.announce(run.id, run.flow_id, RunStatus.running.value))
        if result is not None:
            self.announce(result.run_id, result.flow_id, result.status.value)
        else:
            run = await asyncio.to_thread(self.fb.store.get_run, run_id)
            if run.status in (RunStatus.queued, RunStatus.running):
                raise RunBusy(f"run {run_id} is being run by {run.owner}")

    def announce(self, run_id: str, flow_id: str, status: str) -> None:
        """Tell the servers a run started or ended (its webhook caller may wait, a runs page may show it): gathered
        for `ANNOUNCE` seconds, so a busy worker sends one NOTIFY for many runs."""
        self._ends.append([run_id, flow_id, status])
        if self._announcing is None or self._announcing.done():
            self._announcing = asyncio.ensure_future(self._announce())

    def _node_event(self, event: Event) -> None:
        """A node of a run here started, finished, failed, was skipped...: its place, status and item count go to the
        servers (never its items or its error text, which may hold what a secret made)."""
        if not event.kind.startswith("node.") or event.node_id is None or not self.fb.engine.runs_here(event.run_id):
            return  # another worker's event, heard and republished here, is not passed on again
        if len(self._ends) >= MAX_PENDING:  # the database is slower than the runs: views miss steps, runs go on
            self.dropped += 1
            if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
                log.warning("%d node events were not sent to the servers (too many waiting)", self.dropped)
            return
        self._ends.append([event.run_id, event.flow_id, event.status or "", event.node_id, event.kind[5:],
                           event.count])
        if self._announcing is None or self._announcing.done():
            self._announcing = asyncio.ensure_future(self._announce())

    async def _announce(self) -> None:
        """Send what gathered, in order: everything waiting goes in one transaction (as many notices as its size
        needs); what comes meanwhile waits for the next, so a busy worker sends bigger batches, not more of them."""
        await asyncio.sleep(ANNOUNCE)
        while self._ends:
            batch, self._ends = self._ends, []
            await asyncio.to_thread(self.fb.notices.send_batches, "runs", "runs", batch)

    async def sweep(self) -> None:
        """Hand back what dead processes left: their stalled jobs (Procrastinate's heartbeats) and queued runs whose
        job was never deferred. Now and then, forget the jobs that ended long ago (the runs keep the record)."""
        jm = self.app.job_manager
        if time.monotonic() >= self._next_cleanup:
            self._next_cleanup = time.monotonic() + CLEANUP
            await jm.delete_old_jobs(nb_hours=KEEP_JOBS_HOURS, queue=QUEUE, include_failed=True,
                                     include_cancelled=True, include_aborted=True)
        for job in await jm.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED):
            log.warning("job %s of a worker that stopped answering is tried again", job.id)
            await jm.retry_job(job)
            self.swept += 1
        for run_id, flow_id in await asyncio.to_thread(self._orphans):
            mode = RunMode.parallel
            with contextlib.suppress(Exception):
                mode = self.fb.plan(flow_id).flow.settings.run_mode
            if await defer(self.app, flow_id, run_id, mode):
                log.warning("queued run %s had no job (its server stopped before enqueueing it); enqueued now",
                            run_id)
                self.swept += 1

    def _orphans(self) -> list[tuple[str, str]]:
        """Queued runs (and resumed waiting ones) that nobody owns, older than GRACE, with no job waiting or going."""
        jobs = sa.table("procrastinate_jobs", sa.column("queueing_lock"), sa.column("status"))
        has_job = sa.exists().where(jobs.c.queueing_lock == sa.literal("run:") + runs_t.c.id,
                                    sa.cast(jobs.c.status, sa.Text).in_(("todo", "doing")))
        query = sa.select(runs_t.c.id, runs_t.c.flow_id).where(
            runs_t.c.status.in_((RunStatus.queued.value, RunStatus.running.value)), runs_t.c.owner.is_(None),
            runs_t.c.created < time.time() - GRACE, sa.not_(has_job)).order_by(runs_t.c.created).limit(1000)
        with self.fb.store.engine.connect() as conn:
            return [(row.id, row.flow_id) for row in conn.execute(query)]

    async def _sweeping(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("the recovery sweep failed (it tries again): %s", exc)
            await asyncio.sleep(SWEEP)

    async def run(self, *, graceful: float = 30.0) -> None:
        """Work until SIGTERM or SIGINT: then take no new job, let the going ones finish for up to `graceful`
        seconds, and hand the rest back (their runs resume on another worker from their recorded steps)."""
        async with self.app.open_async():
            await ensure_schema(self.app)
            self.fb.start_notices()  # a cancel of a run going here comes from the server
            sweeper = asyncio.ensure_future(self._sweeping())
            try:
                while True:
                    try:
                        await self.app.run_worker_async(
                            queues=[QUEUE], concurrency=self.concurrency, wait=True, install_signal_handlers=True,
                            shutdown_graceful_timeout=graceful, update_heartbeat_interval=STALLED / 6,
                            stalled_worker_timeout=STALLED, fetch_job_polling_interval=2.0)
                        break  # stopped by a signal
                    except Exception as exc:  # the database went away, or this worker was pruned: start again
                        log.warning("the worker lost its queue (%s); it starts again in a second", exc)
                        await asyncio.sleep(1.0)
            finally:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
                await self.hand_back()

    async def hand_back(self) -> None:
        """The runs this worker still holds as it stops go back to the queue (they resume from their steps)."""
        for run_id, flow_id in await asyncio.to_thread(self.fb.store.release_runs, self.fb.owner):
            mode = RunMode.parallel
            with contextlib.suppress(Exception):
                mode = self.fb.plan(flow_id).flow.settings.run_mode
            try:
                await defer(self.app, flow_id, run_id, mode)
                log.info("run %s handed back to the queue", run_id)
            except Exception as exc:  # a sweep of another worker defers it
                log.warning("run %s was handed back but not enqueued (%s); another worker's sweep will", run_id, exc)


def serve_worker(concurrency: int = 16, graceful: float = 30.0, metrics_port: int | None = None) -> int:
    """`flowboard worker`: run queued flows until SIGTERM or SIGINT; `metrics_port`: serve `/metrics` (Prometheus)
    on 127.0.0.1 there."""
    import os

    from ..services import Flowboard

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    fb = Flowboard(dispatch="process")
    if fb.store.engine.dialect.name != "postgresql":
        fb.store.close()
        print("flowboard worker: workers share their runs through PostgreSQL; set FLOWBOARD_DATABASE_URL to a "
              "postgresql:// URL (the same as the server's)", file=__import__("sys").stderr)
        return 2
    worker = Worker(fb, concurrency)
    if metrics_port is not None:
        from prometheus_client import CollectorRegistry, start_http_server

        from ..metrics import Collector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Collector(fb))
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)

    async def main() -> None:
        from concurrent.futures import ThreadPoolExecutor

        # store calls leave the loop through `asyncio.to_thread`: one thread per run going (the default is cores + 4)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(concurrency + 4, "flowboard-store"))
        sweep = asyncio.ensure_future(fb.sweep_files_forever())  # files no run names any more, as a server does
        try:
            await worker.run(graceful=graceful)
        finally:
            sweep.cancel()
            await fb.aclose()

    print(f"Flowboard worker {fb.owner} is running {concurrency} runs at a time (pid {os.getpid()}); SIGTERM stops "
          "it gracefully", flush=True)
    asyncio.run(main())
    return 0
