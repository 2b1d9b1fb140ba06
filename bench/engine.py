"""Engine overhead, recording cost, throughput and concurrency. Prints medians of several repeats and the targets.

    python bench/engine.py            # everything (about a minute)
    python bench/engine.py --quick    # fewer repeats

(a) per-node overhead: a 100-node chain and a 10-node chain carrying 1,000 items, in memory and recorded to SQLite.
    The chain nodes are a pass-through node (engine cost only) and the built-in Set node (a realistic cheap node).
(b) runs/second of a 10-node flow with recording on (SQLite, one process, runs back to back).
(c) 20 parallel branches, each an HTTP request to a local endpoint that answers after 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from flowboard.engine import Engine, Plan, build_plan
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins
from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs
from flowboard.store import SqlRecorder, Store, make_engine


class Pass(NodeType):
    """Returns its input: what is left is the engine's own cost."""

    type = "bench.pass"
    title = "Pass"
    category = Category.logic

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        return inputs["main"]


def registry() -> Registry:
    reg = Registry()
    load_builtins(reg)
    reg.register(Pass)
    return reg


def chain(n: int, node: str) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "trigger.manual"}]
    for i in range(n):
        if node == "pass":
            nodes.append({"id": f"n{i}", "type": "bench.pass"})
        else:
            nodes.append({"id": f"n{i}", "type": "data.set", "config": {"fields": [{"name": f"f{i}", "value": i}]}})
    edges = [{"source": "t", "target": "n0"}] + [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    return {"name": f"chain{n}", "nodes": nodes, "edges": edges}


async def per_run(engine: Engine, plan: Plan, items: list[dict[str, Any]], runs: int, repeats: int) -> float:
    """Median seconds per run over `repeats` batches of `runs` runs."""
    for _ in range(max(3, runs // 10)):
        await engine.run(plan, items)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(runs):
            await engine.run(plan, items)
        samples.append((time.perf_counter() - start) / runs)
    return statistics.median(samples)


async def bare_call_cost(items: list[dict[str, Any]], nodes: int, runs: int, repeats: int, impl: NodeType) -> float:
    """What the nodes' own `run` costs without the engine, to subtract it."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(runs):
            data = items
            for _ in range(nodes):
                data = await impl.run(None, None, {"main": data})  # type: ignore[arg-type]
        samples.append((time.perf_counter() - start) / runs)
    return statistics.median(samples)


async def section_a(reg: Registry, quick: bool, tmp: Path) -> list[str]:
    rows = []
    repeats = 3 if quick else 5
    store = Store(make_engine(f"sqlite:///{tmp}/a.db"))
    memory, recorded = Engine(), Engine(recorder=SqlRecorder(store))
    for n, n_items, runs in ((100, 1, 50 if quick else 200), (10, 1000, 20 if quick else 60)):
        items = [{"i": i, "name": f"item {i}"} for i in range(n_items)]
        for kind in ("pass", "set"):
            plan = build_plan(parse_flow(chain(n, kind)), reg)
            mem = await per_run(memory, plan, items, runs, repeats)
            rec = await per_run(recorded, plan, items, max(5, runs // 4), repeats)
            base = await bare_call_cost(items, n, runs, repeats, Pass()) if kind == "pass" else 0.0
            nodes = n + 1
            rows.append(f"| {n}-node chain, {n_items:,} item(s), {kind:4} | {(mem - base) / nodes * 1e6:8.1f} µs "
                        f"| {(rec - base) / nodes * 1e6:8.1f} µs | {mem * 1e3:7.2f} ms | {rec * 1e3:7.2f} ms |")
    store.close()
    return rows


async def section_b(reg: Registry, quick: bool, tmp: Path) -> tuple[float, float]:
    store = Store(make_engine(f"sqlite:///{tmp}/b.db"))
    recorded = Engine(recorder=SqlRecorder(store))
    plan = build_plan(parse_flow(chain(9, "set")), reg)  # trigger + 9 = a 10-node flow
    item = [{"hello": "world", "n": 1}]
    runs = 300 if quick else 1000
    rate = 1 / await per_run(recorded, plan, item, runs, 3 if quick else 5)
    mem_rate = 1 / await per_run(Engine(), plan, item, runs, 3 if quick else 5)
    store.close()
    return rate, mem_rate


async def section_c(reg: Registry, quick: bool) -> tuple[float, float]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "trigger.manual"}]
    nodes += [{"id": f"h{i}", "type": "http.request", "config": {"url": f"http://127.0.0.1:{port}/slow"}}
              for i in range(20)]
    flow = {"name": "fan", "nodes": nodes, "edges": [{"source": "t", "target": f"h{i}"} for i in range(20)],
            "settings": {"max_concurrency": 20}}
    plan = build_plan(parse_flow(flow), reg)
    engine = Engine()
    for _ in range(3):
        await engine.run(plan, [{}])
    samples = []
    for _ in range(10 if quick else 30):
        start = time.perf_counter()
        result = await engine.run(plan, [{}])
        samples.append(time.perf_counter() - start)
        assert result.status.value == "succeeded", result.error
    await engine.aclose()
    await runner.cleanup()
    return statistics.median(samples), min(samples)


async def main(quick: bool) -> None:
    reg = registry()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"Flowboard engine benchmark — Python {sys.version.split()[0]}, medians of repeats\n")
        print("(a) overhead per node (engine + recording, the nodes' own work subtracted for `pass`)")
        print("| flow | in memory | SQLite recording | run in memory | run recorded |")
        print("|---|---|---|---|---|")
        for row in await section_a(reg, quick, Path(tmp)):
            print(row)
        print("    targets: < 20 µs per node in memory, < 100 µs with SQLite recording\n")
        rate, mem_rate = await section_b(reg, quick, Path(tmp))
        print(f"(b) 10-node flow: {rate:,.0f} runs/s recorded to SQLite ({mem_rate:,.0f} runs/s in memory)")
        print("    target: ≥ 1,000 runs/s recorded\n")
    median, best = await section_c(reg, quick)
    budget = 1.3 * 0.050
    print(f"(c) 20 parallel HTTP branches, 50 ms each: median {median * 1e3:.1f} ms (best {best * 1e3:.1f} ms); "
          f"1.3 x 50 ms = {budget * 1e3:.0f} ms; overhead over one call: {(median - 0.05) * 1e3:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
