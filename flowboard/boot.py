"""The server's first second: webhooks answer before the editor is built.

`flowboard serve` needs the store, the engine and the node types to answer a webhook, but not NiceGUI, FastAPI or the
REST API, which take most of the start-up time (`python -X importtime`). So the server starts on `Boot`, which serves
the active flows' webhooks as soon as the ASGI lifespan starts, imports the rest in a thread meanwhile, then builds the
full app (`server.create_app`) and runs its lifespan. Any other request that comes before then waits for it.

```
 spawn ─▶ store, engine, nodes ─▶ listen ─▶ lifespan: triggers on ─▶ /webhook/… answers
                                                     └─ thread: import NiceGUI, FastAPI, API ─▶ create_app ─▶ editor,
                                                                                                  API, forms answer
```
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from .api.webhooks import FrontDoor
    from .services import Flowboard

log = logging.getLogger("flowboard")


def _import_the_rest() -> None:
    """What `create_app` imports, in a thread, so the event loop keeps answering webhooks meanwhile."""
    import fastapi  # noqa: F401
    import nicegui.ui  # noqa: F401

    from . import forms_public  # noqa: F401
    from .api import rest  # noqa: F401
    from .ui import pages  # noqa: F401


class Boot:
    """The ASGI app the server runs: the webhook front door at once, everything else once the full app is built."""

    def __init__(self, fb: Flowboard):
        from .api.webhooks import FrontDoor

        self.fb = fb
        self.door: FrontDoor = FrontDoor(self._full_app, fb)  # its `.app` becomes the full app once built
        self.app: Any = None  # the full app (NiceGUI looks for it as `.app` behind wrappers)
        self.ready = asyncio.Event()
        self.failed: BaseException | None = None
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self._build: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._serve_lifespan(receive, send)
        await self.door(scope, receive, send)

    async def _full_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stands in for the full app until it is built: waits for it, then hands the request over."""
        if not self.ready.is_set():
            await self.ready.wait()
        if self.app is None:
            return await _unavailable(scope, receive, send)
        await self.app(scope, receive, send)

    def start(self) -> None:
        """The active flows' webhooks answer from here on; the editor and the API are built meanwhile. (The ASGI
        lifespan's start-up, called directly on RSGI, which has none.) Raises what keeps the server from starting."""
        self.fb.start_triggers()
        self._build = asyncio.ensure_future(self._build_app())

    async def stop(self) -> None:
        """The lifespan's shut-down: the full app's (NiceGUI's, Flowboard's), or Flowboard's alone."""
        if self._build is not None and not self._build.done():
            await asyncio.shield(self._build)  # a half-built NiceGUI cannot be stopped cleanly: let it finish
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            await lifespan.__aexit__(None, None, None)  # NiceGUI's shutdown and Flowboard.aclose
        else:
            await self.fb.aclose()

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            self.start()
        except Exception as exc:
            log.exception("the server could not start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await self.stop()
        finally:
            await send({"type": "lifespan.shutdown.complete"})

    async def _build_app(self) -> None:
        from .server import create_app

        try:
            await asyncio.to_thread(_import_the_rest)
            app = create_app(self.fb)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            self._lifespan = lifespan
            self.app = self.door.app = app
        except Exception as exc:
            self.failed = exc
            log.exception("the editor and the API could not start; webhooks still answer")
        finally:
            gc.enable()  # (`settle_collector` did, unless the build failed before it)
            self.ready.set()


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    message = "the editor and the API could not start; see the server log (webhooks still answer)"
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1011, "reason": message[:120]})
        return
    if scope["type"] != "http":
        return
    body = message.encode() + b"\n"
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
