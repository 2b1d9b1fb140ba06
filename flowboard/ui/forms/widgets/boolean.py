"""Yes or no: a switch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import fixed
from ..schema import Meta, Slot
from ..view import FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("boolean")
def boolean_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    shown = value if isinstance(value, bool) else bool(meta.default) if isinstance(meta.default, bool) else False
    element = ui.switch(value=shown).props("dense").mark(mark(view.loc, "input"))
    view.attach(element)
    element.on_value_change(lambda e: slot.set(bool(e.value)))
