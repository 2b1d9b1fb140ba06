"""Run ownership between real processes: a live run is never taken over, however quiet; an owner paused past its lease
finds it lost the run when it wakes up, and writes nothing more about it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flowboard.store import Store, database_url, make_engine

from .clihelp import env_for, flowboard

LEASE = 3.0  # seconds, for the processes under test (30 by default); short, yet not flaky on a loaded machine


class Upstream:
    """A local HTTP service: counts calls per path; `/slow` answers only when released (or after 60 s)."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.slow_entered = threading.Event()

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, int]]:
    state = Upstream()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
            if self.path == "/slow":
                state.slow_entered.set()
                state.release.wait(60)
            body = json.dumps({"path": self.path}).encode()
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
    yield state, server.server_address[1]
    state.release.set()
    server.shutdown()
    server.server_close()


def quiet_flow(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    call = {"type": "http.request", "config": {"method": "POST", "timeout": 120}}
    return {
        "id": "quiet", "name": "Quiet for a minute",
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {**call, "id": "first", "config": {**call["config"], "url": f"{url}/first"}},
            {**call, "id": "slow", "config": {**call["config"], "url": f"{url}/slow"}},
            {**call, "id": "second", "config": {**call["config"], "url": f"{url}/second"}},
        ],
        "edges": [{"source": "start", "target": "first"}, {"source": "first", "target": "slow"},
                  {"source": "slow", "target": "second"}],
    }


def lease_env(data_dir: Path) -> dict[str, str]:
    return {**env_for(data_dir), "FLOWBOARD_RUN_LEASE": str(LEASE)}


def start_owner(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flowboard", "run", "quiet"], env=lease_env(data_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def resume(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowboard", "resume"], env=lease_env(data_dir),
                          capture_output=True, text=True, timeout=90)


def snapshot(data_dir: Path) -> tuple[list[Any], list[Any]]:
    """Every stored column of every run and step."""
    engine = make_engine(database_url(data_dir))
    with engine.connect() as conn:
        runs = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM runs ORDER BY id"))]
        steps = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM steps ORDER BY run_id, node_id"))]
    engine.dispose()
    return runs, steps


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def imported(tmp_path: Path, upstream: tuple[Upstream, int]) -> Path:
    flow_file = tmp_path / "quiet.json"
    flow_file.write_text(json.dumps(quiet_flow(upstream[1])))
    assert flowboard(tmp_path, "import", str(flow_file)).returncode == 0
    return tmp_path


def test_a_live_run_quiet_for_a_minute_cannot_be_claimed(imported: Path, upstream: tuple[Upstream, int]) -> None:
    state, _ = upstream
    owner = start_owner(imported)
    try:
        assert state.slow_entered.wait(30), "the run never reached its slow call"
        store = Store(make_engine(database_url(imported)))
        [run] = store.unfinished_runs()
        beats = {run.heartbeat}
        deadline = time.monotonic() + 4 * LEASE  # several leases long: without renewal it would be up for grabs
        while time.monotonic() < deadline:
            assert not store.claim_run(run.id, "intruder:1:x", stale_after=LEASE)
            beats.add(store.get_run(run.id).heartbeat)
            time.sleep(0.2)
        assert len(beats) >= 4, "the owner did not renew its lease while the run was quiet"
        other = resume(imported)  # a second process resuming interrupted runs leaves it alone
        assert other.returncode == 0 and "no interrupted runs" in other.stdout, other.stdout + other.stderr
        assert store.get_run(run.id).owner == run.owner
        store.close()
    finally:
        state.release.set()
    out, err = owner.communicate(timeout=60)
    assert owner.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    assert state.hits == {"/first": 1, "/slow": 1, "/second": 1}


def test_an_owner_paused_past_its_lease_finds_it_lost_the_run_and_writes_nothing(
        imported: Path, upstream: tuple[Upstream, int]) -> None:
    state, _ = upstream
    owner = start_owner(imported)
    try:
        assert state.slow_entered.wait(30), "the run never reached its slow call"
        os.kill(owner.pid, signal.SIGSTOP)  # paused mid-call: no heartbeat any more
        time.sleep(2.5 * LEASE)
        state.release.set()  # the paused owner's call is answered too, but it cannot see it yet
        successor = resume(imported)
        assert successor.returncode == 0, successor.stdout + successor.stderr
        [line] = [line for line in successor.stdout.splitlines() if line.startswith("run ")]
        assert line.endswith(": succeeded")
        before = snapshot(imported)
        assert state.hits == {"/first": 1, "/slow": 2, "/second": 1}  # the unrecorded slow call is made again
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    out, err = owner.communicate(timeout=60)
    result = json.loads(out)
    assert result["status"] == "crashed" and "no longer run by this process" in result["error"]["message"], err
    assert snapshot(imported) == before, "the owner that lost its run wrote about it"
    assert state.hits == {"/first": 1, "/slow": 2, "/second": 1}, "the owner that lost its run went on with it"
    store = Store(make_engine(database_url(imported)))
    [run] = store.list_runs()
    assert run.status.value == "succeeded"
    assert {nid: s.status.value for nid, s in store.get_steps(run.id).items()} == {
        "start": "succeeded", "first": "succeeded", "slow": "succeeded", "second": "succeeded"}
    store.close()
