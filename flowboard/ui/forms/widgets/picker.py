"""A name picked from what Flowboard has: a data table, one of its columns, another flow, or a table or column of
the outside database the node's config names (the SQL node).

The field's schema says what to offer (`widget`: `table`, `table_column` with `table_field` naming the field that holds
the table, `flow`, `sql_table`, `sql_column`); the form's `choices` callback answers with the names, asked again each
time the list opens (so a column list follows the table picked meanwhile). An outside database is asked in a worker
thread, once the form is drawn and whenever the field gets focus. A name that is not offered (typed, or a table since
deleted) stays as it is and can be typed over.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nicegui import run, ui

from ..fields import body
from ..schema import Meta, Slot
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm

PLACEHOLDERS = {"table": "Pick a data table", "table_column": "Pick a column", "flow": "Pick a flow",
                "sql_table": "Pick a table of the database", "sql_column": "Pick a column"}
ICONS = {"table": "table_chart", "table_column": "view_column", "flow": "account_tree", "sql_table": "storage",
         "sql_column": "view_column"}
OUTSIDE = ("sql_table", "sql_column")  # asked of another system: only when the list opens, off the event loop


def offered(form: ConfigForm, schema: dict[str, Any]) -> list[str]:
    """The names a picker field (or each entry of a list of them) offers now."""
    widget = str(schema.get("widget"))
    if not form.choices:
        return []
    table = form.value.get(schema.get("table_field", "table")) if widget in ("table_column", "sql_column") else None
    table = table if isinstance(table, str) and table else None
    if widget in OUTSIDE:
        return list(form.choices(widget, table, form.value))
    return list(form.choices(widget, table))


def keep_fresh(form: ConfigForm, schema: dict[str, Any], element: ui.select) -> None:
    """Ask for the names again whenever the list opens; an outside database also once drawn and on focus."""
    widget = str(schema.get("widget"))

    async def refresh(quiet: bool = False) -> None:
        try:
            fresh = await run.io_bound(offered, form, schema) if widget in OUTSIDE else offered(form, schema)
        except ValueError as exc:  # the database cannot be read: say why (when asked), keep what is typed
            if not quiet:
                ui.notify(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", type="warning", multi_line=True)
            return
        if fresh is not None:  # None: the server is shutting down
            chosen = element.value if isinstance(element.value, list) else [element.value]
            element.set_options([*fresh, *(c for c in chosen if isinstance(c, str) and c and c not in fresh)],
                                value=element.value)

    element.on("popup-show", lambda: refresh())
    if widget in OUTSIDE:  # read once the form is drawn (quietly), and when the field gets focus (the table may change)
        element.on("focus", lambda: refresh())
        ui.timer(0.01, lambda: refresh(quiet=True), once=True)


@body("picker")
def picker_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any],
                  loc: str) -> None:
    widget = str(schema.get("widget"))
    value = slot.get()
    shown = value if isinstance(value, str) and value else None

    def with_current(names: list[str], current: Any) -> list[str]:
        return [*names, current] if isinstance(current, str) and current and current not in names else names

    names = with_current([] if widget in OUTSIDE else offered(form, schema), shown)
    if shown is None and meta.required and widget in ("table", "flow") and len(names) == 1:
        shown = names[0]  # the only data table (or other flow) there is: chosen already, as the only credential is
        slot.set(shown)
    element = ui.select(names, value=shown, with_input=True, new_value_mode="add-unique", clearable=True)
    element.props(INPUT_PROPS + f' options-dense placeholder="{html.escape(PLACEHOLDERS.get(widget, ""))}"')
    element.classes("w-full").mark(mark(view.loc, "input"))
    with element.add_slot("prepend"):
        ui.icon(ICONS.get(widget, "list"), size="xs").classes("text-grey-6")
    view.attach(element)
    element.on_value_change(lambda e: slot.set(e.value if e.value else meta.empty()))
    keep_fresh(form, schema, element)
