"""An OAuth2 sign-in in real Chromium, against `flowboard serve` and a local provider: Connect on the credentials page
goes to the provider's sign-in address (with a PKCE challenge), the provider sends the browser back to the server's
/oauth/callback, and the page says the credential is connected; the tokens are stored encrypted, never shown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowboard.store import Store

from .browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from .oauthserver import CLIENT_ID, CLIENT_SECRET, AuthServer
from .serve import Server

pytestmark = pytest.mark.browser


@pytest.fixture
def provider() -> Iterator[AuthServer]:
    """The OAuth2 provider on its own event loop in a thread (the browser test is synchronous)."""
    loop = asyncio.new_event_loop()
    server = AuthServer()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.__aenter__())
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    yield server
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


@pytest.fixture
def server(tmp_path: Path, provider: AuthServer) -> Iterator[tuple[str, Path]]:
    require_chromium()
    store = Store(data_dir=tmp_path)
    try:
        store.set_credential("crm", "oauth2_code", {"authorize_url": provider.url("/authorize"),
                                                    "token_url": provider.url("/token"), "client_id": CLIENT_ID,
                                                    "client_secret": CLIENT_SECRET, "scope": "contacts"})
    finally:
        store.close()
    server = Server(tmp_path)  # its public URL (FLOWBOARD_PUBLIC_URL) is where the provider sends the browser back
    yield server.url, tmp_path
    server.stop()
    assert not server.errors(), server.output


@pytest.mark.timeout(300)
def test_connect_signs_in_at_the_provider_and_comes_back(server: tuple[str, Path], provider: AuthServer) -> None:
    from playwright.sync_api import sync_playwright

    base, data_dir = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/credentials")
        page.get_by_role("button", name="Connect").click()
        page.wait_for_url(base + "/credentials?connected=crm", timeout=30_000)
        page.get_by_text("crm is connected: flows can use it now").wait_for(timeout=30_000)
        browser.close()
    assert errors == []
    assert provider.grants == ["authorization_code"]
    store = Store(data_dir=data_dir)
    try:
        data = store.get_credential("crm")
    finally:
        store.close()
    assert data is not None and data["access_token"] in provider.access and data["refresh_token"] in provider.refresh
