"""CPU per call of the SDK's shared HTTP client (`ctx.http`) against raw aiohttp, side by side.

    python bench/http_client.py            # 5 rounds of 3,000 GETs, 32 at a time, on a local aiohttp server
    python bench/http_client.py --quick

Both clients call the same loopback server, which runs in a process of its own and answers at once, so the figure is
this process's CPU time per call (`time.process_time`): the clients' own cost, which other processes on a shared
machine do not add to. Rounds alternate between the clients; the ratio of medians is what counts.
Targets: ≤ 1.2x raw aiohttp (issue 9), ≤ 1.5x (issue 10).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web
from loopback import serve

from flowboard.sdk import make_http_client


def _serve() -> None:
    """The loopback server (in a process of its own): prints its port, answers until killed."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    async def main() -> None:
        _runner, base = await serve({"/x": answer})
        print(base.rsplit(":", 1)[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/x"


async def _round(call: Any, url: str, calls: int, concurrency: int) -> float:
    """CPU seconds of this process per call over `calls` calls, `concurrency` at a time."""
    left = iter(range(calls))

    async def worker() -> None:
        for _ in left:
            await call(url)

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - start) / calls


async def measure(rounds: int, calls: int, concurrency: int = 32) -> dict[str, float]:
    server, url = _server()
    client = make_http_client()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar())

    async def sdk(u: str) -> None:
        # as the HTTP request node calls it: it follows redirects itself, hop by hop (credentials stay on their origin)
        response = await client.request("GET", u, timeout=30.0, follow_redirects=False)
        assert response.status_code == 200 and response.content

    async def raw(u: str) -> None:
        async with session.get(u) as response:
            assert response.status == 200 and await response.read()

    samples: dict[str, list[float]] = {"sdk": [], "aiohttp": []}
    try:
        for call in (sdk, raw):
            await _round(call, url, 300, concurrency)  # warm-up: connections open
        for _ in range(rounds):
            samples["sdk"].append(await _round(sdk, url, calls, concurrency))
            samples["aiohttp"].append(await _round(raw, url, calls, concurrency))
    finally:
        await client.aclose()
        await session.close()
        server.kill()
        server.wait()
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve()
        return
    rounds, calls = (3, 1000) if args.quick else (5, 3000)
    try:
        import uvloop  # the server's event loop (flowboard serve)
    except ImportError:
        result = asyncio.run(measure(rounds, calls))
    else:
        result = uvloop.run(measure(rounds, calls))
    ratio = result["sdk"] / result["aiohttp"]
    print(f"CPU per call, 32 at a time: ctx.http {result['sdk'] * 1e6:.1f} µs, raw aiohttp "
          f"{result['aiohttp'] * 1e6:.1f} µs"
          f" -> {ratio:.2f}x")
    verdict = "PASS" if ratio <= 1.2 else "within 1.5x" if ratio <= 1.5 else "FAIL"
    print(f"verdict: {verdict} (target ≤ 1.2x raw aiohttp, issue 10 ≤ 1.5x)")


if __name__ == "__main__":
    main()
