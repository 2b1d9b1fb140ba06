"""HTTP pages as they come (issue 10): a local API pages 23 records five at a time, and can hold a page back until the
test has seen what should have happened before it. While a paginating node runs, its progress (pages, records so far)
reaches the run's events and its items so far can be looked at; with a flow for each page, every page runs through
that flow as a recorded child run while the next is read, in order; a failing page stops the reading; cancelling the
run cancels the page's run and the reading. On a real Flowboard with SQLite in tmp_path."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from flowboard.engine import Event, RunStatus
from flowboard.services import Flowboard

from .servers import DEADLINE, RECORDS, SIZE
from .servers import PagedApi as Api


async def until(check: Callable[[], Any], deadline: float = DEADLINE) -> bool:
    """Wait for `check()` (run in a thread: it may read the store) to be true, polling; False past the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with Api() as server:
        yield server


@pytest.fixture
async def fb(tmp_path: Path) -> AsyncIterator[Flowboard]:
    board = Flowboard(data_dir=tmp_path)
    yield board
    await board.aclose()


def lister(base: str, **pagination: Any) -> dict[str, Any]:
    return {"id": "main", "name": "List deals", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "deals", "name": "Deals", "type": "http.request", "version": 2,
         "config": {"url": base + "/pages", "pagination": {"type": "page", "records": "data", **pagination}}},
    ], "edges": [{"source": "start", "target": "deals"}]}


def body(name: str, nodes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A flow for each page: called with the page's records; by default it marks each one as seen."""
    nodes = [{"id": "called", "type": "trigger.called"}, *(nodes or [
        {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}])]
    return {"id": name.lower().replace(" ", "-"), "name": name, "nodes": nodes,
            "edges": [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]}


def page_runs(fb: Flowboard, flow_id: str) -> list[Any]:
    """The body's child runs, oldest first."""
    return sorted(fb.store.list_runs(flow_id, source="call", limit=1000), key=lambda r: r.created)


def watch(fb: Flowboard) -> list[Event]:
    events: list[Event] = []
    fb.bus.subscribe(events.append)
    return events


# -- live progress --------------------------------------------------------------------------------------------------


async def test_progress_shows_pages_and_records_so_far_before_the_node_ends(fb: Flowboard, api: Api) -> None:
    events = watch(fb)
    fb.import_flow(lister(api.base))
    seen_so_far: list[Any] = []

    async def two_pages_shown() -> bool:
        ok = await until(lambda: any(e.kind == "node.progress" and e.count == 10 for e in events))
        run_id = next(e.run_id for e in events if e.kind == "run.started")
        progress = fb.engine.progress(run_id, "deals")
        seen_so_far.append(progress and (progress.count, list(progress.items or [])))  # (the list grows on)
        return ok

    api.hold[3] = two_pages_shown
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.succeeded, result.error
    assert api.held[3] is True  # page 3 was asked for only after 10 records showed as read
    assert result.output == RECORDS
    progress = [e for e in events if e.kind == "node.progress"]
    finished = next(i for i, e in enumerate(events) if e.kind == "node.finished" and e.node_id == "deals")
    assert all(events.index(e) < finished for e in progress)
    assert all(e.node_id == "deals" and e.status == "running" for e in progress)
    counts = [e.count for e in progress]
    assert counts[:2] == [5, 10] and counts == sorted(counts) and counts[-1] <= 23  # the views hear at most 10/s
    assert events[finished].count == 23
    assert progress[1].message == "2 pages read, 10 records so far"
    # what a person looking at the node while page 3 was held saw: the 10 records read so far
    (held,) = seen_so_far
    assert held == (10, RECORDS[:10])
    assert fb.engine.progress(result.run_id, "deals") is None  # forgotten once the node ended


# -- a flow for each page -------------------------------------------------------------------------------------------


async def test_each_page_runs_through_its_flow_while_the_next_is_read(fb: Flowboard, api: Api) -> None:
    fb.import_flow(body("Save one page"))
    fb.import_flow(lister(api.base, each_page="Save one page"))
    events = watch(fb)
    # the last page is served only once the first page's run is recorded as done: nothing waited for the last page
    api.hold[5] = lambda: until(lambda: any(r.status is RunStatus.succeeded for r in page_runs(fb, "save-one-page")))
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.succeeded, result.error
    assert api.held[5] is True
    assert result.output == [{"page": n, "records": size} for n, size in enumerate([5, 5, 5, 5, 3], 1)]
    runs = page_runs(fb, "save-one-page")
    assert [r.status for r in runs] == [RunStatus.succeeded] * 5
    assert [r.input for r in runs] == [RECORDS[i:i + SIZE] for i in range(0, 23, SIZE)]  # each page once, in order
    assert [r.output for r in runs] == [[{**r, "seen": True} for r in RECORDS[i:i + SIZE]] for i in range(0, 23, SIZE)]
    assert api.calls == [1, 2, 3, 4, 5, 6]
    progress = [e for e in events if e.kind == "node.progress" and e.run_id == result.run_id]
    assert progress and progress[0].count == 5 and progress[0].message == "page 1 (records 1 to 5): running " \
        "'Save one page'"


async def test_keep_records_passes_every_record_on_as_well(fb: Flowboard, api: Api) -> None:
    fb.import_flow(body("Save one page"))
    fb.import_flow(lister(api.base, each_page="Save one page", keep_records=True, max_records=12))
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == RECORDS[:12]
    assert [len(r.input) for r in page_runs(fb, "save-one-page")] == [5, 5, 2]


async def test_a_failing_page_stops_the_pages_after_it(fb: Flowboard, api: Api) -> None:
    fb.import_flow(body("Refuse deal 13", [
        {"id": "pick", "type": "logic.filter", "config": {"conditions": [{"field": "id", "op": "equals",
                                                                          "value": 13}]}},
        {"id": "stop", "type": "logic.stop", "config": {"message": "deal {{ item.id }} is not allowed"}}]))
    fb.import_flow(lister(api.base, each_page="Refuse deal 13"))
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.failed
    message = result.error["message"]
    assert message.startswith("page 3 (records 11 to 15): the called flow 'Refuse deal 13' failed at node 'stop': "
                              "deal 13 is not allowed"), message
    assert "no further page was handed on" in message
    runs = page_runs(fb, "refuse-deal-13")
    assert [r.status for r in runs] == [RunStatus.succeeded, RunStatus.succeeded, RunStatus.failed]
    assert 5 not in api.calls  # page 4 may have been read while page 3 ran; page 5 never was


async def test_a_page_that_cannot_be_read_stops_after_the_pages_before_it(fb: Flowboard, api: Api) -> None:
    fb.import_flow(body("Save one page"))
    fb.import_flow(lister(api.base, each_page="Save one page"))
    api.fail.add(3)
    result = await fb.run_flow("main", [{}])
    assert result.status is RunStatus.failed
    message = result.error["message"]
    assert message.startswith("page 3 could not be read, so no further page was: GET "), message
    assert "answered 500" in message
    assert [r.status for r in page_runs(fb, "save-one-page")] == [RunStatus.succeeded] * 2
    assert api.calls == [1, 2, 3]


async def test_cancelling_the_run_cancels_the_page_running_and_the_reading(fb: Flowboard, api: Api) -> None:
    fb.import_flow(body("Slow page", [{"id": "slow", "type": "http.request", "config": {"url": api.base + "/slow"}}]))
    fb.import_flow(lister(api.base, each_page="Slow page"))
    task = asyncio.ensure_future(fb.run_flow("main", [{}]))
    assert await until(lambda: any(r.status is RunStatus.running for r in page_runs(fb, "slow-page")))
    assert await until(lambda: 2 in api.calls)  # page 2 read ahead while page 1 runs
    run_id = next(r.id for r in fb.store.list_runs("main") if r.status is RunStatus.running)
    assert fb.cancel(run_id)
    result = await asyncio.wait_for(task, DEADLINE)
    assert result.status is RunStatus.cancelled
    assert [r.status for r in page_runs(fb, "slow-page")] == [RunStatus.cancelled]
    assert 3 not in api.calls


async def test_a_flow_for_each_page_that_calls_back_is_refused(fb: Flowboard, api: Api) -> None:
    from flowboard.errors import FlowInvalid

    fb.import_flow(lister(api.base, each_page="Call back"))
    fb.import_flow(body("Call back", [{"id": "call", "type": "logic.call_flow", "config": {"flow": "List deals"}}]))
    with pytest.raises(FlowInvalid) as refused:
        fb.activate("main")
    assert any("the calls go round in a circle (List deals → Call back → List deals)" in p.message
               for p in refused.value.problems)


def test_a_node_with_a_flow_for_each_page_is_never_run_twice_after_a_stop() -> None:
    """Reading pages again is harmless; running their flows again is not: such a node is not retry-safe, so a run
    resumed after a stop in the middle fails its step in words instead of handing the pages on a second time."""
    from flowboard.registry import default_registry

    http = default_registry().get("http.request")
    assert http is not None
    reading = {"url": "https://api.example.com/deals", "pagination": {"type": "page", "records": "data"}}
    assert http.retry_safe_with(reading)
    assert not http.retry_safe_with({**reading, "pagination": {**reading["pagination"], "each_page": "Save one"}})


def test_progress_on_the_servers_event_loop() -> None:
    """The server runs on uvloop, whose timer handles are not asyncio's: progress that comes faster than the views
    hear it (pages 1 and 2 within 0.1 s) waits on such a timer, and the count still reaches the events."""
    import uvloop

    from flowboard.engine import Engine, build_plan
    from flowboard.model import parse_flow
    from flowboard.registry import default_registry

    async def main() -> tuple[Any, list[Event]]:
        engine = Engine()
        events: list[Event] = []
        engine.bus.subscribe(events.append)
        async with Api() as api:
            api.hold[3] = lambda: until(lambda: any(e.kind == "node.progress" and e.count == 10 for e in events))
            flow = parse_flow({**lister(api.base), "id": "uv"})
            try:
                result = await engine.run(build_plan(flow, default_registry()), [{}])
            finally:
                await engine.aclose()
            assert api.held[3] is True
        return result, events

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result, events = runner.run(main())
    assert result.status is RunStatus.succeeded, result.error
    assert [e.count for e in events if e.kind == "node.progress"][:2] == [5, 10]


def test_a_stop_in_the_middle_of_the_pages_runs_no_pages_flow_again(tmp_path: Path) -> None:
    """`flowboard run` is killed (-9) while page 3 is being read (page 1's flow done, page 2's going): the resumed
    run fails the step in words, reads no page again and starts no page's flow again."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from flowboard.store import Store, database_url, make_engine

    from .clihelp import flowboard, run_and_kill

    calls: list[int] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = int(self.path.partition("page=")[2] or 1)
            calls.append(page)
            if page == 3:
                release.wait(DEADLINE)
            body = json.dumps({"data": RECORDS[(page - 1) * SIZE: page * SIZE]}).encode()
            try:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the caller is gone
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for flow in (body("Save one page"), lister(base, each_page="Save one page")):
            (tmp_path / "flow.json").write_text(json.dumps(flow))
            assert flowboard(tmp_path, "import", str(tmp_path / "flow.json")).returncode == 0
        run_and_kill(tmp_path, "run", "main", when=lambda: 3 in calls,
                     what=lambda: f"page 3 was never asked for: {calls}", timeout=DEADLINE)
        release.set()
        store = Store(make_engine(database_url(tmp_path)))
        [run] = [r for r in store.unfinished_runs() if r.flow_id == "main"]
        pages_before = len(store.list_runs("save-one-page", source="call"))
        store.close()
        assert pages_before in (1, 2), pages_before
        read_before = list(calls)

        resumed = flowboard(tmp_path, "resume", timeout=DEADLINE)
        assert f"run {run.id}: failed" in resumed.stdout, resumed.stdout + resumed.stderr
        store = Store(make_engine(database_url(tmp_path)))
        steps = store.get_steps(run.id)
        page_runs = store.list_runs("save-one-page", source="call")
        store.close()
        assert len(page_runs) == pages_before, "a page's flow was started again"
        assert calls == read_before, "a page was read again"
        assert steps["deals"].error["message"] == (
            "this step was interrupted by a stop of Flowboard while it was sending; it may or may not have happened; "
            "check which pages the flow 'Save one page' was run for (its runs are on the Runs page) and run it again")
    finally:
        release.set()
        server.shutdown()
        server.server_close()
