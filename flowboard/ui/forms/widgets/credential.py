"""A stored credential, picked by name."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ....credential_types import get as credential_type
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
    element.props(f'placeholder="{html.escape(placeholder(types), quote=True)}"')
    with element.add_slot("prepend"):
        ui.icon("key", size="xs").classes("text-grey-6")
    view.attach(element)
    element.on_value_change(lambda e: slot.set(e.value if e.value else meta.empty()))


def placeholder(types: list[str]) -> str:
    """What the empty picker says: the kinds of credential that fit, by their labels ("Pick a saved Email server
    (SMTP) credential"), not their type codes; a long list is left to the field's help."""
    labels = [declaration.label if (declaration := credential_type(t)) else t for t in types]
    if not labels or len(labels) > 3:
        return "Pick a saved credential"
    return f"Pick a saved {' or '.join(labels)} credential"
