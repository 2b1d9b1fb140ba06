"""What recording a step as started costs: a node with side effects that is not retry-safe has its step written
(durably) before it runs, so a run resumed after a stop does not do it twice; a retry-safe one (an HTTP call with its
repeat-safe key) does not pay that write. In-process, the engine and its recorder alone (no HTTP), SQLite and
PostgreSQL (127.0.0.1:5432, a schema of its own, dropped after).

    python bench/side_effects.py            # 5 rounds of 2,000 runs per store and kind, 16 at a time
    python bench/side_effects.py --quick    # 2 rounds of 500

Flow: manual trigger -> Set -> a node with side effects that does nothing -> Set. The two kinds alternate round by
round, so a shared machine's drift hits both alike. Prints runs/s (median of the rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowboard.engine import Engine, Plan, build_plan
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins
from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs
from flowboard.store import SqlRecorder, Store, make_engine

PG_URL = os.environ.get("FLOWBOARD_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Unsafe(NodeType):
    type = "bench.unsafe"
    title = "Changes the world, not safe to repeat"
    category = Category.integration
    side_effects = True

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        return inputs["main"]


class Safe(Unsafe):
    type = "bench.safe"
    title = "Changes the world, safe to repeat"
    retry_safe = True


def plan(registry: Registry, kind: str) -> Plan:
    return build_plan(parse_flow({"id": kind, "name": kind, "settings": {"max_concurrency": 16}, "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "a", "type": "data.set", "config": {"fields": [{"name": "a", "value": 1}]}},
        {"id": "send", "type": f"bench.{kind}"},
        {"id": "b", "type": "data.set", "config": {"fields": [{"name": "b", "value": 2}]}}],
        "edges": [{"source": "start", "target": "a"}, {"source": "a", "target": "send"},
                  {"source": "send", "target": "b"}]}), registry)


async def rate(engine: Engine, p: Plan, runs: int) -> float:
    left = iter(range(runs))

    async def lane() -> None:
        for n in left:
            result = await engine.run(p, [{"n": n}])
            assert result.status.value == "succeeded", result.error

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(16)))
    return runs / (time.perf_counter() - started)


async def measure(store: Store, registry: Registry, rounds: int, runs: int) -> dict[str, list[float]]:
    recorder = SqlRecorder(store)
    engine = Engine(recorder=recorder)
    plans = {kind: plan(registry, kind) for kind in ("safe", "unsafe")}
    rates: dict[str, list[float]] = {kind: [] for kind in plans}
    await rate(engine, plans["safe"], 100)  # warm up
    for _ in range(rounds):
        for kind, p in plans.items():
            rates[kind].append(await rate(engine, p, runs))
    await recorder.aclose()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, runs = (2, 500) if args.quick else (5, 2000)
    registry = Registry()
    load_builtins(registry)
    registry.register(Unsafe)
    registry.register(Safe)
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(make_engine(f"sqlite:///{tmp}/bench.db"), data_dir=Path(tmp))
        results["sqlite"] = asyncio.run(measure(store, registry, rounds, runs))
        store.close()
    import psycopg

    schema = f"b_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = Store(make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"}))
        results["postgresql"] = asyncio.run(measure(store, registry, rounds, runs))
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    print(f"# trigger -> Set -> side effect -> Set, 16 runs at a time, {rounds} x {runs} runs per kind, medians; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| store | retry-safe (no start write) runs/s | not retry-safe (step recorded as started) runs/s | ratio |")
    print("|---|---|---|---|")
    for store_kind, rates in results.items():
        safe, unsafe = statistics.median(rates["safe"]), statistics.median(rates["unsafe"])
        print(f"| {store_kind} | {safe:,.0f} | {unsafe:,.0f} | {unsafe / safe:.2f}x |")


if __name__ == "__main__":
    main()
