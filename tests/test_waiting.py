"""Durable waiting: a node suspends its run (`sdk.Suspend`), the run is parked as `waiting` with nothing in memory,
and resumes at its deadline or by a call, on the flow version it started with, after any number of restarts.

The server tests run `flowboard serve` in a subprocess against a local HTTP server that counts the flow's calls."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowboard.engine import RunStatus, StepStatus
from flowboard.engine import runner as runner_module
from flowboard.model import parse_flow
from flowboard.services import Flowboard
from flowboard.store import Store, WaitGone

from .clihelp import env_for
from .servers import ThreadedHttpServer

START = {"id": "start", "type": "trigger.manual"}


def chain(flow_id: str, *nodes: dict[str, Any], trigger: dict[str, Any] = START) -> dict[str, Any]:
    all_nodes = [trigger, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(all_nodes)]
    return {"id": flow_id, "name": flow_id, "nodes": all_nodes, "edges": edges}


def wait(node_id: str = "wait", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "logic.wait", "config": config}


def mark(value: Any) -> dict[str, Any]:
    return {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "mark", "value": value}]}}


@pytest.fixture
async def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("FLOWBOARD_DATABASE_URL", raising=False)
    app = Flowboard(data_dir=tmp_path)
    yield app
    await app.aclose()


# -- in one process -------------------------------------------------------------------------------------------------


async def test_a_parked_run_frees_everything_and_resumes_on_its_own_flow_version(fb: Flowboard) -> None:
    fb.store.save_flow(parse_flow(chain("v", wait(mode="link"), mark("version 1"))), None)
    result = await fb.run_flow("v", [{"n": 1}])
    assert result.status is RunStatus.waiting and result.steps["wait"].status is StepStatus.waiting
    assert "mark" not in result.steps
    assert fb.engine.active_runs == [] and fb.recorder is not None and fb.recorder._pending == {}
    record = fb.store.get_run(result.run_id)
    assert record.status is RunStatus.waiting and record.finished is None
    fb.store.save_flow(parse_flow(chain("v", wait(mode="link"), mark("version 2"))), 1)  # edited while it waits

    task = await fb.resume_waiting(result.run_id, "wait", {"answer": 42}, who="a test")
    resumed = await task
    assert resumed.status is RunStatus.succeeded
    assert resumed.output == [{"answer": 42, "mark": "version 1"}]  # the payload is the node's output
    assert fb.store.get_run(result.run_id).status is RunStatus.succeeded
    [kept] = fb.store.waits_of(result.run_id).values()  # closed, kept as the record of who resumed it
    assert kept.resumed and kept.who == "a test" and kept.payload == {"answer": 42}
    with pytest.raises(WaitGone, match=r"resumed already \(by a test, at"):  # exactly once
        await fb.resume_waiting(result.run_id, "wait", {"answer": 43})


async def test_two_resumes_at_once_have_one_winner(fb: Flowboard) -> None:
    fb.store.save_flow(parse_flow(chain("race", wait(mode="link"), mark("done"))), None)
    result = await fb.run_flow("race")
    outcomes = await asyncio.gather(*(fb.resume_waiting(result.run_id, "wait", {"who": i}, who=f"caller {i}")
                                      for i in range(8)), return_exceptions=True)
    tasks = [o for o in outcomes if isinstance(o, asyncio.Task)]
    assert len(tasks) == 1 and all(isinstance(o, WaitGone) for o in outcomes if o not in tasks)
    assert (await tasks[0]).status is RunStatus.succeeded


async def test_the_sleeper_resumes_a_parked_run_at_its_deadline(fb: Flowboard,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "IN_MEMORY_WAIT", 0.0)  # park even a short wait
    fb.store.save_flow(parse_flow(chain("timer", wait(seconds=0.8), mark("after"))), None)
    fb.start_waiting()
    result = await fb.run_flow("timer", [{"n": 1}])
    assert result.status is RunStatus.waiting
    due = fb.store.next_wake()
    assert due is not None and due > time.time() - 0.1
    for _ in range(200):  # woken by the parked run, asleep until the deadline, then resumed
        if fb.store.get_run(result.run_id).status is RunStatus.succeeded:
            break
        await asyncio.sleep(0.05)
    record = fb.store.get_run(result.run_id)
    assert record.status is RunStatus.succeeded and record.output == [{"n": 1, "mark": "after"}]
    assert fb.store.get_steps(result.run_id)["wait"].finished >= due
    assert fb.store.next_wake() is None


async def test_resume_due_finishes_the_runs_whose_time_has_come(fb: Flowboard,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What `flowboard resume` does without a server: a deadline that passed while nothing ran."""
    monkeypatch.setattr(runner_module, "IN_MEMORY_WAIT", 0.0)
    fb.store.save_flow(parse_flow(chain("due", wait(seconds=0.2), mark("late"))), None)
    fb.store.save_flow(parse_flow(chain("later", wait(seconds=3600), mark("later"))), None)
    due = await fb.run_flow("due")
    later = await fb.run_flow("later")
    assert {due.status, later.status} == {RunStatus.waiting}
    await asyncio.sleep(0.3)
    results = await fb.resume_due()
    assert [(r.run_id, r.status) for r in results] == [(due.run_id, RunStatus.succeeded)]
    assert fb.store.get_run(later.run_id).status is RunStatus.waiting
    assert await fb.resume_due() == []


async def test_cancelling_a_waiting_run_ends_it(fb: Flowboard) -> None:
    fb.store.save_flow(parse_flow(chain("c", wait(mode="link"), mark("x"))), None)
    result = await fb.run_flow("c")
    assert fb.store.cancel_waiting(result.run_id)
    assert fb.store.get_run(result.run_id).status is RunStatus.cancelled
    assert fb.store.get_steps(result.run_id)["wait"].status is StepStatus.cancelled
    with pytest.raises(WaitGone):
        await fb.resume_waiting(result.run_id, "wait", {})
    assert not fb.store.cancel_waiting(result.run_id)


async def test_a_thousand_waiting_runs_hold_no_memory(fb: Flowboard) -> None:
    fb.store.save_flow(parse_flow(chain("many", wait(mode="link"), mark("x"))), None)
    await fb.run_flow("many")  # warm up: plan, statements, connections
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for batch in range(10):
        results = await asyncio.gather(*(fb.run_flow("many", [{"i": batch * 100 + i}]) for i in range(100)))
        assert {r.status for r in results} == {RunStatus.waiting}
        del results
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert len(fb.store.list_runs(status="waiting", limit=2000)) == 1001
    assert fb.engine.active_runs == [] and fb.recorder is not None and fb.recorder._pending == {}
    assert grown < 2_000_000, f"{grown:,} bytes still held after parking 1,000 runs"


# -- a real server ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path):
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.data / "server.log").open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(self.port),
                                          "--no-browser", "--data-dir", str(self.data)], env=env_for(self.data),
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, (self.data / "server.log").read_text()
            try:
                if httpx.get(f"{self.url}/webhook/none", timeout=1).status_code in (404, 405):
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (self.data / "server.log").read_text()
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def upstream() -> Iterator[ThreadedHttpServer]:
    with ThreadedHttpServer() as server:
        yield server


def calls(upstream: ThreadedHttpServer, path: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests if r["path"] == path]


def serve_flow(tmp_path: Path, flow: dict[str, Any], credentials: dict[str, Any] | None = None) -> Server:
    async def setup() -> None:
        app = Flowboard(data_dir=tmp_path)
        for name, (kind, data) in (credentials or {}).items():
            app.store.set_credential(name, kind, data)
        app.import_flow(json.dumps(flow))
        app.activate(flow["id"])
        await app.aclose()

    asyncio.run(setup())
    server = Server(tmp_path)
    server.start()
    return server


def hook(path: str) -> dict[str, Any]:
    return {"id": "hook", "type": "trigger.webhook", "config": {"path": path, "respond": "immediately"}}


def post(upstream: ThreadedHttpServer, node_id: str, path: str, body: str = "{}") -> dict[str, Any]:
    return {"id": node_id, "type": "http.request",
            "config": {"method": "POST", "url": upstream.url(path), "body": {"type": "raw", "text": body}}}


def run_status(data: Path, run_id: str) -> str:
    store = Store(data_dir=data)
    try:
        return store.get_run(run_id).status.value
    finally:
        store.close()


def recorded_waits(data: Path, run_id: str) -> dict[str, Any]:
    store = Store(data_dir=data)
    try:
        return store.waits_of(run_id)
    finally:
        store.close()


def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("seconds", [2, 7], ids=["in memory", "parked"])
def test_a_durable_wait_survives_kill_9_and_finishes_exactly_once(tmp_path: Path, upstream: ThreadedHttpServer,
                                                                 seconds: float) -> None:
    flow = chain("pause", wait(seconds=seconds), post(upstream, "after", "/after"), trigger=hook("pause"))
    server = serve_flow(tmp_path, flow)
    try:
        answer = httpx.post(f"{server.url}/webhook/pause", json={"n": 1}, timeout=10)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        until(lambda: recorded_waits(tmp_path, run_id) != {}, 30, "the wait to be recorded")
        server.kill()  # in the middle of the wait
        assert calls(upstream, "/after") == []
        time.sleep(0.5)
        server.start()  # a new process resumes it at its recorded deadline, not a new one
        until(lambda: run_status(tmp_path, run_id) == "succeeded", 30, "the run to finish after the restart")
        time.sleep(0.5)
        assert len(calls(upstream, "/after")) == 1
        store = Store(data_dir=tmp_path)
        steps = store.get_steps(run_id)
        assert steps["wait"].finished - store.get_run(run_id).created >= seconds - 0.05  # the whole wait, not less
        assert [w.resumed for w in store.waits_of(run_id).values()] == [True]
        store.close()
    finally:
        server.stop()


TAMPERED = ["0" * 40, "", "abc", "{sig}0", "{sig_upper}", "{sig_short}"]


def test_a_resume_link_resumes_its_run_and_nothing_else_does(tmp_path: Path, upstream: ThreadedHttpServer) -> None:
    flow = chain("approve", post(upstream, "send", "/send", '{"link": "{{ run.resume_url }}"}'),
                 wait(mode="link", credential="resume-token", header="X-Token"), post(upstream, "after", "/after"),
                 trigger=hook("approve"))
    server = serve_flow(tmp_path, flow, {"resume-token": ("header", {"value": "s3cret"})})
    try:
        answer = httpx.post(f"{server.url}/webhook/approve", json={}, timeout=10)
        run_id = answer.json()["run_id"]
        until(lambda: run_status(tmp_path, run_id) == "waiting", 20, "the run to park")
        [sent] = calls(upstream, "/send")
        link = json.loads(sent["body"])["link"]
        assert link.startswith(f"{server.url}/webhook-waiting/{run_id}/")
        sig = link.rsplit("/", 1)[1]
        for bad in TAMPERED:
            token = bad.format(sig=sig, sig_upper=sig.upper(), sig_short=sig[:-1])
            refused = httpx.post(f"{server.url}/webhook-waiting/{run_id}/{token}", headers={"X-Token": "s3cret"},
                                 json={"ok": True})
            assert refused.status_code in (403, 404, 405), (token, refused.text)
        other = httpx.post(link.replace(run_id, "0" * 32), headers={"X-Token": "s3cret"}, json={})
        assert other.status_code == 403  # another run's id under this run's signature
        assert httpx.post(link, json={"ok": True}).status_code == 403  # no token
        assert httpx.post(link, headers={"X-Token": "wrong"}, json={"ok": True}).status_code == 403
        bad_json = httpx.post(link, headers={"X-Token": "s3cret", "content-type": "application/json"},
                              content=b'{"ok": tru')
        assert bad_json.status_code == 400, bad_json.text
        assert run_status(tmp_path, run_id) == "waiting" and calls(upstream, "/after") == []

        resumed = httpx.post(link, headers={"X-Token": "s3cret"}, json={"approved": True, "by": "Ada"})
        assert resumed.status_code == 202, resumed.text
        until(lambda: run_status(tmp_path, run_id) == "succeeded", 20, "the resumed run to finish")
        again = httpx.post(link, headers={"X-Token": "s3cret"}, json={"approved": False})
        assert again.status_code == 409 and "resumed already (by resume link, at" in again.text, again.text
        assert len(calls(upstream, "/after")) == 1
        store = Store(data_dir=tmp_path)
        assert store.get_steps(run_id)["wait"].outputs == {"main": [{"approved": True, "by": "Ada"}]}
        store.close()
    finally:
        server.stop()
