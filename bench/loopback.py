"""A loopback HTTP server for the benchmarks that call one (aiohttp's, on the running event loop).

    runner, url = await serve({"/things/{id}": thing})   # url: http://127.0.0.1:PORT
    ...
    await runner.cleanup()

The scripts run as `python bench/NAME.py`, so this folder is on `sys.path` and `from loopback import serve` works.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(routes: dict[str, Handler]) -> tuple[web.AppRunner, str]:
    """GET `routes` (path -> handler) on a free port of 127.0.0.1; the runner (to clean up) and the base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
