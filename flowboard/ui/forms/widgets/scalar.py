"""Values of several primitive types (`str | int | None`), and any value on one line (lenient)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import fixed
from ..schema import MISSING, Meta, Slot, parses, to_json, types_of
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("scalar")
def scalar_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """A value of several primitive types (`str | int | bool | None`): text, read as the types allow."""
    types = types_of(form.schemas, schema)
    value = slot.get()
    text = "" if value is MISSING or value is None else value if isinstance(value, str) else to_json(value)
    element = ui.input(value=text, placeholder=meta.placeholder).props(INPUT_PROPS).classes("w-full")
    element.mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value or ""
        view.set_client_error(None)
        if new == "":
            slot.set(None if "null" in types or meta.nullable else meta.empty())
            return
        if "string" in types:
            slot.set(new)
            return
        try:
            parsed = json.loads(new)
        except ValueError:
            parsed = MISSING
        ok = (isinstance(parsed, bool) and "boolean" in types) or \
            (isinstance(parsed, int) and not isinstance(parsed, bool) and types & {"integer", "number"}) or \
            (isinstance(parsed, float) and "number" in types)
        if not ok:
            view.set_client_error(f"Must be {' or '.join(sorted(types - {'null'}))}")
            return
        slot.set(parsed)

    element.on_value_change(changed)


@fixed("lenient")
def lenient_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """Any value on one line: valid JSON is read as JSON (`42`, `true`, `[1]`, `"42"`), anything else as text."""
    value = slot.get()
    if value is MISSING or value is None:
        text = ""
    elif isinstance(value, str):
        text = to_json(value) if parses(value) else value
    else:
        text = to_json(value)
    element = ui.input(value=text, placeholder=meta.placeholder).props(INPUT_PROPS).classes("w-full")
    element.mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value or ""
        if new.strip() == "":
            slot.set(meta.empty())
            return
        try:
            slot.set(json.loads(new))
        except ValueError:
            slot.set(new)

    element.on_value_change(changed)
