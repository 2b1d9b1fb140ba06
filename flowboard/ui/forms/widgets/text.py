"""Text on one line, a text area, a URL or a password."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import fixed
from ..schema import Meta, Slot, check_string
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


@fixed("text", "textarea", "url", "password")
def text_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    kind = form.schemas.kind(schema)
    text = value if isinstance(value, str) else ""
    if kind == "textarea":
        element: ui.input | ui.textarea = ui.textarea(value=text, placeholder=meta.placeholder).props("autogrow")
    else:
        element = ui.input(value=text, placeholder=meta.placeholder,
                           password=kind == "password", password_toggle_button=kind == "password")
    element.props(INPUT_PROPS).classes("w-full").mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value or ""
        if new == "":
            view.set_client_error("Required" if meta.required and not meta.nullable else None)
            slot.set(meta.empty())
            return
        view.set_client_error(check_string(new, schema, kind))
        slot.set(new)

    element.on_value_change(changed)
