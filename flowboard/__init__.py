"""Flowboard: a local visual flow editor and the engine that runs its flows."""

import sys as _sys

__version__ = "0.1.0"

# httpx imports its command-line client (click, rich, pygments) whenever they are installed, and Flowboard never uses
# it: ~30 ms of `flowboard serve`'s start-up (`python -X importtime`). With this entry `import httpx` skips it (httpx
# then offers a `main` that says the CLI is not installed). bench/startup.py, docs/engine.md.
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
