"""Approval decision to next node: how long from a person's decision (the POST's work: `ApprovalService.decide`) until
the node after the Approval node starts, for runs parked `waiting` in SQLite. Prints the median and the 95th
percentile; the issue's target is a median under 50 ms.

    python bench/approvals.py [--runs 200]
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args: Any = parser.parse_args()
    asyncio.run(main(args.runs))
