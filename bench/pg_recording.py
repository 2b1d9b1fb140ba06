"""Recording on PostgreSQL against recording on SQLite: the echo webhook flow, one server, no workers, same run.

    python bench/pg_recording.py                 # 3 x 10 s per store, wrk -t2 -c16 (about 2 minutes)
    python bench/pg_recording.py --quick         # 1 x 5 s per store, for iteration
    python bench/pg_recording.py --profile       # also a py-spy profile (if py-spy is on PATH) of each server
    python bench/pg_recording.py --in-process    # the recorder alone: the engine runs the flow 16 at a time in
                                                 # this process (no HTTP), recorded in each store
    python bench/pg_recording.py --accepted      # the echo flow answering at once (202, respond immediately):
                                                 # each call records an accepted (queued) run before it answers

Issue 13's first figure: with every run recorded in PostgreSQL, the echo flow (webhook -> set -> respond) must reach
at least 0.5x the same flow recorded in SQLite. Each store gets a fresh data folder (SQLite) or a fresh database
(PostgreSQL at FLOWBOARD_BENCH_POSTGRES, default the local test server; created and dropped here), the flow is
imported and activated through the real command line, and `flowboard serve` is loaded with wrk POSTing the peer
harness's body. The stores alternate (sqlite, postgresql, sqlite, ...) so drift on a shared machine hits both alike.
Prints req/s, p50, p99 per store (medians), the runs each database holds afterwards (every answered call must be a
recorded run), the ratio, and a one-line verdict. Machines here are shared and noisy: only the ratio means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FLOW = HERE / "flows" / "echo.json"
BODY = b'{"hello":"world","n":1,"items":[1,2,3]}'
PG_ADMIN = os.environ.get("FLOWBOARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET = 0.5  # PostgreSQL req/s over SQLite req/s (issue 13)
ACCEPTED = False  # --accepted: the echo flow answers at once (202), its runs recorded as queued first
LUA = """wrk.method = "POST"
wrk.body   = 'BODY'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"rps":%.2f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\\n',
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.status + e.timeout))
end
""".replace("BODY", BODY.decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`flowboard serve` on one store, with the echo flow imported and active."""

    def __init__(self, kind: str, code: Path | None = None, settings: tuple[str, ...] = (), serve: bool = True):
        self.kind = kind
        self.code = code
        self.data = Path(tempfile.mkdtemp(prefix=f"flowboard-pgbench-{kind}-"))
        self.env = {**os.environ, "FLOWBOARD_DATA_DIR": str(self.data)}
        self.env.pop("FLOWBOARD_DATABASE_URL", None)
        if code is not None:  # another checkout's flowboard (a baseline), ahead of the installed one
            self.env["PYTHONPATH"] = str(code)
        self.database: str | None = None
        if kind.startswith("postgresql"):
            import psycopg

            self.database = f"fb_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {self.database}")
                for setting in settings:  # an experiment: what a server setting would pay
                    name, value = setting.split("=", 1)
                    conn.execute(f"ALTER DATABASE {self.database} SET {name} = '{value}'")
            self.env["FLOWBOARD_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.database
        if not serve:  # a fresh database only (--in-process)
            return
        flow = FLOW
        if ACCEPTED:  # the webhook answers at once; the run is recorded as queued first, then runs
            data = json.loads(FLOW.read_text())
            data["nodes"] = [n for n in data["nodes"] if n["type"] != "webhook.respond"]
            data["nodes"][0]["config"]["respond"] = "immediately"
            data["edges"] = [e for e in data["edges"] if e["target"] != "respond"]
            flow = self.data / "echo-accepted.json"
            flow.write_text(json.dumps(data))
        for args in (["import", str(flow)], ["activate", "bench-echo"]):
            # cwd: `python -m` puts the working folder first on sys.path, ahead of PYTHONPATH (the baseline)
            subprocess.run([sys.executable, "-m", "flowboard", *args], env=self.env, check=True, capture_output=True,
                           cwd=self.data)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook/echo"
        self.log = open(self.data / "server.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowboard", "serve", "--no-browser", "--port", str(self.port)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.data)
        self._ready()

    def _ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.kind} server stopped; see {self.data / 'server.log'}")
            try:
                request = urllib.request.Request(self.url, data=BODY, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if (answer.status == 200 and b"echoed" in answer.read()) or (ACCEPTED and answer.status == 202):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the {self.kind} server did not answer within 120 s")

    def runs(self) -> int:
        """How many runs of the echo flow the database holds, all finished (accepted runs: once none is queued or
        running any more, within a minute)."""
        deadline = time.monotonic() + 60
        while True:
            succeeded, going = self._count("status = 'succeeded'"), self._count("status IN ('queued', 'running')")
            if not going or time.monotonic() > deadline:
                return succeeded
            time.sleep(0.5)

    def _count(self, where: str) -> int:
        if self.kind == "sqlite":
            import sqlite3

            with sqlite3.connect(self.data / "flowboard.db") as db:
                return int(db.execute(f"SELECT count(*) FROM runs WHERE {where}").fetchone()[0])
        import psycopg

        with psycopg.connect(self.env["FLOWBOARD_DATABASE_URL"]) as conn:
            row = conn.execute(f"SELECT count(*) FROM runs WHERE {where}").fetchone()
            return int(row[0]) if row else 0

    def profile(self, seconds: int, out: Path, lua: Path, conns: int) -> int:
        """py-spy the server under one more wrk run; returns the calls answered."""
        spy = shutil.which("py-spy")
        if spy is None:
            print("py-spy is not on PATH (pip install py-spy): no profile", flush=True)
            return 0
        record = subprocess.Popen([spy, "record", "-p", str(self.proc.pid), "-d", str(seconds), "-f", "raw",
                                   "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        answered = int(wrk(self.url, lua, seconds, conns)["requests"])
        record.wait()
        print(f"profile of the {self.kind} server (py-spy raw, for flamegraph.pl or speedscope): {out}", flush=True)
        return answered

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the server (its process tree) and by its database's server processes
        (PostgreSQL's backends connected to the bench database; SQLite has none). Other processes on the machine do
        not add to these, so CPU per run is the figure that holds under load."""
        server = sum(_cpu_seconds(pid) for pid in _tree(self.proc.pid))
        if self.database is None:
            return server, 0.0
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                                   [self.database])]
        return server, sum(_cpu_seconds(pid) for pid in pids)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def drop(self) -> None:
        if self.database is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        shutil.rmtree(self.data, ignore_errors=True)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def wrk(url: str, lua: Path, seconds: int, conns: int) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(lua), url],
                         capture_output=True, text=True, check=False).stdout
    found = re.search(r"WRKJSON (\{.*\})", out)
    if not found:
        raise RuntimeError("wrk failed:\n" + out)
    return dict(json.loads(found.group(1)))


def in_process(kinds: list[str], repeats: int, seconds: float, conns: int, settings: tuple[str, ...]) -> None:
    """The recorder without HTTP: `conns` tasks run the echo flow back to back on one engine recording to each store
    (a fresh SQLite file, a fresh PostgreSQL database), for `seconds`, `repeats` times, the stores alternating."""
    import asyncio

    from flowboard.engine import Engine, build_plan
    from flowboard.model import parse_flow
    from flowboard.registry import default_registry
    from flowboard.store import SqlRecorder, Store

    plan = build_plan(parse_flow(json.loads(FLOW.read_text())), default_registry())
    item = {"body": json.loads(BODY), "headers": {}, "query": {}}

    async def load(engine: Engine) -> int:
        done = 0
        stop = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await engine.run(plan, [item], trigger="webhook")
                done += 1

        await asyncio.gather(*[client() for _ in range(conns)])
        return done

    async def main() -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        servers = {kind: Server(kind, settings=settings, serve=False) for kind in kinds}
        stores = {kind: Store(server.env.get("FLOWBOARD_DATABASE_URL") or f"sqlite:///{server.data / 'flowboard.db'}",
                              data_dir=server.data) for kind, server in servers.items()}
        engines = {kind: Engine(recorder=SqlRecorder(store)) for kind, store in stores.items()}
        rates: dict[str, list[float]] = {kind: [] for kind in kinds}
        cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
        try:
            for kind in kinds:
                await load(engines[kind])  # warm-up
            for r in range(repeats):
                for kind in kinds:
                    started, used = time.perf_counter(), time.process_time()
                    runs = await load(engines[kind])
                    rates[kind].append(runs / (time.perf_counter() - started))
                    cpu[kind].append((time.process_time() - used) / runs * 1e6)
                    print(f"{kind:10} run {r + 1}: {rates[kind][-1]:8,.0f} runs/s, {cpu[kind][-1]:.0f} µs of this "
                          f"process's CPU per run", flush=True)
        finally:
            for kind in kinds:
                await engines[kind].recorder.aclose()  # type: ignore[union-attr]
                stores[kind].close()
                servers[kind].drop()
        return rates, cpu

    rates, cpu = asyncio.run(main())
    print(f"\n# the echo flow run by the engine in this process, {conns} at a time, every run recorded ({repeats} x "
          f"{seconds} s, medians; load average {os.getloadavg()[0]:.1f})\n")
    median = {kind: statistics.median(values) for kind, values in rates.items()}
    for kind, value in median.items():
        print(f"| {kind} | {value:,.0f} runs/s | {statistics.median(cpu[kind]):.0f} µs CPU per run (this process) |")
    if {"sqlite", "postgresql"} <= set(median):
        print(f"\nPostgreSQL / SQLite: {median['postgresql'] / median['sqlite']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 x 5 s per store (iteration, not for reporting)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--conns", type=int, default=16, help="wrk connections (issue 13: 16)")
    parser.add_argument("--only", default="sqlite,postgresql", help="comma list of stores")
    parser.add_argument("--profile", action="store_true", help="py-spy record each server for one more run")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a PostgreSQL setting for the bench database (an experiment, e.g. synchronous_commit=off)")
    parser.add_argument("--baseline", type=Path, help="another checkout of Flowboard (git worktree add DIR COMMIT): "
                                                      "its PostgreSQL recording is measured alongside, as "
                                                      "'postgresql-base', to see what a change paid")
    parser.add_argument("--in-process", action="store_true", help="the recorder alone, no HTTP (see above)")
    parser.add_argument("--accepted", action="store_true", help="the webhook answers at once (202) with the run "
                                                                "recorded as queued (see above)")
    args = parser.parse_args()
    global ACCEPTED
    ACCEPTED = args.accepted
    if args.in_process:
        in_process([k for k in args.only.split(",")], 1 if args.quick else args.repeats,
                   3 if args.quick else args.duration, args.conns, tuple(args.pg_setting))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk, or ../shared/peers/setup.sh)")
    repeats, duration = (1, 5) if args.quick else (args.repeats, args.duration)
    kinds = args.only.split(",")
    if args.baseline:
        kinds.append("postgresql-base")
    lua = Path(tempfile.mkdtemp(prefix="flowboard-pgbench-")) / "post.lua"
    lua.write_text(LUA)
    servers: dict[str, Server] = {}
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    answered: dict[str, int] = dict.fromkeys(kinds, 1)  # the readiness probe is one run
    try:
        for kind in kinds:
            servers[kind] = Server(kind, args.baseline if kind.endswith("-base") else None, tuple(args.pg_setting))
            answered[kind] += wrk(servers[kind].url, lua, 2, args.conns)["requests"]  # warm-up
        for r in range(repeats):
            for kind in kinds:
                before = servers[kind].cpu()
                got = wrk(servers[kind].url, lua, duration, args.conns)
                after = servers[kind].cpu()
                answered[kind] += got["requests"]
                runs = max(1, got["requests"])
                got["server_us"] = (after[0] - before[0]) / runs * 1e6
                got["db_us"] = (after[1] - before[1]) / runs * 1e6
                results[kind].append(got)
                print(f"{kind:10} run {r + 1}: {got['rps']:8,.0f} req/s  p50 {got['p50_ms']:6.2f} ms  "
                      f"p99 {got['p99_ms']:7.2f} ms  errors {got['errors']}  CPU per run: server "
                      f"{got['server_us']:.0f} µs, database {got['db_us']:.0f} µs", flush=True)
        if args.profile:
            for kind in kinds:
                answered[kind] += servers[kind].profile(duration, lua.with_name(f"{kind}.txt"), lua, args.conns)
        time.sleep(1)  # let the last runs' writes land
        recorded = {kind: server.runs() for kind, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
            server.drop()
    flow = "echo webhook flow" + (" answering at once (accepted runs)" if ACCEPTED else "")
    print(f"\n# {flow}, every run recorded (wrk -t2 -c{args.conns}, {repeats} x {duration} s, medians; "
          f"load average {os.getloadavg()[0]:.1f})\n")
    print("| store | req/s | p50 ms | p99 ms | CPU µs per run: server + database | runs recorded / calls answered "
          "(wrk leaves up to c unanswered) |")
    print("|---|---|---|---|---|---|")
    median: dict[str, float] = {}
    for kind, runs in results.items():
        median[kind] = statistics.median(x["rps"] for x in runs)
        p50 = statistics.median(x["p50_ms"] for x in runs)
        p99 = statistics.median(x["p99_ms"] for x in runs)
        server = statistics.median(x["server_us"] for x in runs)
        db = statistics.median(x["db_us"] for x in runs)
        print(f"| {kind} | {median[kind]:,.0f} | {p50:.2f} | {p99:.2f} | {server:.0f} + {db:.0f} | "
              f"{recorded[kind]:,} / {answered[kind]:,} |")
    if {"sqlite", "postgresql"} <= set(median):
        ratio = median["postgresql"] / median["sqlite"]
        print(f"\nPostgreSQL / SQLite: {ratio:.2f}x (req/s, under load average {os.getloadavg()[0]:.1f})")
        if "postgresql-base" in median:
            base = median["postgresql-base"]
            print(f"baseline ({args.baseline}) PostgreSQL / SQLite: {base / median['sqlite']:.2f}x; "
                  f"this checkout over the baseline: {median['postgresql'] / base:.2f}x")
        print(f"verdict: {'PASS' if ratio >= TARGET else 'FAIL'} (issue 13 wants >= {TARGET}x)")


if __name__ == "__main__":
    main()
