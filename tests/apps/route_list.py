"""Print every route of the server's app as JSON lines: built the way `flowboard serve` builds it, walked through
mounts and included routers, with the permission each NiceGUI page declares. Run in a subprocess (the app is built
once per process)."""

from __future__ import annotations

import json
import sys
from typing import Any

from nicegui import Client
from starlette.routing import Mount

from flowboard.server import create_app
from flowboard.services import Flowboard


def walk(routes: list[Any], prefix: str, pages: dict[str, Any], out: list[dict[str, Any]]) -> None:
    for route in routes:
        path = prefix + getattr(route, "path", "")
        if isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner is not None:
                walk(inner, path, pages, out)
            else:
                out.append({"path": path, "kind": "mount", "methods": ["GET"]})
            continue
        included = getattr(route, "original_router", None)  # FastAPI's include_router keeps the router whole
        if included is not None:
            walk(included.routes, prefix, pages, out)
            continue
        methods = sorted(getattr(route, "methods", None) or ["GET", "POST"])
        entry = {"path": path, "kind": "route", "methods": [m for m in methods if m != "HEAD"] or ["GET"]}
        if path in pages and type(route).__module__.startswith("fastapi") and "GET" in methods:
            entry["kind"] = "page"
            entry["permission"] = pages[path]
        out.append(entry)


def main() -> None:
    app = create_app(Flowboard(data_dir=sys.argv[1]))
    pages = {path: getattr(func, "permission", None) for func, path in Client.page_routes.items()}
    out: list[dict[str, Any]] = []
    walk(app.routes, "", pages, out)
    for entry in out:
        print(json.dumps(entry))


if __name__ == "__main__":
    main()
