"""A run killed mid-way (SIGKILL) resumes at the next start from its recorded steps, and no side effect repeats."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flowboard.store import Store, database_url, make_engine

from .clihelp import flowboard, result_json, run_and_kill


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


def _recorded(store: Store, node_id: str) -> bool:
    """Whether the one unfinished run has recorded `node_id` as succeeded."""
    runs = store.unfinished_runs()
    step = store.get_steps(runs[0].id).get(node_id) if runs else None
    return step is not None and step.status.value == "succeeded"


def test_killed_run_resumes_without_repeating_finished_steps(tmp_path: Path, counter: tuple[Counter, int]) -> None:
    hits, port = counter
    flow_file = tmp_path / "crashy.json"
    flow_file.write_text(json.dumps(crash_flow(port)))
    assert flowboard(tmp_path, "import", str(flow_file)).returncode == 0

    watch = Store(make_engine(database_url(tmp_path)))
    try:  # kill it inside the 4 s wait, once the first call's step is recorded (the second has not happened)
        run_and_kill(tmp_path, "run", "crashy", when=lambda: hits.hits.get("/first") and _recorded(watch, "first_call"),
                     what=lambda: f"the first call was never made and recorded: {hits.hits}")
    finally:
        watch.close()
    assert hits.hits.get("/first") == 1 and hits.hits.get("/second") is None, hits.hits

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


class Keyed:
    """Counts `POST /send` calls and the repeat-safe keys they carry; the first call of each key is held until the
    test lets it go (the caller is killed meanwhile), any repeat is answered at once."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []  # the Idempotency-Key of each call, in order
        self.lock = threading.Lock()
        self.release = threading.Event()
        keyed = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                key = self.headers.get("Idempotency-Key")
                with keyed.lock:
                    first = key is None or key not in keyed.calls
                    keyed.calls.append(key)
                if first:
                    keyed.release.wait(20)
                body = json.dumps({"key": key}).encode()
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def keyed() -> Iterator[Keyed]:
    server = Keyed()
    yield server
    server.close()


def send_flow(url: str, **http: object) -> dict:
    return {"id": "sender", "name": "Sender", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "send", "type": "http.request", "config": {"method": "POST", "url": f"{url}/send", **http}},
        {"id": "after", "type": "data.set", "config": {"fields": [{"name": "sent", "value": True}]}}],
        "edges": [{"source": "start", "target": "send"}, {"source": "send", "target": "after"}]}


def kill_while_sending(tmp_path: Path, keyed: Keyed, flow: dict, items: int = 3) -> str:
    """Run `flow` with `items` items in a process, kill it (-9) while its requests are on their way; the run id."""
    (tmp_path / "flow.json").write_text(json.dumps(flow))
    assert flowboard(tmp_path, "import", str(tmp_path / "flow.json")).returncode == 0
    run_and_kill(tmp_path, "run", flow["id"], "--input", json.dumps([{"n": i} for i in range(items)]),
                 when=lambda: len(keyed.calls) >= items, what=lambda: f"the requests never went out: {keyed.calls}")
    keyed.release.set()
    store = Store(make_engine(database_url(tmp_path)))
    try:
        [run] = store.unfinished_runs()
        return run.id
    finally:
        store.close()


def test_a_step_interrupted_while_sending_without_a_key_fails_instead_of_sending_again(
        tmp_path: Path, keyed: Keyed) -> None:
    """The repeat-safe key is off: the step was recorded as started before its requests went out, and the resumed
    run fails it, saying what to check, instead of sending them a second time."""
    run_id = kill_while_sending(tmp_path, keyed, send_flow(keyed.url, idempotency_key=False))
    assert keyed.calls == [None, None, None], "a key was sent although switched off"
    store = Store(make_engine(database_url(tmp_path)))
    assert store.get_steps(run_id)["send"].status.value == "running", "the step was not recorded as started"
    store.close()

    resumed = flowboard(tmp_path, "resume", timeout=60)
    assert f"run {run_id}: failed" in resumed.stdout, resumed.stderr
    assert len(keyed.calls) == 3, "an interrupted request was sent again"
    store = Store(make_engine(database_url(tmp_path)))
    record, steps = store.get_run(run_id), store.get_steps(run_id)
    store.close()
    assert record.status.value == "failed"
    assert steps["send"].status.value == "failed" and "after" not in steps
    message = steps["send"].error["message"]
    assert message == ("this step was interrupted by a stop of Flowboard while it was sending; it may or may not "
                       "have happened; check the server 127.0.0.1 and run it again"), message
    assert record.error["node_id"] == "send"


def test_a_step_interrupted_while_sending_with_a_key_sends_the_same_keys_again(tmp_path: Path, keyed: Keyed) -> None:
    """By default a POST carries a key per run, node and item: the resumed run sends the requests again with the same
    keys (a service that knows them does each once) and succeeds; the step was not even recorded as started."""
    run_id = kill_while_sending(tmp_path, keyed, send_flow(keyed.url))
    first = list(keyed.calls)
    assert len(set(first)) == 3 and None not in first, first
    store = Store(make_engine(database_url(tmp_path)))
    assert "send" not in store.get_steps(run_id), "a retry-safe step paid for a write before it started"
    store.close()

    resumed = flowboard(tmp_path, "resume", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id}: succeeded" in resumed.stdout
    assert sorted(keyed.calls[3:]) == sorted(first), "the repeat did not carry the same keys"
    store = Store(make_engine(database_url(tmp_path)))
    steps = store.get_steps(run_id)
    store.close()
    assert sorted(item["body"]["key"] for item in steps["send"].outputs["main"]) == sorted(first)

    again = result_json(flowboard(tmp_path, "run", "sender", "--input", json.dumps([{"n": 0}])))
    assert again["status"] == "succeeded"
    assert keyed.calls[-1] not in first, "another run sent a key of the first one"
