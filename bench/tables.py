"""Data tables: how fast a big table is to find in, to page through in the grid, and to turn changes into runs.

    python bench/tables.py            # all three, printed with the targets
    python bench/tables.py --quick    # smaller, no browser

1. Store: a 100,000-row table; an indexed find (the key column), a deep page of 100 sorted by a column without and
   with "Fast sorting" (an index), a count. Target: indexed find < 5 ms.
2. Grid (real Chromium against `flowboard serve`): open the table page until its first rows are painted; press
   another page's button until its rows are painted. Timed in the page (performance.now()); the Playwright-driven
   figure beside it adds the harness's own click checks and polling. Targets: open < 1 s, page < 200 ms.
3. Table change trigger, recording on (SQLite): N changes in one transaction, until N runs have finished.
   Target: >= 500 changes/s delivered as runs.
Medians of several repetitions; the machine is shared, so quote medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowboard.datatables import Column, ColumnType, Condition, Sort, TableSchema  # noqa: E402
from flowboard.store import Store  # noqa: E402
from flowboard.store.datatables import DataTables  # noqa: E402


def fill(tables: DataTables, rows: int) -> str:
    info = tables.create(TableSchema(name="Big", key="employee", columns=[
        Column(name="employee"), Column(name="days_left", type=ColumnType.number), Column(name="team"),
        Column(name="region", indexed=True)]))  # the same values as team, with "Fast sorting" on
    table = tables._table(info)
    employee, days, team, region = (c.storage for c in info.schema.columns)
    with tables.engine.begin() as conn:
        for start in range(0, rows, 10_000):
            conn.execute(table.insert(), [{"_created": 0.0, "_updated": 0.0, employee: f"e{i:06d}",
                                           days: i % 30, team: f"team {i % 17}", region: f"team {i % 17}"}
                                          for i in range(start, min(rows, start + 10_000))])
    return info.id


def median_ms(fn, repeat: int = 30) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_store(data: Path, rows: int) -> tuple[str, Path]:
    store = Store(f"sqlite:///{data / 'flowboard.db'}", data_dir=data)
    tables = DataTables(store.engine)
    t0 = time.perf_counter()
    table_id = fill(tables, rows)
    print(f"store: filled {rows:,} rows in {time.perf_counter() - t0:.1f} s")
    find = median_ms(lambda: tables.find(table_id, [Condition(column="employee", value=f"e{rows // 2:06d}")]))
    page = median_ms(lambda: tables.find(table_id, sort=[Sort(column="team", descending=True)], limit=100,
                                         offset=rows // 2), repeat=10)
    fast = median_ms(lambda: tables.find(table_id, sort=[Sort(column="region", descending=True)], limit=100,
                                         offset=rows // 2), repeat=10)
    count = median_ms(lambda: tables.count(table_id), repeat=10)
    print(f"store: indexed find {find:.2f} ms (target < 5: {'ok' if find < 5 else 'MISSED'}); "
          f"a page of 100 at offset {rows // 2:,} sorted by a column without / with Fast sorting: {page:.1f} / "
          f"{fast:.1f} ms; count {count:.1f} ms")
    store.close()
    return table_id, data


#: In the page: press a page button, until that page's first row is in the grid and painted (one more frame).
PAGE_JS = """async (target) => {
  const first = (target - 1) * PAGE + 1;
  const shown = () => document.querySelector(`.ag-center-cols-container .ag-row[row-id="${first}"]`);
  const button = [...document.querySelectorAll('.q-pagination button')]
    .find(b => b.textContent.trim() === String(target));
  const t0 = performance.now();
  const done = new Promise(resolve => {
    const observer = new MutationObserver(() => { if (shown()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, {childList: true, subtree: true});
  });
  button.click();
  await done;
  await new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve)));
  return performance.now() - t0;
}""".replace("PAGE", "100")
#: In the page: from the start of the navigation until the first row is painted.
OPEN_JS = """async () => {
  const shown = () => document.querySelector('.ag-center-cols-container .ag-row[row-id="1"]');
  if (!shown()) await new Promise(resolve => {
    const observer = new MutationObserver(() => { if (shown()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, {childList: true, subtree: true});
  });
  await new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve)));
  return performance.now();
}"""


def bench_grid(data: Path, table_id: str, repeat: int) -> None:
    """Timed in the page (performance.now(): what a person waits for), and, for comparison, from this process
    through Playwright (its click checks and polling add 50-150 ms on a loaded machine)."""
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(port), "--no-browser",
                               "--data-dir", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/tables", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        opens, pages, driven = [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/table/{table_id}")  # warm the cache (scripts, styles)
            page.locator('.ag-center-cols-container .ag-row[row-id="1"]').wait_for()
            for _ in range(repeat):
                page.goto(f"{url}/table/{table_id}", wait_until="commit")
                opens.append(page.evaluate(OPEN_JS))
                for target in (2, 3):
                    pages.append(page.evaluate(PAGE_JS, target))
                for target in (2, 3):
                    first = (target - 1) * 100 + 1
                    t0 = time.perf_counter()
                    page.locator(".q-pagination button", has_text=str(target)).first.click()
                    page.locator(f'.ag-center-cols-container .ag-row[row-id="{first}"]').wait_for()
                    driven.append((time.perf_counter() - t0) * 1000)
            browser.close()
        o, g, d = statistics.median(opens), statistics.median(pages), statistics.median(driven)
        print(f"grid: open {o:.0f} ms (target < 1000: {'ok' if o < 1000 else 'MISSED'}); "
              f"next page {g:.0f} ms (target < 200: {'ok' if g < 200 else 'MISSED'}), in the page, medians of "
              f"{len(opens)} and {len(pages)}; the same page turn driven by Playwright: {d:.0f} ms")
    finally:
        server.terminate()
        server.wait(10)


def finished(fb, flow_id: str) -> int:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from flowboard.store.tables import runs_t

    with fb.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(runs_t).where(
            runs_t.c.flow_id == flow_id, runs_t.c.status == "succeeded")).scalar() or 0)


async def bench_trigger(data: Path, changes: int, repeat: int) -> None:
    from flowboard.services import Flowboard

    fb = Flowboard(data_dir=data / "trigger")
    try:
        fb.tables.tables.create(TableSchema(name="Counter", columns=[Column(name="n", type=ColumnType.number),
                                                                     Column(name="k")]))
        fb.tables.tables.insert("Counter", [{"n": 0, "k": str(i)} for i in range(changes)])
        fb.import_flow({"id": "watch", "name": "Watch", "nodes": [
            {"id": "changed", "type": "trigger.table", "config": {"table": "Counter", "events": ["update"]}},
            {"id": "note", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}},
        ], "edges": [{"source": "changed", "target": "note"}]})
        fb.activate("watch")
        rates = []
        for round_ in range(1, repeat + 1):
            t0 = time.perf_counter()
            await fb.tables.call("update", "Counter", [], {"n": round_})  # one transaction, `changes` changes
            while finished(fb, "watch") < changes * round_:
                await asyncio.sleep(0.02)
            rates.append(changes / (time.perf_counter() - t0))
        rate = statistics.median(rates)
        print(f"trigger: {rate:,.0f} changes/s delivered as recorded runs ({changes:,} per round, median of "
              f"{repeat}; target >= 500: {'ok' if rate >= 500 else 'MISSED'})")
    finally:
        await fb.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20,000 rows, no browser, fewer repetitions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        table_id, _ = bench_store(data, 20_000 if args.quick else 100_000)
        if not args.quick:
            bench_grid(data, table_id, repeat=8)
        asyncio.run(bench_trigger(data, 500 if args.quick else 2000, 3))


if __name__ == "__main__":
    main()
