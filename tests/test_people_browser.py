"""The vacation request end to end, with people, in real Chromium, against `flowboard serve` in a subprocess.

The data folder is set up as a person would: `prepare()` (what `flowboard demo` makes: the Employees table, the Mail
credential pointing at the mail catcher), users added with `flowboard user add`, the flow stored with `flowboard
import` and switched on with `flowboard activate` (those commands' own code, run in the test process: a Python
start-up each would add seconds per test on a loaded machine). The stand-ins (mail catcher on SMTP 2525, APIs on
8091) run in this test process, on the ports the flow's credential names.

ada asks for days on the public form /form/vacation; her manager grace (from the Employees table) signs in, sees the
inbox badge and the task, and approves or rejects with a comment; or decides from the one-click link in her email.
The run ends, the balance in the table changes (or not), the decision is on record, and ada's email says so. A
`kill -9` of the server while the run waits loses nothing and repeats nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowboard.demo import DemoServer

from .browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from .browser import sign_in as browser_sign_in
from .clihelp import flowboard_here
from .serve import Server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
TIMEOUT = 30_000  # ms, for Playwright's waits on a busy machine
DONE = {"approve": "approved", "reject": "rejected"}
PASSWORDS = {"grace": "grace-decides-1", "ada": "ada-asks-for-1", "boss": "boss-admin-1", "linus": "linus-signs-1"}
#: The people of the vacation flow (the first user must be an admin).
USERS = (("boss", ["admin"]), ("grace", ["approver", "requester"]), ("ada", ["requester"]))


class Office:
    """One data folder, set up like a person would, with its server and an admin API key for the checks."""

    def __init__(self, data_dir: Path, stand_ins: DemoServer, flow: str = "vacation-request",
                 users: tuple[tuple[str, list[str]], ...] = USERS, source: Path | None = None) -> None:
        from flowboard.demo import prepare
        from flowboard.services import Flowboard

        self.data_dir = data_dir
        self.mail = stand_ins.state.mail
        fb = Flowboard(data_dir=data_dir)
        try:
            prepare(fb)
            _info, self.key = fb.store.create_api_key("end-to-end checks")
        finally:
            fb.store.close()
        self.flow = flow
        for name, roles in users:
            args = [a for role in roles for a in ("--role", role)]
            done = flowboard_here(data_dir, "user", "add", name, *args, "--email", f"{name}@example.com",
                             input=PASSWORDS[name] + "\n")
            assert done.returncode == 0, done.stderr
        for step in (("import", str(source or FLOWS / f"{flow}.json")), ("activate", flow)):
            done = flowboard_here(data_dir, *step)
            assert done.returncode == 0, done.stdout + done.stderr
        self.servers: list[Server] = []
        self.start()

    def start(self) -> Server:
        self.server = Server(self.data_dir)
        self.servers.append(self.server)
        return self.server

    def close(self, browser: Chromium | None = None) -> None:
        """Stop the server(s); first close `browser`'s tabs: a page left open would log its lost connection."""
        if browser is not None:
            browser.close_tabs()
        for server in self.servers:
            server.stop()

    def api(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.server.url}/api/v1{path}", params=params, headers={"X-API-Key": self.key},
                           timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def tasks(self) -> list[dict[str, Any]]:
        return list(self.api("/approvals", flow_id=self.flow)["tasks"])

    def wait_for_task(self, count: int = 1) -> dict[str, Any]:
        """The newest approval task, once `count` of them exist (the run reached the Approval node and waits)."""
        deadline = time.monotonic() + 60
        while len(tasks := self.tasks()) < count:
            assert time.monotonic() < deadline, f"no approval task appeared; runs: {self.api('/runs')}"
            time.sleep(0.2)
        assert len(tasks) == count, tasks
        return tasks[0]

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.api(f"/runs/{run_id}"))

    def wait_until_finished(self, run_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while (run := self.run(run_id))["status"] in ("waiting", "running", "queued"):
            assert time.monotonic() < deadline, f"run {run_id} did not finish: {run}"
            time.sleep(0.2)
        return run

    def days_left(self, employee: str = "ada") -> int:
        (row,) = self.api("/tables/Employees/rows", employee=employee)["rows"]
        return int(row["days_left"])

    def mails(self, to: str, subject: str | None = None) -> list[dict[str, Any]]:
        return [m for m in list(self.mail) if m["to"] == to and (subject is None or m["subject"] == subject)]

    def wait_for_mail(self, to: str, subject: str | None = None) -> list[dict[str, Any]]:
        """The mails to `to` once there is one: a person is told of a task just after it is stored (the test can
        see the task first), so the email may still be on its way."""
        deadline = time.monotonic() + 60
        while not (found := self.mails(to, subject)):
            assert time.monotonic() < deadline, f"no email to {to} ({subject or 'any subject'})"
            time.sleep(0.1)
        return found


@pytest.fixture
def office(tmp_path: Path, stand_ins: DemoServer) -> Iterator[Office]:
    stand_ins.state.reset()
    made = Office(tmp_path, stand_ins)
    yield made
    made.close()
    for server in made.servers:
        assert not server.errors(), server.log.read_text()


class Chromium:
    """Chromium, and the console or page errors of every tab opened in it (the test fails on any)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.errors: list[str] = []

    def close_tabs(self) -> None:
        for context in self.browser.contexts:
            context.close()

    def tab(self, refused: int | None = None) -> Any:
        """A laptop-sized tab in a context of its own (its own cookies: one person). `refused`: this tab opens
        one-click links that are refused by design with that status, which Chromium logs as a console error; exactly
        that error, for a /decide/ page, is expected there (and nothing else)."""
        page = self.browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
        page.set_default_timeout(TIMEOUT)

        def console(message: Any) -> None:
            if message.type != "error":
                return
            expected = refused is not None and message.text.startswith(
                f"Failed to load resource: the server responded with a status of {refused} ") \
                and "/decide/" in str(message.location.get("url", ""))
            if not expected:
                self.errors.append(f"console.{message.type}: {message.text} ({message.location.get('url')})")

        page.on("console", console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    """Tests ask for it after `office`, so it closes before the server stops."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        made = Chromium(browser)
        yield made
        browser.close()
    assert not made.errors, "browser errors:\n" + "\n".join(made.errors)


def ask_for_days(browser: Chromium, office: Office, days: int, reason: str = "family") -> str:
    """ada fills the public form; returns the id of the run it started (it waits for grace)."""
    before = {t["id"] for t in office.tasks()}
    page = browser.tab()
    page.goto(office.server.url + "/form/vacation")
    page.get_by_label("Your user name").fill("ada")
    page.get_by_label("How many days").fill(str(days))
    page.get_by_label("First day off").fill("2026-12-20")
    page.get_by_label("Reason (optional)").fill(reason)
    page.get_by_role("button", name="Send the request").click()
    page.wait_for_selector("text=Thank you. Your request is on its way")
    page.context.close()
    task = office.wait_for_task(len(before) + 1)
    assert task["id"] not in before
    assert task["title"] == "Vacation for ada" and task["assignees"] == ["grace"] and task["status"] == "open"
    assert office.run(task["run_id"])["status"] == "waiting"
    return str(task["run_id"])


def sign_in(browser: Chromium, office: Office, name: str) -> Any:
    """A new tab of `name`'s, signed in on the sign-in page; approvers land on their inbox."""
    page = browser.tab()
    browser_sign_in(page, name, PASSWORDS[name], base_url=office.server.url)
    page.wait_for_url(office.server.url + "/inbox")
    return page


def decide_in_inbox(browser: Chromium, office: Office, outcome: str, comment: str = "") -> None:
    """grace signs in, sees one task on the badge and its card with ada's request, and answers it."""
    page = sign_in(browser, office, "grace")
    badge = page.get_by_role("link", name=re.compile("^Inbox")).locator(".q-badge")
    badge.wait_for()
    assert badge.inner_text().strip() == "1"
    card = page.locator(".q-card", has_text="Vacation for ada")
    card.wait_for()
    assert "ada asks for 3 days from 2026-12-20" in card.inner_text()
    if comment:
        card.get_by_label("Comment (optional)").fill(comment)
    card.get_by_role("button", name=outcome.capitalize()).click()
    page.wait_for_selector(f"text=Recorded: {DONE[outcome]} by grace")
    page.wait_for_selector("text=Nothing to decide right now.")
    page.context.close()


def test_ada_asks_and_grace_approves_in_her_inbox(office: Office, chromium: Chromium) -> None:
    run_id = ask_for_days(chromium, office, 3)
    (request,) = office.wait_for_mail("grace@example.com")  # grace is asked by email too, with her own links
    assert "ada asks for 3 days from 2026-12-20" in request["text"] and "/decide/" in request["text"]
    assert office.days_left() == 20 and not office.mails("ada@example.com")

    decide_in_inbox(chromium, office, "approve")

    assert office.wait_until_finished(run_id)["status"] == "succeeded"
    assert office.days_left() == 17
    (task,) = office.tasks()
    assert (task["status"], task["decision"], task["responder"], task["channel"]) == ("decided", "approve", "grace",
                                                                                      "inbox")
    (told,) = office.mails("ada@example.com")
    assert told["subject"] == "Your vacation is approved"
    assert "grace approved your 3 days from 2026-12-20. Days left: 17." in told["text"]


def test_grace_rejects_with_a_comment_and_the_days_stay(office: Office, chromium: Chromium) -> None:
    run_id = ask_for_days(chromium, office, 3)
    decide_in_inbox(chromium, office, "reject", "the team is short that week")

    assert office.wait_until_finished(run_id)["status"] == "succeeded"
    assert office.days_left() == 20
    (task,) = office.tasks()
    assert (task["status"], task["decision"], task["responder"], task["comment"]) == (
        "decided", "reject", "grace", "the team is short that week")
    (told,) = office.mails("ada@example.com")
    assert told["subject"] == "Your vacation request was declined"
    assert "grace declined your request. Comment: the team is short that week" in told["text"]


def test_a_killed_server_resumes_the_waiting_run_exactly_once(office: Office, chromium: Chromium) -> None:
    run_id = ask_for_days(chromium, office, 3)
    office.server.kill()  # kill -9 while the run waits for grace
    office.start()
    assert office.run(run_id)["status"] == "waiting"

    decide_in_inbox(chromium, office, "approve")

    assert office.wait_until_finished(run_id)["status"] == "succeeded"
    assert office.days_left() == 17
    assert [m["subject"] for m in office.mails("ada@example.com")] == ["Your vacation is approved"]
    assert len(office.mails("grace@example.com")) == 1  # she was asked once, not again after the restart
    runs = office.api("/runs", flow_id="vacation-request")["runs"]
    assert [r["id"] for r in runs] == [run_id]
    steps = office.run(run_id)["steps"]
    assert [s["node_id"] for s in steps].count("spend") == 1


def test_the_one_click_link_in_graces_email(office: Office, chromium: Chromium) -> None:
    """Opening the link shows the request and decides nothing; pressing a button there decides; opening it again
    says it is already decided."""
    run_id = ask_for_days(chromium, office, 3)
    (request,) = office.wait_for_mail("grace@example.com")
    links = re.findall(r"https?://\S+/decide/[A-Za-z0-9_.=-]+", request["text"])
    assert links and all(link.startswith(office.server.url + "/decide/") for link in links), request["text"]

    page = chromium.tab()  # not signed in: the link itself says who she is
    page.goto(links[0])
    page.wait_for_selector("h1:has-text('Vacation for ada')")
    assert "ada asks for 3 days from 2026-12-20" in page.inner_text("body")
    page.wait_for_selector("text=Nothing is recorded until you press a button.")
    (task,) = office.tasks()
    assert task["status"] == "open" and office.run(run_id)["status"] == "waiting"  # a GET decides nothing

    page.get_by_label("Comment (optional)").fill("enjoy")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_selector("text=Recorded")
    assert "approved by grace" in page.inner_text("body")

    assert office.wait_until_finished(run_id)["status"] == "succeeded"
    assert office.days_left() == 17
    (task,) = office.tasks()
    assert (task["decision"], task["responder"], task["channel"], task["comment"]) == ("approve", "grace", "link",
                                                                                      "enjoy")
    assert [m["subject"] for m in office.mails("ada@example.com")] == ["Your vacation is approved"]

    page.goto(links[0])  # replayed: nothing left to decide
    page.wait_for_selector("text=Nothing left to decide")
    page.context.close()


def test_two_of_three_approvers_each_in_their_inbox(tmp_path: Path, stand_ins: DemoServer,
                                                    chromium: Chromium) -> None:
    """A big invoice needs two of grace, ada and linus (the Invoice rules table): after ada's approval the run still
    waits; linus's makes it go on (booked once, the requester told), and grace has nothing left to decide."""
    stand_ins.state.reset()
    office = Office(tmp_path, stand_ins, "invoice-approval", (
        ("boss", ["admin"]), ("grace", ["approver"]), ("ada", ["approver"]), ("linus", ["approver"])))
    try:
        page = chromium.tab()  # eve is not a user: the form is public
        page.goto(office.server.url + "/form/invoice")
        for label, value in (("Invoice number", "INV-9"), ("Supplier", "Paper & Co"), ("Amount (EUR)", "12000"),
                             ("Your user name", "eve"), ("Your email", "eve@example.com")):
            page.get_by_label(label).fill(value)
        page.get_by_role("button", name="Send for approval").click()
        page.wait_for_selector("text=The invoice is with its approvers")
        page.context.close()
        office.wait_for_task(3)
        tasks = office.tasks()
        assert sorted(t["assignees"][0] for t in tasks) == ["ada", "grace", "linus"]
        run_id = tasks[0]["run_id"]

        for who, still_waiting in (("ada", True), ("linus", False)):
            page = sign_in(chromium, office, who)
            page.get_by_role("link", name=re.compile("^Inbox")).locator(".q-badge").wait_for()
            card = page.locator(".q-card", has_text="Invoice INV-9 from Paper & Co")
            card.get_by_role("button", name="Approve").click()
            page.wait_for_selector(f"text=Recorded: approved by {who}")
            page.context.close()
            if still_waiting:
                assert office.run(run_id)["status"] == "waiting"  # one of the two approvals so far

        assert office.wait_until_finished(run_id)["status"] == "succeeded"
        assert [e["invoice"] for e in stand_ins.state.entries] == ["INV-9"]
        assert [m["subject"] for m in office.mails("eve@example.com")] == ["Invoice INV-9 is approved"]
        decided = {t["assignees"][0]: (t["status"], t["decision"]) for t in office.tasks()}
        assert decided["ada"] == decided["linus"] == ("decided", "approve") and decided["grace"][0] != "open"

        page = sign_in(chromium, office, "grace")
        page.wait_for_selector("text=Nothing to decide right now.")
        page.context.close()
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.log.read_text()


#: grace, ada's manager, and linus, who signs after her or takes over; boss is the admin.
TEAM = (("boss", ["admin"]), ("grace", ["approver", "requester"]), ("ada", ["requester"]), ("linus", ["approver"]))


def vacation_with(folder: Path, **ask: Any) -> Path:
    """The vacation flow with its Approval node changed (linus gets mail too), written to `folder`."""
    import json

    flow = json.loads((FLOWS / "vacation-request.json").read_text())
    node = next(n for n in flow["nodes"] if n["id"] == "ask")
    node["config"].update(ask)
    node["config"]["notify"][0]["addresses"]["linus"] = "linus@example.com"
    path = folder / "vacation-variant.json"
    path.write_text(json.dumps(flow))
    return path


def decide_as(browser: Chromium, office: Office, who: str, outcome: str = "approve") -> None:
    """`who` signs in, finds ada's request in the inbox and answers it."""
    page = sign_in(browser, office, who)
    page.get_by_role("link", name=re.compile("^Inbox")).locator(".q-badge").wait_for()
    card = page.locator(".q-card", has_text="Vacation for ada")
    card.get_by_role("button", name=outcome.capitalize()).click()
    page.wait_for_selector(f"text=Recorded: {DONE[outcome]} by {who}")
    page.context.close()


def test_a_sequence_grace_then_linus(tmp_path: Path, stand_ins: DemoServer, chromium: Chromium) -> None:
    """One after another: linus is asked (by email, with his own link) only once grace has approved; the run goes on
    after linus, and ada's email names both."""
    stand_ins.state.reset()
    source = vacation_with(tmp_path, approvers="{{ item.manager }}, linus", rule="sequence")
    office = Office(tmp_path, stand_ins, users=TEAM, source=source)
    try:
        run_id = ask_for_days(chromium, office, 3)
        assert not office.mails("linus@example.com")
        page = sign_in(chromium, office, "linus")
        page.wait_for_selector("text=Nothing to decide right now.")  # not his turn yet
        page.context.close()

        decide_as(chromium, office, "grace")
        assert office.run(run_id)["status"] == "waiting"
        second = office.wait_for_task(2)
        assert second["assignees"] == ["linus"] and second["status"] == "open"
        (asked,) = office.wait_for_mail("linus@example.com")
        assert "/decide/" in asked["text"]

        decide_as(chromium, office, "linus")
        assert office.wait_until_finished(run_id)["status"] == "succeeded"
        assert office.days_left() == 17
        (told,) = office.mails("ada@example.com")
        assert "grace, linus approved your 3 days" in told["text"]
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.log.read_text()


def test_grace_is_reminded_then_the_request_escalates_to_linus(tmp_path: Path, stand_ins: DemoServer,
                                                               chromium: Chromium) -> None:
    """A short deadline (25 s) with a reminder 12 s before it: grace gets a reminder email and her inbox counts it;
    nobody answers, so at the deadline the task is handed to linus (told by email), who approves; grace's old link
    no longer works."""
    stand_ins.state.reset()
    source = vacation_with(tmp_path, deadline_hours=25 / 3600, remind_before_hours=12 / 3600, escalate_to="linus",
                           escalate_hours=1)
    office = Office(tmp_path, stand_ins, users=TEAM, source=source)
    try:
        run_id = ask_for_days(chromium, office, 3)
        (request,) = office.wait_for_mail("grace@example.com", "Vacation for ada")
        grace_link = re.findall(r"https?://\S+/decide/[A-Za-z0-9_.=-]+", request["text"])[0]

        deadline = time.monotonic() + 60
        while not office.mails("grace@example.com", "Reminder: Vacation for ada"):
            assert time.monotonic() < deadline, "grace was never reminded"
            time.sleep(0.2)
        (reminder,) = office.mails("grace@example.com", "Reminder: Vacation for ada")
        assert reminder["text"].startswith("This request is still waiting for your answer. Please answer before ")
        assert "/decide/" in reminder["text"]
        page = sign_in(chromium, office, "grace")
        card = page.locator(".q-card", has_text="Vacation for ada")
        card.wait_for()
        if office.tasks()[0]["assignees"] == ["grace"]:  # still hers (a loaded machine may be past the deadline)
            assert "reminded 1 time" in card.inner_text()
        page.context.close()

        while (task := office.tasks()[0])["assignees"] != ["linus"]:
            assert time.monotonic() < deadline, f"the request did not escalate: {task}"
            time.sleep(0.2)
        assert task["status"] == "open"
        (handed,) = office.wait_for_mail("linus@example.com")
        assert handed["subject"] == "Vacation for ada" and "/decide/" in handed["text"]

        page = chromium.tab(refused=403)  # grace's emailed link: its time is up
        answer = page.goto(grace_link)
        assert answer is not None and answer.status == 403
        page.wait_for_selector("h1:has-text('This link cannot be used')")
        assert "This link has expired." in page.inner_text("body")
        page.context.close()

        decide_as(chromium, office, "linus")
        assert office.wait_until_finished(run_id)["status"] == "succeeded"
        assert office.days_left() == 17
        (done,) = office.tasks()
        assert (done["status"], done["responder"]) == ("decided", "linus")
        log = office.api(f"/approvals/{done['id']}")["log"]
        assert [e["event"] for e in log] == ["created", "reminded", "reassigned", "decided"]
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.log.read_text()


def test_one_time_links_refuse_clearly(tmp_path: Path, stand_ins: DemoServer, chromium: Chromium) -> None:
    """grace hands the request to linus in her inbox. Her emailed link is now someone else's task; a changed link and
    an expired one are refused, each with a page that says why and decides nothing; linus's own link (GET) only shows
    the request, his press decides, and a replay is told it is decided."""
    from flowboard.approval_links import Links
    from flowboard.store.secrets import raw_key

    stand_ins.state.reset()
    office = Office(tmp_path, stand_ins, users=TEAM, source=vacation_with(tmp_path))
    try:
        run_id = ask_for_days(chromium, office, 3)
        (request,) = office.wait_for_mail("grace@example.com")
        grace_link = re.findall(r"https?://\S+/decide/[A-Za-z0-9_.=-]+", request["text"])[0]
        (task,) = office.tasks()

        page = sign_in(chromium, office, "grace")
        card = page.locator(".q-card", has_text="Vacation for ada")
        card.get_by_text("Hand it to someone else").click()
        # the section slides open (0.3 s, longer on a busy machine); a press on "Hand on" while it still slides was
        # lost now and then (the browser sent no click at all), so act once nothing moves any more
        card.get_by_label("Who decides instead").wait_for()
        page.wait_for_function("() => document.getAnimations().length === 0")
        card.get_by_label("Who decides instead").fill("linus")
        card.get_by_label("Why (optional)").fill("I am away next week")
        card.get_by_role("button", name="Hand on").click()
        deadline = time.monotonic() + 60  # recorded first; the page says so once linus has been told (an email)
        while office.tasks()[0]["assignees"] != ["linus"]:
            assert time.monotonic() < deadline, f"the task was not handed on: {office.tasks()}"
            time.sleep(0.2)
        page.wait_for_selector("text=Handed to linus: it is theirs to decide now.")
        page.wait_for_selector("text=Nothing to decide right now.")
        page.context.close()

        token = grace_link.rsplit("/", 1)[1]
        body, signature = token.split(".")
        tampered = f"{office.server.url}/decide/{body}.{signature[:-3]}{'AAA' if signature[-3:] != 'AAA' else 'BBB'}"
        links = Links(lambda: raw_key(lambda: tmp_path))
        expired = links.url(task["id"], "linus", time.time() - 60).replace(links.base, office.server.url)
        for link, heading, reason in (
                (grace_link, "This link is not yours any more", "It was sent to grace, but the task has been handed "
                                                                "to linus."),
                (tampered, "This link cannot be used", "This link is not valid: it was changed or cut short."),
                (expired, "This link cannot be used", "This link has expired.")):
            page = chromium.tab(refused=403)
            answer = page.goto(link)
            assert answer is not None and answer.status == 403
            page.wait_for_selector(f"h1:has-text('{heading}')")
            assert reason in page.inner_text("body")
            assert page.locator("button").count() == 0  # nothing to press
            page.context.close()

        (asked,) = office.wait_for_mail("linus@example.com")
        linus_link = re.findall(r"https?://\S+/decide/[A-Za-z0-9_.=-]+", asked["text"])[0]
        page = chromium.tab()
        page.goto(linus_link)
        page.wait_for_selector("h1:has-text('Vacation for ada')")
        assert office.tasks()[0]["status"] == "open" and office.run(run_id)["status"] == "waiting"
        page.get_by_role("button", name="Approve").click()
        page.wait_for_selector("text=Recorded")
        page.goto(linus_link)
        page.wait_for_selector("text=Nothing left to decide")
        assert "approved by linus" in page.inner_text("body")
        page.context.close()
        assert office.wait_until_finished(run_id)["status"] == "succeeded"
        (done,) = office.tasks()
        assert (done["responder"], done["channel"]) == ("linus", "link")
        assert [e["event"] for e in office.api(f"/approvals/{done['id']}")["log"]] == ["created", "reassigned",
                                                                                      "decided"]
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.log.read_text()
