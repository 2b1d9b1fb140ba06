"""Any JSON value, in a code box that checks it as it is typed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ...code_box import CodeBox
from ..fields import fixed
from ..schema import MISSING, Meta, Slot, to_json
from ..view import FieldView, mark
from .items_table import ItemsTable, is_item_list

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("json")
def json_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """A list of items gets a table first (JSON one click away); any other value is JSON in a code box."""
    if not is_item_list(schema):
        json_box(view, slot, meta)
        return
    def show(mode: str) -> None:
        body.clear()
        view.inputs.clear()
        with body:
            if mode == "table":
                ItemsTable(form, view, slot, meta)
            else:
                json_box(view, slot, meta)

    ui.toggle({"table": "Table", "json": "JSON"}, value="table", on_change=lambda e: show(e.value)) \
        .classes("fb-sm").props("dense no-caps unelevated toggle-color=primary color=grey-2 text-color=grey-9") \
        .classes("fb-choice fb-items-mode").mark(mark(view.loc, "mode"))
    body = ui.column().classes("w-full gap-1")
    with body:
        ItemsTable(form, view, slot, meta)


def json_box(view: FieldView, slot: Slot, meta: Meta) -> None:
    value = slot.get()
    shown = meta.default if value is MISSING and meta.default not in (MISSING, None) else value
    text = "" if shown is MISSING else to_json(shown, indent=2)
    editor = CodeBox(text, language="JSON", indent="  ", line_wrapping=True)
    editor.classes("fb-code w-full").mark(mark(view.loc, "input"))
    view.attach(editor)

    def changed(e: Any) -> None:
        new = (e.value or "").strip()
        if not new:
            view.set_client_error("Required" if meta.required else None)
            slot.set(meta.empty())
            return
        try:
            parsed = json.loads(new)
        except ValueError as exc:
            view.set_client_error(f"Not valid JSON: {exc}")
            return
        view.set_client_error(None)
        slot.set(parsed)

    editor.on_value_change(changed)
