"""The server: an outer FastAPI app whose plain routes carry the API and webhooks, with NiceGUI mounted for the UI.

Hot paths never pass NiceGUI's middleware (measured ~10x slower): they are routes of the outer app, registered first.
`ui.run_with` keeps module-global state, so the app is built once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import secrets
import sys
import webbrowser
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FlowboardError
from .services import Flowboard, load_examples

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .hostguard import HostGuard

log = logging.getLogger("flowboard")
EXAMPLES = Path(__file__).resolve().parent.parent / "flows"
SWAGGER = Path(__file__).resolve().parent / "ui" / "dist" / "swagger"


#: The cycle collector's first threshold: a collection after this many more container objects made than freed
#: (Python's default is 700). Runs in flight hold their steps until their group commit, so 32 recorded runs at once
#: passed 700 every few runs (2,845 collections in 20,000 chain10 calls, 6.8 µs of CPU per call, none of them
#: finding garbage); bursts stay under 5,000. Cyclic garbage is still collected, a little later.
GC_FIRST_THRESHOLD = 5_000


def settle_collector() -> None:
    """After start-up: its objects (NiceGUI, FastAPI, pydantic) leave the collector's scans (measured -25% CPU per
    run), the collector's first threshold goes up to `GC_FIRST_THRESHOLD`, and the collector is on (`flowboard`
    starts with it off: __main__.py)."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_THRESHOLD, second, third)
    gc.enable()


def create_app(fb: Flowboard | None = None, public: bool = False) -> FastAPI:
    """`public`: the server listens on a non-loopback address, so every page needs a session even before a user
    exists (`serve` refuses to start on one without an admin; it sets `fb.accounts.public` itself)."""
    from fastapi import FastAPI
    from nicegui import ui

    from . import approval_links, forms_public
    from .api import connectors, credentials, health, rest, signin, tables, waiting, webhooks
    from .auth.guard import AuthGuard
    from .ui import pages

    fb = fb or Flowboard()
    if public:
        fb.accounts.public = True

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if EXAMPLES.is_dir() and not fb.store.list_flows():
            load_examples(fb, EXAMPLES)
        fb.start_triggers()  # active flows answer their webhooks from here on
        fb.start_notices()  # activation changes and cancels from other processes on PostgreSQL
        resume = asyncio.ensure_future(fb.resume_unfinished())
        fb.start_waiting()  # parked runs resume at their deadlines
        sweep = asyncio.ensure_future(fb.sweep_files_forever())  # files of deleted runs
        settle_collector()
        yield
        resume.cancel()
        sweep.cancel()
        await fb.aclose()

    app = FastAPI(title="Flowboard", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.flowboard = fb
    _register_docs(app)  # /docs with Swagger UI served from the package: FastAPI's default loads it from a CDN
    webhooks.register(app, fb)  # plain routes, ahead of NiceGUI's mount
    tables.register(app, fb)  # /api/v1/tables (ahead of the API's catch-all for unknown endpoints)
    credentials.register(app, fb)  # /api/v1/credentials (ditto) and /oauth/callback
    connectors.register(app, fb)  # /api/v1/connectors (ditto)
    waiting.register(app, fb)  # resume links of waiting runs
    rest.register(app, fb)  # the REST API /api/v1, also ahead of the mount
    forms_public.register(app, fb)  # the public form pages, plain HTML
    approval_links.register(app, fb)  # /decide/<token>: one-click approval links, plain HTML
    signin.register(app, fb)  # POST /login, /logout (the session cookie)
    health.register(app, fb)  # /healthz, /readyz, /metrics
    pages.register(fb)
    app.add_middleware(AuthGuard, accounts=fb.accounts, store=fb.store)  # sessions and keys; not for /webhook/
    ui.run_with(app, title="Flowboard", favicon="🔀", storage_secret=_storage_secret(fb),
                show_welcome_message=False, reconnect_timeout=10)
    return app


def _register_docs(app: FastAPI) -> None:
    """The interactive API docs at /docs, with Swagger UI's files (copied from the npm package swagger-ui-dist into
    ui/dist/swagger/ by the front-end build) at /_swagger, so the page works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
                                   swagger_js_url="/_swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/_swagger/swagger-ui.css",
                                   swagger_favicon_url="/_swagger/favicon-32x32.png")

    if SWAGGER.is_dir():
        app.mount("/_swagger", StaticFiles(directory=SWAGGER), name="swagger")
    else:
        log.warning("%s is missing (the front-end was not built): /docs will not load", SWAGGER)


def _storage_secret(fb: Flowboard) -> str:
    return os.environ.get("FLOWBOARD_STORAGE_SECRET") or secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str = "127.0.0.1", port: int = 8080, open_browser: bool = True, record: bool | None = None) -> int:
    """`record=False` (or env FLOWBOARD_RECORD=0): runs are not written to the database (for benchmarks)."""
    public = not is_loopback(host)
    if public and not _has_admin():
        from .auth import ADD_ADMIN

        print(f"flowboard: refusing to serve on {host}: anyone on the network could open the editor and run your "
              f"flows, and no admin can sign in yet. Add one first with `{ADD_ADMIN}`, then start again. (On "
              "127.0.0.1, the default, Flowboard runs for this computer alone without accounts.)", file=sys.stderr)
        return 2
    if _port_taken(host, port):
        print(f"flowboard: port {port} on {host} is already in use, perhaps by a Flowboard started before (open "
              f"http://{'[' + host + ']' if ':' in host else host}:{port} to see), or by another program. Stop it, "
              f"or start this one with another port, such as: flowboard --port {port + 1 if port < 65535 else 8081}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per outgoing request costs more than the request
    if record is None:
        record = os.environ.get("FLOWBOARD_RECORD", "1").strip().lower() not in ("0", "false", "no", "off")
    try:
        fb = Flowboard(record=record)
    except FlowboardError as exc:  # e.g. runs to go to workers on SQLite
        print(f"flowboard: {exc}", file=sys.stderr)
        return 2
    if not os.environ.get("FLOWBOARD_PUBLIC_URL"):  # resume links point at this server
        fb.public_url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    fb.accounts.public = public  # every page needs a session, even before a user exists
    url = f"http://{host}:{port}"
    print(f"Flowboard is running at {url}  (Ctrl+C to stop){'' if record else '  runs are not recorded'}",
          flush=True)
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(url)
    from .boot import Boot
    from .hostguard import HostGuard

    front = HostGuard(Boot(fb), port)  # webhooks answer at once; the editor and the API are built meanwhile
    if server_choice() == "granian":
        _run_granian(front, host, port)
    else:
        import uvicorn

        uvicorn.run(front, host=host, port=port, log_level="warning", access_log=False, loop=_loop(), http=_http())
    return 0


def _port_taken(host: str, port: int) -> bool:
    """Whether something listens on host:port already. granian binds with SO_REUSEPORT, which lets a second server
    share a port without a word (each answering some of the calls, from its own data folder); a plain bind, as this
    probe makes, is refused while the first one listens."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False  # (the server says what is wrong with the address)
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (a port left in TIME_WAIT is free)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def server_choice() -> str:
    """The HTTP server: env FLOWBOARD_SERVER `granian` (the default: Rust HTTP, measured 1.1-2.5x uvicorn's webhook
    rate here, see docs/engine.md) or `uvicorn` (with httptools and uvloop)."""
    choice = os.environ.get("FLOWBOARD_SERVER", "granian").strip().lower() or "granian"
    if choice not in ("uvicorn", "granian"):
        raise SystemExit(f"flowboard: FLOWBOARD_SERVER is {choice!r}; set it to uvicorn or granian")
    return choice


def _run_granian(front: HostGuard, host: str, port: int) -> None:
    """Granian's embedded server (Rust HTTP on the Python event loop of this process) on its RSGI interface
    (`flowboard/rsgi.py`), stopped by SIGINT/SIGTERM. RSGI has no lifespan: Boot is started and stopped around it."""
    import signal

    from granian.constants import Interfaces
    from granian.server.embed import Server

    from .rsgi import RSGIFront

    async def main() -> None:
        rsgi = RSGIFront(front)
        try:
            rsgi.boot.start()
        except Exception as exc:
            log.exception("the server could not start")
            raise SystemExit(f"flowboard: the server could not start: {exc}") from None
        server = Server(rsgi, address=host, port=port, interface=Interfaces.RSGI, log_enabled=False,
                        websockets=True, backlog=2048)  # uvicorn's backlog: bursts of callers are queued, not refused
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        try:
            await server.serve()
        finally:
            await rsgi.boot.stop()

    if _loop() == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def _has_admin() -> bool:
    from .auth import Role
    from .store import Store
    from .store.users import UserStore

    store = Store()
    try:
        return any(Role.admin.value in user.roles for user in UserStore(store.engine).all())
    finally:
        store.close()


def _loop() -> str:
    """uvloop when installed (uvicorn[standard] brings it), else asyncio."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _http() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"
