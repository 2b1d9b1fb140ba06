"""How fast the editor canvas opens a flow: navigation until every visible node is drawn and the view is fitted.

    python bench/canvas_render.py [--runs 3] [--json bench/results/canvas_render.json]

Starts tests/apps/canvas_app.py (the FlowCanvas in a full-window NiceGUI page) and opens generated flows in Chromium
(`/usr/bin/chromium`, via Playwright) with a warm browser cache, as an editor tab does after its first visit.
"wall" runs from `page.goto` until the canvas sets `window.__flowboardCanvasReady` (its nodes are rendered and the view
fitted, two frames later); "in page" is the page's own clock for the same span, from navigation start.

Flows: a chain (one long row, as real flows are built; Vue Flow draws only what is on screen) and a grid (rows of 20).
A flow opens fitted, but no smaller than names can be read (zoom 0.2). For the grids, "fit s" is then the time from
pressing 1 (zoom to fit: every node on screen, drawn as plain cards that far out, the edges as one path) until every
node is drawn (target < 2 s for 1,000 nodes), and "fit CPU" the page's main-thread CPU time for it (from a Chromium
trace): on a loaded machine the main thread spends most of "fit s" waiting for a core, so compare CPU figures there.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, CanvasApp  # noqa: E402

CASES = [(20, "chain", 1.0), (200, "chain", 1.0), (1000, "chain", 2.5), (200, "grid", None), (1000, "grid", None)]
FIT_TARGET = {1000: 2.0}
ZOOM_TO_FIT = """async (n) => {
  const start = performance.now();
  document.querySelector('.fb-flow-wrap').dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}));
  window.dispatchEvent(new KeyboardEvent('keydown', {key: '1', bubbles: true}));
  while (document.querySelectorAll('.vue-flow__node').length < n) await new Promise(requestAnimationFrame);
  await new Promise(requestAnimationFrame); await new Promise(requestAnimationFrame);
  return (performance.now() - start) / 1000;
}"""


def main_thread_cpu(trace: bytes) -> float:
    """Seconds of CPU the page's main thread used in a Chromium trace (category toplevel)."""
    events = json.loads(trace)["traceEvents"]
    main = {(e["pid"], e["tid"]) for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
            and e["args"].get("name") == "CrRendererMain"}
    per_name: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and (e["pid"], e["tid"]) in main and e.get("cat") == "toplevel":
            per_name[e["name"]] += e.get("tdur", 0)
    return max(per_name.values(), default=0) / 1e6  # the task runner's total: the other toplevel events nest in it


def measure(page: Any, url: str, fit: int = 0) -> tuple[float, float, int, float | None, float | None]:
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function("window.__flowboardCanvasReady === true", timeout=60000, polling="raf")
    wall = time.perf_counter() - start
    in_page = page.evaluate("window.__flowboardCanvasReadyAt") / 1000
    drawn = page.locator(".vue-flow__node").count()
    if not fit:
        return wall, in_page, drawn, None, None
    browser = page.context.browser
    browser.start_tracing(page=page, categories=["toplevel"])
    seconds = page.evaluate(ZOOM_TO_FIT, fit)
    return wall, in_page, drawn, seconds, main_thread_cpu(browser.stop_tracing())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing", file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    app = CanvasApp()
    results: list[dict[str, Any]] = []
    ok = True
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 800})
            page = context.new_page()
            measure(page, f"{app.base_url}/?n=20")  # fill the cache, as a returning editor tab has it
            for n, layout, target in CASES:
                runs = [measure(page, f"{app.base_url}/?n={n}&layout={layout}", n if layout == "grid" else 0)
                        for _ in range(args.runs)]
                wall = statistics.median(r[0] for r in runs)
                in_page = statistics.median(r[1] for r in runs)
                fit = statistics.median(r[3] for r in runs) if layout == "grid" else None
                fit_cpu = statistics.median(r[4] for r in runs) if layout == "grid" else None
                fit_target = FIT_TARGET.get(n) if layout == "grid" else None
                passed = (target is None or wall < target) and (fit_target is None or (fit or 0) < fit_target)
                ok &= passed
                results.append(
                    {
                        "nodes": n,
                        "layout": layout,
                        "drawn": runs[-1][2],
                        "wall_s": round(wall, 3),
                        "in_page_s": round(in_page, 3),
                        "target_s": target,
                        "fit_s": None if fit is None else round(fit, 3),
                        "fit_cpu_s": None if fit_cpu is None else round(fit_cpu, 3),
                        "fit_target_s": fit_target,
                        "ok": passed,
                    }
                )
            browser.close()
    finally:
        app.stop()

    print(f"{'nodes':>6} {'layout':<6} {'drawn':>6} {'wall s':>7} {'in page s':>10} {'target':>7} {'fit s':>6} "
          f"{'target':>7} {'fit CPU':>8}")
    for r in results:
        limit = f"< {r['target_s']}" if r["target_s"] else "-"
        fit = f"{r['fit_s']:.3f}" if r["fit_s"] is not None else "-"
        fit_limit = f"< {r['fit_target_s']}" if r["fit_target_s"] else "-"
        fit_cpu = f"{r['fit_cpu_s']:.3f}" if r["fit_cpu_s"] is not None else "-"
        mark = "" if r["ok"] else "  MISSED"
        print(
            f"{r['nodes']:>6} {r['layout']:<6} {r['drawn']:>6} {r['wall_s']:>7.3f} {r['in_page_s']:>10.3f} "
            f"{limit:>7} {fit:>6} {fit_limit:>7} {fit_cpu:>8}{mark}"
        )
    print(f"medians of {args.runs} runs, Chromium {CHROMIUM}, viewport 1400x800")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
