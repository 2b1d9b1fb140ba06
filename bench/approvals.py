"""Approval decision to next node: how long from a person's decision (the POST's work: `ApprovalService.decide`) until
the node after the Approval node starts, for runs parked `waiting` in SQLite. Prints the median and the 95th
percentile; the issue's target is a median under 50 ms.

    python bench/approvals.py [--runs 200]          # in one process: the service's work
    python bench/approvals.py --http [--runs 100]   # the whole way: approver ada's POST /api/v1/approvals/<id>/decision
                                                    # to a `flowboard serve`, until the next node's HTTP call arrives
                                                    # at a local server
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

from flowboard.engine import Event, RunStatus
from flowboard.model import parse_flow
from flowboard.services import Flowboard

FLOW = {"id": "bench", "name": "bench", "nodes": [
    {"id": "start", "type": "trigger.manual"},
    {"id": "approve", "type": "approval", "config": {"approvers": "ada", "title": "Request {{ item.n }}"}},
    {"id": "next", "type": "data.set", "config": {"fields": [{"name": "done", "value": True}]}}],
    "edges": [{"source": "start", "target": "approve"},
              {"source": "approve", "source_port": "approve", "target": "next"}]}


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fb = Flowboard(data_dir=tmp)
        fb.store.save_flow(parse_flow(FLOW), None)
        started: dict[str, float] = {}
        arrived: dict[str, asyncio.Event] = {}

        def listen(event: Event) -> None:
            if event.kind == "node.started" and event.node_id == "next":
                started[event.run_id] = time.perf_counter()
                arrived[event.run_id].set()

        fb.bus.subscribe(listen)
        run_ids = []
        for n in range(runs):
            result = await fb.run_flow("bench", [{"n": n}])
            assert result.status is RunStatus.waiting, result.error
            run_ids.append(result.run_id)
            arrived[result.run_id] = asyncio.Event()
        tasks = {t.run_id: t for t in fb.approvals.store.list_tasks(status="open", limit=runs)}
        latencies = []
        for run_id in run_ids:
            t0 = time.perf_counter()
            await fb.approvals.decide(tasks[run_id].id, "approve", "ada", roles=[])
            await asyncio.wait_for(arrived[run_id].wait(), 10)
            latencies.append((started[run_id] - t0) * 1000)
        await asyncio.sleep(0.2)
        await fb.aclose()
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    median = statistics.median(latencies)
    print(f"decision to next node, {runs} waiting runs on SQLite: median {median:.1f} ms, p95 {p95:.1f} ms "
          f"({'meets' if median < 50 else 'MISSES'} the 50 ms target)")


def over_http(runs: int) -> None:
    """The decision as an approver makes it through the API, with her own key, against a real server."""
    import json
    import sys
    from pathlib import Path

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from waiting import Server, Sink

    sink = Sink()
    flow = json.loads(json.dumps(FLOW))
    flow["nodes"][0] = {"id": "start", "type": "trigger.webhook", "config": {"path": "ask", "respond": "immediately"}}
    flow["nodes"][2] = {"id": "next", "type": "http.request", "config": {
        "method": "POST", "url": sink.url, "body": {"type": "raw", "content_type": "application/json",
                                                     "text": '{"run": "{{ run.id }}"}'}}}
    with tempfile.TemporaryDirectory() as tmp:
        fb = Flowboard(data_dir=tmp)
        boss = fb.accounts.add_user("boss", "boss-password-1", ["admin"])
        ada = fb.accounts.add_user("ada", "ada-password-1", ["approver"])
        _info, key = fb.store.create_api_key("ada's key", ada.id)
        _info, admin = fb.store.create_api_key("the bench's checks", boss.id)
        fb.import_flow(json.dumps(flow))
        fb.activate("bench")
        fb.store.close()
        server = Server(Path(tmp))
        server.start()
        latencies = []
        try:
            with httpx.Client(timeout=30, headers={"X-API-Key": key}) as client:
                for n in range(runs):
                    run_id = client.post(f"{server.url}/webhook/ask", json={"n": n}).json()["run_id"]
                    while not (tasks := client.get(f"{server.url}/api/v1/approvals",
                                                   params={"run_id": run_id}).json()["tasks"]):
                        time.sleep(0.005)
                    while client.get(f"{server.url}/api/v1/runs/{run_id}",
                                     headers={"X-API-Key": admin}).json()["status"] != "waiting":
                        time.sleep(0.005)
                    sink.event.clear()
                    sent = time.perf_counter()
                    answer = client.post(f"{server.url}/api/v1/approvals/{tasks[0]['id']}/decision",
                                         json={"outcome": "approve"})
                    assert answer.status_code == 200, answer.text
                    while run_id not in sink.arrived:
                        assert sink.event.wait(10), f"run {run_id} never reached the next node"
                        sink.event.clear()
                    latencies.append((sink.arrived[run_id] - sent) * 1000)
        finally:
            server.stop()
            sink.server.shutdown()
    median = statistics.median(latencies)
    import os

    print(f"decision POST (approver's API key) to the next node's call, {runs} runs, flowboard serve on SQLite: "
          f"median {median:.1f} ms, p90 {statistics.quantiles(latencies, n=10)[-1]:.1f} ms (load average "
          f"{os.getloadavg()[0]:.1f}; {'meets' if median < 50 else 'MISSES'} the 50 ms target)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--http", action="store_true", help="decide through the API of a real server")
    args: Any = parser.parse_args()
    if args.http:
        over_http(args.runs or 100)
    else:
        asyncio.run(main(args.runs or 200))
