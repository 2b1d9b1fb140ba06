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
    """The client acts for ada, an approver, with her own API key."""
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    fb = Flowboard(data_dir=tmp_path)
    app = FastAPI()
    rest.register(app, fb)
    fb.accounts.add_user("boss", "boss-password-1", ["admin"])
    for name, roles in (("ada", ["approver"]), ("eve", ["editor"]), ("rob", ["requester"]), ("grace", ["approver"]),
                        ("linus", ["approver"]), ("bob", ["approver"])):
        fb.accounts.add_user(name, f"{name}-password-1", roles)
    _info, key = fb.store.create_api_key("test", user_id(fb, "ada"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/api/v1",
                                 headers={"X-API-Key": key}) as client:
        yield client, fb
    fb.store.close()


def user_id(fb: Flowboard, name: str) -> str:
    user = fb.accounts.users.get(name=name)
    assert user is not None
    return str(user.id)


def key_of(fb: Flowboard, name: str) -> dict[str, str]:
    _info, key = fb.store.create_api_key(f"{name}'s key", user_id(fb, name))
    return {"X-API-Key": key}


def task(fb: Flowboard, **over: Any) -> Task:
    values: dict[str, Any] = {"flow_id": "vacation", "run_id": "r1", "node_id": "approve", "title": "Grace, 3 days",
                              "assignees": ["user:ada"], "requester": "grace"}
    values.update(over)
    if not any(r.id == values["run_id"] for r in fb.store.list_runs()):  # the run the task belongs to, parked
        fb.store.create_run(values["run_id"], values["flow_id"], 1, "start", [], "api", "waiting")
    return fb.approvals.store.create(**values)


async def test_list_filter_decide_and_export(api: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = api
    boss = key_of(fb, "boss")
    a, b = task(fb, title="a"), task(fb, title="b", flow_id="invoice", run_id="r2", assignees=["role:finance"])
    listed = (await client.get("/approvals", headers=boss)).json()
    assert [t["title"] for t in listed["tasks"]] == ["b", "a"] and listed["next_offset"] is None
    assert [t["title"] for t in (await client.get("/approvals", params={"flow_id": "invoice"}, headers=boss)).json()
            ["tasks"]] == ["b"]
    assert [t["title"] for t in (await client.get("/approvals", params={"assignee": "role:finance"},
                                                  headers=boss)).json()["tasks"]] == ["b"]
    assert [t["title"] for t in (await client.get("/approvals")).json()["tasks"]] == ["a"], "ada sees her own"

    answer = await client.post(f"/approvals/{a.id}/decision", json={"outcome": "approve", "comment": "enjoy"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["decision"], body["responder"], body["channel"]) == ("decided", "approve", "ada",
                                                                                      "api")
    assert body["summary"].startswith("approved by ada at ")

    again = await client.post(f"/approvals/{a.id}/decision", json={"outcome": "reject"}, headers=boss)
    assert again.status_code == 409
    assert again.json()["error"] == "already " + body["summary"]

    own = await client.post(f"/approvals/{b.id}/decision", json={"outcome": "approve"}, headers=key_of(fb, "grace"))
    assert own.status_code == 403
    assert own.json()["error"] == "grace asked for this approval, so someone else must decide it"
    wrong = await client.post(f"/approvals/{b.id}/decision", json={"outcome": "maybe"}, headers=boss)
    assert wrong.status_code == 422 and "its answers are approve, reject" in wrong.json()["error"]
    missing = await client.post("/approvals/nope/decision", json={"outcome": "approve"})
    assert missing.status_code == 404 and missing.json()["error"] == "there is no approval task 'nope'"
    assert (await client.get("/approvals/nope")).status_code == 404

    typo = await client.post(f"/approvals/{b.id}/reassign", json={"to": ["user:linsu"]}, headers=boss)
    assert typo.status_code == 422
    assert typo.json()["error"] == "there is no user 'user:linsu': write the user name someone signs in with"
    unknown_role = await client.post(f"/approvals/{b.id}/reassign", json={"to": ["role:finance"]}, headers=boss)
    assert unknown_role.status_code == 422 and unknown_role.json()["error"].startswith(
        "there is no role 'finance'; the roles are role:admin, role:editor, role:approver, role:requester")
    moved = await client.post(f"/approvals/{b.id}/reassign", json={"to": ["user:linus"], "reason": "holiday"},
                              headers=boss)
    assert moved.status_code == 200 and moved.json()["assignees"] == ["user:linus"]
    detail = (await client.get(f"/approvals/{b.id}", headers=boss)).json()
    assert [e["event"] for e in detail["log"]] == ["created", "reassigned"]
    assert detail["log"][1]["actor"] == "boss"
    assert detail["log"][1]["data"] == {"from": ["role:finance"], "to": ["user:linus"], "reason": "holiday"}

    decided = (await client.get("/approvals", params={"status": "decided"})).json()["tasks"]
    assert [t["title"] for t in decided] == ["a"]
    bad = await client.get("/approvals", params={"status": "done"})
    assert bad.status_code == 422 and "'done' is not one of open, decided, timed_out, cancelled" in bad.json()["error"]

    exported = await client.get("/approvals", params={"format": "csv"}, headers=boss)
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.headers["content-disposition"] == 'attachment; filename="approvals.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [(r["title"], r["status"], r["responder"]) for r in rows] == [("b", "open", ""), ("a", "decided", "ada")]

    audit = (await client.get("/approvals/audit", headers=boss)).json()
    assert audit["ok"] is True and audit["entries"] == 4 and audit["problems"] == []


async def test_a_decision_is_the_key_users_and_roles_decide_who_may(api: tuple[httpx.AsyncClient, Flowboard]
                                                                     ) -> None:
    """The responder is always the key's user: naming someone else is refused. An approver decides and hands on
    only tasks given to them (by name or role) and sees only those; an editor or a requester decides nothing; an
    admin may decide any task, recorded as theirs."""
    client, fb = api
    ada_task = task(fb, title="ada's", assignees=["user:ada"])
    role_task = task(fb, title="for approvers", run_id="r2", assignees=["role:approver"])
    other = task(fb, title="linus's", run_id="r3", assignees=["linus"])

    named = await client.post(f"/approvals/{ada_task.id}/decision", json={"outcome": "approve", "responder": "boss"})
    assert named.status_code == 403
    assert named.json()["error"].startswith("a decision through the API is recorded as the caller's, ada (the API "
                                            "key's user), so it cannot be made for 'boss'")
    assert fb.approvals.store.get(ada_task.id).status == "open"
    assert [t["title"] for t in (await client.get("/approvals")).json()["tasks"]] == ["for approvers", "ada's"]
    hidden = await client.get(f"/approvals/{other.id}")
    assert hidden.status_code == 403 and "not given to them" in hidden.json()["error"]
    refused = await client.post(f"/approvals/{other.id}/decision", json={"outcome": "approve"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "ada is not among the people who may decide this task (linus)"
    handed = await client.post(f"/approvals/{other.id}/reassign", json={"to": ["ada"]})
    assert handed.status_code == 403 and "may hand this task on" in handed.json()["error"]
    assert (await client.get("/approvals/audit")).status_code == 403

    by_role = await client.post(f"/approvals/{role_task.id}/decision", json={"outcome": "reject", "responder": "Ada"})
    assert by_role.status_code == 200 and by_role.json()["responder"] == "ada"

    for who in ("eve", "rob"):
        answer = await client.post(f"/approvals/{ada_task.id}/decision", json={"outcome": "approve"},
                                   headers=key_of(fb, who))
        assert answer.status_code == 403, who
        assert "may not decide approval tasks: it is for approvers or admins" in answer.json()["error"]
    assert (await client.get("/approvals", headers=key_of(fb, "rob"))).status_code == 403
    assert len((await client.get("/approvals", headers=key_of(fb, "eve"))).json()["tasks"]) == 3

    boss = await client.post(f"/approvals/{other.id}/decision", json={"outcome": "approve"}, headers=key_of(fb, "boss"))
    assert boss.status_code == 200 and boss.json()["responder"] == "boss"
    assert [e.actor for e in fb.approvals.store.log(other.id)] == ["flowboard", "boss"]


async def test_the_approvals_api_needs_a_key(api: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, _fb = api
    for method, path in (("GET", "/approvals"), ("GET", "/approvals/audit"), ("GET", "/approvals/x"),
                         ("POST", "/approvals/x/decision"), ("POST", "/approvals/x/reassign")):
        answer = await client.request(method, path, headers={"X-API-Key": ""}, json={})
        assert answer.status_code == 401, (method, path)


async def test_out_of_office(api: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = api
    assert (await client.get("/approvals/out-of-office")).json() == {}
    others = await client.put("/approvals/out-of-office/grace", json={"delegate": "bob"})
    assert others.status_code == 403 and others.json()["error"] == ("ada may set only their own out-of-office "
                                                                    "delegate; an admin sets anyone's")
    assert (await client.put("/approvals/out-of-office/grace", json={"delegate": "bob"},
                             headers=key_of(fb, "boss"))).status_code == 200
    assert (await client.delete("/approvals/out-of-office/grace", headers=key_of(fb, "boss"))).json() == {}
    answer = await client.put("/approvals/out-of-office/ada", json={"delegate": "bob"})
    assert answer.status_code == 200 and answer.json() == {"ada": {"delegate": "bob", "until": None}}
    assert fb.approvals.store.delegate_of("user:ada") == "user:bob"
    nobody = await client.put("/approvals/out-of-office/ada", json={"delegate": "bobby"})
    assert nobody.status_code == 422 and nobody.json()["error"].startswith("there is no user 'bobby'")
    own = await client.put("/approvals/out-of-office/ada", json={"delegate": "Ada"})
    assert own.status_code == 422 and own.json()["error"] == "ada cannot hand their tasks to themselves; name " \
                                                              "someone else"
    assert (await client.delete("/approvals/out-of-office/ada")).json() == {}
