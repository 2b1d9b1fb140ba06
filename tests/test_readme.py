"""The README's node-type example is real code: it loads, registers and runs."""

from __future__ import annotations

import re
import types
from pathlib import Path

from flowboard.engine import Engine, build_plan
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins

from .conftest import make_flow

README = Path(__file__).parent.parent / "README.md"


async def test_the_readme_node_type_runs() -> None:
    [code] = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    module = types.ModuleType("readme_example")
    exec(compile(code, str(README), "exec"), module.__dict__)
    registry = Registry()
    load_builtins(registry)
    registry.register_module(module)
    flow = make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "up", "type": "text.upper", "config": {"field": "name"}}], [("t", "up")])
    result = await Engine().run(build_plan(parse_flow(flow), registry), [{"name": "ada"}])
    assert result.output == [{"name": "ADA"}]
