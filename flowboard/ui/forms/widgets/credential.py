"""A stored credential, picked by name."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import body
from ..schema import Meta, Slot
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


@body("credential")
def credential_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any],
                      loc: str) -> None:
    value = slot.get()
    types = schema.get("credential_types") or []
    names = list(form.credentials(types)) if form.credentials else []
    shown = value if isinstance(value, str) and value else None
    if shown is None and meta.required and len(names) == 1:  # the only one that fits: chosen already
        shown = names[0]
        slot.set(shown)
    if shown and shown not in names:
        names.append(shown)
    element = ui.select(names, value=shown, with_input=True, new_value_mode="add-unique", clearable=True)
    element.props(INPUT_PROPS + " options-dense").classes("w-full").mark(mark(view.loc, "input"))
    if types:
        element.props(f'placeholder="{html.escape(" / ".join(types))} credential"')
    with element.add_slot("prepend"):
        ui.icon("key", size="xs").classes("text-grey-6")
    view.attach(element)
    element.on_value_change(lambda e: slot.set(e.value if e.value else meta.empty()))
