"""A timed-out step of a node with side effects is not tried again unless its node type declares retries safe
(`NodeType.retry_safe`): it may have done its work before the time ran out."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from flowboard.engine import Engine, RunStatus, build_plan
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins
from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs

from .conftest import make_flow


class SlowConfig(BaseModel):
    seconds: float = 5


class _Slow(NodeType):
    category = Category.integration
    Config = SlowConfig
    calls: ClassVar[dict[str, int]] = {}

    async def run(self, ctx: Context, config: SlowConfig, inputs: Inputs) -> Outputs:
        _Slow.calls[ctx.run_id] = _Slow.calls.get(ctx.run_id, 0) + 1
        await asyncio.sleep(config.seconds)
        return list(inputs["main"])


class SlowCall(_Slow):
    type = "test.slow_call"
    title = "Slow call"
    side_effects = True


class SlowIdempotent(_Slow):
    type = "test.slow_idempotent"
    title = "Slow idempotent call"
    side_effects = True
    retry_safe = True


class SlowPure(_Slow):
    type = "test.slow_pure"
    title = "Slow calculation"


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    load_builtins(reg)
    for cls in (SlowCall, SlowIdempotent, SlowPure):
        reg.register(cls)
    return reg


@pytest.mark.parametrize(("node_type", "calls", "note"), [
    ("test.slow_call", 1, "; not retried, since it may have done its work already"),
    ("test.slow_idempotent", 3, ""),
    ("test.slow_pure", 3, ""),
])
async def test_timeouts_retry_only_what_is_safe_to_repeat(registry: Registry, node_type: str, calls: int,
                                                          note: str) -> None:
    settings: dict[str, Any] = {"timeout": 0.05, "retries": 2, "retry_backoff": 0}
    flow = make_flow([{"id": "t", "type": "trigger.manual"}, {"id": "n", "type": node_type, "settings": settings}],
                     [("t", "n")])
    engine = Engine()
    try:
        result = await engine.run(build_plan(parse_flow(flow), registry), [{}])
    finally:
        await engine.aclose()
    assert result.status is RunStatus.failed
    step = result.steps["n"]
    assert step.error is not None and step.error["message"] == f"timed out after 0.05 s{note}"
    assert step.attempt == calls and _Slow.calls[result.run_id] == calls
