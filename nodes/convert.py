"""Items to file and File to items: CSV, JSON, text and spreadsheet (xlsx) files, made from items or read into items.

Spreadsheets are read and written with openpyxl: the first row holds the column names. Text that starts with `=` is
written as text, never as a formula. Values that are not text, numbers, true/false or empty (lists, objects) go
into a cell or a CSV field as JSON.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import Category, Context, Inputs, Item, Items, NodeError, NodeType, Outputs

Format = Literal["csv", "json", "text", "xlsx"]
MIME = {"csv": "text/csv", "json": "application/json", "text": "text/plain",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FORMAT_LABELS = ["CSV", "JSON", "text", "spreadsheet (xlsx)"]


def _columns(items: Items) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.update(dict.fromkeys(item))
    return list(seen)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _csv(items: Items) -> bytes:
    out = io.StringIO()
    columns = _columns(items)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for item in items:
        row = [_cell(item.get(c)) for c in columns]
        writer.writerow(["" if v is None else "true" if v is True else "false" if v is False else v for v in row])
    return out.getvalue().encode()


def _xlsx(items: Items) -> bytes:
    from openpyxl import Workbook
    from openpyxl.utils.exceptions import IllegalCharacterError

    book = Workbook()
    sheet = book.active
    columns = _columns(items)
    sheet.append(columns)
    for index, item in enumerate(items):
        for col, name in enumerate(columns, start=1):
            value = _cell(item.get(name))
            try:
                cell = sheet.cell(row=index + 2, column=col, value=value)
            except IllegalCharacterError:
                raise NodeError(f"field {name!r} holds a control character a spreadsheet cannot hold",
                                item_index=index) from None
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # text, never a formula
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


class ToFileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Format = Field("csv", description="The kind of file to make.",
                           json_schema_extra={"widget": "select", "enum_labels": FORMAT_LABELS})
    name: str = Field("items", min_length=1, title="File name", description="The file's name; the format's ending "
                      "(.csv, .json, .txt, .xlsx) is added when missing.")
    text_field: str = Field("text", title="Text field", description="For a text file: the field whose value is "
                            "each line.")
    field: str = Field("file", min_length=1, title="Put the file in field",
                       description="The field of the one item this node gives that holds the file.")


class ItemsToFile(NodeType):
    """Makes one file of all the items: a CSV or spreadsheet with a column per field (the first row names them), a
    JSON list, or a text file with one line per item. Gives one item with the file in `file`."""

    type = "convert.to_file"
    title = "Items to file"
    category = Category.logic
    icon = "description"
    description = "Makes a CSV, JSON, text or spreadsheet file of the items."
    Config = ToFileConfig

    async def run(self, ctx: Context, config: ToFileConfig, inputs: Inputs) -> Outputs:
        items = inputs["main"]
        if config.format == "csv":
            data = _csv(items)
        elif config.format == "json":
            data = json.dumps(items, ensure_ascii=False, indent=2).encode()
        elif config.format == "text":
            data = "".join(f"{'' if (v := i.get(config.text_field)) is None else v}\n" for i in items).encode()
        else:
            data = await asyncio.to_thread(_xlsx, items)
        ending = {"text": ".txt"}.get(config.format, f".{config.format}")
        name = config.name if config.name.lower().endswith(ending) else config.name + ending
        ref = await ctx.files.put(data, name, MIME[config.format])
        return [ctx.paired({config.field: ref}, *range(len(items)))]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _read_xlsx(data: bytes, sheet: str) -> Items:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        if sheet and sheet not in book.sheetnames:
            raise NodeError(f"sheet: the spreadsheet has no sheet {sheet!r}; it has {', '.join(book.sheetnames)}",
                            field="sheet")
        rows = book[sheet].iter_rows(values_only=True) if sheet else book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return []
        names = [str(h) if h is not None else f"column {n}" for n, h in enumerate(header, start=1)]
        return [{k: _plain(v) for k, v in zip(names, row, strict=False)} for row in rows
                if any(v is not None for v in row)]
    finally:
        book.close()


def _guess(ref: Item) -> str:
    name, mime = str(ref.get("name", "")).lower(), str(ref.get("mime_type", ""))
    for fmt, ending in (("csv", ".csv"), ("json", ".json"), ("xlsx", ".xlsx"), ("text", ".txt")):
        if name.endswith(ending) or mime == MIME[fmt]:
            return fmt
    return "text"


class FromFileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field("file", min_length=1, title="File field", description="The item field that holds the file.")
    format: Literal["auto", "csv", "json", "text", "xlsx"] = Field(
        "auto", description="The kind of file; automatic goes by the file's name and type.",
        json_schema_extra={"widget": "select", "enum_labels": ["automatic", *FORMAT_LABELS]})
    sheet: str = Field("", description="For a spreadsheet: the sheet to read. Empty: the first.")
    lines: bool = Field(False, title="One item per line", description="For a text file: an item per line (field "
                        "text) instead of one item with the whole text.")


class FileToItems(NodeType):
    """Reads the file in each item's field `file` into items: a row per item from a CSV or spreadsheet (the first row
    names the fields), the objects of a JSON list, or the text (whole, or one item per line)."""

    type = "convert.from_file"
    title = "File to items"
    category = Category.logic
    icon = "table_view"
    description = "Reads a CSV, JSON, text or spreadsheet file into items."
    Config = FromFileConfig

    async def run(self, ctx: Context, config: FromFileConfig, inputs: Inputs) -> Outputs:
        out: Items = []
        for index, item, cfg in ctx.each(inputs["main"]):
            ref = item.get(cfg.field)
            data = await ctx.files.read(ref, field="field", item_index=index)
            fmt = _guess(ref) if cfg.format == "auto" else cfg.format
            try:
                rows = await asyncio.to_thread(_parse, data, fmt, cfg)
            except NodeError as exc:
                exc.item_index = index
                raise
            except Exception as exc:  # a damaged file: say which and what kind
                raise NodeError(f"{ref.get('name')!r} could not be read as {fmt}: {exc}", item_index=index,
                                field="format") from None
            out.extend(ctx.paired(row, index) for row in rows)
        return out


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not a JSON number")


def _parse(data: bytes, fmt: str, cfg: FromFileConfig) -> Items:
    if fmt == "xlsx":
        return _read_xlsx(data, cfg.sheet)
    text = data.decode("utf-8-sig")
    if fmt == "csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(text, newline=""))]
    if fmt == "json":
        value = json.loads(text, parse_constant=_no_constant)
        values = value if isinstance(value, list) else [value]
        return [v if isinstance(v, dict) else {"value": v} for v in values]
    if cfg.lines:
        return [{"text": line} for line in text.splitlines()]
    return [{"text": text}]
