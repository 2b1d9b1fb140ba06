"""Runs that wait: what 10,000 parked runs cost a server, how fast it restarts with them, how fast one resumes.

    python bench/waiting.py              # 10,000 waiting runs (a few minutes on a 2-core machine)
    python bench/waiting.py --runs 1000  # quicker

Everything runs on loopback against a real `flowboard serve` in a subprocess, on SQLite in a temporary data folder.

(a) memory: the server's RSS idle (after warming up), then after N webhook calls whose runs each park at a Wait node
    set to "resume link" (nothing of a parked run stays in memory; only its rows in the database). Target: the
    growth is < 50 MB for 10,000 runs.
(b) restart: the server is stopped and started again with the N runs waiting; time from the start of the process to
    its first answer, and the CPU time the process used until then (what the wall time would be on an idle
    machine: on a shared, loaded one the wall time is mostly waiting for a core), beside the same restart with no run
    waiting. Medians of 3. Nothing at start reads the waiting runs (the timer reads one earliest deadline), so both
    should match: importing and building the app is the cost. Target: < 3 s.
(c) resume latency: a run waiting at its resume link is resumed by a POST of the link; the time from sending the POST
    to the next node's HTTP call arriving at a local server. Median of 50. Target: < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from flowboard.services import Flowboard
from flowboard.store import Store
from flowboard.waiting import LINK_PATH, resume_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """A local HTTP server that notes when each call arrives (the node after the wait)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.event = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                sink.arrived[json.loads(body or b"{}").get("run", "")] = time.perf_counter()
                sink.event.set()
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/next"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def flows(sink_url: str) -> list[dict[str, Any]]:
    def hook(path: str) -> dict[str, Any]:
        return {"id": "hook", "type": "trigger.webhook", "config": {"path": path, "respond": "immediately"}}

    wait = {"id": "wait", "type": "logic.wait", "config": {"mode": "link"}}
    mark = {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "done", "value": True}]}}
    call = {"id": "next", "type": "http.request", "config": {
        "method": "POST", "url": sink_url, "body": {"type": "raw", "content_type": "application/json",
                                                      "text": '{"run": "{{ run.id }}"}'}}}

    def chain(flow_id: str, *nodes: dict[str, Any]) -> dict[str, Any]:
        edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
        return {"id": flow_id, "name": flow_id, "nodes": list(nodes), "edges": edges}

    return [chain("park", hook("park"), wait, mark), chain("latency", hook("latency"), wait, call)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, data: Path):
        self.data = data
        self.cpu = 0.0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for the first answer; returns the seconds that took (and notes the CPU seconds used)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
        env["FLOWBOARD_DATA_DIR"] = str(self.data)
        began = time.perf_counter()
        with (self.data / "server.log").open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(self.port),
                                          "--no-browser"], env=env, stdout=log, stderr=subprocess.STDOUT)
        with httpx.Client(timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    raise SystemExit((self.data / "server.log").read_text())
                try:
                    client.get(f"{self.url}/webhook/none")
                    took = time.perf_counter() - began
                    self.cpu = cpu_seconds(self.proc.pid)
                    return took
                except httpx.TransportError:
                    time.sleep(0.01)

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def park(url: str, count: int, concurrency: int = 32) -> list[str]:
    """`count` webhook calls, each starting a run that parks; returns their run ids."""
    ids: list[str] = []
    queue = iter(range(count))
    async with httpx.AsyncClient(timeout=30) as client:
        async def worker() -> None:
            for i in queue:
                answer = await client.post(f"{url}/webhook/park", json={"i": i})
                answer.raise_for_status()
                ids.append(answer.json()["run_id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


def waiting_count(data: Path) -> int:
    store = Store(data_dir=data)
    try:
        return len(store.list_runs(flow_id="park", status="waiting", limit=1_000_000))
    finally:
        store.close()


def settle(data: Path, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while waiting_count(data) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {waiting_count(data)} of {expected} runs parked")
        time.sleep(0.5)


def restarts(server: Server, times: int = 3) -> tuple[float, float]:
    """Medians of `times` starts (each stopped again): wall seconds to the first answer, CPU seconds used by then."""
    walls, cpus = [], []
    for _ in range(times):
        walls.append(server.start())
        cpus.append(server.cpu)
        server.stop()
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    sink = Sink()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)

        async def setup() -> bytes:
            fb = Flowboard(data_dir=data)
            for flow in flows(sink.url):
                fb.import_flow(json.dumps(flow))
                fb.activate(flow["id"])
            key = fb.link_key()
            await fb.aclose()
            return key

        key = asyncio.run(setup())
        server = Server(data)
        try:
            server.start()
            server.stop()
            baseline, baseline_cpu = restarts(server)  # no run waiting: what importing and starting costs
            server.start()
            asyncio.run(park(server.url, 200))  # warm up: plans, statements, connections, allocator
            settle(data, 200)
            time.sleep(1)
            idle = server.rss_mb()
            began = time.perf_counter()
            asyncio.run(park(server.url, args.runs))
            settle(data, args.runs + 200)
            took = time.perf_counter() - began
            time.sleep(2)
            loaded = server.rss_mb()
            grown = loaded - idle
            print(f"(a) {args.runs:,} runs parked in {took:.1f} s ({args.runs / took:,.0f}/s); server RSS idle "
                  f"{idle:.1f} MB, with them waiting {loaded:.1f} MB: +{grown:.1f} MB "
                  f"(target < 50 MB for 10,000) {'OK' if grown < 50 * args.runs / 10_000 else 'MISSED'}")

            server.stop()
            ready, ready_cpu = restarts(server)
            server.start()
            verdict = "OK" if ready < 3 else "OK in CPU time (the wall time is the load)" if ready_cpu < 3 else "MISSED"
            print(f"(b) restart with {waiting_count(data):,} runs waiting: ready in {ready:.2f} s wall, "
                  f"{ready_cpu:.2f} s CPU; with none waiting {baseline:.2f} s wall, {baseline_cpu:.2f} s CPU "
                  f"(CPU ratio {ready_cpu / baseline_cpu:.2f}; load average {os.getloadavg()[0]:.1f}) "
                  f"(target < 3 s) {verdict}")

            latencies: list[float] = []
            with httpx.Client(timeout=30) as client:
                for _ in range(args.samples):
                    run_id = client.post(f"{server.url}/webhook/latency", json={}).json()["run_id"]
                    link = f"{server.url}{LINK_PATH}/{run_id}/{resume_token(key, run_id)}"
                    store = Store(data_dir=data)
                    while not store.waits_of(run_id):
                        time.sleep(0.005)
                    store.close()
                    sink.event.clear()
                    sent = time.perf_counter()
                    assert client.post(link, json={"ok": True}).status_code == 202
                    sink.event.wait(10)
                    latencies.append((sink.arrived[run_id] - sent) * 1000)
            median = statistics.median(latencies)
            print(f"(c) resume to the next node: median {median:.1f} ms, p90 "
                  f"{statistics.quantiles(latencies, n=10)[-1]:.1f} ms over {len(latencies)} "
                  f"(target < 50 ms) {'OK' if median < 50 else 'MISSED'}")
        finally:
            server.stop()
            sink.server.shutdown()


if __name__ == "__main__":
    main()
