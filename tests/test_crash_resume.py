"""A run killed mid-way (SIGKILL) resumes at the next start from its recorded steps, and no side effect repeats."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flowboard.store import Store, database_url, make_engine

from .clihelp import flowboard, popen, result_json


class Counter:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def hit(self, path: str) -> None:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1


@pytest.fixture
def counter() -> Iterator[tuple[Counter, int]]:
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            counter.hit(self.path)
            body = json.dumps({"path": self.path, "count": counter.hits[self.path]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield counter, server.server_address[1]
    server.shutdown()
    server.server_close()


def crash_flow(port: int) -> dict:
    url = f"http://127.0.0.1:{port}"
    return {
        "id": "crashy", "name": "Crash and resume",
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "first_call", "type": "http.request", "config": {"method": "POST", "url": f"{url}/first"}},
            {"id": "pause", "type": "logic.wait", "config": {"seconds": 4}},
            {"id": "second_call", "type": "http.request", "config": {"method": "POST", "url": f"{url}/second"}},
        ],
        "edges": [{"source": "start", "target": "first_call"}, {"source": "first_call", "target": "pause"},
                  {"source": "pause", "target": "second_call"}],
    }


def test_killed_run_resumes_without_repeating_finished_steps(tmp_path: Path, counter: tuple[Counter, int]) -> None:
    hits, port = counter
    flow_file = tmp_path / "crashy.json"
    flow_file.write_text(json.dumps(crash_flow(port)))
    assert flowboard(tmp_path, "import", str(flow_file)).returncode == 0

    proc = popen(tmp_path, "run", "crashy")
    deadline = time.monotonic() + 20
    while hits.hits.get("/first", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hits.hits.get("/first") == 1, "the run never made its first call"
    time.sleep(0.5)  # inside the 4 s wait: the first call's step is recorded, the second has not happened
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert hits.hits.get("/second") is None

    store = Store(make_engine(database_url(tmp_path)))
    [run] = store.unfinished_runs()
    done = store.get_steps(run.id)
    assert done["first_call"].status.value == "succeeded"
    assert "second_call" not in done
    store.close()

    resumed = flowboard(tmp_path, "resume", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run.id}: succeeded" in resumed.stdout
    assert hits.hits == {"/first": 1, "/second": 1}, "a finished step ran again, or a step never ran"

    store = Store(make_engine(database_url(tmp_path)))
    record = store.get_run(run.id)
    steps = store.get_steps(run.id)
    store.close()
    assert record.status == "succeeded"
    assert {nid: s.attempt for nid, s in steps.items()} == {"start": 1, "first_call": 1, "pause": 1,
                                                             "second_call": 1}
    assert steps["second_call"].outputs["main"][0]["body"]["count"] == 1
    assert result_json(flowboard(tmp_path, "run", "crashy"))["status"] == "succeeded"
    assert hits.hits == {"/first": 2, "/second": 2}
