"""One-click approval links (`/decide/<token>`): GET never decides; the POST from the page does, once; a replayed,
expired, tampered, other-recipient or cross-site answer is refused with a page that says why."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from flowboard import approval_links
from flowboard.services import Flowboard
from flowboard.store.approvals import Task


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[httpx.AsyncClient, Flowboard]]:
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLOWBOARD_PUBLIC_URL", "https://flows.example.com/")
    fb = Flowboard(data_dir=tmp_path)
    app = Starlette(routes=approval_links.routes(fb))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://flows.example.com") as c:
        yield c, fb
    await fb.aclose()


def task(fb: Flowboard, **over: Any) -> Task:
    values: dict[str, Any] = {
        "flow_id": "vacation", "run_id": "r1", "node_id": "approve", "title": "Vacation: grace",
        "assignees": ["user:ada"], "requester": "grace",
        "data": {"show": {"message": "grace asks for 3 days <b>now</b>", "fields": {"employee": "grace", "days": 3},
                          "form": [{"name": "days", "label": "Days granted", "type": "number", "default": 3}]}}}
    values.update(over)
    if not any(r.id == values["run_id"] for r in fb.store.list_runs()):  # the run the task belongs to, parked
        fb.store.create_run(values["run_id"], values["flow_id"], 1, "start", [], "api", "waiting")
    return fb.approvals.store.create(**values)


def link(fb: Flowboard, t: Task, to: str = "user:ada", **kw: Any) -> str:
    assert fb.approvals.links is not None
    url = fb.approvals.links.url(t.id, to, **kw)
    assert url.startswith("https://flows.example.com/decide/")
    return url.removeprefix("https://flows.example.com")


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def test_get_shows_and_decides_nothing_then_the_press_decides_once(
        site: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = site
    t = task(fb)
    path = link(fb, t, outcome="approve")
    for _ in range(3):  # a mail scanner, a link preview, the person
        page = await client.get(path)
        assert page.status_code == 200
        assert "Vacation: grace" in page.text and "grace asks for 3 days &lt;b&gt;now&lt;/b&gt;" in page.text
        assert "<dt>days</dt><dd>3</dd>" in page.text and "Nothing is recorded until you press a button." in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert fb.approvals.store.get(t.id).status == "open"
    assert [e.event for e in fb.approvals.store.log(t.id)] == ["created"]

    answer = await client.post(path.partition("?")[0], data={"csrf": csrf(page.text), "outcome": "approve",
                                                             "comment": "enjoy", "field_days": "2"},
                               headers={"Origin": "https://flows.example.com"})
    assert answer.status_code == 200 and "Recorded" in answer.text
    decided = fb.approvals.store.get(t.id)
    assert (decided.status, decided.decision, decided.responder, decided.channel, decided.comment, decided.fields) \
        == ("decided", "approve", "ada", "link", "enjoy", {"days": "2"})

    replay = await client.post(path.partition("?")[0], data={"csrf": csrf(page.text), "outcome": "reject"})
    assert replay.status_code == 409
    assert f"This request was already {decided.describe()}." in replay.text
    assert "already approved by ada at " in replay.text
    assert fb.approvals.store.get(t.id).decision == "approve"


async def test_tampered_truncated_and_expired_links(site: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = site
    t = task(fb)
    path = link(fb, t)
    body, _, signature = path.removeprefix("/decide/").partition(".")
    other = link(fb, task(fb, title="other"))
    other_body = other.removeprefix("/decide/").partition(".")[0]
    for bad in (f"/decide/{other_body}.{signature}", f"/decide/{body}", f"/decide/{body}.{signature[:-2]}",
                f"/decide/{body[:-1]}x.{signature}", "/decide/%00%ff.abc"):
        page = await client.get(bad)
        assert page.status_code == 403, bad
        assert "This link is not valid: it was changed or cut short." in page.text
    expired = await client.get(link(fb, t, expires=time.time() - 1))
    assert expired.status_code == 403 and "This link has expired." in expired.text


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.25, 0.4999, 0.5, 0.5001, 0.75, 0.999])
def test_a_link_for_a_deadline_has_expired_the_moment_the_deadline_passes(fraction: float) -> None:
    """The Approval node's links expire at the task's deadline. At the deadline the task escalates (its old links
    are someone else's now) or times out: an old link must say "expired" from then on, never work or say something
    else for the next half second (its expiry was once rounded to the nearest second: CI saw that page)."""
    links = approval_links.Links(b"k" * 32, "https://flows.example.com")
    due = 1_800_000_000 + fraction
    token = links.url("t1", "user:grace", due).rsplit("/", 1)[1]
    assert links.read(token, now=due - 1.0).task_id == "t1"  # a second before: still good
    for after in (1e-6, 0.001, 0.3, 0.6, 1.0, 3600.0):
        with pytest.raises(approval_links.LinkRefused, match="This link has expired"):
            links.read(token, now=due + after)


async def test_a_link_decides_only_as_its_recipient_while_they_hold_the_task(
        site: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = site
    t = task(fb)
    bob = await client.get(link(fb, t, to="user:bob"))
    assert bob.status_code == 403 and "It was sent to user:bob, but the task has been handed to user:ada." in bob.text
    ada_path = link(fb, t)
    page = await client.get(ada_path)
    fb.approvals.store.reassign(t.id, ["user:linus"], by="ada", reason="holiday")
    refused = await client.post(ada_path, data={"csrf": csrf(page.text), "outcome": "approve"})
    assert refused.status_code == 403 and "This link is not yours any more" in refused.text
    assert fb.approvals.store.get(t.id).status == "open"

    own = task(fb, assignees=["user:grace", "user:ada"])
    own_path = link(fb, own, to="user:grace")
    page = await client.get(own_path)
    answer = await client.post(own_path, data={"csrf": csrf(page.text), "outcome": "approve"})
    assert answer.status_code == 403 and "grace asked for this approval, so someone else must decide it" in answer.text


async def test_a_post_without_the_pages_csrf_value_or_from_another_site_is_refused(
        site: tuple[httpx.AsyncClient, Flowboard]) -> None:
    client, fb = site
    t = task(fb)
    path = link(fb, t)
    token = (await client.get(path)).text
    for data, headers in (({"outcome": "approve"}, {}),
                          ({"outcome": "approve", "csrf": "x" * 43}, {}),
                          ({"outcome": "approve", "csrf": csrf(token)}, {"Origin": "https://evil.example"})):
        answer = await client.post(path, data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert "It did not come from the page of this link." in answer.text
    wrong = await client.post(path, data={"outcome": "maybe", "csrf": csrf(token)})
    assert wrong.status_code == 409 and "&#x27;maybe&#x27; is not an answer to this task" in wrong.text
    assert fb.approvals.store.get(t.id).status == "open"
