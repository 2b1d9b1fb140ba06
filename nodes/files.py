"""Read file and Write file: files in the folder flows may use (FLOWBOARD_FILES_DIR, else `files` in the data folder).

A path is relative to that folder; one that leads outside it (`..`, an absolute path elsewhere, a symbolic link to
elsewhere) is refused. The file travels in the item as a reference (`ctx.files`), not as its bytes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, NodeError, NodeType, Outputs


class ReadFileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, title="File", description="The file to read, inside the folder flows may use, "
                      "e.g. invoices/{{ item.number }}.pdf")
    field: str = Field("file", min_length=1, title="Put the file in field",
                       description="The item field that gets the file (its name, type and size come with it).")


class ReadFile(NodeType):
    """Reads one file per item from the folder flows may use (FLOWBOARD_FILES_DIR) into the field `file`. Convert it
    to items with File to items, or send it on with HTTP request or Write file."""

    type = "files.read"
    title = "Read file"
    category = Category.integration
    icon = "file_open"
    description = "Reads a file from the folder flows may use into each item."
    Config = ReadFileConfig

    async def run(self, ctx: Context, config: ReadFileConfig, inputs: Inputs) -> Outputs:
        out = []
        for index, item, cfg in ctx.each(inputs["main"]):
            target = ctx.files.in_folder(cfg.path, item_index=index)
            try:
                data = await asyncio.to_thread(target.read_bytes)
            except FileNotFoundError:
                raise NodeError(f"path: there is no file {cfg.path!r} in {ctx.files.folder}", field="path",
                                item_index=index) from None
            except IsADirectoryError:
                raise NodeError(f"path: {cfg.path!r} is a folder, not a file", field="path",
                                item_index=index) from None
            out.append({**item, cfg.field: await ctx.files.put(data, target.name)})
        return out


class WriteFileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, title="File", description="Where to write, inside the folder flows may use, "
                      "e.g. reports/{{ item.day }}.csv. Missing folders are made.")
    field: str = Field("file", min_length=1, title="File field",
                       description="The item field that holds the file to write (from Read file, Items to file, "
                       "HTTP request or a webhook upload).")
    if_exists: Literal["overwrite", "fail"] = Field(
        "overwrite", title="If the file exists", description="Replace it, or stop with an error.",
        json_schema_extra={"widget": "select", "enum_labels": ["replace it", "stop with an error"]})


def _write(target: Path, data: bytes, overwrite: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        with open(target, "xb") as out:  # refuses an existing file without a window between check and write
            out.write(data)
        return
    temp = target.with_name(f".{target.name}.part-{os.getpid()}")
    temp.write_bytes(data)
    os.replace(temp, target)  # readers see the old file or the new one, never half of it


class WriteFile(NodeType):
    """Writes the file in each item's field `file` to the folder flows may use. The item gets `path` (where it went,
    inside the folder) and `size`."""

    type = "files.write"
    title = "Write file"
    category = Category.integration
    icon = "save"
    description = "Writes each item's file into the folder flows may use."
    side_effects = True
    Config = WriteFileConfig

    async def run(self, ctx: Context, config: WriteFileConfig, inputs: Inputs) -> Outputs:
        out = []
        for index, item, cfg in ctx.each(inputs["main"]):
            target = ctx.files.in_folder(cfg.path, item_index=index)
            data = await ctx.files.read(item.get(cfg.field), field="field", item_index=index)
            try:
                await asyncio.to_thread(_write, target, data, cfg.if_exists == "overwrite")
            except FileExistsError:
                raise NodeError(f"path: {cfg.path!r} exists already; choose 'replace it' under If the file exists "
                                "or another name", field="path", item_index=index) from None
            except IsADirectoryError:
                raise NodeError(f"path: {cfg.path!r} is a folder, not a file", field="path",
                                item_index=index) from None
            relative = str(target.relative_to(ctx.files.folder.resolve()))
            out.append({**item, "path": relative, "size": len(data)})
        return out
