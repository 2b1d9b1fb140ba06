"""Real-browser fixtures: the canvas test app in a subprocess, driven by Playwright on Debian's Chromium.

Use them from a test module with ``from tests.browser import browser, canvas_app, page`` (plus `# ruff: noqa: F811`).
Without ``/usr/bin/chromium`` the tests skip on a developer machine and fail in CI (env ``CI`` set).
Any browser console error or uncaught page error fails the test that caused it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("FLOWBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
#: Playwright's waits and `expect(...)` retries, in ms: its own defaults (30 s, 5 s for expect) are for a quiet machine
TIMEOUT = 30_000
CANVAS_APP = ROOT / "tests" / "apps" / "canvas_app.py"


def _patient_expect() -> None:
    try:
        from playwright.sync_api import expect
    except ImportError:  # skipped or failed by require_chromium where it is needed
        return
    expect.set_options(timeout=TIMEOUT)


_patient_expect()


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing, and CI must run the browser tests (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CanvasApp:
    """tests/apps/canvas_app.py running on a free port, with its /test routes as methods."""

    def __init__(self) -> None:
        self.output = ""
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop); a pipe could fill and block
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, str(CANVAS_APP), str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.base_url + "/test/events", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the canvas app did not start:\n{self.output}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.seek(0)
        self.output = self._log.read()
        self._log.close()

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read())

    def events(self, name: str | None = None) -> list[Any]:
        """Payloads the canvas sent to Python, oldest first (all events as {"event", "args"} without a name)."""
        events = self._request("GET", "/test/events")
        return events if name is None else [e["args"] for e in events if e["event"] == name]

    def clear_events(self) -> None:
        self._request("DELETE", "/test/events")

    def graph(self) -> dict[str, Any]:
        """The FlowCanvas element's own copy of the graph (its props)."""
        return self._request("GET", "/test/graph")

    def call(self, method: str, *args: Any) -> None:
        """Call a FlowCanvas method in the server, on the canvas of the page opened last."""
        self._request("POST", f"/test/call/{method}", list(args))

    def wait_for(self, name: str, predicate: Any = lambda args: True, timeout: float = 30) -> Any:
        """The newest payload of event `name` that satisfies `predicate`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            matches = [args for args in self.events(name) if predicate(args)]
            if matches:
                return matches[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name!r} event matched within {timeout} s; got {self.events(name)}")
            time.sleep(0.05)

    def wait_for_count(self, name: str, count: int, timeout: float = 30) -> list[Any]:
        """All payloads of event `name` once there are exactly `count` of them (fails on more, or on a timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            payloads = self.events(name)
            if len(payloads) == count:
                return payloads
            if len(payloads) > count or time.monotonic() > deadline:
                raise AssertionError(f"expected {count} {name!r} events, got {len(payloads)}: {payloads}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def canvas_app() -> Iterator[CanvasApp]:
    require_chromium()
    app = CanvasApp()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an event loop running in this
    thread while it is open, and the async tests of later modules could not start theirs."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def watched_tab(browser: Any, width: int = 1800, height: int = 1000, *, timeout: float | None = 30_000,
                downloads: bool = False) -> Iterator[Any]:
    """A tab in a fresh browser context (waits up to `timeout` ms, for a loaded 2-core CI machine); closed at the
    end, and then the test fails on any console error or uncaught exception the page had."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=downloads)
    tab = context.new_page()
    if timeout is not None:
        tab.set_default_timeout(timeout)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    yield tab
    context.close()
    assert not errors, "browser errors:\n" + "\n".join(errors)


@pytest.fixture
def page(browser: Any, canvas_app: CanvasApp) -> Iterator[Any]:
    """A fresh 1400x800 tab; fails the test on any console error or uncaught exception."""
    canvas_app.clear_events()
    with watched_tab(browser, 1400, 800, timeout=None) as tab:
        yield tab


def open_canvas(page: Any, app: CanvasApp, query: str = "") -> None:
    """Load the canvas page and wait until it has drawn its nodes and fitted the view."""
    page.goto(f"{app.base_url}/{query}")
    page.wait_for_function("window.__flowboardCanvasReady === true", timeout=30_000)


def center(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    assert box, f"{selector} is not visible"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def settled_center(page: Any, selector: str, frames: int = 3) -> tuple[float, float]:
    """The centre of `selector` once it has stood still for `frames` animation frames (a node just dropped or drawn
    can still be measured and placed by the canvas; a drag aimed at where it was a moment ago misses)."""
    page.wait_for_function(
        """([selector, frames]) => new Promise((done) => {
            let last = null, still = 0
            const look = () => {
                const el = document.querySelector(selector)
                const r = el && el.getBoundingClientRect()
                const now = r && r.width > 0 ? [r.x, r.y, r.width, r.height].join() : null
                still = now !== null && now === last ? still + 1 : 0
                last = now
                if (still >= frames) done(true); else requestAnimationFrame(look)
            }
            requestAnimationFrame(look)
        })""",
        arg=[selector, frames],
    )
    return center(page, selector)


def mouse_drag(page: Any, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    """A real press-move-release, as a user's hand does it (also starts HTML5 drag-and-drop)."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 5, start[1] + 5, steps=2)
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def sign_in(page: Any, name: str, password: str, *, base_url: str | None = None) -> None:
    """Sign in as a person does: the sign-in page's User name and Password, then its Sign in button. With `base_url`
    the sign-in page is opened first; without, the tab is on it already (sent there by a page that needs it)."""
    if base_url is not None:
        page.goto(base_url + "/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
