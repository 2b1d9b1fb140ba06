"""Error flows: a failed run starts the error flow named in its flow's settings, with the run's details and never a
credential; an error flow that fails does not start itself (no loops)."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from pathlib import Path
from typing import Any

from flowboard.engine import RunStatus
from flowboard.services import Flowboard
from flowboard.store import Store

from .clihelp import flowboard

SECRET = f"s3cret-{secrets.token_hex(12)}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once the socket is closed


def failing_flow(flow_id: str, port: int, error_flow: str | None, trigger: str = "trigger.manual") -> dict[str, Any]:
    return {"id": flow_id, "name": f"Flow {flow_id}", "settings": {"error_flow": error_flow}, "nodes": [
        {"id": "start", "type": trigger},
        {"id": "shape", "type": "data.set", "config": {"fields": [{"name": "order", "value": 42}]}},
        {"id": "call", "name": "Call the shop", "type": "http.request",
         "config": {"url": f"http://127.0.0.1:{port}/orders", "credential": "shop", "timeout": 5}},
    ], "edges": [{"source": "start", "target": "shape"}, {"source": "shape", "target": "call"}]}


def catcher_flow() -> dict[str, Any]:
    return {"id": "catcher", "name": "Catcher", "nodes": [
        {"id": "on_error", "type": "trigger.error"},
        {"id": "note", "type": "data.set", "config": {"fields": [{"name": "noted", "value": True}]}},
    ], "edges": [{"source": "on_error", "target": "note"}]}


async def runs_of(store: Store, flow_id: str, count: int, timeout: float = 30) -> list[Any]:
    """The flow's finished runs once there are `count` (oldest first); then a moment more to see there are no more."""
    for _ in range(int(timeout / 0.05)):
        runs = [r for r in store.list_runs(flow_id) if r.status.finished]
        if len(runs) >= count:
            await asyncio.sleep(0.5)
            return list(reversed(store.list_runs(flow_id)))
        await asyncio.sleep(0.05)
    raise AssertionError(f"flow {flow_id} has {store.list_runs(flow_id)}, not {count} finished runs")


async def test_a_failed_run_starts_the_error_flow_with_its_details(tmp_path: Path) -> None:
    fb = Flowboard(data_dir=tmp_path)
    try:
        fb.store.set_credential("shop", "bearer", {"token": SECRET})
        fb.import_flow(failing_flow("orders", closed_port(), error_flow="catcher"))
        fb.import_flow(catcher_flow())
        failed = await fb.run_flow("orders", source="api")
        assert failed.status is RunStatus.failed
        [caught] = await runs_of(fb.store, "catcher", 1)
        assert (caught.status, caught.source, caught.trigger) == (RunStatus.succeeded, "error", "on_error")
        [item] = caught.input
        assert item["flow"] == {"id": "orders", "name": "Flow orders"}
        assert item["run"]["id"] == failed.run_id and item["run"]["source"] == "api"
        assert item["run"]["started"] <= item["run"]["finished"] and item["run"]["finished"].endswith("+00:00")
        assert item["error"]["node_id"] == "call" and item["error"]["node_name"] == "Call the shop"
        assert item["error"]["message"] == failed.error["message"] and item["error"]["message"]
        assert item["items"] == [{"order": 42}]
        assert set(item) == {"flow", "run", "error", "items"}
        assert SECRET not in json.dumps(caught.input) and SECRET not in json.dumps(caught.output)
        assert caught.output == [{**item, "noted": True}]
        ok = await fb.run_flow("catcher")  # run by hand: an example item
        assert ok.status is RunStatus.succeeded and ok.output[0]["flow"]["id"] == "example"
        assert (await fb.run_flow("orders", source="editor")).status is RunStatus.failed
        await asyncio.sleep(0.3)
        assert len(fb.store.list_runs("catcher")) == 2, "neither a succeeded run nor an editor test run starts it"
    finally:
        await fb.aclose()


async def test_a_failing_error_flow_does_not_loop(tmp_path: Path) -> None:
    fb = Flowboard(data_dir=tmp_path)
    try:
        port = closed_port()
        fb.store.set_credential("shop", "bearer", {"token": SECRET})
        fb.import_flow(failing_flow("orders", port, error_flow="alarm"))
        # the error flow fails too, and names itself (and the first flow names it): neither may start it again
        fb.import_flow(failing_flow("alarm", port, error_flow="alarm", trigger="trigger.error"))
        assert (await fb.run_flow("orders")).status is RunStatus.failed
        [alarm] = await runs_of(fb.store, "alarm", 1)
        assert alarm.status is RunStatus.failed and alarm.source == "error"
        assert len(fb.store.list_runs("orders")) == 1
    finally:
        await fb.aclose()


async def test_a_missing_error_flow_is_only_logged(tmp_path: Path, caplog: Any) -> None:
    fb = Flowboard(data_dir=tmp_path)
    try:
        fb.store.set_credential("shop", "bearer", {"token": SECRET})
        fb.import_flow(failing_flow("orders", closed_port(), error_flow="nowhere"))
        assert (await fb.run_flow("orders")).status is RunStatus.failed
        for _ in range(1500):  # up to 30 s on a loaded machine
            if "error flow 'nowhere' does not exist" in caplog.text:
                break
            await asyncio.sleep(0.02)
        assert "error flow 'nowhere' does not exist" in caplog.text
    finally:
        await fb.aclose()


def test_a_failed_run_from_the_command_line_starts_the_error_flow(tmp_path: Path) -> None:
    for data in (failing_flow("orders", closed_port(), error_flow="catcher"), catcher_flow()):
        path = tmp_path / f"{data['id']}.json"
        path.write_text(json.dumps(data))
        assert flowboard(tmp_path, "import", str(path)).returncode == 0
    assert flowboard(tmp_path, "run", "orders").returncode != 0
    store = Store(data_dir=tmp_path)
    try:
        [caught] = store.list_runs("catcher")
        assert caught.status is RunStatus.succeeded and caught.input[0]["run"]["source"] == "cli"
    finally:
        store.close()
