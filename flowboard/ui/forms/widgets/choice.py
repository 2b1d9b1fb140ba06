"""One of a fixed list of choices: a select."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import fixed
from ..schema import Meta, Slot, choice_labels
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("enum")
def enum_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    options = list(schema.get("enum", []))
    shown = value if value in options else meta.default if meta.default in options else None
    choices = choice_labels(schema)
    element = ui.select(choices, value=shown, clearable=meta.nullable)
    element.props(INPUT_PROPS + " options-dense").classes("w-full").mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        if e.value is None and None not in options:
            slot.set(meta.empty())
        else:
            slot.set(e.value)

    element.on_value_change(changed)
