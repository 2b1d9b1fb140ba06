"""How fast a test run's status updates reach the canvas: Run pressed in the real editor until the badges show.

    python bench/status_updates.py [--runs 5] [--nodes 200] [--json bench/results/status_updates.json]

Starts `python -m flowboard serve` with a fresh data folder, imports generated flows (a manual trigger, then
`--nodes - 1` data.set nodes in one chain, or in ten parallel chains; laid out in rows so that at "fit" every node is
on screen, where Vue Flow draws it), opens `/flow/<id>` in Chromium (`/usr/bin/chromium`, via Playwright) and presses
Run.

The page's own clock measures, from the pointer-down on Run: "first" until any node shows a state (`fb-state-*` on
`.fb-node`), "all" until every node shows `fb-state-succeeded`. "ws msgs" counts the websocket messages the page
received in that span (socket.io frames: status pushes, the run/stop button, the run panel); "last msg" is when the
last of them that came before "all" arrived (the rest of "all" is the page rendering it). "engine" is the same
flow run in-process (recorded, with a bus subscriber as the editor has), without the UI: the floor for "all".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

ROW = 14  # nodes per row: at "fit" (the minimum zoom) 200 nodes fit the editor's canvas in a 1400x800 window

# Before any page script: stamps every websocket message's arrival (socket.io sets `onmessage` later, so this runs
# first), to split "all" into the server's part (until the last message) and the page's (rendering it).
WS_CLOCK = """(() => {
  const Native = window.WebSocket
  window.__wsArrivals = []
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args)
      this.addEventListener('message', () => window.__wsArrivals.push(performance.now()))
    }
  }
})()"""

# Installed before the click: stamps the pointer-down on Run, then checks the node classes every frame. Each run
# opens its own copy of the flow: the editor shows a flow's last run on open, and a new run's badges can replace
# those in the same frame.
WATCH = """(total) => {
  window.__wsArrivals.length = 0
  const w = window.__bench = { t0: null, first: null, all: null }
  document.addEventListener('pointerdown', () => { if (w.t0 === null) w.t0 = performance.now() }, true)
  const tick = () => {
    if (w.t0 !== null) {
      const now = performance.now()
      if (w.first === null && document.querySelector('.fb-node[class*="fb-state-"]')) w.first = now - w.t0
      if (document.querySelectorAll('.fb-node.fb-state-succeeded').length >= total) { w.all = now - w.t0; return }
    }
    requestAnimationFrame(tick)
  }
  requestAnimationFrame(tick)
}"""


def make_flow(nodes: int, chains: int) -> dict[str, Any]:
    """A manual trigger feeding `chains` chains of data.set nodes; positions in rows of ROW."""
    flow_nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "trigger.manual", "name": "Start", "position": {"x": -240, "y": 0},
         "config": {"items": [{"n": 0}]}}
    ]
    edges: list[dict[str, str]] = []
    tails = ["start"] * chains
    for i in range(nodes - 1):
        chain = i % chains
        node_id = f"s{i + 1}"
        flow_nodes.append({"id": node_id, "type": "data.set", "name": f"Set {i + 1}",
                           "position": {"x": (i % ROW) * 220, "y": (i // ROW) * 120},
                           "config": {"fields": [{"name": f"f{i + 1}", "value": i + 1}]}})
        edges.append({"source": tails[chain], "target": node_id})
        tails[chain] = node_id
    return {"id": f"bench-status-{nodes}", "name": f"bench status {nodes}", "nodes": flow_nodes, "edges": edges,
            "settings": {"run_mode": "parallel", "max_concurrency": 16}}


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowboard", "serve", "--port", str(self.port), "--no-browser", "--data-dir",
             str(data_dir)], cwd=data_dir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.seek(0)
        self.output = self.log.read()
        self.log.close()


def engine_time(flow: dict[str, Any], runs: int) -> float:
    """Median seconds for the flow run in-process, recorded, with a bus subscriber as the editor has."""
    from flowboard.model import parse_flow
    from flowboard.services import Flowboard

    async def go() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            fb = Flowboard(data_dir=tmp)
            try:
                parsed = parse_flow(json.dumps(flow))
                events: list[Any] = []
                unsubscribe = fb.bus.subscribe(events.append)
                times = []
                for _ in range(runs + 1):
                    start = time.perf_counter()
                    await fb.run_draft(parsed, None, trigger="start")
                    times.append(time.perf_counter() - start)
                unsubscribe()
                return statistics.median(times[1:])
            finally:
                await fb.aclose()

    return asyncio.run(go())


def measure(page: Any, url: str, total: int) -> tuple[float, float, int, float]:
    page.goto(url)
    page.wait_for_function("window.__flowboardCanvasReady === true", timeout=60000, polling="raf")
    page.wait_for_timeout(300)  # let the page settle (fonts, the inspector) before the click
    drawn = page.locator(".fb-node").count()
    if drawn != total:
        raise RuntimeError(f"{drawn} of {total} nodes are drawn at 'fit': the bench needs every node on screen")
    if page.locator('.fb-node[class*="fb-state-"]').count():
        raise RuntimeError("the flow shows badges before the run: it needs a fresh copy")
    page.evaluate(WATCH, total)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("window.__bench.all !== null", timeout=60000, polling=100)
    result = page.evaluate("window.__bench")
    arrivals = [t - result["t0"] for t in page.evaluate("window.__wsArrivals") if t >= result["t0"]]
    in_span = [t for t in arrivals if t <= result["all"]]
    return result["first"] / 1000, result["all"] / 1000, len(in_span), max(in_span, default=0.0) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing", file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        flows = {chains: make_flow(args.nodes, chains) for chains in (1, 10)}
        for chains, flow in flows.items():  # one copy per run (and the warm-up), as `flowboard import` stores them
            for i in range(args.runs + 1):
                (data / "flow.json").write_text(json.dumps({**flow, "id": f"{flow['id']}-{chains}-{i}"}))
                subprocess.run([sys.executable, "-m", "flowboard", "--data-dir", str(data), "import",
                                str(data / "flow.json")], check=True, capture_output=True)
        engine = {chains: engine_time(flow, args.runs) for chains, flow in flows.items()}  # before Playwright's loop
        server = Server(data)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 800})
                context.add_init_script(WS_CLOCK)
                page = context.new_page()
                for chains, flow in flows.items():
                    urls = [f"{server.url}/flow/{flow['id']}-{chains}-{i}" for i in range(args.runs + 1)]
                    measure(page, urls[0], args.nodes)  # warm-up: caches, the first run's imports
                    runs = [measure(page, url, args.nodes) for url in urls[1:]]
                    results.append({
                        "nodes": args.nodes,
                        "chains": chains,
                        "first_s": round(statistics.median(r[0] for r in runs), 3),
                        "all_s": round(statistics.median(r[1] for r in runs), 3),
                        "ws_frames": int(statistics.median(r[2] for r in runs)),
                        "last_msg_s": round(statistics.median(r[3] for r in runs), 3),
                        "engine_s": round(engine[chains], 3),
                    })
                browser.close()
        finally:
            server.stop()

    print(f"{'nodes':>6} {'chains':>6} {'first s':>8} {'all s':>7} {'last msg s':>11} {'ws msgs':>8} {'engine s':>9}")
    for r in results:
        print(f"{r['nodes']:>6} {r['chains']:>6} {r['first_s']:>8.3f} {r['all_s']:>7.3f} {r['last_msg_s']:>11.3f} "
              f"{r['ws_frames']:>8} {r['engine_s']:>9.3f}")
    print(f"medians of {args.runs} runs (after one warm-up), Chromium {CHROMIUM}, viewport 1400x800")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
