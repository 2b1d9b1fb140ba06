"""Expressions under their budget: how long the event loop is held by each payload of the test corpus before it is
refused, and what ordinary expressions cost per evaluation. Prints medians (and the worst case) of several repeats.

    python bench/expressions.py            # about half a minute
    python bench/expressions.py --quick

The budget (flowboard/expressions.py: MAX_STEPS, MAX_OUTPUT, MAX_BUILT, MAX_DEPTH, MAX_DIGITS) counts work instead of
time, so results never depend on the machine; this script shows what that work takes in time on this one.
Compiling happens once per flow version (at plan time) and is printed apart.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowboard.errors import ExpressionError
from flowboard.expressions import compile_string, evaluate
from flowboard.frozen import freeze
from tests.expression_payloads import ESCAPES, RESOURCES

ITEM = {"email": "ada@example.com", "days": 12, "tags": ["a", "b"], "name": "Ada"}
SCOPE = {"item": freeze(ITEM), "items": freeze([ITEM] * 100), "nodes": {}, "input": freeze([]), "run": {"id": "r"}}
ORDINARY = [
    "{{ item.email }}",
    "Hello {{ item.name }}, you have {{ item.days }} days left",
    "{{ item.days * 2 + 1 }}",
    "{{ item.email.split('@')[1] | upper }}",
    "{{ items | map(attribute='days') | sum }}",
    "{% for x in items %}{{ x.name }},{% endfor %}",
]


def timed(fn: object, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        with contextlib.suppress(ExpressionError):
            evaluate(fn, SCOPE)  # type: ignore[arg-type]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(quick: bool) -> None:
    repeats = 3 if quick else 7
    print(f"Expression budget benchmark — Python {sys.version.split()[0]}, medians of {repeats}\n")
    rows = []
    for kind, corpus in (("escape", ESCAPES), ("resource", RESOURCES)):
        for payload in corpus:
            start = time.perf_counter()
            try:
                fn = compile_string(payload)
            except ExpressionError:
                rows.append((kind, payload, time.perf_counter() - start, 0.0))
                continue
            compiled = time.perf_counter() - start
            rows.append((kind, payload, compiled, timed(fn, repeats)))
    rows.sort(key=lambda r: -r[3])
    print("(a) the 10 payloads that hold the loop longest before they are refused (evaluation; compiling apart)")
    print("| payload | evaluation until refused | compile (once per flow version) |")
    print("|---|---|---|")
    for kind, payload, compiled, ran in rows[:10]:
        shown = payload if len(payload) < 70 else payload[:67] + "..."
        print(f"| `{shown}` ({kind}) | {ran * 1e3:.2f} ms | {compiled * 1e3:.2f} ms |")
    evals = [r[3] for r in rows]
    print(f"    all {len(rows)} payloads: median {statistics.median(evals) * 1e3:.2f} ms, "
          f"worst {max(evals) * 1e3:.2f} ms")
    print()
    print("(b) ordinary expressions, per evaluation (one item)")
    for text in ORDINARY:
        fn = compile_string(text)
        runs = 200 if quick else 1000
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(runs):
                evaluate(fn, SCOPE)
            samples.append((time.perf_counter() - start) / runs)
        print(f"| `{text}` | {statistics.median(samples) * 1e6:.1f} µs |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
