"""How fast a node's view opens when 1,000 items come into it. Target: < 300 ms.

- node view: a double click on the node until its three columns are on screen (the fields coming in as chips to
  drag, the form, the output table);
- side inspector: a click until its form and the fields coming in are on screen, then its Data tab.

    python bench/node_view.py [--items 1000] [--runs 5]

Starts `flowboard serve` on a throwaway data folder, runs a flow (Manual trigger with N pinned items -> Set) once,
then opens the Set node repeatedly in Chromium (Playwright, /usr/bin/chromium) and prints the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowboard.model import Flow  # noqa: E402
from flowboard.store import Store  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.test_editor_browser import Server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="fb-node-view-"))
    items = [{"employee": f"person {i}", "days": i % 20, "team": {"name": f"team {i % 7}"}} for i in range(args.items)]
    store = Store(data_dir=data)
    store.save_flow(Flow.model_validate({"id": "big", "name": "Big", "nodes": [
        {"id": "manual", "type": "trigger.manual", "pinned": items},
        {"id": "set", "type": "data.set", "position": {"x": 300, "y": 0},
         "config": {"fields": [{"name": "left", "value": "{{ 20 - item.days }}"}]}}],
        "edges": [{"source": "manual", "target": "set"}]}), None)
    store.close()
    server = Server(data)
    form, data_tab, wide = [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(server.url + "/flow/big")
            page.wait_for_function("window.__flowboardCanvasReady === true")
            page.get_by_role("button", name="Run").click()
            page.locator('.vue-flow__node[data-id="set"] .fb-badge-succeeded').wait_for(timeout=60_000)
            for _ in range(args.runs):
                close = page.locator('.fb-inspector button[aria-label="Close the node"]')
                if close.count():
                    close.click()
                    page.locator(".fb-inspector .fb-form").wait_for(state="detached")
                start = time.perf_counter()
                page.locator('.vue-flow__node[data-id="set"]').click()
                page.locator(".fb-field-chip", has_text="employee").wait_for()
                page.locator(".fb-inspector .fb-form").wait_for()
                form.append(time.perf_counter() - start)
                start = time.perf_counter()
                page.locator(".fb-inspector").get_by_role("tab", name="Data").click()
                page.locator(".fb-data .q-table").last.wait_for()
                data_tab.append(time.perf_counter() - start)
                page.locator(".fb-inspector").get_by_role("tab", name="Parameters").click()
            for _ in range(args.runs):
                page.locator(".fb-inspector .fb-form").wait_for()
                page.locator('.fb-inspector button[aria-label="Close the node"]').click()
                page.locator(".fb-inspector .fb-form").wait_for(state="detached")
                start = time.perf_counter()
                page.locator('.vue-flow__node[data-id="set"]').dblclick()
                page.locator(".fb-node-view .fb-nv-col .fb-field-chip", has_text="employee").wait_for()
                page.locator(".fb-node-view .fb-form").wait_for()
                page.locator(".fb-node-view .fb-nv-col .q-table").last.get_by_role("cell", name="person 0").wait_for()
                wide.append(time.perf_counter() - start)
                if _ == 0:
                    page.screenshot(path=str(data / "node-view.png"))
                page.locator('.fb-node-view button[aria-label="Back to the canvas"]').click()
                page.locator(".fb-node-view").wait_for(state="detached")
            browser.close()
    finally:
        server.stop()
    print(f"{args.items} items in: node view (input fields | form | output table) median "
          f"{statistics.median(wide) * 1000:.0f} ms; screenshot {data / 'node-view.png'}")
    print(f"{args.items} items in: side inspector (form + input fields) median "
          f"{statistics.median(form) * 1000:.0f} ms, "
          f"Data tab median {statistics.median(data_tab) * 1000:.0f} ms ({args.runs} runs)")


if __name__ == "__main__":
    main()
