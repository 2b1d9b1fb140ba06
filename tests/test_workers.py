"""`flowboard worker`: one server and two workers on PostgreSQL (processes the test starts), runs fed through
Procrastinate. Webhook runs whose side effect is a call to a counting server; one worker is killed (-9) in the middle;
every run succeeds and every side effect happens once, except the calls in flight at the kill (counted and printed:
the HTTP request node is not retry-safe, so such a repeat is the one the issue allows to report)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import require_service
from .workerkit import Cluster, Counting, pg_admin

pytestmark = pytest.mark.postgres
RUNS = int(os.environ.get("FLOWBOARD_TEST_WORKER_RUNS", "300"))  # bench/workers.py runs the 5,000


@pytest.fixture
def counting() -> Iterator[Counting]:
    server = Counting(delay=0.01)
    yield server
    server.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    admin = pg_admin()
    require_service("PostgreSQL on 127.0.0.1:5432", admin is not None)
    admin.close()
    with Cluster(tmp_path, workers=2, concurrency=8) as running:
        yield running


def count_flow(counter: str, **settings: Any) -> dict[str, Any]:
    return {"id": "count", "name": "Count", "settings": settings, "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"path": "count", "respond": "immediately"}},
        {"id": "call", "type": "http.request",
         "config": {"method": "POST", "url": counter + "/hit?n={{ item.body.n }}"}}],
        "edges": [{"source": "hook", "target": "call"}]}


def post_all(url: str, count: int, on_sent: Any = None) -> list[str]:
    """POST `{"n": i}` for i in 0..count-1, 16 at a time; returns the run ids (202 each)."""
    def one(i: int) -> str:
        with httpx.Client(timeout=30) as client:
            answer = client.post(f"{url}/webhook/count", json={"n": i})
        assert answer.status_code == 202, answer.text
        if on_sent is not None:
            on_sent(i)
        return str(answer.json()["run_id"])

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def test_webhook_runs_on_two_workers_survive_a_killed_worker(cluster: Cluster, counting: Counting) -> None:
    cluster.save(count_flow(counting.url))
    cluster.start()
    assert cluster.server is not None
    killed = False

    def maybe_kill(i: int) -> None:
        nonlocal killed
        if not killed and counting.total() >= RUNS // 3:
            killed = True
            cluster.workers[0].kill()

    started = time.monotonic()
    run_ids = post_all(cluster.server.url, RUNS, maybe_kill)
    if not killed:  # the runs were faster than the calls: kill now, the rest still resumes
        cluster.workers[0].kill()
    statuses = cluster.wait_all_finished(RUNS, timeout=60)
    took = time.monotonic() - started
    assert len(set(run_ids)) == RUNS
    assert statuses == {"succeeded": RUNS}, statuses
    missing = [str(i) for i in range(RUNS) if counting.hits[str(i)] == 0]
    assert not missing, f"{len(missing)} side effects never happened: {missing[:10]}"
    repeats = {n: c - 1 for n, c in counting.hits.items() if c > 1}
    killed_jobs = cluster.workers[0].output.count("Starting job")
    recovered = cluster.workers[1].output.count("tried again")
    print(f"\n{RUNS} runs on 2 workers in {took:.1f} s; the killed one had started {killed_jobs} jobs, {recovered} "
          f"of them were in flight and handed on; side effects repeated: {sum(repeats.values())}")
    assert killed_jobs > 0, "the killed worker ran nothing: the test did not test a kill in the middle"
    assert sum(repeats.values()) <= cluster.concurrency, f"more repeats than runs in flight at the kill: {repeats}"
    assert not cluster.server.errors(), cluster.server.errors()
