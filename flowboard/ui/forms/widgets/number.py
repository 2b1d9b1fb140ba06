"""A number (whole where the schema says integer), checked against its bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import fixed
from ..schema import Meta, Slot, check_number
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("number")
def number_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    integer = schema.get("type") == "integer"
    element = ui.number(value=value if isinstance(value, int | float) else None, placeholder=meta.placeholder,
                        min=schema.get("minimum"), max=schema.get("maximum"), step=1 if integer else None)
    element.props(INPUT_PROPS).classes("w-full").mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value
        if new is None:
            view.set_client_error("Required" if meta.required and not meta.nullable else None)
            slot.set(meta.empty())
            return
        if integer:
            if not float(new).is_integer():
                view.set_client_error("Must be a whole number")
                return
            new = int(new)
        view.set_client_error(check_number(new, schema))
        slot.set(new)

    element.on_value_change(changed)
