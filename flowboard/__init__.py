"""Flowboard: a local visual flow editor and the engine that runs its flows."""

import importlib.abc as _abc
import sys as _sys

__version__ = "0.1.0"


class _LeftOut(_abc.MetaPathFinder):
    """Imports that installed libraries make and Flowboard never uses, declined (docs/engine.md, start-up):

    - httpx imports its command-line client (click, rich, pygments) whenever they are installed: ~30 ms of `flowboard
      serve`'s start-up (`python -X importtime`). `httpx._main` is declined once, to httpx's own first import (httpx
      then defines a `main` that says its CLI is not installed); a later `import httpx._main` imports it as usual.
    - python-socketio and python-engineio import the clients and message-queue managers they offer (requests,
      websocket-client, aiohttp, redis, aio-pika), and NiceGUI its Redis storage: the editor uses none of them (NiceGUI
      only socketio's server; its Redis storage needs NICEGUI_REDIS_URL). Declined when one of these packages asks
      (each catches the ImportError and leaves the feature off): ~20 MB and ~340 modules fewer once the editor is up.
      Anyone else's import of them, a node's `import redis` or `ctx.http`'s aiohttp say, goes through as usual.

    Nothing is put in `sys.modules`: the import system keeps no trace of a declined import."""

    OPTIONAL = frozenset(("requests", "websocket", "redis", "aio_pika", "aiohttp"))
    IMPORTERS = ("socketio.", "engineio.", "nicegui.persistence.")

    def __init__(self, httpx_cli: bool):
        self.httpx_cli = httpx_cli  # httpx's command-line client is still to be declined, once

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname in self.OPTIONAL:
            frame = _sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
                frame = frame.f_back  # type: ignore[assignment]
            if frame is not None and frame.f_globals.get("__name__", "").startswith(self.IMPORTERS):
                raise ModuleNotFoundError(f"Flowboard leaves out socketio's optional {fullname}", name=fullname)
        elif fullname == "httpx._main" and self.httpx_cli:
            self.httpx_cli = False
            raise ModuleNotFoundError("Flowboard leaves out httpx's command-line client", name=fullname)
        return None


_sys.meta_path.insert(0, _LeftOut(httpx_cli="httpx" not in _sys.modules))
