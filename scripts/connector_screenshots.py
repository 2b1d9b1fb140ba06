"""Take docs/connectors.md's screenshots: the connectors page, a re-import's change list, and a connector node's form.

    python scripts/connector_screenshots.py   # writes docs/screenshots/connector-*.png

Starts the shop API of the tests (tests/apps/shop_api.py, versions 1 and 2) and `flowboard serve` on free ports with
a fresh data folder holding the imported connector and a flow that uses it, and drives Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.screenshots import ARGS, CHROMIUM, OUT, VIEWPORT, free_port, serve, shoot  # noqa: E402
from tests.apps.shop_api import API_KEY, TOKEN, Served, make_app  # noqa: E402

FLOW = {
    "id": "shop-restock", "name": "Shop restock",
    "nodes": [
        {"id": "start", "type": "trigger.manual", "name": "Start", "position": {"x": 0, "y": 80}},
        {"id": "create", "type": "api.shop_api.create_item", "name": "Create an item", "position": {"x": 280, "y": 80},
         "config": {"name": "Flowboard handbook", "category": "books", "price": {"amount": 24.5},
                    "delivery": {"kind": "pickup", "store": "Berlin"}, "credential": "shop writer"}},
        {"id": "list", "type": "api.shop_api.list_items", "name": "List books", "position": {"x": 560, "y": 80},
         "config": {"category": "books", "credential": "shop reader"}},
    ],
    "edges": [{"source": "start", "target": "create"}, {"source": "create", "target": "list"}],
}


def prepare(data_dir: Path, shop_url: str) -> None:
    from flowboard.services import Flowboard

    async def go() -> None:
        fb = Flowboard(data_dir=data_dir)
        try:
            fb.store.set_credential("shop reader", "secret", {"value": API_KEY})
            fb.store.set_credential("shop writer", "bearer", {"token": TOKEN})
            fb.connectors.save(fb.connectors.fetch(shop_url + "/openapi.json"))
            fb.import_flow(FLOW)
        finally:
            await fb.aclose()

    asyncio.run(go())


def take(base: str, v2_url: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(base + "/connectors")
        page.get_by_text("5 operations").click()
        page.get_by_text("Create an item").wait_for()
        shoot(page, "connector-page.png")

        page.get_by_role("button", name="Re-import").click()
        page.get_by_label("Web address of the document").fill(v2_url + "/openapi.json")
        page.get_by_role("button", name="Check").click()
        page.get_by_text("removed: Delete an item").wait_for()
        shoot(page, "connector-reimport.png")
        page.get_by_role("button", name="Cancel").click()

        page.goto(base + "/flow/shop-restock")
        page.wait_for_function("window.__flowboardCanvasReady === true")
        page.get_by_placeholder("Search nodes…").fill("shop")
        page.locator('.vue-flow__node[data-id="create"]').click()
        page.locator(".fb-inspector").get_by_text("Delivery").first.wait_for()
        shoot(page, "connector-node-form.png")
        browser.close()
        if errors:
            raise SystemExit("browser errors:\n" + "\n".join(errors))


def main() -> None:
    with Served(make_app(1)) as v1, Served(make_app(2)) as v2, \
            tempfile.TemporaryDirectory(prefix="flowboard-shots-") as tmp:
        data_dir = Path(tmp)
        prepare(data_dir, v1.url)
        port = free_port()
        server = serve(data_dir, port)
        try:
            take(f"http://127.0.0.1:{port}", v2.url)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
