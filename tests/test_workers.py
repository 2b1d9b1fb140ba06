"""`flowboard worker`: one server and two workers on PostgreSQL (processes the test starts), runs fed through
Procrastinate. Webhook runs whose side effect is a call to a counting server; one worker is killed (-9) in the middle;
every run succeeds and every side effect happens exactly once: the calls in flight at the kill are sent again when
their runs resume elsewhere, with the same repeat-safe key (Idempotency-Key), which the counting server honours as
Stripe's API does; such raw repeats are counted and printed."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .browser import free_port
from .conftest import require_service
from .workerkit import Cluster, Counting, pg_admin

pytestmark = pytest.mark.postgres
RUNS = int(os.environ.get("FLOWBOARD_TEST_WORKER_RUNS", "200"))  # bench/workers.py runs the 5,000


@pytest.fixture(scope="module")
def counting() -> Iterator[Counting]:
    server = Counting(delay=0.01)
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, counting: Counting) -> Iterator[Cluster]:
    """Two servers (runs go to the queue) and two workers on one PostgreSQL schema, for the whole module; the
    killing test comes last."""
    admin = pg_admin()
    require_service("PostgreSQL on 127.0.0.1:5432", admin is not None)
    admin.close()
    with Cluster(tmp_path_factory.mktemp("workers"), workers=2, concurrency=8) as running:
        running.save(count_flow(counting.url))
        running.save(slow_flow(counting.url))
        running.save(echo_flow(), active=False)
        running.save(serial_flow(counting.url))
        running.save(tick_flow(), active=False)
        running.save({**serial_flow(counting.url), "id": "parked", "name": "Parked", "settings": {}, "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "parked", "respond": "immediately"}},
            {"id": "wait", "type": "logic.wait", "config": {"mode": "link"}},
            {"id": "call", "type": "http.request",
             "config": {"method": "POST", "url": counting.url + "/hit?n=parked"}}],
            "edges": [{"source": "hook", "target": "wait"}, {"source": "wait", "target": "call"}]})
        running.save({**serial_flow(counting.url), "id": "pausing", "name": "Pausing", "settings": {}, "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "pausing", "respond": "immediately"}},
            {"id": "call", "type": "http.request", "config": {"method": "POST", "url": counting.url + "/pause"}}]})
        running.save({**serial_flow(counting.url), "id": "skipper", "name": "Skipper",
                      "settings": {"run_mode": "skip"}, "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "skipper", "respond": "immediately"}},
            {"id": "call", "type": "http.request", "config": {"method": "POST", "url": counting.url + "/pause"}}]})
        running.save({**echo_flow(), "id": "answer", "name": "Answer", "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "answer"}},
            {"id": "mark", "type": "data.set",
             "config": {"fields": [{"name": "seen", "value": "{{ item.body.n }}"}]}}]})
        running.save({**echo_flow(), "id": "branch", "name": "Branch", "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "branch"}},
            {"id": "check", "type": "logic.if", "config": {"conditions": [{"field": "body.big", "op": "is_true"}]}},
            {"id": "big", "type": "data.set", "config": {"fields": [{"name": "size", "value": "big"}]}},
            {"id": "small", "type": "data.set", "config": {"fields": [{"name": "size", "value": "small"}]}},
            {"id": "done", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}],
            "edges": [{"source": "hook", "target": "check"},
                      {"source": "check", "target": "big", "source_port": "true"},
                      {"source": "check", "target": "small", "source_port": "false"},
                      {"source": "small", "target": "done"}]})
        running.save({**tick_flow(), "id": "tickskip", "name": "Tick, skip", "settings": {"run_mode": "skip"},
                      "nodes": [tick_flow()["nodes"][0], {"id": "call", "type": "http.request", "config": {
                          "method": "POST", "url": counting.url + "/serial"}},
                                {"id": "wait", "type": "http.request", "config": {
                                    "method": "POST", "url": counting.url + "/pause"}},
                                {"id": "more", "type": "http.request", "config": {
                                    "method": "POST", "url": counting.url + "/pause"}}],
                      "edges": [{"source": "every", "target": "call"}, {"source": "call", "target": "wait"},
                                {"source": "wait", "target": "more"}]},
                     active=False)
        running.save({"id": "loopbody", "name": "Loop body", "nodes": [
            {"id": "called", "type": "trigger.called"},
            {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}],
            "edges": [{"source": "called", "target": "mark"}]})
        running.save({**echo_flow(), "id": "looping", "name": "Looping", "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "looping"}},
            {"id": "loop", "type": "logic.loop", "config": {"flow": "Loop body", "batch_size": 1}}],
            "edges": [{"source": "hook", "target": "loop"}]})
        from flowboard.datatables import Column, TableSchema
        from flowboard.store.datatables import DataTables

        assert running.store is not None
        DataTables(running.store.engine).create(TableSchema(name="Tasks", columns=[Column(name="task")]))
        running.save({"id": "tableskip", "name": "Table, skip", "settings": {"run_mode": "skip"}, "nodes": [
            {"id": "changed", "type": "trigger.table", "config": {"table": "Tasks", "events": ["insert"]}},
            {"id": "call", "type": "http.request", "config": {"method": "POST", "url": counting.url + "/slow"}}],
            "edges": [{"source": "changed", "target": "call"}]})
        running.save({"id": "unkeyed", "name": "Unkeyed", "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": "unkeyed", "respond": "immediately"}},
            {"id": "call", "type": "http.request",
             "config": {"method": "POST", "url": counting.url + "/slow", "idempotency_key": False}}],
            "edges": [{"source": "hook", "target": "call"}]})
        running.start(servers=2)
        yield running


def count_flow(counter: str, **settings: Any) -> dict[str, Any]:
    return {"id": "count", "name": "Count", "settings": settings, "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"path": "count", "respond": "immediately"}},
        {"id": "call", "type": "http.request",
         "config": {"method": "POST", "url": counter + "/hit?n={{ item.body.n }}"}}],
        "edges": [{"source": "hook", "target": "call"}]}


def slow_flow(counter: str) -> dict[str, Any]:
    return {"id": "slow", "name": "Slow", "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"path": "slow", "respond": "immediately"}},
        {"id": "call", "type": "http.request", "config": {"method": "POST", "url": counter + "/slow"}}],
        "edges": [{"source": "hook", "target": "call"}]}


def tick_flow() -> dict[str, Any]:
    return {"id": "tick", "name": "Tick", "nodes": [
        {"id": "every", "type": "trigger.schedule",
         "config": {"schedule": {"type": "interval", "every": 1, "unit": "seconds"}, "missed": "skip"}},
        {"id": "mark", "type": "data.set",
         "config": {"fields": [{"name": "seen", "value": "{{ item.scheduled_for }}"}]}}],
        "edges": [{"source": "every", "target": "mark"}]}


def serial_flow(counter: str) -> dict[str, Any]:
    return {"id": "serial", "name": "One at a time", "settings": {"run_mode": "queued"}, "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"path": "serial", "respond": "immediately"}},
        {"id": "call", "type": "http.request", "config": {"method": "POST", "url": counter + "/serial"}}],
        "edges": [{"source": "hook", "target": "call"}]}


def echo_flow() -> dict[str, Any]:
    return {"id": "echo", "name": "Echo", "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"path": "echo"}},
        {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}],
        "edges": [{"source": "hook", "target": "mark"}]}


def ran_on_a_server(cluster: Cluster, owner: str | None) -> bool:
    """Whether `owner` (host:pid:random, `Store.owner`) is one of the servers."""
    pids = {server.process.pid for server in [cluster.server, *cluster.servers] if server is not None}
    return any(f":{pid}:" in str(owner) for pid in pids)


def until(check: Any, timeout: float, step: float = 0.02) -> float:
    """Seconds until `check()` is true (AssertionError after `timeout`)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


def test_an_activation_change_reaches_the_second_server(cluster: Cluster) -> None:
    """Switching a flow on or off on one server reaches the other (PostgreSQL notifies it; typically within a second,
    printed: a latency is measured in bench/, a test on a loaded machine only waits for it)."""
    first, second = cluster.server, cluster.servers[0]
    assert first is not None
    assert httpx.post(f"{second.url}/webhook/echo", json={}).status_code == 404
    with cluster.api(first) as api:
        assert api.post("/flows/echo/activate").status_code == 200
        took = until(lambda: httpx.post(f"{second.url}/webhook/echo", json={}).status_code == 200, timeout=30)
        print(f"\nactivation seen by the second server after {took * 1000:.0f} ms")
        assert api.post("/flows/echo/deactivate").status_code == 200
        took = until(lambda: httpx.post(f"{second.url}/webhook/echo", json={}).status_code == 404, timeout=30)
        print(f"deactivation seen by the second server after {took * 1000:.0f} ms")


def test_cancel_on_the_server_stops_the_run_on_its_worker(cluster: Cluster, counting: Counting) -> None:
    assert cluster.server is not None and cluster.store is not None
    store = cluster.store
    run_id = httpx.post(f"{cluster.server.url}/webhook/slow", json={}).json()["run_id"]
    until(lambda: store.get_run(run_id).owner is not None, timeout=30, step=0.1)  # a worker took it
    until(lambda: counting.slow > 0, timeout=30, step=0.05)  # and is in its call
    owner = store.get_run(run_id).owner
    with cluster.api() as api:
        answer = api.post(f"/runs/{run_id}/cancel")
    assert answer.status_code in (200, 202), answer.text
    took = until(lambda: store.get_run(run_id).status.value == "cancelled", timeout=30, step=0.05)
    run = store.get_run(run_id)
    assert run.owner == owner and run.error == {"message": "the run was cancelled"}, run
    print(f"\ncancel reached worker {owner} and was recorded within {took * 1000:.0f} ms of the answer")


def test_a_webhook_answers_with_the_result_of_a_run_on_a_worker(cluster: Cluster) -> None:
    """"Respond when finished" with the run on a worker: the worker's notice (NOTIFY) brings the answer."""
    assert cluster.server is not None
    times = []
    for n in range(5):
        started = time.monotonic()
        answer = httpx.post(f"{cluster.server.url}/webhook/answer", json={"n": n}, timeout=30)
        times.append(time.monotonic() - started)
        assert answer.status_code == 200, answer.text
        assert answer.json()["seen"] == n
    print(f"\nanswered through a worker in {statistics.median(times) * 1000:.0f} ms (median of 5)")


def test_two_servers_fire_each_tick_once_and_workers_run_it(cluster: Cluster) -> None:
    """A schedule every second, served by both servers: each tick is claimed once and run on a worker."""
    assert cluster.store is not None
    store = cluster.store
    with cluster.api() as api:
        assert api.post("/flows/tick/activate").status_code == 200
        until(lambda: len([r for r in store.list_runs("tick", limit=100) if r.status.value == "succeeded"]) >= 4,
              timeout=30, step=0.2)
        assert api.post("/flows/tick/deactivate").status_code == 200
    time.sleep(1.5)  # a tick claimed just before the deactivation still runs
    until(lambda: all(r.status.value == "succeeded" for r in store.list_runs("tick", limit=100)), timeout=30)
    runs = store.list_runs("tick", limit=100)
    ticks = [r.input[0]["scheduled_for"] for r in runs]
    assert len(set(ticks)) == len(ticks), f"a tick ran twice: {sorted(ticks)}"
    assert not any(ran_on_a_server(cluster, r.owner) for r in runs), "a server ran a scheduled run itself"


async def test_a_servers_views_hear_the_runs_workers_start_and_end(cluster: Cluster) -> None:
    """What the runs page and the editor of any server hear (its event bus) of a run that a worker runs: the run's
    start and end, and between them every node's status in order, with item counts and no items or error text."""
    from flowboard.services import Flowboard

    assert cluster.server is not None
    fb = Flowboard(cluster.data_dir, database=cluster.url)  # one more process's view of the same database
    events: list[Any] = []
    fb.bus.subscribe(events.append)
    fb.start_notices()
    try:
        await asyncio.wait_for(fb.notices.listening.wait(), 30)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{cluster.server.url}/webhook/branch", json={"big": False})
        assert answer.status_code == 200, answer.text
        for _ in range(600):
            mine = [e for e in events if e.flow_id == "branch"]  # other flows' runs go on (a schedule)
            if ("run.finished", "succeeded") in [(e.kind, e.status) for e in mine]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # nothing more comes: no worker passes on what it heard from another (an echo)
        mine = [e for e in events if e.flow_id == "branch"]
        assert len({e.run_id for e in mine}) == 1, mine
        seen = [(e.kind, e.node_id, e.status, e.count) for e in mine]
        assert seen[0] == ("run.started", None, "running", None), seen
        assert seen[-1][:3] == ("run.finished", None, "succeeded"), seen
        nodes = seen[1:-1]
        for node in ("hook", "check", "small", "done"):  # each node started, then finished with its one item
            its = [s for s in nodes if s[1] == node]
            assert its == [("node.started", node, "running", None), ("node.finished", node, "succeeded", 1)], seen
        assert [s for s in nodes if s[1] == "big"] == [("node.skipped", "big", "skipped", None)], seen
        order = [s[1] for s in nodes if s[0] == "node.finished"]
        assert order.index("hook") < order.index("check") < order.index("small") < order.index("done"), order
        assert all(e.message is None and not e.data for e in mine), "node events carry no text or items"
    finally:
        await fb.aclose()


async def test_a_servers_views_hear_the_progress_of_a_node_a_worker_runs(cluster: Cluster) -> None:
    """A node that says its progress (`ctx.progress`: here Loop over items, batch by batch) on a worker: the servers'
    views hear it as node.progress events with the count, before the node's end, and without its sentence."""
    from flowboard.services import Flowboard

    assert cluster.server is not None
    fb = Flowboard(cluster.data_dir, database=cluster.url)
    events: list[Any] = []
    fb.bus.subscribe(events.append)
    fb.start_notices()
    try:
        await asyncio.wait_for(fb.notices.listening.wait(), 30)
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.post(f"{cluster.server.url}/webhook/looping", json={"n": 1})
        assert answer.status_code == 200, answer.text
        for _ in range(1200):
            mine = [e for e in events if e.flow_id == "looping"]
            if ("run.finished", "succeeded") in [(e.kind, e.status) for e in mine]:
                break
            await asyncio.sleep(0.05)
        seen = [(e.kind, e.node_id, e.status, e.count) for e in events if e.flow_id == "looping"]
        loop = [s for s in seen if s[1] == "loop"]
        assert loop == [("node.started", "loop", "running", None), ("node.progress", "loop", "running", 1),
                        ("node.finished", "loop", "succeeded", 1)], seen
        assert all(e.message is None for e in events if e.flow_id == "looping"), "node events carry no text"
    finally:
        await fb.aclose()


async def test_a_burst_of_events_goes_in_few_notices_under_the_payload_limit(cluster: Cluster) -> None:
    """A busy worker's batch: 2,000 node events sent at once arrive all, in order, in notices that each stay under
    PostgreSQL's 8,000-byte payload limit, about 70 to a notice."""
    from flowboard.store.notify import Notices

    assert cluster.store is not None
    sender, hearer = Notices(cluster.store.engine, "sender"), Notices(cluster.store.engine, "hearer")
    heard: list[dict[str, Any]] = []
    hearer.handlers["burst"] = heard.append
    hearer.start()
    try:
        await asyncio.wait_for(hearer.listening.wait(), 30)
        entries = [[f"{n:032x}", "flow-id", "succeeded", f"node-{n % 7}", "finished", n] for n in range(2000)]
        sent = await asyncio.to_thread(sender.send_batches, "burst", "runs", entries)
        for _ in range(300):
            if len(heard) >= sent:
                break
            await asyncio.sleep(0.05)
        assert [entry for message in heard for entry in message["runs"]] == entries
        assert len(heard) == sent <= 2000 * 95 // 7000 + 1, sent
        print(f"\n2,000 node events in {sent} notices")
    finally:
        await hearer.aclose()


def test_queued_run_mode_holds_across_workers(cluster: Cluster, counting: Counting) -> None:
    """Six runs of a flow in `queued` mode, accepted at once, spread over two workers: their calls never overlap."""
    assert cluster.server is not None
    with ThreadPoolExecutor(6) as pool:
        run_ids = list(pool.map(lambda _: httpx.post(f"{cluster.server.url}/webhook/serial", json={}).json()["run_id"],
                                range(6)))
    until(lambda: cluster.statuses_of(run_ids) == {"succeeded": 6}, timeout=60, step=0.1)
    spans = sorted(counting.spans)
    assert len(spans) == 6
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlaps, f"runs of a queued flow ran at the same time: {overlaps}"


def test_skip_run_mode_holds_across_servers(cluster: Cluster) -> None:
    """A flow in `skip` mode: while its run goes on a worker, a call to either server starts nothing."""
    assert cluster.server is not None and cluster.store is not None
    store = cluster.store
    first = httpx.post(f"{cluster.server.url}/webhook/skipper", json={})
    assert first.status_code == 202, first.text
    for server in (cluster.server, cluster.servers[0]):
        again = httpx.post(f"{server.url}/webhook/skipper", json={})
        assert again.status_code == 200 and again.json()["skipped"] is True, again.text
    run_id = first.json()["run_id"]
    until(lambda: store.get_run(run_id).status.value == "succeeded", timeout=30, step=0.1)
    after = httpx.post(f"{cluster.servers[0].url}/webhook/skipper", json={})
    assert after.status_code == 202, "a call after the run ended must start a run"
    assert len(store.list_runs("skipper", limit=10)) == 2


def test_skip_run_mode_holds_for_a_schedule_across_servers(cluster: Cluster, counting: Counting) -> None:
    """A schedule every second, served by both servers, of a flow in `skip` mode whose runs take about three seconds
    on a worker: a tick that comes while a run is queued or going (in any process) records no run; the runs never
    overlap."""
    assert cluster.store is not None
    store = cluster.store
    counting.spans.clear()
    with cluster.api() as api:
        assert api.post("/flows/tickskip/activate").status_code == 200
        try:
            until(lambda: len([r for r in store.list_runs("tickskip", limit=100)
                               if r.status.value == "succeeded"]) >= 2, timeout=60, step=0.2)
        finally:
            assert api.post("/flows/tickskip/deactivate").status_code == 200
    until(lambda: all(r.status.value == "succeeded" for r in store.list_runs("tickskip", limit=100)), timeout=30,
          step=0.2)
    runs = store.list_runs("tickskip", limit=100)
    fires = store.schedule_fires("tickskip", limit=100)
    assert [f for f in fires if f["run_id"] is None], "ticks during a run were claimed without a run"
    assert len(runs) == len([f for f in fires if f["run_id"] is not None]) < len(fires)
    spans = sorted(counting.spans)
    assert len(spans) == len(runs)
    runs_spans = sorted((r.started or 0, r.finished or 0) for r in runs)
    overlaps = [(a, b) for a, b in itertools.pairwise(runs_spans) if b[0] < a[1]]
    assert not overlaps, f"runs of a skip flow ran at the same time: {overlaps}"


def test_skip_run_mode_holds_for_table_changes_across_servers(cluster: Cluster, counting: Counting) -> None:
    """A table change trigger of a flow in `skip` mode, served by both servers, whose run holds (a call that does not
    answer) on a worker: rows added through either server while it goes are consumed without a run; once it ends
    (cancelled), the next row starts one."""
    from flowboard.store.datatables import DataTables

    assert cluster.server is not None and cluster.store is not None
    store, tables = cluster.store, DataTables(cluster.store.engine)
    calls = counting.slow

    def add(server: Any, task: str) -> None:
        with cluster.api(server) as api:
            answer = api.post("/tables/Tasks/rows", json={"rows": [{"task": task}]})
        assert answer.status_code == 201, answer.text

    def runs() -> list[Any]:
        return store.list_runs("tableskip", limit=100)

    add(cluster.server, "first")
    until(lambda: len(runs()) == 1 and runs()[0].owner is not None, timeout=30, step=0.1)  # on a worker
    until(lambda: counting.slow > calls, timeout=30, step=0.05)  # and in its call
    [first] = runs()
    add(cluster.servers[0], "second")
    add(cluster.server, "third")
    last = max(change["id"] for change in tables.changes(0, 100_000))
    until(lambda: tables.trigger_cursor("tableskip", "changed") >= last, timeout=30, step=0.1)
    assert [r.id for r in runs()] == [first.id], "a row added while the flow's run goes started another run"
    assert not store.get_run(first.id).status.finished  # still in its call (queued until its first write)

    with cluster.api() as api:
        assert api.post(f"/runs/{first.id}/cancel").status_code in (200, 202)
    until(lambda: store.get_run(first.id).status.value == "cancelled", timeout=30, step=0.1)
    add(cluster.servers[0], "fourth")
    until(lambda: len(runs()) == 2, timeout=30, step=0.1)
    second = next(r for r in runs() if r.id != first.id)
    assert second.input[0]["row"]["task"] == "fourth", second.input
    until(lambda: counting.slow > calls + 1, timeout=30, step=0.05)
    with cluster.api() as api:
        assert api.post(f"/runs/{second.id}/cancel").status_code in (200, 202)
    until(lambda: store.get_run(second.id).status.value == "cancelled", timeout=30, step=0.1)
    assert len(runs()) == 2


def test_ready_and_metrics_count_the_runs(cluster: Cluster) -> None:
    assert cluster.server is not None
    ready = httpx.get(f"{cluster.server.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    answer = httpx.get(f"{cluster.server.url}/metrics", headers={"X-API-Key": cluster.key})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert f'flowboard_runs{{status="cancelled"}} {float(cluster.statuses()["cancelled"])}' in text, text
    assert "flowboard_queue_depth " in text and 'flowboard_step_seconds{quantile="0.99"}' in text


def post_all(url: str, count: int, on_sent: Any = None, first: int = 0) -> list[str]:
    """POST `{"n": i}` for i in first..first+count-1, 16 at a time; returns the run ids (202 each)."""
    def one(i: int) -> str:
        with httpx.Client(timeout=30) as client:
            answer = client.post(f"{url}/webhook/count", json={"n": first + i})
        assert answer.status_code == 202, answer.text
        if on_sent is not None:
            on_sent(i)
        return str(answer.json()["run_id"])

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def test_a_waiting_run_resumes_on_a_worker(cluster: Cluster, counting: Counting) -> None:
    """A run parks at its resume link on a worker; the link, called on the second server, resumes it on a worker."""
    from flowboard.waiting import LINK_PATH, resume_token

    assert cluster.store is not None
    store = cluster.store
    run_id = httpx.post(f"{cluster.servers[0].url}/webhook/parked", json={}).json()["run_id"]
    until(lambda: store.get_run(run_id).status.value == "waiting", timeout=30, step=0.1)
    token = resume_token(store.secrets.signing_key("resume links"), run_id)
    answer = httpx.post(f"{cluster.servers[0].url}{LINK_PATH}/{run_id}/{token}", json={"ok": True})
    assert answer.status_code == 202, answer.text
    until(lambda: store.get_run(run_id).status.value == "succeeded", timeout=30, step=0.1)
    assert counting.raw["parked"] == 1
    assert not ran_on_a_server(cluster, store.get_run(run_id).owner), "a server ran the resumed run itself"


def test_a_run_recorded_but_never_enqueued_is_run_once(cluster: Cluster, counting: Counting) -> None:
    """What a server killed (-9) between recording a run and deferring its job leaves: a queued run with no owner and
    no job. A worker's sweep enqueues it, and it runs once."""
    from flowboard.triggers import new_run_id

    assert cluster.store is not None
    store = cluster.store
    run_id = new_run_id()
    store.create_run(run_id, "count", 1, "hook", [{"body": {"n": "orphan"}, "query": {}, "headers": {}}], "webhook",
                     status="queued", owner=None)
    until(lambda: store.get_run(run_id).status.value == "succeeded", timeout=40, step=0.2)
    time.sleep(2.5)  # two more sweeps (every second with a 3 s lease): nothing runs it again
    assert counting.raw["orphan"] == 1
    assert any("had no job" in worker.output for worker in cluster.workers)


def test_a_worker_stopped_with_sigterm_finishes_its_runs(cluster: Cluster, counting: Counting) -> None:
    """SIGTERM: the worker takes no new job, lets its runs (1 s each) finish, and exits 0; a new worker takes its
    place for the next test."""
    assert cluster.server is not None
    stopping = cluster.workers[1]
    jobs_before = stopping.output.count("Starting job")
    run_ids = [httpx.post(f"{cluster.server.url}/webhook/pausing", json={}).json()["run_id"] for _ in range(12)]
    until(lambda: stopping.output.count("Starting job") > jobs_before, timeout=30, step=0.05)
    assert stopping.stop(timeout=30) == 0, stopping.output[-3000:]
    port = free_port()
    cluster.add_worker("2", metrics_port=port).wait_ready()
    until(lambda: cluster.statuses_of(run_ids) == {"succeeded": 12}, timeout=60, step=0.1)
    assert "handed back" not in stopping.output, "a run that had time to finish was handed back"
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text  # the new worker's own metrics
    assert 'flowboard_runs{status="succeeded"}' in metrics and "flowboard_queue_depth" in metrics, metrics


def unkeyed_run_on_the_first_worker(cluster: Cluster, counting: Counting) -> str:
    """A run sending a POST without a repeat-safe key, held in its call (`/slow`) on the worker the test kills: runs
    are started until one lands there; the others (on another worker) are cancelled."""
    assert cluster.server is not None and cluster.store is not None
    store = cluster.store
    mine = f":{cluster.workers[0].process.pid}:"
    for _ in range(20):
        calls = counting.slow
        run_id = httpx.post(f"{cluster.server.url}/webhook/unkeyed", json={}).json()["run_id"]
        until(lambda r=run_id, c=calls: store.get_run(r).owner is not None and counting.slow > c, timeout=30,
              step=0.05)
        if mine in str(store.get_run(run_id).owner):
            return run_id
        with cluster.api() as api:
            api.post(f"/runs/{run_id}/cancel")
        until(lambda r=run_id: store.get_run(r).status.value == "cancelled", timeout=30, step=0.1)
    raise AssertionError("20 runs in a row went to the other worker")


def test_webhook_runs_on_two_workers_survive_a_killed_worker(cluster: Cluster, counting: Counting) -> None:
    """... and a step without a repeat-safe key that was sending when its worker was killed fails on resume, saying
    what to check, instead of sending again."""
    assert cluster.server is not None and cluster.store is not None
    unkeyed = unkeyed_run_on_the_first_worker(cluster, counting)
    slow_calls = counting.slow
    before = sum(cluster.statuses().values())
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
    statuses = cluster.wait_all_finished(before + RUNS, timeout=90)  # a loaded machine
    took = time.monotonic() - started
    interrupted = cluster.store.get_run(unkeyed)
    assert interrupted.status.value == "failed", interrupted
    assert interrupted.error is not None and interrupted.error["message"] == (
        "this step was interrupted by a stop of the worker that ran it while it was sending; it may or may not have "
        "happened; check the server 127.0.0.1 and run it again"), interrupted.error
    assert counting.slow == slow_calls, "the interrupted call was sent again"
    assert len(set(run_ids)) == RUNS
    assert cluster.statuses_of(run_ids) == {"succeeded": RUNS}, statuses
    missing = [str(i) for i in range(RUNS) if counting.hits[str(i)] == 0]
    assert not missing, f"{len(missing)} side effects never happened: {missing[:10]}"
    twice = {n: c for n in map(str, range(RUNS)) if (c := counting.hits[n]) > 1}
    assert not twice, f"side effects done twice: {twice}"
    unkeyed = [n for n in map(str, range(RUNS)) if None in counting.keys_of[n]]
    assert not unkeyed, f"calls went out without their key: {unkeyed[:10]}"
    rekeyed = {n: keys for n in map(str, range(RUNS)) if len(keys := counting.keys_of[n]) > 1}
    assert not rekeyed, f"a repeat did not carry its first key: {rekeyed}"
    keys = set().union(*(counting.keys_of[str(i)] for i in range(RUNS)))
    assert len(keys) == RUNS, f"{len(keys)} distinct keys for {RUNS} runs"
    repeats = {n: c - 1 for n in map(str, range(RUNS)) if (c := counting.raw[n]) > 1}
    killed_jobs = cluster.workers[0].output.count("Starting job")
    recovered = sum(w.output.count("tried again") for w in cluster.workers[1:])
    print(f"\n{RUNS} runs on 2 workers in {took:.1f} s; the killed one had started {killed_jobs} jobs, {recovered} "
          f"of them were in flight and handed on; every side effect done once ({len(keys)} keys); calls sent again "
          f"with their key: {sum(repeats.values())}")
    assert killed_jobs > 0, "the killed worker ran nothing: the test did not test a kill in the middle"
    assert sum(repeats.values()) <= cluster.concurrency, f"more repeats than runs in flight at the kill: {repeats}"
    assert not cluster.server.errors(), cluster.server.errors()
