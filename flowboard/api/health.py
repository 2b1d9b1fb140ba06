"""Health, readiness and metrics, as plain routes of the outer app:

    GET /healthz  200 {"ok": true}: the process answers (open to all: load balancers, uptime checks)
    GET /readyz   200 {"ready": true} when the database answers; 503 with the reason in words (open to all)
    GET /metrics  Prometheus text (`flowboard/metrics.py`); behind sign-in like the API (an API key as Bearer)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..metrics import CONTENT_TYPE, render

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..services import Flowboard

READY_TIMEOUT = 3.0  # seconds the database gets to answer a readiness check


def routes(fb: Flowboard) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        def ping() -> None:
            with fb.store.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(ping), READY_TIMEOUT)
        except Exception as exc:
            reason = "it did not answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
            return JSONResponse({"ready": False, "error": f"the database cannot be reached ({reason}); check "
                                 "FLOWBOARD_DATABASE_URL and that the database server runs"}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics(request: Request) -> Response:
        return Response(await asyncio.to_thread(render, fb), media_type=CONTENT_TYPE)

    return [Route("/healthz", healthz, methods=["GET"], name="healthz"),
            Route("/readyz", readyz, methods=["GET"], name="readyz"),
            Route("/metrics", metrics, methods=["GET"], name="metrics")]


def register(app: Starlette, fb: Flowboard) -> None:
    app.router.routes[0:0] = routes(fb)
