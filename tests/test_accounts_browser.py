"""Signing in and out in real Chromium, against `flowboard serve` with users: the sign-in page's form posts natively
(its cookie is HttpOnly, so no script could set it), a wrong password says so, the right one lands on the page asked
for, a requester lands on /me and never on the editor, and the header's menu signs out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowboard.auth import Accounts
from flowboard.store import Store

from .browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, sign_in
from .serve import Server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("signin")
    store = Store(data_dir=data_dir)
    try:
        accounts = Accounts(store)
        accounts.add_user("ada", "analytical-engine", ["admin"], full_name="Ada Lovelace")
        accounts.add_user("rob", "request-it-1", ["requester"], full_name="Rob Requester")
    finally:
        store.close()
    server = Server(data_dir)
    yield server.url
    server.stop()
    assert not server.errors(), server.output


@pytest.mark.timeout(300)
def test_sign_in_and_out_in_chromium(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(server + "/runs")
        page.wait_for_selector("text=Sign in to open that page.")
        assert page.url == server + "/login?next=%2Fruns"
        page.screenshot(path=str(tmp_path / "login.png"))  # docs/screenshots/login.png is this picture
        page.get_by_label("User name").fill("ada")
        page.get_by_label("Password").fill("not-her-password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("text=The user name or the password is not right. Check both and try again.")
        assert page.get_by_label("User name").input_value() == "ada"  # kept; the password is not
        page.get_by_label("Password").fill("analytical-engine")
        page.get_by_label("Password").press("Enter")  # Enter submits, like any form
        page.wait_for_url(server + "/runs")
        page.wait_for_selector("text=Ada Lovelace")
        cookie = next(c for c in page.context.cookies() if c["name"] == "flowboard_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie").find("flowboard_session") == -1
        page.get_by_text("Ada Lovelace").click()
        page.get_by_text("Sign out").click()
        page.wait_for_selector("text=You have signed out.")
        page.goto(server + "/")
        page.wait_for_selector("text=Sign in")
        assert page.url.startswith(server + "/login")

        sign_in(page, "rob", "request-it-1")
        page.wait_for_url(server + "/me")
        page.wait_for_selector("text=Hello, Rob Requester")
        page.goto(server + "/flow/anything")
        page.wait_for_url(server + "/me")  # a requester never reaches the editor
        assert page.get_by_text("Credentials").count() == 0
        browser.close()
    assert not errors, errors
