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
