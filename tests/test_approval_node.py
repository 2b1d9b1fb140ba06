"""The Approval node end to end in one process: a stored flow runs, parks `waiting` at the Approval node with tasks
in the store, people decide through the ApprovalService (what the inbox, the links and the API call), and the run
resumes through the outcome's port; rules, the requester's own request, deadlines and escalation, and a restart of
the whole app while the run waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.engine import RunStatus, StepStatus
from flowboard.errors import FlowInvalid
from flowboard.model import parse_flow
from flowboard.services import Flowboard
from flowboard.store.approvals import NotAllowed, Task

REQUEST = {"employee": "grace", "days": 3, "reason": "family", "manager": "ada"}


@pytest.fixture
async def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flowboard]:
    monkeypatch.delenv("FLOWBOARD_DATABASE_URL", raising=False)
    app = Flowboard(data_dir=tmp_path)
    yield app
    await app.aclose()


def flow(flow_id: str = "vacation", **approval: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"approvers": ["{{ item.manager }}", "user:bob"], "title": "Vacation: {{ item.employee }}",
                              "message": "{{ item.employee }} asks for {{ item.days }} days.",
                              "show": ["employee", "days"], "requester": "{{ item.employee }}",
                              "form": [{"name": "days", "label": "Days granted", "type": "number",
                                        "default": "{{ item.days }}"}]}
    config.update(approval)
    outcomes = config.get("outcomes", ["approve", "reject"])
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual"},
                                   {"id": "approve", "type": "approval", "config": config}]
    edges = [{"source": "start", "target": "approve"}]
    for port in [*outcomes, "timed_out"]:
        nodes.append({"id": f"on_{port}", "type": "data.set",
                      "config": {"fields": [{"name": "result", "value": port}]}})
        edges.append({"source": "approve", "source_port": port, "target": f"on_{port}"})
    return {"id": flow_id, "name": flow_id, "nodes": nodes, "edges": edges}


async def start(fb: Flowboard, items: list[dict[str, Any]] | None = None, **approval: Any) -> str:
    current = fb.store.get_flow("vacation").version if fb.store.flow_exists("vacation") else None
    fb.store.save_flow(parse_flow(flow(**approval)), current)  # a test may start runs of several versions
    result = await fb.run_flow("vacation", items if items is not None else [REQUEST])
    assert result.status is RunStatus.waiting, result.error
    assert result.steps["approve"].status is StepStatus.waiting
    return result.run_id


async def finished(fb: Flowboard, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The run's end: the items that reached each `on_<port>` node."""
    for _ in range(400):
        run = fb.store.get_run(run_id)
        if run.status.finished:
            break
        await asyncio.sleep(0.025)
    assert run.status is RunStatus.succeeded, run.error
    steps = fb.store.get_steps(run_id)
    return {nid[3:]: (step.outputs or {}).get("main", []) for nid, step in steps.items() if nid.startswith("on_")
            and step.status is StepStatus.succeeded}


def open_tasks(fb: Flowboard, run_id: str) -> list[Task]:
    return fb.approvals.store.list_tasks(run_id=run_id, status="open")


async def test_a_manager_approves_and_the_run_goes_on_through_approve(fb: Flowboard) -> None:
    run_id = await start(fb)
    tasks = open_tasks(fb, run_id)
    assert sorted(t.assignees[0] for t in tasks) == ["ada", "user:bob"]
    task = tasks[0]
    assert task.title == "Vacation: grace" and task.requester == "grace"
    assert task.data["show"]["message"] == "grace asks for 3 days."
    assert task.data["show"]["fields"] == {"employee": "grace", "days": 3}
    assert task.data["show"]["form"][0]["default"] == 3
    with pytest.raises(NotAllowed, match=r"^grace asked for this approval"):
        await fb.approvals.decide(task.id, "approve", "grace", roles=[])
    ada = next(t for t in tasks if t.assignees == ["ada"])
    await fb.approvals.decide(ada.id, "approve", "ada", comment="enjoy", fields={"days": 2}, roles=[])
    out = await finished(fb, run_id)
    assert list(out) == ["approve"]
    [item] = out["approve"]
    assert item["employee"] == "grace" and item["result"] == "approve"
    approval = item["approval"]
    assert (approval["outcome"], approval["decided_by"], approval["comment"], approval["fields"]) == (
        "approve", ["ada"], "enjoy", {"days": 2})
    assert fb.approvals.store.verify().ok


async def test_reject_and_custom_outcomes(fb: Flowboard) -> None:
    run_id = await start(fb, outcomes=["approve", "reject", "ask_hr"])
    [ada, _bob] = sorted(open_tasks(fb, run_id), key=lambda t: t.assignees[0])
    await fb.approvals.decide(ada.id, "ask_hr", "ada", roles=[])
    out = await finished(fb, run_id)
    assert list(out) == ["ask_hr"] and out["ask_hr"][0]["approval"]["outcome"] == "ask_hr"


async def test_two_of_three_and_one_request_per_item(fb: Flowboard) -> None:
    items = [REQUEST, {**REQUEST, "employee": "linus", "days": 10}]
    run_id = await start(fb, items, approvers="ada, bob, carol", rule="n_of_m", needed=2, requester="")
    tasks = open_tasks(fb, run_id)
    assert len(tasks) == 6
    by = {(t.item_index, t.assignees[0]): t for t in tasks}
    await fb.approvals.decide(by[0, "ada"].id, "approve", "ada", roles=[])
    await fb.approvals.decide(by[1, "ada"].id, "reject", "ada", roles=[])
    await fb.approvals.decide(by[1, "bob"].id, "reject", "bob", roles=[])  # item 1: 2 of 3 can no longer approve
    assert fb.store.get_run(run_id).status is RunStatus.waiting  # item 0 still open
    await fb.approvals.decide(by[0, "carol"].id, "approve", "carol", roles=[])
    out = await finished(fb, run_id)
    assert [i["employee"] for i in out["approve"]] == ["grace"]
    assert [i["employee"] for i in out["reject"]] == ["linus"]
    assert out["approve"][0]["approval"]["decided_by"] == ["ada", "carol"]


async def test_a_sequence(fb: Flowboard) -> None:
    run_id = await start(fb, approvers=["ada", "bob"], rule="sequence")
    [first] = open_tasks(fb, run_id)
    assert first.assignees == ["ada"]
    await fb.approvals.decide(first.id, "approve", "ada", roles=[])
    [second] = open_tasks(fb, run_id)
    assert second.assignees == ["bob"]
    await fb.approvals.decide(second.id, "approve", "bob", roles=[])
    out = await finished(fb, run_id)
    assert out["approve"][0]["approval"]["decided_by"] == ["ada", "bob"]


async def test_a_deadline_without_escalation_leaves_through_timed_out(fb: Flowboard) -> None:
    fb.start_triggers()  # starts the deadline timer
    run_id = await start(fb, deadline_hours=0.0001)  # 0.36 s
    out = await finished(fb, run_id)
    assert list(out) == ["timed_out"] and out["timed_out"][0]["approval"]["outcome"] == "timed_out"


async def test_a_deadline_escalates_once(fb: Flowboard) -> None:
    fb.start_triggers()
    run_id = await start(fb, approvers="ada", deadline_hours=0.0001, escalate_to="role:director")
    for _ in range(400):
        tasks = open_tasks(fb, run_id)
        if tasks and tasks[0].assignees == ["role:director"]:
            break
        await asyncio.sleep(0.025)
    [task] = open_tasks(fb, run_id)
    assert task.assignees == ["role:director"]
    with pytest.raises(NotAllowed):
        await fb.approvals.decide(task.id, "approve", "ada", roles=["manager"])
    await fb.approvals.decide(task.id, "approve", "dora", roles=["director"])
    out = await finished(fb, run_id)
    assert out["approve"][0]["approval"]["decided_by"] == ["dora"]


async def test_the_wait_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWBOARD_DATABASE_URL", raising=False)
    first = Flowboard(data_dir=tmp_path)
    run_id = await start(first)
    await first.aclose()
    second = Flowboard(data_dir=tmp_path)
    try:
        ada = next(t for t in open_tasks(second, run_id) if t.assignees == ["ada"])
        await second.approvals.decide(ada.id, "reject", "ada", comment="not in December", roles=[])
        out = await finished(second, run_id)
        assert out["reject"][0]["approval"]["comment"] == "not in December"
    finally:
        await second.aclose()


def test_config_mistakes_are_caught_before_the_run() -> None:
    from flowboard.registry import default_registry

    for config, expected in (({"approvers": ["a"], "rule": "n_of_m", "needed": 3},
                              "needed is 3, but only 1 approvers are listed"),
                             ({"approvers": ["a"], "outcomes": ["Approve!"]}, "'Approve!' cannot be an outcome"),
                             ({"approvers": ["a"], "outcomes": ["ok", "no"], "rule": "all"},
                              "keep approve among the outcomes")):
        data = {"id": "x", "name": "x", "nodes": [{"id": "start", "type": "trigger.manual"},
                                                  {"id": "a", "type": "approval", "config": config}],
                "edges": [{"source": "start", "target": "a"}]}
        from flowboard.engine import build_plan

        with pytest.raises(FlowInvalid, match=expected):
            build_plan(parse_flow(data), default_registry())


async def test_approvers_are_told_by_chat_and_email_with_their_own_links(
        fb: Flowboard, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: the node posts to chat and mails each approver their own links; a scanner GETs the mailed
    link (nothing happens), the approver presses Approve on the page, the run goes on."""
    import re

    import httpx
    from starlette.applications import Starlette

    from flowboard import approval_links

    from .chatservers import ChatServer
    from .mailserver import MailServer

    monkeypatch.setenv("FLOWBOARD_PUBLIC_URL", "https://flows.example.com")
    fb.approvals.links = approval_links.Links(b"test key")
    async with ChatServer() as chat:
        with MailServer() as mail:
            fb.store.set_credential("hook", "chat_webhook", {"url": chat.url("/slack")})
            fb.store.set_credential("mail", "smtp", mail.credential())
            run_id = await start(fb, approvers="ada@example.com, bob", notify=[
                {"via": "chat", "service": "slack", "credential": "hook"},
                {"via": "email", "credential": "mail", "sender": "flows@example.com",
                 "addresses": {"bob": "bob@example.com"}}])
    posted = [payload for _route, _query, payload in chat.received]
    assert len(posted) == 2 and {p["blocks"][1]["text"]["text"].rsplit("For ", 1)[1] for p in posted} == {
        "ada@example.com.", "bob."}
    buttons = posted[0]["blocks"][-1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Reject"]
    assert all(b["url"].startswith("https://flows.example.com/decide/") for b in buttons)
    assert sorted(m["To"] for _e, m in mail.messages) == ["ada@example.com", "bob@example.com"]
    ada_mail = next(m for _e, m in mail.messages if m["To"] == "ada@example.com")
    body = ada_mail.get_body(("plain",))
    assert body is not None
    approve = re.search(r"Approve: https://flows\.example\.com(/decide/\S+)", body.get_content())
    assert approve is not None

    app = Starlette(routes=approval_links.routes(fb))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://flows.example.com") as web:
        page = await web.get(approve.group(1))  # a mail scanner, then the person
        assert page.status_code == 200 and fb.store.get_run(run_id).status is RunStatus.waiting
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        pressed = await web.post(approve.group(1).partition("?")[0],
                                 data={"csrf": csrf.group(1), "outcome": "approve", "field_days": "3"})
        assert pressed.status_code == 200, pressed.text
    out = await finished(fb, run_id)
    approval = out["approve"][0]["approval"]
    assert approval["decided_by"] == ["ada@example.com"] and approval["responses"][0]["channel"] == "link"


async def test_a_decision_for_a_run_that_ended_is_refused_and_closes_the_task(fb: Flowboard) -> None:
    from flowboard.store.approvals import AlreadyClosed

    run_id = await start(fb)
    ada = next(t for t in open_tasks(fb, run_id) if t.assignees == ["ada"])
    fb.store.delete_run(run_id)
    with pytest.raises(AlreadyClosed, match=r"^this request's run has ended \(it was cancelled, deleted or failed\)"):
        await fb.approvals.decide(ada.id, "approve", "ada", roles=[])
    assert fb.approvals.store.get(ada.id).status == "cancelled"
    assert fb.approvals.store.verify().ok


async def test_the_next_of_a_sequence_and_the_escalation_people_are_told_too(fb: Flowboard) -> None:
    from .chatservers import ChatServer

    fb.start_triggers()  # the deadline timer
    async with ChatServer() as chat:
        fb.store.set_credential("hook", "chat_webhook", {"url": chat.url("/mattermost")})
        notify = [{"via": "chat", "service": "mattermost", "credential": "hook"}]
        run_id = await start(fb, approvers=["ada", "bob"], rule="sequence", notify=notify)
        [first] = open_tasks(fb, run_id)
        await fb.approvals.decide(first.id, "approve", "ada", roles=[])
        texts = [p["attachments"][0]["text"] for _r, _q, p in chat.received]
        assert [t.split("\n\n")[1] for t in texts] == ["For ada.", "For bob."]
        assert "/decide/" in texts[1]

        escalating = await start(fb, approvers="carol", deadline_hours=0.0001, escalate_to="role:director",
                                 notify=notify)
        for _ in range(400):
            if len(chat.received) == 4:
                break
            await asyncio.sleep(0.025)
        texts = [p["attachments"][0]["text"] for _r, _q, p in chat.received]
        assert [t.split("\n\n")[1] for t in texts[2:]] == ["For carol.", "For role:director."]
        assert open_tasks(fb, escalating)[0].assignees == ["role:director"]


async def test_reminders_come_through_the_same_channel_with_fresh_links(fb: Flowboard) -> None:
    from .chatservers import ChatServer

    fb.start_triggers()  # the deadline and reminder timer
    async with ChatServer() as chat:
        fb.store.set_credential("hook", "chat_webhook", {"url": chat.url("/mattermost")})
        run_id = await start(fb, approvers="ada", deadline_hours=1, remind_every_hours=0.0001,  # 0.36 s
                             notify=[{"via": "chat", "service": "mattermost", "credential": "hook"}])
        for _ in range(400):
            if len(chat.received) >= 2:
                break
            await asyncio.sleep(0.025)
        [task] = open_tasks(fb, run_id)
        await fb.approvals.decide(task.id, "approve", "ada", roles=[])
        texts = [p["attachments"][0]["text"] for _r, _q, p in chat.received]
        titles = [p["attachments"][0]["title"] for _r, _q, p in chat.received]
    assert titles[:2] == ["Vacation: grace", "Reminder: Vacation: grace"]
    assert texts[1].startswith("This request is still waiting for your answer. Please answer before ")
    assert "For ada." in texts[1] and "/decide/" in texts[1]
    out = await finished(fb, run_id)
    assert out["approve"][0]["approval"]["decided_by"] == ["ada"]
    assert "reminded" in [e.event for e in fb.approvals.store.log(task.id)]


def test_reminder_mistakes_are_caught_before_the_run() -> None:
    from flowboard.engine import build_plan
    from flowboard.registry import default_registry

    for config, expected in (({"approvers": ["a"], "remind_before_hours": 2},
                              "remind before hours needs a deadline"),
                             ({"approvers": ["a"], "remind_before_hours": 2, "deadline_hours": 2},
                              r"remind before hours \(2\) must be less than deadline hours \(2\)")):
        data = {"id": "x", "name": "x", "nodes": [{"id": "start", "type": "trigger.manual"},
                                                  {"id": "a", "type": "approval", "config": config}],
                "edges": [{"source": "start", "target": "a"}]}
        with pytest.raises(FlowInvalid, match=expected):
            build_plan(parse_flow(data), default_registry())


async def test_emails_reach_users_by_their_account_address_and_every_holder_of_a_role(
        fb: Flowboard, monkeypatch: pytest.MonkeyPatch) -> None:
    """With accounts, the node needs no address list: a user is mailed at the address on the Users page, and a task
    for a role is mailed to everyone holding it who has an address, each with links of their own; a holder decides
    as themselves, and a holder who lost the role, or someone who never held it, cannot use a link. A role nobody
    with an address holds stops the node with a sentence saying where to add one."""
    import re

    import httpx
    from starlette.applications import Starlette

    from flowboard import approval_links

    from .mailserver import MailServer

    monkeypatch.setenv("FLOWBOARD_PUBLIC_URL", "https://flows.example.com")
    fb.approvals.links = approval_links.Links(b"test key")
    accounts = fb.accounts
    accounts.add_user("boss", "boss-password-1", ["admin"])  # no email: never mailed
    accounts.add_user("ada", "ada-password-1", ["approver"], email="ada@example.com")
    accounts.add_user("linus", "linus-password-1", ["approver", "editor"], email="linus@example.com")
    accounts.add_user("quiet", "quiet-password-1", ["approver"])  # holds the role, has no address: not mailed
    accounts.add_user("grace", "grace-password-1", ["requester"], email="grace@example.com")
    email = [{"via": "email", "credential": "mail", "sender": "flows@example.com"}]
    with MailServer() as mail:
        fb.store.set_credential("mail", "smtp", mail.credential())
        by_role = await start(fb, approvers="role:approver", notify=email)
        by_name = await start(fb, items=[{**REQUEST, "manager": "linus"}], approvers="{{ item.manager }}",
                              notify=email)
        sent = [(m["To"], m.get_body(("plain",)).get_content()) for _e, m in mail.messages]  # type: ignore[union-attr]
        version = fb.store.get_flow("vacation").version
        fb.store.save_flow(parse_flow(flow(approvers="role:admin", notify=email)), version)
        unreachable = await fb.run_flow("vacation", [REQUEST])  # the one admin has no address
    assert sorted(to for to, _text in sent) == ["ada@example.com", "linus@example.com", "linus@example.com"]
    assert unreachable.status is RunStatus.failed
    assert "nobody with the role admin has an email address: add one under notify addresses, or on the Users page" \
        in str(unreachable.steps["approve"].error)

    def link(to: str, run_id: str) -> str:
        [task] = open_tasks(fb, run_id)
        texts = [text for address, text in sent if address == to and "/decide/" in text]
        for text in texts:
            found = re.search(r"Approve: https://flows\.example\.com(/decide/\S+)", text)
            assert found is not None
            claim = fb.approvals.links.read(found.group(1).rsplit("/", 1)[1].partition("?")[0])  # type: ignore[union-attr]
            if claim.task_id == task.id:
                return found.group(1)
        raise AssertionError(f"no link for {to} to the task of run {run_id}")

    app = Starlette(routes=approval_links.routes(fb))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://flows.example.com") as web:
        async def press(path: str) -> httpx.Response:
            page = await web.get(path)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            if csrf is None:
                return page
            return await web.post(path.partition("?")[0], data={"csrf": csrf.group(1), "outcome": "approve",
                                                                "field_days": "3"})

        accounts.set_roles("ada", ["requester"])  # ada lost the role: her link to the role's task no longer works
        refused = await press(link("ada@example.com", by_role))
        assert refused.status_code == 403 and "This link is not yours any more" in refused.text
        assert open_tasks(fb, by_role)
        pressed = await press(link("linus@example.com", by_role))
        assert pressed.status_code == 200, pressed.text
    out = await finished(fb, by_role)
    assert out["approve"][0]["approval"]["decided_by"] == ["linus"]
    assert open_tasks(fb, by_name)[0].assignees == ["linus"]
