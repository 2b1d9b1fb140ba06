"""Take the README's screenshots: the flows page, the editor mid-run, and the inspector.

    python scripts/screenshots.py            # writes docs/screenshots/{flows,editor-running,inspector}.png

Starts `flowboard serve` on a free port with a fresh data folder (the example flows plus a demo flow with a Wait, so
nodes are seen running), and drives Debian's Chromium with Playwright.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("FLOWBOARD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 900}

DEMO = {
    "id": "order-follow-up", "name": "Order follow-up",
    "description": "Adds totals to new orders, waits for the payment window, then thanks big customers personally.",
    "nodes": [
        {"id": "orders", "type": "trigger.manual", "name": "New orders", "position": {"x": 0, "y": 80},
         "config": {"items": [{"order": "A-1001", "customer": "Ada", "qty": 3, "price": 49.0},
                              {"order": "A-1002", "customer": "Grace", "qty": 1, "price": 19.5},
                              {"order": "A-1003", "customer": "Linus", "qty": 12, "price": 12.0}]}},
        {"id": "totals", "type": "data.set", "name": "Add totals", "position": {"x": 260, "y": 80},
         "config": {"fields": [{"name": "total", "value": "{{ item.qty * item.price }}"},
                               {"name": "greeting", "value": "Thank you, {{ item.customer }}!"}]}},
        {"id": "wait", "type": "logic.wait", "name": "Payment window", "position": {"x": 520, "y": 80},
         "config": {"seconds": 4}},
        {"id": "big", "type": "logic.if", "name": "Big order?", "position": {"x": 780, "y": 80},
         "config": {"conditions": [{"field": "total", "op": "gte", "type": "number", "value": 100}]}},
        {"id": "personal", "type": "data.set", "name": "Personal thanks", "position": {"x": 1040, "y": 0},
         "config": {"fields": [{"name": "channel", "value": "phone call"}]}},
        {"id": "standard", "type": "data.set", "name": "Standard email", "position": {"x": 1040, "y": 160},
         "config": {"fields": [{"name": "channel", "value": "email"}]}},
    ],
    "edges": [
        {"source": "orders", "target": "totals"}, {"source": "totals", "target": "wait"},
        {"source": "wait", "target": "big"},
        {"source": "big", "source_port": "true", "target": "personal"},
        {"source": "big", "source_port": "false", "target": "standard"},
    ],
}


def prepare(data_dir: Path) -> None:
    """The examples, the demo flow, and one finished run of an example so the flows page shows a last run."""
    from flowboard.server import EXAMPLES
    from flowboard.services import Flowboard, load_examples

    async def go() -> None:
        fb = Flowboard(data_dir=data_dir)
        try:
            load_examples(fb, EXAMPLES)
            fb.import_flow(DEMO)
            await fb.run_flow("invoice-approval")
        finally:
            await fb.aclose()

    asyncio.run(go())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(port), "--no-browser",
                                "--data-dir", str(data_dir)], cwd=data_dir, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the server did not start:\n{process.communicate()[0]}") from None
            time.sleep(0.1)


def shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(400)  # let transitions settle
    path = OUT / name
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def take(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(base + "/")
        page.get_by_text("Order follow-up").wait_for()
        shoot(page, "flows.png")

        page.goto(base + "/flow/order-follow-up")
        page.wait_for_function("window.__flowboardCanvasReady === true")
        page.get_by_role("button", name="Run").click()
        page.locator('.vue-flow__node[data-id="wait"] .fb-badge-running').wait_for()
        page.locator('.vue-flow__node[data-id="totals"] .fb-badge-succeeded').wait_for()
        page.wait_for_timeout(300)
        shoot(page, "editor-running.png")

        page.locator('.vue-flow__node[data-id="personal"] .fb-badge-succeeded').wait_for(timeout=15000)
        page.locator('.vue-flow__node[data-id="totals"]').click()
        page.locator(".fb-inspector .fb-preview").first.wait_for()
        page.wait_for_timeout(600)  # previews evaluate after a short pause
        shoot(page, "inspector.png")
        browser.close()
        if errors:
            raise SystemExit("browser errors:\n" + "\n".join(errors))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flowboard-shots-") as tmp:
        data_dir = Path(tmp)
        prepare(data_dir)
        port = free_port()
        server = serve(data_dir, port)
        try:
            take(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
