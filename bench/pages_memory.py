"""HTTP pages as they come (issue 10): peak memory of reading a long paginated list, with and without a flow for
each page.

A local aiohttp server (in this process, on its own thread) serves PAGES pages of ITEMS records each (`?page=N`,
numbered pages, an empty page after the last). Each round starts a fresh Python process that runs one stored flow on
a Flowboard with SQLite in a temporary folder, recorded as any run is:

- collect: Manual trigger → HTTP request with numbered pages: every record becomes an item of the node's output, all
  held until the last page is read (today's behaviour, the baseline);
- each page: the same node with 'Hand each page on as it arrives: run this flow for each page' naming a flow that
  starts with 'When called by another flow' and sets one field on each record: a recorded child run per page while
  the next page is read; the pages are not kept.

Each round runs each mode twice, in two processes: one reports its peak resident memory (ru_maxrss) less what it
held just before the run, and the run's seconds; the other the peak of Python's own allocations during the run
(tracemalloc, whose own bookkeeping would inflate the first figure and slow the run, so it is kept apart). The modes
alternate, `--rounds` each; medians and the ratio each page / collect are printed.

    python bench/pages_memory.py [--pages 200] [--items 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import loopback
from aiohttp import web


def record(n: int) -> dict[str, Any]:
    return {"id": n, "name": f"customer {n}", "email": f"customer{n}@example.com", "amount": n * 1.25,
            "country": ["DE", "FR", "NL", "IT"][n % 4], "tags": ["new", "newsletter"] if n % 3 else ["vip"]}


def serve(pages: int, items: int) -> tuple[str, threading.Event]:
    """The paginated API on its own thread and loop; returns its base URL and an event that stops it."""
    bodies = [json.dumps({"data": [record(p * items + i) for i in range(items)]}).encode() for p in range(pages)]
    empty = json.dumps({"data": []}).encode()
    started, stop = threading.Event(), threading.Event()
    where: list[str] = []

    async def page(request: web.Request) -> web.Response:
        number = int(request.query.get("page", "1"))
        body = bodies[number - 1] if 1 <= number <= pages else empty
        return web.Response(body=body, content_type="application/json")

    def run() -> None:
        async def main() -> None:
            runner, base = await loopback.serve({"/customers": page})
            where.append(base)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)
            await runner.cleanup()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    started.wait(30)
    return where[0], stop


def flows(url: str, mode: str) -> list[dict[str, Any]]:
    pagination: dict[str, Any] = {"type": "page", "records": "data", "max_pages": 10_000}
    out = []
    if mode == "each":
        pagination["each_page"] = "Save one page"
        out.append({"id": "body", "name": "Save one page", "nodes": [
            {"id": "called", "type": "trigger.called"},
            {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}],
            "edges": [{"source": "called", "target": "mark"}]})
    out.append({"id": "main", "name": "Read customers", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "list", "type": "http.request", "version": 2,
         "config": {"url": url + "/customers", "pagination": pagination, "timeout": 120}}],
        "edges": [{"source": "start", "target": "list"}]})
    return out


def child(url: str, mode: str, trace: bool) -> None:
    """One round in this (fresh) process: prints a JSON line with the figures (`trace`: tracemalloc's peak only)."""
    from flowboard.services import Flowboard

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as data:
            fb = Flowboard(data_dir=Path(data))
            try:
                for flow in flows(url, mode):
                    fb.import_flow(flow)
                before = _rss_mb()
                if trace:
                    tracemalloc.start()
                started = time.perf_counter()
                result = await fb.run_flow("main", [{}])
                took = time.perf_counter() - started
                assert result.status.value == "succeeded", result.error
                if trace:
                    _, peak = tracemalloc.get_traced_memory()
                    tracemalloc.stop()
                    return {"mode": mode, "python_mb": peak / 2**20}
                grown = _max_rss_mb() - before  # (before reading the page runs back, which loads their items)
                children = len(fb.store.list_runs("body", source="call", limit=100_000)) if mode == "each" else 0
                return {"mode": mode, "rss_mb": grown, "seconds": took, "output_items": len(result.output),
                        "page_runs": children}
            finally:
                await fb.aclose()

    print(json.dumps(asyncio.run(main())))


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("URL", "MODE", "TRACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] == "trace")
        return
    url, stop = serve(args.pages, args.items)
    results: dict[str, list[dict[str, Any]]] = {"collect": [], "each": []}
    try:
        for _ in range(args.rounds):
            for mode in results:
                figures: dict[str, Any] = {}
                for trace in ("rss", "trace"):
                    done = subprocess.run([sys.executable, __file__, "--child", url, mode, trace],
                                          capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"the {mode} round failed:\n{done.stderr[-3000:]}")
                    figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
                results[mode].append(figures)
                print(f"  {figures}", flush=True)
    finally:
        stop.set()
    print(f"\n{args.pages} pages x {args.items} records, {args.rounds} rounds each, load {os.getloadavg()[0]:.1f}")
    print(f"{'':<30}{'collect':>12}{'each page':>12}{'ratio':>8}")
    for key, label in (("rss_mb", "peak RSS growth (MB)"), ("python_mb", "peak Python heap (MB)"),
                       ("seconds", "seconds")):
        a = statistics.median(r[key] for r in results["collect"])
        b = statistics.median(r[key] for r in results["each"])
        print(f"{label:<30}{a:>12.1f}{b:>12.1f}{b / a:>8.2f}")
    print(f"output items: collect {results['collect'][0]['output_items']:,}, each page "
          f"{results['each'][0]['output_items']:,} (one per page; {results['each'][0]['page_runs']} page runs)")


if __name__ == "__main__":
    main()
