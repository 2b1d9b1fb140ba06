"""`/api/v1/approvals`: the REST API's router on a plain FastAPI app (the same router `flowboard serve` mounts),
called over ASGI with a real API key, on a real store."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from flowboard.api import rest
from flowboard.services import Flowboard
from flowboard.store.approvals import Task


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[httpx.AsyncClient, Flowboard]]:
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    fb = Flowboard(data_dir=tmp_path)
    app = FastAPI()
    rest.register(app, fb)
    _info, key = fb.store.create_api_key("test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/api/v1",
                                 headers={"X-API-Key": key}) as client:
        yield client, fb
    fb.store.close()


def task(fb: Flowboard, **over: Any) -> Task:
    values: dict[str, Any] = {"flow_id": "vacation", "run_id": "r1", "node_id": "approve", "title": "Grace, 3 days",
                              "assignees": ["user:ada"], "requester": "grace"}
    values.update(over)
    if not any(r.id == values["run_id"] for r in fb.store.list_runs()):  # the run the task belongs to, parked
        fb.store.create_run(values["run_id"], values["flow_id"], 1, "start", [], "api", "waiting")
    return fb.approvals.store.create(**values)


async def test_list_filter_decide_and_export(api: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = api
    a, b = task(fb, title="a"), task(fb, title="b", flow_id="invoice", run_id="r2", assignees=["role:finance"])
    listed = (await client.get("/approvals")).json()
    assert [t["title"] for t in listed["tasks"]] == ["b", "a"] and listed["next_offset"] is None
    assert [t["title"] for t in (await client.get("/approvals", params={"flow_id": "invoice"})).json()["tasks"]] \
        == ["b"]
    assert [t["title"] for t in (await client.get("/approvals", params={"assignee": "role:finance"})).json()
            ["tasks"]] == ["b"]

    answer = await client.post(f"/approvals/{a.id}/decision", json={"outcome": "approve", "responder": "Ada",
                                                                      "comment": "enjoy"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["decision"], body["responder"], body["channel"]) == ("decided", "approve", "Ada",
                                                                                      "api")
    assert body["summary"].startswith("approved by Ada at ")

    again = await client.post(f"/approvals/{a.id}/decision", json={"outcome": "reject", "responder": "Bob"})
    assert again.status_code == 409
    assert again.json()["error"] == "already " + body["summary"]

    own = await client.post(f"/approvals/{b.id}/decision", json={"outcome": "approve", "responder": "grace"})
    assert own.status_code == 403
    assert own.json()["error"] == "grace asked for this approval, so someone else must decide it"
    wrong = await client.post(f"/approvals/{b.id}/decision", json={"outcome": "maybe", "responder": "ada"})
    assert wrong.status_code == 422 and "its answers are approve, reject" in wrong.json()["error"]
    missing = await client.post("/approvals/nope/decision", json={"outcome": "approve", "responder": "ada"})
    assert missing.status_code == 404 and missing.json()["error"] == "there is no approval task 'nope'"
    assert (await client.get("/approvals/nope")).status_code == 404

    moved = await client.post(f"/approvals/{b.id}/reassign", json={"to": ["user:linus"], "by": "ada",
                                                                     "reason": "holiday"})
    assert moved.status_code == 200 and moved.json()["assignees"] == ["user:linus"]
    detail = (await client.get(f"/approvals/{b.id}")).json()
    assert [e["event"] for e in detail["log"]] == ["created", "reassigned"]
    assert detail["log"][1]["data"] == {"from": ["role:finance"], "to": ["user:linus"], "reason": "holiday"}

    decided = (await client.get("/approvals", params={"status": "decided"})).json()["tasks"]
    assert [t["title"] for t in decided] == ["a"]
    bad = await client.get("/approvals", params={"status": "done"})
    assert bad.status_code == 422 and "'done' is not one of open, decided, timed_out, cancelled" in bad.json()["error"]

    exported = await client.get("/approvals", params={"format": "csv"})
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.headers["content-disposition"] == 'attachment; filename="approvals.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [(r["title"], r["status"], r["responder"]) for r in rows] == [("b", "open", ""), ("a", "decided", "Ada")]

    audit = (await client.get("/approvals/audit")).json()
    assert audit["ok"] is True and audit["entries"] == 4 and audit["problems"] == []


async def test_the_approvals_api_needs_a_key(api: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, _fb = api
    for method, path in (("GET", "/approvals"), ("GET", "/approvals/audit"), ("GET", "/approvals/x"),
                         ("POST", "/approvals/x/decision"), ("POST", "/approvals/x/reassign")):
        answer = await client.request(method, path, headers={"X-API-Key": ""}, json={})
        assert answer.status_code == 401, (method, path)


async def test_out_of_office(api: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = api
    assert (await client.get("/approvals/out-of-office")).json() == {}
    answer = await client.put("/approvals/out-of-office/ada", json={"delegate": "bob"})
    assert answer.status_code == 200 and answer.json() == {"ada": {"delegate": "bob", "until": None}}
    assert fb.approvals.store.delegate_of("user:ada") == "user:bob"
    own = await client.put("/approvals/out-of-office/ada", json={"delegate": "Ada"})
    assert own.status_code == 422 and own.json()["error"] == "ada cannot hand their tasks to themselves; name " \
                                                              "someone else"
    assert (await client.delete("/approvals/out-of-office/ada")).json() == {}
