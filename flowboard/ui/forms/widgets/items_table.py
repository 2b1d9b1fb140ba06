"""A list of items (test data) as a small table: one row per item, one column per field. No JSON to type; the JSON
stays one click away. Cells are read as JSON where they plainly are (3, true, null, [1, 2]), as text otherwise."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..schema import MISSING, Meta, Slot, to_json
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


def is_item_list(schema: dict[str, Any]) -> bool:
    """An array of free-form objects (a trigger's test items): shown as a table."""
    items = schema.get("items")
    return schema.get("type") == "array" and isinstance(items, dict) and items.get("type") == "object" \
        and not items.get("properties")


def cell_text(value: Any) -> str:
    return value if isinstance(value, str) and not _reads_as_json(value) else ("" if value is None else to_json(value))


def cell_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _reads_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ItemsTable:
    def __init__(self, form: ConfigForm, view: FieldView, slot: Slot, meta: Meta) -> None:
        self.view, self.slot, self.meta = view, slot, meta
        value = slot.get()
        rows = value if isinstance(value, list) and all(isinstance(r, dict) for r in value) else []
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        # No items yet: two columns to name (a column left unnamed is not stored).
        self.columns: list[str] = list(dict.fromkeys(k for r in self.rows for k in r)) or ["", ""]
        self.box = ui.column().classes("w-full gap-1 fb-items-table").mark(mark(view.loc, "table"))
        self.draw()

    def store(self) -> None:
        self.view.set_client_error(None)
        self.slot.set([dict(r) for r in self.rows] if self.rows or self.meta.required else MISSING)

    def draw(self) -> None:
        self.box.clear()
        self.cells: dict[int, list[tuple[int, ui.input]]] = {}  # per column: its cells, to rename their labels
        loc = self.view.loc
        with self.box:
            with ui.row().classes("w-full no-wrap gap-1 items-center"):
                ui.label("#").classes("fb-rows-head w-6")
                for c, name in enumerate(self.columns):
                    box = ui.input(value=name, placeholder="field name").props(INPUT_PROPS).classes("grow basis-0")
                    box.props(f'aria-label="Name of column {c + 1}"').mark(mark(loc, f"column:{c}"))
                    # Renamed as it is typed, without drawing again (the field keeps the keyboard): a click on "Add
                    # a field" right after typing redraws the table before the field's blur would arrive.
                    box.on_value_change(lambda e, c=c: self.rename(c, e.value or ""))
                add_col = ui.button(icon="add", on_click=self.add_column).props(
                    'flat dense round size=sm aria-label="Add a field"').mark(mark(loc, "add-column"))
                add_col.tooltip("Add a field (a column)")
            # With no items yet, one empty row to type the first into (it becomes item 1 with its first value).
            for r, row in enumerate(self.rows or [{}]):
                with ui.row().classes("w-full no-wrap gap-1 items-center").mark(mark(loc, f"item:{r}")):
                    ui.label(str(r + 1)).classes("fb-small w-6")
                    for c, name in enumerate(self.columns):
                        cell = ui.input(value=cell_text(row.get(name))).props(INPUT_PROPS).classes("grow basis-0")
                        cell.props(f'aria-label="Item {r + 1}, {name}"').mark(mark(loc, f"cell:{r}:{c}"))
                        self.cells.setdefault(c, []).append((r, cell))
                        cell.on_value_change(lambda e, r=r, c=c: self.set_cell(r, c, e.value or ""))
                    remove = ui.button(icon="close", on_click=lambda r=r: self.remove(r)) \
                        .props(f'flat dense round size=sm aria-label="Remove item {r + 1}"') \
                        .mark(mark(loc, f"remove-item:{r}"))
                    remove.tooltip("Remove this item")
                    if not self.rows:  # the empty row is no item yet: nothing to remove (its place kept)
                        remove.style("visibility: hidden")
            ui.button("Add item", icon="add", on_click=self.add_row) \
                .classes("fb-sm fb-add").props("flat dense no-caps color=primary").mark(mark(loc, "add-item"))

    def set_cell(self, r: int, c: int, text: str) -> None:
        name = self.columns[c]
        if not name:
            return
        if r >= len(self.rows):  # the empty row shown when there are no items: this makes it item 1
            if text == "":
                return
            self.rows.append({})
            r = len(self.rows) - 1
        if text == "":
            self.rows[r].pop(name, None)
        else:
            self.rows[r][name] = cell_value(text)
        self.store()

    def rename(self, c: int, new: str) -> None:
        old = self.columns[c]
        new = new.strip()
        if not new or new == old or new in self.columns:
            return
        self.columns[c] = new
        for row in self.rows:
            if old in row:
                row[new] = row.pop(old)
        for r, cell in self.cells.get(c, []):  # the cells say their column's new name (screen readers, tests)
            cell.props(f'aria-label="Item {r + 1}, {html.escape(new)}"')
        self.store()

    def add_column(self) -> None:
        n = len(self.columns) + 1
        while f"field{n}" in self.columns:
            n += 1
        self.columns.append(f"field{n}")
        self.draw()

    def add_row(self) -> None:
        self.rows.append({})
        self.store()
        self.draw()

    def remove(self, r: int) -> None:
        del self.rows[r]
        self.store()
        self.draw()
