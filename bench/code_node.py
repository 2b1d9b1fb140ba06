"""The Code node's task runner: cold start of the worker pool and the per-call overhead once warm. Prints medians.

    python bench/code_node.py            # 7 cold starts, 300 warm calls per case
    python bench/code_node.py --quick

(a) cold start: from nothing to the first answer (probe bubblewrap, start the pool, one call), and to a pool of
    warm workers (`start()`).
(b) warm calls through CodeRunner.run: `return items` on 1 item, on 100 items, once per item on 100 items, and
    a run of a trigger → Code flow through the engine (what a step costs). Target: < 20 ms per warm call.
(c) the same with the network allowed (its own pool) and in the rlimits fallback (no bubblewrap), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from flowboard.coderun import CodeRunner
from flowboard.engine import Engine, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.sdk import Services

TARGET_MS = 20.0


def ms(samples: list[float]) -> str:
    p90 = sorted(samples)[int(len(samples) * .9)]
    return f"median {statistics.median(samples) * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms"


async def cold(repeats: int, mode: str) -> None:
    first, warm_pool = [], []
    for _ in range(repeats):
        runner = CodeRunner(sandbox_mode=mode)
        started = time.perf_counter()
        await runner.run("return items", [{}])
        first.append(time.perf_counter() - started)
        await runner.aclose()
        runner = CodeRunner(sandbox_mode=mode)
        started = time.perf_counter()
        await runner.start()
        warm_pool.append(time.perf_counter() - started)
        await runner.aclose()
    print(f"  [{mode}] first call from nothing     {ms(first)}")
    print(f"  [{mode}] start() a pool of {CodeRunner().size} workers  {ms(warm_pool)}")


async def warm(calls: int, mode: str, network: bool = False) -> float:
    runner = CodeRunner(sandbox_mode=mode)
    await runner.start()
    hundred = [{"n": n, "name": f"item {n}", "tags": ["a", "b"]} for n in range(100)]
    cases: list[tuple[str, str, list[dict[str, Any]], str]] = [
        ("return items, 1 item", "return items", [{"n": 1}], "all"),
        ("transform 100 items", "return [{**i, 'x': i['n'] * 2} for i in items]", hundred, "all"),
        ("once per item, 100 items", "return {**item, 'x': item['n'] * 2}", hundred, "each"),
    ]
    simple = 0.0
    for label, code, items, how in cases:
        for _ in range(10):
            await runner.run(code, items, mode=how, network=network)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await runner.run(code, items, mode=how, network=network)
            samples.append(time.perf_counter() - started)
        simple = simple or statistics.median(samples)
        print(f"  [{mode}{', network' if network else ''}] {label:28s} {ms(samples)}")
    await runner.aclose()
    return simple


async def through_engine(calls: int) -> None:
    services = Services()
    engine = Engine(services=services)
    flow = parse_flow({"name": "bench", "nodes": [{"id": "t", "type": "trigger.manual"},
                                                  {"id": "code", "type": "code", "config": {"code": "return items"}}],
                       "edges": [{"source": "t", "target": "code"}]})
    plan = build_plan(flow, default_registry())
    await services.code_runner().start()
    for _ in range(10):
        await engine.run(plan, [{"n": 1}])
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await engine.run(plan, [{"n": 1}])
        samples.append(time.perf_counter() - started)
    print(f"  [engine] trigger → Code run, 1 item   {ms(samples)}")
    await engine.aclose()


async def main(quick: bool) -> None:
    repeats, calls = (3, 60) if quick else (7, 300)
    print("(a) cold start")
    await cold(repeats, "bwrap")
    await cold(repeats, "rlimits")
    print("(b) warm calls")
    simple = await warm(calls, "bwrap")
    await through_engine(calls)
    print("(c) other pools")
    await warm(calls // 2, "bwrap", network=True)
    await warm(calls // 2, "rlimits")
    verdict = "meets" if simple * 1000 < TARGET_MS else "MISSES"
    print(f"warm per-call overhead {simple * 1000:.2f} ms: {verdict} the target of < {TARGET_MS:g} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
