"""Form trigger: the answers are checked at each field, and the public page works in a real browser against the real
server (`python -m flowboard serve` in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowboard.nodes.form import FormConfig, read_answers

from flowboard.engine import build_plan
from flowboard.errors import FlowInvalid
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.store import Store

from .browser import CHROMIUM, CHROMIUM_ARGS, free_port, require_chromium
from .clihelp import env_for

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"

FIELDS = [
    {"name": "name", "label": "Your name", "type": "text", "required": True, "placeholder": "Ada Lovelace"},
    {"name": "email", "label": "Email", "type": "email", "required": True},
    {"name": "days", "label": "Days off", "type": "number", "required": True},
    {"name": "start", "label": "First day", "type": "date"},
    {"name": "kind", "label": "Kind of leave", "type": "choice", "options": ["Vacation", "Sick", "Other"],
     "required": True},
    {"name": "urgent", "label": "This is urgent", "type": "checkbox"},
    {"name": "note", "label": "Anything else?", "type": "long_text", "placeholder": "Optional"},
]


def vacation_flow() -> dict[str, Any]:
    return {"id": "vacation", "name": "Vacation request", "nodes": [
        {"id": "form", "type": "trigger.form", "config": {
            "path": "vacation", "title": "Request time off",
            "description": "Tell us when you would like to be away. We answer within two working days.",
            "fields": FIELDS, "submit_label": "Send request",
            "respond": {"type": "message", "message": "Thanks! Your request is on its way to your manager."}}},
        {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "received", "value": True}]}},
    ], "edges": [{"source": "form", "target": "mark"}]}


def quote_flow() -> dict[str, Any]:
    return {"id": "quote", "name": "Quote", "nodes": [
        {"id": "form", "type": "trigger.form", "config": {
            "path": "quote", "title": "Get a quote", "respond": {"type": "flow"},
            "fields": [{"name": "hours", "label": "Hours", "type": "number", "required": True}]}},
        {"id": "price", "type": "data.set", "config": {"fields": [
            {"name": "message", "value": "Your quote: {{ item.hours * 80 }} EUR"}]}},
    ], "edges": [{"source": "form", "target": "price"}]}


def receipt_flow() -> dict[str, Any]:
    return {"id": "receipt", "name": "Expense claim", "nodes": [
        {"id": "form", "type": "trigger.form", "config": {
            "path": "receipt", "title": "Claim an expense", "respond": {"type": "flow"},
            "fields": [{"name": "name", "label": "Your name", "type": "text", "required": True},
                       {"name": "receipt", "label": "The receipt", "type": "file", "required": True},
                       {"name": "photo", "label": "A photo (optional)", "type": "file"}]}},
        {"id": "echo", "type": "data.set", "config": {"fields": [
            {"name": "receipt_name", "value": "{{ item.receipt.name }}"}]}},
    ], "edges": [{"source": "form", "target": "echo"}]}


# -- answers ------------------------------------------------------------------------------------------------------


def test_answers_are_checked_and_typed() -> None:
    config = FormConfig.model_validate(vacation_flow()["nodes"][0]["config"])
    item, errors = read_answers(config, {"name": " Ada ", "email": "ada@example.com", "days": "3", "start":
                                         "2025-07-01", "kind": "Sick", "urgent": "on", "note": "line 1\nline 2\n"})
    assert errors == {}
    assert item == {"name": "Ada", "email": "ada@example.com", "days": 3, "start": "2025-07-01", "kind": "Sick",
                    "urgent": True, "note": "line 1\nline 2"}
    item, errors = read_answers(config, {"name": "", "email": "ada@", "days": "three", "start": "1.7.2025",
                                         "kind": "Holiday"})
    assert errors == {
        "name": "Please fill in this field.",
        "email": "Please enter an email address, such as name@example.com.",
        "days": "Please enter a number, such as 42 or 3.5.",
        "start": "Please enter a date as YYYY-MM-DD, such as 2025-07-01.",
        "kind": "Please choose one of the options.",
    }
    item, errors = read_answers(config, {"name": "A", "email": "a@b.co", "days": "2.5", "kind": "Other"})
    assert errors == {} and item["days"] == 2.5 and item["urgent"] is False and item["start"] is None


def test_form_settings_are_checked() -> None:
    data = vacation_flow()
    data["nodes"][0]["config"]["fields"] = [{"name": "x", "type": "choice"}, {"name": "x"}]
    data["nodes"][0]["config"]["path"] = "../up"
    with pytest.raises(FlowInvalid) as caught:
        build_plan(parse_flow(data), default_registry())
    messages = " | ".join(p.message for p in caught.value.problems)
    assert "the choice field 'x' needs at least one option" in messages
    assert "use letters, digits" in messages


# -- the page in a real browser against the real server -----------------------------------------------------------


class Server:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowboard", "serve", "--port", str(self.port), "--no-browser",
             "--data-dir", str(data_dir)], env=env_for(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/form/vacation", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the server did not start:\n{self.output}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.output, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.output, _ = self.process.communicate()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("forms")
    store = Store(data_dir=data_dir)
    try:
        for data in (vacation_flow(), quote_flow(), receipt_flow()):
            store.save_flow(parse_flow(data), expected_version=None)
            store.set_active(data["id"], True)
        inactive = {**vacation_flow(), "id": "off", "name": "Switched off"}
        inactive["nodes"][0]["config"] = {**inactive["nodes"][0]["config"], "path": "off"}
        store.save_flow(parse_flow(inactive), expected_version=None)
    finally:
        store.close()
    srv = Server(data_dir)
    yield srv, data_dir
    srv.stop()
    assert "Traceback" not in srv.output, srv.output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 1100})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    yield tab
    context.close()
    assert not errors, "browser errors:\n" + "\n".join(errors)


def form_runs(data_dir: Path, flow_id: str) -> list[Any]:
    store = Store(data_dir=data_dir)
    try:
        return store.list_runs(flow_id)
    finally:
        store.close()


def wait_for_run(data_dir: Path, flow_id: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        runs = form_runs(data_dir, flow_id)
        if runs and runs[0].status.finished:
            return runs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished run of {flow_id}: {runs}")
        time.sleep(0.1)


def test_a_required_field_left_empty_is_shown_at_the_field_and_starts_nothing(server: tuple[Server, Path],
                                                                               page: Any) -> None:
    srv, data_dir = server
    before = len(form_runs(data_dir, "vacation"))
    page.goto(f"{srv.url}/form/vacation")
    page.fill("#f-email", "ada@example")
    page.fill("#f-days", "3")
    page.click("button[type=submit]")
    assert page.locator("#f-name-error").inner_text() == "Please fill in this field."
    assert page.locator("#f-email-error").inner_text() == "Please enter an email address, such as name@example.com."
    assert page.locator("#f-kind-error").inner_text() == "Please choose one."
    assert page.locator("#f-days-error").count() == 0
    assert page.input_value("#f-email") == "ada@example", "what was typed is kept"
    assert page.input_value("#f-days") == "3"
    assert page.get_attribute("#f-name", "aria-invalid") == "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "form-errors.png"), full_page=True)
    time.sleep(0.3)
    assert len(form_runs(data_dir, "vacation")) == before


def test_sending_the_form_starts_a_run_with_the_answers(server: tuple[Server, Path], page: Any) -> None:
    srv, data_dir = server
    page.goto(f"{srv.url}/form/vacation")
    assert page.title() == "Request time off"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "form.png"), full_page=True)
    page.fill("#f-name", "Ada Lovelace")
    page.fill("#f-email", "ada@example.com")
    page.fill("#f-days", "4")
    page.fill("#f-start", "2025-07-01")
    page.select_option("#f-kind", "Vacation")
    page.check("#f-urgent")
    page.fill("#f-note", "Back on the 7th.")
    page.click("button[type=submit]")
    assert page.locator("[role=status]").inner_text() == "Thanks! Your request is on its way to your manager."
    page.screenshot(path=str(SHOTS / "form-thanks.png"), full_page=True)
    run = wait_for_run(data_dir, "vacation")
    assert (run.status.value, run.source, run.trigger) == ("succeeded", "form", "form")
    assert run.input == [{"name": "Ada Lovelace", "email": "ada@example.com", "days": 4, "start": "2025-07-01",
                          "kind": "Vacation", "urgent": True, "note": "Back on the 7th."}]
    assert run.output == [{**run.input[0], "received": True}]


def test_the_flows_answer_is_shown(server: tuple[Server, Path], page: Any) -> None:
    srv, data_dir = server
    page.goto(f"{srv.url}/form/quote")
    page.fill("#f-hours", "2.5")
    page.click("button[type=submit]")
    assert page.locator("[role=status]").inner_text() == "Your quote: 200.0 EUR"
    assert wait_for_run(data_dir, "quote").input == [{"hours": 2.5}]


def test_an_inactive_or_unknown_form_is_a_plain_404(server: tuple[Server, Path], browser: Any) -> None:
    srv, data_dir = server
    context = browser.new_context()  # the 404 is logged in the console, as it should be: no error check here
    try:
        page = context.new_page()
        for path in ("off", "nothing/here"):
            response = page.goto(f"{srv.url}/form/{path}")
            assert response.status == 404
            assert page.locator("h1").inner_text() == "This form is not available"
            assert "switched off" in page.locator("p").inner_text()
    finally:
        context.close()
    assert form_runs(data_dir, "off") == []


def test_oversized_or_unreadable_posts_are_refused_with_a_page_and_start_nothing(server: tuple[Server, Path]) -> None:
    import httpx

    srv, data_dir = server
    before = len(form_runs(data_dir, "vacation"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        (b"name=" + b"a" * (1024 * 1024 + 1), form, 413, "too long"),
        (b"&".join(b"f%d=x" % i for i in range(1001)), form, 400, "too many answers"),
        (b"name=\xff\xfe", form, 400, "not UTF-8"),
        (b'{"name": "Ada"}', {"Content-Type": "application/json"}, 400, "from the form page"),
        (b"[" * 100_000, {"Content-Type": "application/json"}, 400, "from the form page"),
    ]
    for body, headers, status, words in cases:
        r = httpx.post(f"{srv.url}/form/vacation", content=body, headers=headers, timeout=30)
        assert r.status_code == status, (words, r.status_code)
        assert words in r.text and r.headers["content-type"].startswith("text/html")
    assert len(form_runs(data_dir, "vacation")) == before


def test_a_file_sent_with_the_form_becomes_a_file_of_the_run(server: tuple[Server, Path], page: Any,
                                                             tmp_path: Path) -> None:
    """A file field: required (said at the field, nothing runs), then the uploaded file is kept like a webhook's
    upload and the run's item holds its reference with name, type and size; an empty optional one is null."""
    srv, data_dir = server
    before = len(form_runs(data_dir, "receipt"))
    page.goto(f"{srv.url}/form/receipt")
    assert page.locator("form").get_attribute("enctype") == "multipart/form-data"
    page.fill("#f-name", "Ada Lovelace")
    page.click("button[type=submit]")
    assert page.locator("#f-receipt-error").inner_text() == "Please choose a file to send."
    assert len(form_runs(data_dir, "receipt")) == before
    receipt = tmp_path / "taxi receipt.pdf"
    content = b"%PDF-1.4 taxi 23.50 EUR\n" + bytes(range(256)) * 40
    receipt.write_bytes(content)
    page.set_input_files("#f-receipt", str(receipt))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "form-file.png"), full_page=True)
    page.click("button[type=submit]")
    assert "taxi receipt.pdf" in page.locator("[role=status]").inner_text()
    page.screenshot(path=str(SHOTS / "form-file-thanks.png"), full_page=True)
    run = wait_for_run(data_dir, "receipt")
    assert run.status.value == "succeeded"
    item = run.input[0]
    ref = item["receipt"]
    assert (ref["name"], ref["mime_type"], ref["size"]) == ("taxi receipt.pdf", "application/pdf", len(content))
    assert item["photo"] is None and item["name"] == "Ada Lovelace"
    store = Store(data_dir=data_dir)
    try:
        from flowboard.blobs import BlobStore

        assert BlobStore(data_dir / "blobs").get(ref) == content  # the bytes are kept, not in the item
    finally:
        store.close()
    assert run.output[0]["receipt_name"] == "taxi receipt.pdf"


def test_a_file_for_a_field_that_takes_text_is_not_kept(server: tuple[Server, Path]) -> None:
    import httpx

    srv, data_dir = server
    before = len(form_runs(data_dir, "receipt"))
    files = {"name": ("evil.txt", b"not a name", "text/plain"), "receipt": ("r.txt", b"receipt", "text/plain")}
    answer = httpx.post(f"{srv.url}/form/receipt", files=files, timeout=30)
    assert answer.status_code == 200 and "Please fill in this field." in answer.text  # the name came as a file
    refused = httpx.post(f"{srv.url}/form/vacation", files={"name": ("a.txt", b"a", "text/plain")}, timeout=30)
    assert refused.status_code == 400 and "from the form page" in refused.text  # a form without file fields
    assert len(form_runs(data_dir, "receipt")) == before
