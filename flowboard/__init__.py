"""Flowboard: a local visual flow editor and the engine that runs its flows."""

import importlib.abc as _abc
import sys as _sys

__version__ = "0.1.0"


class _WithoutHttpxCli(_abc.MetaPathFinder):
    """httpx imports its command-line client (click, rich, pygments) whenever they are installed, and Flowboard never
    uses it: ~30 ms of `flowboard serve`'s start-up (`python -X importtime`; bench/startup.py, docs/engine.md). This
    finder declines `httpx._main` once, to httpx's own first import (httpx then defines a `main` that says its CLI is
    not installed), and takes itself off `sys.meta_path` as it does so. Nothing is left behind: no entry in
    `sys.modules`, and a later `import httpx._main` imports it as usual."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname != "httpx._main":
            return None
        if self in _sys.meta_path:
            _sys.meta_path.remove(self)
        raise ModuleNotFoundError("Flowboard leaves out httpx's command-line client", name=fullname)


if "httpx" not in _sys.modules:
    _sys.meta_path.insert(0, _WithoutHttpxCli())


class _WithoutOptionalClients(_abc.MetaPathFinder):
    """python-socketio and python-engineio import, whenever they are installed, the clients and message-queue managers
    they offer (requests, websocket-client, aiohttp, redis, aio-pika), and NiceGUI its Redis storage: the editor uses
    none of them (NiceGUI only socketio's server; its Redis storage needs NICEGUI_REDIS_URL). This finder declines
    those imports when one of these packages asks (each catches the ImportError and leaves the feature off), which
    keeps ~20 MB and ~340 modules out of the server once the editor is up (docs/engine.md, start-up). Anyone else's
    import of them, a node's `import redis` or `ctx.http`'s aiohttp say, goes through as usual: nothing is put in
    `sys.modules`."""

    NAMES = frozenset(("requests", "websocket", "redis", "aio_pika", "aiohttp"))
    IMPORTERS = ("socketio.", "engineio.", "nicegui.persistence.")

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname not in self.NAMES:
            return None
        frame = _sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None and frame.f_globals.get("__name__", "").startswith(self.IMPORTERS):
            raise ModuleNotFoundError(f"Flowboard leaves out socketio's optional {fullname}", name=fullname)
        return None


_sys.meta_path.insert(0, _WithoutOptionalClients())
