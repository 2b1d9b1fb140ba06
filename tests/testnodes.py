"""Node types used only by the tests: small, deterministic, each exercising one engine behaviour."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from flowboard.sdk import Category, Context, Inputs, NodeError, NodeType, Outputs


class AddConfig(BaseModel):
    field: str = "x"
    value: Any = None


class Add(NodeType):
    """Sets one field on every item (the value may be an expression)."""

    type = "test.add"
    title = "Add field"
    category = Category.logic
    Config = AddConfig

    async def run(self, ctx: Context, config: AddConfig, inputs: Inputs) -> Outputs:
        return [{**item, config.field: cfg.value} for _, item, cfg in ctx.each(inputs["main"])]


class SleepConfig(BaseModel):
    seconds: float = 0.05
    tag: str = ""


class Sleep(NodeType):
    """Sleeps, then records when it started and ended, to show overlap."""

    type = "test.sleep"
    title = "Sleep"
    category = Category.logic
    Config = SleepConfig
    log: ClassVar[list[tuple[str, float, float]]] = []

    async def run(self, ctx: Context, config: SleepConfig, inputs: Inputs) -> Outputs:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(config.seconds)
        Sleep.log.append((config.tag or ctx.node_id, start, loop.time()))
        return [{**item, ctx.node_id: True} for item in inputs["main"]]


class FlakyConfig(BaseModel):
    fail_times: int = Field(1, description="fail this many attempts, then succeed")
    key: str = "flaky"


class Flaky(NodeType):
    """Fails its first N attempts in a run (counted per key), then passes items through."""

    type = "test.flaky"
    title = "Flaky"
    category = Category.integration
    side_effects = True
    Config = FlakyConfig
    attempts: ClassVar[dict[str, int]] = {}

    async def run(self, ctx: Context, config: FlakyConfig, inputs: Inputs) -> Outputs:
        key = f"{ctx.run_id}:{config.key}"
        Flaky.attempts[key] = Flaky.attempts.get(key, 0) + 1
        if Flaky.attempts[key] <= config.fail_times:
            raise NodeError(f"planned failure {Flaky.attempts[key]}")
        return list(inputs["main"])


class Boom(NodeType):
    """Raises a plain Python exception, as a buggy third-party node would."""

    type = "test.boom"
    title = "Boom"
    category = Category.logic

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        raise ZeroDivisionError("division by zero")


class Branch(NodeType):
    """Routes items with a truthy `ok` to `yes`, the rest to `no`."""

    type = "test.branch"
    title = "Branch"
    category = Category.logic
    outputs = ("yes", "no")

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        items = inputs["main"]
        return {"yes": [i for i in items if i.get("ok")], "no": [i for i in items if not i.get("ok")]}


class Join(NodeType):
    """Two inputs, appended: a's items then b's."""

    type = "test.join"
    title = "Join"
    category = Category.logic
    inputs = ("a", "b")

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        return [*inputs["a"], *inputs["b"]]


class MutateConfig(BaseModel):
    how: str = Field(description="one of Mutate.WAYS")


class Mutate(NodeType):
    """Changes what it received in place, as a careless third-party node would, then passes the items on."""

    type = "test.mutate"
    title = "Mutate"
    category = Category.logic
    Config = MutateConfig
    WAYS: ClassVar[dict[str, Any]] = {
        "set key": lambda items: items[0].__setitem__("name", "changed"),
        "delete key": lambda items: items[0].__delitem__("name"),
        "update": lambda items: items[0].update(name="changed"),
        "setdefault": lambda items: items[0].setdefault("new", 1),
        "pop": lambda items: items[0].pop("name"),
        "popitem": lambda items: items[0].popitem(),
        "clear item": lambda items: items[0].clear(),
        "merge into": lambda items: items[0].__ior__({"name": "changed"}),
        "nested dict": lambda items: items[0]["address"].__setitem__("city", "changed"),
        "deep nested dict": lambda items: items[0]["address"]["geo"].__setitem__("lat", 0),
        "nested list append": lambda items: items[0]["tags"].append("changed"),
        "nested list extend": lambda items: items[0]["tags"].extend(["x"]),
        "nested list +=": lambda items: items[0]["tags"].__iadd__(["x"]),
        "nested list *=": lambda items: items[0]["tags"].__imul__(3),
        "nested list set": lambda items: items[0]["tags"].__setitem__(0, "changed"),
        "nested list slice": lambda items: items[0]["tags"].__setitem__(slice(0, 1), ["x", "y"]),
        "nested list sort": lambda items: items[0]["tags"].sort(reverse=True),
        "nested list reverse": lambda items: items[0]["tags"].reverse(),
        "nested list insert": lambda items: items[0]["tags"].insert(0, "x"),
        "nested list remove": lambda items: items[0]["tags"].remove("a"),
        "nested list pop": lambda items: items[0]["tags"].pop(),
        "nested list clear": lambda items: items[0]["tags"].clear(),
        "dict in list": lambda items: items[0]["lines"][0].__setitem__("qty", 99),
        "items append": lambda items: items.append({"name": "extra"}),
        "items extend": lambda items: items.extend([{"name": "extra"}]),
        "items set": lambda items: items.__setitem__(0, {"name": "replaced"}),
        "items delete": lambda items: items.__delitem__(0),
        "items clear": lambda items: items.clear(),
        "items sort": lambda items: items.sort(key=lambda i: 0),
        "items pop": lambda items: items.pop(),
    }

    async def run(self, ctx: Context, config: MutateConfig, inputs: Inputs) -> Outputs:
        items = inputs["main"]
        Mutate.WAYS[config.how](items)
        return items  # type: ignore[return-value]


class PassOn(NodeType):
    """Returns the very list it received (frozen), once as a list and once as a dict of ports."""

    type = "test.pass"
    title = "Pass on"
    category = Category.logic

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        return {"main": inputs["main"]} if ctx.node_id.endswith("dict") else inputs["main"]  # type: ignore[return-value]


class Twice(NodeType):
    """Makes two new items of every item, without saying where they came from (`ctx.paired`)."""

    type = "test.twice"
    title = "Twice"
    category = Category.logic

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        return [{**item, "copy": n} for item in inputs["main"] for n in (1, 2)]
