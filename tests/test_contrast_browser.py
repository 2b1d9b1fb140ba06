"""WCAG AA on the main screens in real Chromium: every visible text has contrast 4.5:1 (3:1 when large) against what
it is drawn on, and is at least 11 px (tests/contrast.py measures the computed colours)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, require_chromium  # noqa: F401
from tests.contrast import check_page
from tests.serve import Server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    srv = Server(tmp_path_factory.mktemp("contrast-data"))
    yield srv
    srv.stop()


def test_text_on_the_main_screens_meets_wcag_aa(browser: Any, server: Server, tmp_path: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.set_default_timeout(30_000)
    failures: dict[str, list[str]] = {}

    def check(screen: str) -> None:
        page.wait_for_timeout(300)  # transitions (tabs, tooltips) settle
        found = check_page(page)
        if found:
            failures[screen] = found
            page.screenshot(path=str(tmp_path / f"{screen.replace('/', '_')}.png"))

    page.goto(server.url + "/")
    page.locator("a.fb-name", has_text="Vacation request").first.wait_for()
    check("flows page")
    page.locator("a.fb-name", has_text="Vacation request").first.click()
    page.wait_for_function("window.__flowboardCanvasReady === true")
    check("editor")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".vue-flow__node .fb-badge").first.wait_for()
    page.locator(".fb-side [data-state], .fb-side .fb-chip").first.wait_for(state="attached")
    check("editor after a run")
    look_up = page.locator(".vue-flow__node").nth(1)
    look_up.click()
    page.locator(".fb-inspector .fb-form").wait_for()
    check("inspector")
    look_up.dblclick()
    page.locator(".fb-node-view .fb-form").wait_for()
    check("node view")
    for path in ("/runs", "/tables", "/credentials", "/inbox"):
        page.goto(server.url + path)
        page.locator(".fb-topbar").wait_for()
        page.wait_for_load_state("networkidle")
        check(path)
    page.close()
    assert not failures, "\n".join(f"{screen}:\n  " + "\n  ".join(lines) for screen, lines in failures.items())


def test_the_check_finds_low_contrast_and_small_text(browser: Any) -> None:  # noqa: F811
    page = browser.new_page()
    page.set_content('<p style="color:#aaa">grey</p><p style="color:#222">dark</p><p style="font-size:9px">tiny</p>'
                     '<div style="background:#5898d4;color:#fff">button</div><p style="color:#767676">just</p>'
                     '<p style="color:#949494;font-size:24px">large</p><p style="color:#aaa;font-size:30px">pale</p>'
                     '<p style="color:#aaa" aria-hidden="true">hidden</p>')
    found = check_page(page)
    page.close()
    assert [line.split('"')[1] for line in found] == ["grey", "tiny", "button", "pale"], found
