"""Webhook → queue → worker → recorded: runs per second with 1 and 2 workers, and what the queue adds to the time a
run waits before it starts, against the in-process dispatcher. All on PostgreSQL (127.0.0.1:5432, a schema of its
own, dropped after), real processes: one `flowboard serve`, N `flowboard worker`.

    python bench/workers.py                 # 500 runs per setting
    python bench/workers.py --runs 5000     # the issue's 5,000
    python bench/workers.py --kill 5000     # 5,000 runs on 2 workers, one killed (-9) after a third of them

Per setting: N webhook calls (respond immediately, 16 at a time) to a flow whose one step is an HTTP call to a local
counting server. Figures from the store: throughput = N / (last run finished - first run created). Then the queue's
own latency, apart from any backlog: 50 calls one after the other (each waits for the run before the next), start
latency = run started - run created (the run is recorded as queued when the call is accepted), p50 and p99. The
in-process line is the same flow run by the server itself (`--dispatch process`): the difference is the queue's cost.

`--kill N`: N such runs on two workers, and `kill -9` of one once a third of the side effects happened. The counting
server honours the HTTP node's repeat-safe key (Idempotency-Key) as Stripe's API does: it reports the runs that
succeeded, the side effects done once, the distinct keys, and the calls sent again (with their key) by the runs that
were in flight at the kill and resumed on the other worker.
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


def killed(runs: int) -> dict[str, float]:
    counting = Counting(delay=0.01)
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp), workers=2, concurrency=16) as cluster:
        cluster.save(count_flow(counting.url))
        cluster.start()
        assert cluster.server is not None
        post_all(cluster.server.url, 20, first=runs)  # warm up: imports, connections, plans
        cluster.wait_all_finished(20, timeout=120)
        kill: list[float] = []

        def maybe_kill(i: int) -> None:
            if not kill and sum(counting.hits[str(n)] for n in range(runs)) >= runs // 3:
                kill.append(time.monotonic())
                cluster.workers[0].kill()

        started = time.monotonic()
        run_ids = post_all(cluster.server.url, runs, maybe_kill)
        if not kill:  # the runs were faster than the calls: kill now, the rest still resumes
            kill.append(time.monotonic())
            cluster.workers[0].kill()
        cluster.wait_all_finished(20 + runs, timeout=3600)
        took = time.monotonic() - started
        succeeded = cluster.statuses_of(run_ids)["succeeded"]
        handed_on = sum(w.output.count("tried again") for w in cluster.workers[1:])
        killed_jobs = cluster.workers[0].output.count("Starting job")
    counting.close()
    ns = [str(i) for i in range(runs)]
    keys = set().union(*(counting.keys_of.get(n, set()) for n in ns))
    return {"runs": runs, "succeeded": succeeded, "once": sum(counting.hits[n] == 1 for n in ns),
            "twice": sum(counting.hits[n] > 1 for n in ns), "keys": len(keys - {None}),
            "unkeyed": sum(None in counting.keys_of.get(n, set()) for n in ns),
            "sent_again": sum(counting.raw[n] - 1 for n in ns if counting.raw[n] > 1),
            "handed_on": handed_on, "killed_jobs": killed_jobs, "took_s": took, "kill_at_s": kill[0] - started}


def _rows(cluster: Cluster, run_ids: list[str]) -> list[Any]:
    assert cluster.store is not None
    with cluster.store.engine.connect() as conn:
        return list(conn.execute(sa.select(runs_t.c.created, runs_t.c.started, runs_t.c.finished, runs_t.c.status)
                                 .where(runs_t.c.id.in_(run_ids))).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--kill", type=int, metavar="N", help="only the kill figure, with N runs")
    args = parser.parse_args()
    if args.kill:
        k = killed(args.kill)
        print(f"{k['runs']} webhook runs on 2 workers, one killed (-9) {k['kill_at_s']:.1f} s in (it had started "
              f"{k['killed_jobs']} jobs; {k['handed_on']} in flight were handed on): {k['succeeded']} succeeded in "
              f"{k['took_s']:.1f} s; side effects done once: {k['once']}, twice: {k['twice']}; distinct keys "
              f"{k['keys']} (calls without one: {k['unkeyed']}); calls sent again with their key: "
              f"{k['sent_again']}")
        return
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
