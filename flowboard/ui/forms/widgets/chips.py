"""A list of short values: chips (type and press Enter), or a multi-select for a list of choices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import fixed
from ..schema import MISSING, PICKERS, Meta, Slot, chip_value, to_json
from ..view import INPUT_PROPS, FieldView, mark
from .picker import keep_fresh

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("chips")
def chips_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """A list of primitives: chips (type and press Enter to add; x removes), or a multi-select for enums."""
    value = slot.get()
    items, _ = form.schemas.unwrap_nullable(schema.get("items", {}))
    current = list(value) if isinstance(value, list) else []
    element: ui.select | ui.input_chips
    if "enum" in items:
        options = list(items["enum"])
        element = ui.select(options, value=[v for v in current if v in options], multiple=True).props("use-chips")
    elif items.get("widget") in PICKERS:  # names offered by the editor (e.g. a table's columns), or typed
        names = [v for v in current if isinstance(v, str)]
        element = ui.select(names, value=names, multiple=True, with_input=True, new_value_mode="add-unique") \
            .props("use-chips options-dense")
        keep_fresh(form, items, element)
    else:
        element = ui.input_chips(value=[v if isinstance(v, str) else to_json(v) for v in current],
                                 new_value_mode="add")
    element.props(INPUT_PROPS + " placeholder=\"Type and press Enter\"").classes("w-full")
    element.mark(mark(view.loc, "input"))
    view.attach(element)
    item_kind = form.schemas.kind(items) if items else "text"

    def changed(e: Any) -> None:
        out: list[Any] = []
        for chip in e.value or []:
            parsed = chip_value(chip, items, item_kind)
            if parsed is MISSING:
                wanted = {"integer": "a whole number", "number": "a number"}.get(items.get("type", ""), "valid")
                view.set_client_error(f"{chip!r} is not {wanted}")
                return
            out.append(parsed)
        view.set_client_error(None)
        slot.set(out if out or meta.required else MISSING)

    element.on_value_change(changed)
