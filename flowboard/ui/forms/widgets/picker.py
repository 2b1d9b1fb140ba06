"""A name picked from what Flowboard has: a data table, one of its columns, or another flow.

The field's schema says what to offer (`widget`: `table`, `table_column` with `table_field` naming the field that holds
the table, or `flow`); the form's `choices` callback answers with the names. A name that is not offered (typed, or
a table since deleted) stays as it is and can still be typed over.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import body
from ..schema import Meta, Slot
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm

PLACEHOLDERS = {"table": "Pick a data table", "table_column": "Pick a column", "flow": "Pick a flow"}
ICONS = {"table": "table_chart", "table_column": "view_column", "flow": "account_tree"}


@body("picker")
def picker_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any],
                  loc: str) -> None:
    widget = str(schema.get("widget"))
    table = form.value.get(schema.get("table_field", "table")) if widget == "table_column" else None
    names = list(form.choices(widget, table if isinstance(table, str) else None)) if form.choices else []
    value = slot.get()
    shown = value if isinstance(value, str) and value else None
    if shown and shown not in names:
        names.append(shown)
    element = ui.select(names, value=shown, with_input=True, new_value_mode="add-unique", clearable=True)
    element.props(INPUT_PROPS + f' options-dense placeholder="{html.escape(PLACEHOLDERS.get(widget, ""))}"')
    element.classes("w-full").mark(mark(view.loc, "input"))
    with element.add_slot("prepend"):
        ui.icon(ICONS.get(widget, "list"), size="xs").classes("text-grey-6")
    view.attach(element)
    element.on_value_change(lambda e: slot.set(e.value if e.value else meta.empty()))
