"""One Flowboard server and N `flowboard worker` processes on a PostgreSQL schema of their own, and a counting HTTP
server for their side effects: shared by tests/test_workers.py and bench/workers.py.

    with Cluster(tmp_path, workers=2) as cluster:     # schema created; server and workers started; all dropped after
        cluster.save(flow)                             # stored and active before the server starts
        cluster.start()
        cluster.workers[0].kill()                      # kill -9
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa

from flowboard.model import parse_flow
from flowboard.store import Store, make_engine
from flowboard.store.tables import runs_t

from .clihelp import env_for
from .serve import Server

PG_URL = os.environ.get("FLOWBOARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LEASE = "3"  # seconds: a killed worker's runs are taken over after this
STALLED = "8"  # seconds: Procrastinate hands a killed worker's jobs on after this


def pg_admin() -> Any:
    """An autocommit connection to the test database, or None when PostgreSQL is not reachable."""
    import psycopg

    try:
        return psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True,
                               connect_timeout=3)
    except psycopg.OperationalError:
        return None


class Counting:
    """An HTTP server that counts `POST /hit?n=<n>` per n (the side effect of each run), answering after `delay`, as
    a service that honours repeat-safe keys does: a call whose Idempotency-Key it has seen is answered but not
    counted in `hits`; `raw` counts every call per n, `keys` every key;
    `POST /slow` answers after 30 s; `POST /serial` after 0.3 s, keeping when it began and ended; `POST /pause` after
    1 s."""

    def __init__(self, delay: float = 0.0) -> None:
        self.hits: Counter[str] = Counter()  # side effects done, per n (a repeated key is not done again)
        self.raw: Counter[str] = Counter()  # calls received, per n
        self.keys: Counter[str] = Counter()  # calls received, per Idempotency-Key
        self.keys_of: dict[str, set[str | None]] = {}  # the keys calls for n carried (None: a call without one)
        self.slow = 0  # calls to /slow begun
        self.spans: list[tuple[float, float]] = []  # (start, end) of each call to /serial
        self.lock = threading.Lock()
        counting = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                n = parse_qs(urlparse(self.path).query).get("n", ["?"])[0]
                if self.path.startswith("/slow"):  # a call that a cancel must stop
                    counting.slow += 1
                    time.sleep(30)
                elif self.path.startswith("/pause"):
                    time.sleep(1.0)
                elif self.path.startswith("/serial"):  # a call whose time span is kept (run modes)
                    began = time.monotonic()
                    time.sleep(0.3)
                    with counting.lock:
                        counting.spans.append((began, time.monotonic()))
                else:
                    if delay:
                        time.sleep(delay)
                    key = self.headers.get("Idempotency-Key")
                    with counting.lock:
                        counting.raw[n] += 1
                        counting.keys_of.setdefault(n, set()).add(key)
                        if key is None or key not in counting.keys:
                            counting.hits[n] += 1
                        if key is not None:
                            counting.keys[key] += 1
                body = b'{"ok":true}'
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the caller was cancelled
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def total(self) -> int:
        with self.lock:
            return sum(self.hits.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WorkerProcess:
    def __init__(self, data_dir: Path, env: dict[str, str], name: str, concurrency: int,
                 metrics_port: int | None = None) -> None:
        self.log = data_dir / f"worker-{name}.log"
        extra = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
        with self.log.open("a") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "flowboard", "worker", "--concurrency",
                                             str(concurrency), "--graceful", "10", *extra], cwd=data_dir, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        """Until it takes jobs (a loaded machine can take a while to import)."""
        deadline = time.monotonic() + timeout
        while "Starting worker on queues" not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{self.output}")
            time.sleep(0.1)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(20)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Cluster:
    def __init__(self, data_dir: Path, workers: int = 2, concurrency: int = 8, dispatch: str = "procrastinate"
                 ) -> None:
        self.data_dir = data_dir
        self.n_workers = workers
        self.concurrency = concurrency
        self.dispatch = dispatch
        self.admin = pg_admin()
        self.schema = f"w_{uuid.uuid4().hex[:16]}"
        self.url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        self.server: Server | None = None
        self.servers: list[Server] = []  # more servers on the same database
        self.key = ""
        self.workers: list[WorkerProcess] = []
        self.store: Store | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**env_for(self.data_dir), "FLOWBOARD_DATABASE_URL": self.url, "FLOWBOARD_RUN_LEASE": LEASE,
                "FLOWBOARD_WORKER_STALLED": STALLED}

    def __enter__(self) -> Cluster:
        assert self.admin is not None, "PostgreSQL is not reachable"
        self.admin.execute(f"CREATE SCHEMA {self.schema}")
        self.store = Store(make_engine(PG_URL, connect_args={"options": f"-csearch_path={self.schema}"}),
                           data_dir=self.data_dir)
        return self

    def save(self, flow: dict[str, Any], active: bool = True) -> None:
        assert self.store is not None
        parsed = parse_flow(flow)
        self.store.save_flow(parsed, expected_version=None)
        self.store.set_active(parsed.id, active)

    def start(self, servers: int = 1) -> None:
        assert self.store is not None
        self.key = self.store.create_api_key("tests")[1]
        self.server = Server(self.data_dir, env={**self.env, "FLOWBOARD_DISPATCH": self.dispatch})
        for _ in range(servers - 1):
            self.servers.append(Server(self.data_dir, env={**self.env, "FLOWBOARD_DISPATCH": self.dispatch}))
        for i in range(self.n_workers if self.dispatch == "procrastinate" else 0):
            self.add_worker(str(i))
        for worker in self.workers:
            worker.wait_ready()

    def add_worker(self, name: str, metrics_port: int | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.data_dir, self.env, name, self.concurrency, metrics_port)
        self.workers.append(worker)
        return worker

    def api(self, server: Server | None = None) -> Any:
        """An httpx client of a server's REST API, as the admin."""
        import httpx

        server = server or self.server
        assert server is not None
        return httpx.Client(base_url=server.url + "/api/v1", headers={"X-API-Key": self.key}, timeout=30)

    def statuses(self) -> Counter[str]:
        """How many runs are in each state."""
        assert self.store is not None
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(runs_t.c.status, sa.func.count()).group_by(runs_t.c.status)).all()
        return Counter({status: count for status, count in rows})

    def statuses_of(self, run_ids: list[str]) -> Counter[str]:
        assert self.store is not None
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(runs_t.c.status, sa.func.count()).where(runs_t.c.id.in_(run_ids))
                                .group_by(runs_t.c.status)).all()
        return Counter({status: count for status, count in rows})

    def wait_all_finished(self, expected: int, timeout: float) -> Counter[str]:
        """Until every run ended (and there are `expected` of them); returns the count per state."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            going = sum(statuses[s] for s in ("queued", "running"))
            if sum(statuses.values()) >= expected and not going:
                return statuses
            if time.monotonic() > deadline:
                raise AssertionError(f"runs after {timeout} s: {dict(statuses)}; worker logs:\n" +
                                     "\n".join(w.output[-3000:] for w in self.workers))
            time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        for worker in self.workers:
            worker.stop()
        for server in [self.server, *self.servers]:
            if server is not None:
                server.stop()
        if self.store is not None:
            self.store.close()
        if self.admin is not None:
            self.admin.execute(f"DROP SCHEMA {self.schema} CASCADE")
            self.admin.close()
