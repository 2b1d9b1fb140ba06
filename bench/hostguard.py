"""What the server's front check (flowboard/hostguard.py) costs per request, in process: the guard around an app that
does nothing, minus that app alone, for a webhook call's usual headers. Medians of 5 rounds.

    python bench/hostguard.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from flowboard.hostguard import HostGuard

HEADERS = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk/4.2"), (b"content-type", b"application/json"),
           (b"content-length", b"20"), (b"accept", b"*/*")]


async def inner(scope: Any, receive: Any, send: Any) -> None:
    return None


async def per_call(app: Any, scope: dict[str, Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await app(scope, None, None)
    return (time.perf_counter() - started) / n * 1e6


async def main() -> None:
    guard = HostGuard(inner, 8080, public_url="")
    for name, headers in (("5 headers", HEADERS), ("5 headers + Origin", [*HEADERS, (b"origin", b"http://127.0.0.1:8080")]),
                          ("20 headers", HEADERS + [(b"x-h%d" % i, b"v" * 20) for i in range(15)])):
        scope = {"type": "http", "path": "/webhook/echo", "method": "POST", "headers": headers}
        costs = []
        for _ in range(5):
            costs.append(await per_call(guard, scope, 100_000) - await per_call(inner, scope, 100_000))
        print(f"{name:20} guard cost per request: {statistics.median(costs):.2f} µs (median of 5 x 100,000)")


if __name__ == "__main__":
    asyncio.run(main())
