"""Shared fixtures. Test-only node types live in tests/testnodes.py and are added to a copy of the real registry."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nicegui.testing.user import User

from flowboard.engine import Engine, build_plan
from flowboard.httpclient import Client
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins
from flowboard.sdk import make_http_client

from . import testnodes
from .serve import stand_ins  # noqa: F401  (flowboard demo's stand-ins, a module fixture)

IN_CI = bool(os.environ.get("CI"))
#: How long the simulated user looks for something to appear (or go) before the test fails. NiceGUI's own default
#: is 3 tries 0.1 s apart: on a loaded 2-core CI machine a handler behind argon2, a thread or a dialog re-render takes
#: longer than that (CI failed on exactly this). A check that holds at once still returns at once.
SEE_WITHIN = 15.0


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The suite runs on every core (pytest-xdist, `-n auto --dist loadgroup` in pyproject.toml): each test file on
    one worker, so its module fixtures (servers, browsers) start once, and the files that use the demo stand-ins on
    the same worker, one after another: those listen on fixed ports (8091, 2525) that the example flows name."""
    shared = {item.module.__name__ for item in items
              if isinstance(item, pytest.Function) and "stand_ins" in item.fixturenames}
    for item in items:
        module = item.module.__name__ if isinstance(item, pytest.Function) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group("stand_ins" if module in shared else module))


def _patient(check: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(check)
    async def patient(self: User, *args: Any, retries: int | None = None, **kwargs: Any) -> None:
        deadline = time.monotonic() + max(SEE_WITHIN, 0.1 * (retries or 0))
        while True:
            try:
                return await check(self, *args, retries=1, **kwargs)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)

    return patient


User.should_see = _patient(User.should_see)  # type: ignore[method-assign]
User.should_not_see = _patient(User.should_not_see)  # type: ignore[method-assign]


@pytest.fixture
async def http_client() -> AsyncIterator[Client]:
    """A fresh shared HTTP client, as `ctx.http` is (`flowboard/httpclient.py`), closed afterwards."""
    client = make_http_client()
    assert isinstance(client, Client)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def registry() -> Registry:
    reg = Registry()
    load_builtins(reg)
    reg.register_module(testnodes)
    return reg


def make_flow(nodes: list[dict[str, Any]], edges: list[Any], **extra: Any) -> dict[str, Any]:
    """A flow dict from short node and edge specs: edges as (source, target) or (source, port, target, port)."""
    out_edges = []
    for e in edges:
        if isinstance(e, dict):
            out_edges.append(e)
        elif len(e) == 2:
            out_edges.append({"source": e[0], "target": e[1]})
        else:
            out_edges.append({"source": e[0], "source_port": e[1], "target": e[2], "target_port": e[3]})
    return {"name": extra.pop("name", "test flow"), "nodes": nodes, "edges": out_edges, **extra}


@pytest.fixture
def plan_of(registry: Registry):  # type: ignore[no-untyped-def]
    def build(data: dict[str, Any]):  # type: ignore[no-untyped-def]
        return build_plan(parse_flow(data), registry)

    return build


@pytest.fixture
async def engine():  # type: ignore[no-untyped-def]
    eng = Engine()
    yield eng
    await eng.aclose()


def require_service(name: str, reachable: bool) -> None:
    """Skip when a service is down on a developer machine; in CI a missing service is an error."""
    if reachable:
        return
    if IN_CI:
        pytest.fail(f"{name} is not reachable, and CI must run every test (.ci/run starts it)")
    pytest.skip(f"{name} is not reachable")
