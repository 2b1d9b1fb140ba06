"""Code: the user's own Python over the items, run in a sandboxed worker process, never in Flowboard's process.

The sandbox (see docs/code-node.md) gives the code no files of the machine beyond Python itself, no environment, no
network unless the node allows it, no new processes, and limits on time, memory and output.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, NodeType, Outputs

DEFAULT_CODE = """\
# `items` is the list of input items; each item is a dict.
# Return the items to send on: a list of dicts.
for item in items:
    item["seen"] = True
print(f"{len(items)} items")
return items
"""

COMPLETIONS = [
    {"label": "items", "detail": "the input items (run once for all items)", "type": "variable"},
    {"label": "item", "detail": "the current item (run once for each item)", "type": "variable"},
]


class CodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["all", "each"] = Field(
        "all", description="all: run once with items, the list of every input item, and return a list of items. "
                           "each: run once per item with item, and return an item, a list of items, or None to "
                           "drop it.",
        json_schema_extra={"widget": "select", "enum_labels": ["Once for all items", "Once for each item"]})
    code: str = Field(
        DEFAULT_CODE, min_length=1,
        description="Python code. Read items (or item), return the result; print() shows in the run's data. "
                    "It runs in a sandbox: no files, environment or other programs, and no network unless allowed "
                    "below. Only the standard library is available.",
        json_schema_extra={"widget": "code", "language": "python", "expressions": False,
                           "instead": "the code reads the items itself (`item['email']`); for literal braces in "
                                      "an f-string write `'{' '{'` instead of `{{`",
                           "completions": COMPLETIONS})
    allow_network: bool = Field(False, description="Let the code open network connections (off: every connection "
                                                   "is refused).")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds the code may run (at most 300) before it is "
                                                           "stopped.")
    memory_mb: int = Field(256, ge=64, le=4096, description="Memory the code may use, in MB (64 to 4096).")


class Code(NodeType):
    """Runs your Python code on the items.

    **Once for all items** gives the code `items` (a list of dicts) and expects a list of dicts back. **Once for each
    item** gives it `item` and expects a dict, a list of dicts, or `None` to drop the item. `print()` output is
    shown with the node's data. An error names the line of your code that failed.

    The code runs in a separate, sandboxed process with only Python's standard library: it cannot read Flowboard's
    data, database, credentials or environment, start programs, or reach the network unless *allow network* is on.
    Items go in and out as JSON data only.
    """

    type = "code"
    title = "Code"
    category = Category.logic
    icon = "code"
    description = "Runs Python code on the items, in a sandbox."
    Config = CodeConfig

    async def run(self, ctx: Context, config: CodeConfig, inputs: Inputs) -> Outputs:
        return await ctx.run_code(config.code, list(inputs["main"]), mode=config.mode, timeout=config.timeout,
                                  memory_mb=config.memory_mb, network=config.allow_network)
