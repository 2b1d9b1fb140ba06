"""Webhook → queue → worker → recorded: runs per second with 1 and 2 workers, and what the queue adds to the time a
run waits before it starts, against the in-process dispatcher. All on PostgreSQL (127.0.0.1:5432, a schema of its
own, dropped after), real processes: one `flowboard serve`, N `flowboard worker`.

    python bench/workers.py                 # 500 runs per setting
    python bench/workers.py --runs 5000     # the issue's 5,000

Per setting: N webhook calls (respond immediately, 16 at a time) to a flow whose one step is an HTTP call to a local
counting server. Figures from the store: throughput = N / (last run finished - first run created). Then the queue's
own latency, apart from any backlog: 50 calls one after the other (each waits for the run before the next), start
latency = run started - run created (the run is recorded as queued when the call is accepted), p50 and p99. The
in-process line is the same flow run by the server itself (`--dispatch process`): the difference is the queue's cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowboard.store.tables import runs_t
from tests.test_workers import count_flow, post_all
from tests.workerkit import Cluster, Counting

LATENCY_RUNS = 50


def one(runs: int, workers: int, dispatch: str) -> dict[str, float]:
    counting = Counting()
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp), workers=workers, concurrency=16,
                                                       dispatch=dispatch) as cluster:
        cluster.save(count_flow(counting.url))
        cluster.start()
        assert cluster.server is not None
        post_all(cluster.server.url, 20)  # warm up: imports, connections, plans
        cluster.wait_all_finished(20, timeout=120)
        before = time.time()
        run_ids = post_all(cluster.server.url, runs)
        cluster.wait_all_finished(20 + runs, timeout=1200)
        rows = _rows(cluster, run_ids)
        singles = []
        for _ in range(LATENCY_RUNS):  # one at a time: no backlog, the queue's own delay
            singles += post_all(cluster.server.url, 1)
            cluster.wait_all_finished(20 + runs + len(singles), timeout=60)
        single_rows = _rows(cluster, singles)
    counting.close()
    assert all(r.status == "succeeded" for r in rows + single_rows)
    assert min(r.created for r in rows) >= before - 1
    waits = sorted((r.started - r.created) * 1000 for r in single_rows if r.started is not None)
    span = max(r.finished for r in rows) - min(r.created for r in rows)
    return {"runs_per_s": runs / span, "p50_ms": statistics.median(waits),
            "p99_ms": waits[min(len(waits) - 1, int(0.99 * len(waits)))], "n": len(waits)}


def _rows(cluster: Cluster, run_ids: list[str]) -> list[Any]:
    assert cluster.store is not None
    with cluster.store.engine.connect() as conn:
        return list(conn.execute(sa.select(runs_t.c.created, runs_t.c.started, runs_t.c.finished, runs_t.c.status)
                                 .where(runs_t.c.id.in_(run_ids))).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    results = {}
    for label, workers, dispatch in (("in-process (server)", 0, "process"), ("1 worker", 1, "procrastinate"),
                                     ("2 workers", 2, "procrastinate")):
        results[label] = one(args.runs, workers, dispatch)
        r = results[label]
        print(f"{label:20} {r['runs_per_s']:7.1f} runs/s   start latency p50 {r['p50_ms']:7.1f} ms   "
              f"p99 {r['p99_ms']:8.1f} ms   ({args.runs} runs; latency over {int(r['n'])} single runs)",
              flush=True)
    base = results["in-process (server)"]
    for label in ("1 worker", "2 workers"):
        r = results[label]
        print(f"{label}: {r['runs_per_s'] / base['runs_per_s']:.2f}x the in-process rate; the queue adds "
              f"{r['p50_ms'] - base['p50_ms']:.1f} ms at p50, {r['p99_ms'] - base['p99_ms']:.1f} ms at p99")
    print(f"2 workers / 1 worker: {results['2 workers']['runs_per_s'] / results['1 worker']['runs_per_s']:.2f}x")


if __name__ == "__main__":
    main()
