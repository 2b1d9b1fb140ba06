"""Lists of objects: cards (one per entry) or key-value rows (a name and a value per row)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import body, render_body, render_field, render_object_fields
from ..schema import MISSING, Meta, Slot, entry_title, field_title, index_slot, key_slot, loc_of, seed_entry
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


class ListEditorBase:
    """Shared by cards and rows: add, remove and move entries, then draw the list again."""

    def __init__(self, form: ConfigForm, slot: Slot, meta: Meta, loc: str) -> None:
        self.form, self.slot, self.meta, self.loc = form, slot, meta, loc
        self.container = ui.column().classes("w-full gap-2")

    def entries(self) -> list[Any]:
        value = self.slot.get()
        return list(value) if isinstance(value, list) else []

    def store(self, entries: list[Any]) -> None:
        empty_default = self.meta.default in (MISSING, [], {}, None)
        self.slot.set(MISSING if not entries and not self.meta.required and empty_default else entries)
        self.form.forget(self.loc, children_only=True)
        self.draw()

    def add(self, entry: Any) -> None:
        self.store([*self.entries(), entry])
        # The keyboard goes on in the new entry's first field (Enter on "Add ..." and type).
        ui.run_javascript(f"requestAnimationFrame(() => [...(document.getElementById('{self.container.html_id}')"
                          "?.querySelectorAll(':scope > .fb-entry') ?? [])].pop()"
                          "?.querySelector('input, textarea, [contenteditable=\"true\"]')?.focus())")

    def remove(self, index: int) -> None:
        entries = self.entries()
        del entries[index]
        self.store(entries)

    def move(self, index: int, delta: int) -> None:
        entries = self.entries()
        other = index + delta
        if 0 <= other < len(entries):
            entries[index], entries[other] = entries[other], entries[index]
            self.store(entries)

    def draw(self) -> None:
        raise NotImplementedError

    def add_button(self, label: str, on_click: Callable[[], None]) -> None:
        ui.button(label, icon="add", on_click=on_click).classes("fb-sm").props("flat dense no-caps color=primary") \
            .classes("fb-add").mark(mark(self.loc, "add"))


class CardsEditor(ListEditorBase):
    """A list of objects: one card per entry, with move up/down and remove."""

    def __init__(self, form: ConfigForm, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
        super().__init__(form, slot, meta, loc)
        self.item_schema, _ = form.schemas.unwrap_nullable(schema.get("items", {}))
        self.item_title = entry_title(form.schemas, schema)
        if not self.entries() and schema.get("minItems", 0) >= 1:  # one entry is needed: the first, ready to fill
            slot.set([seed_entry(form.schemas, self.item_schema)])
        self.draw()

    def draw(self) -> None:
        self.container.clear()
        entries = self.entries()
        with self.container:
            for index, _ in enumerate(entries):
                item_loc = loc_of(self.loc, index)
                with ui.column().classes("fb-card fb-entry w-full gap-0").mark(mark(item_loc, "card")):
                    with ui.row().classes("fb-card-head w-full items-center no-wrap gap-0"):
                        ui.label(f"{self.item_title} {index + 1}").classes("fb-card-title")
                        ui.space()
                        self._tool("arrow_upward", "Move up", partial(self.move, index, -1), item_loc, "up",
                                   enabled=index > 0)
                        self._tool("arrow_downward", "Move down", partial(self.move, index, 1), item_loc, "down",
                                   enabled=index < len(entries) - 1)
                        self._tool("delete_outline", "Remove", partial(self.remove, index), item_loc, "remove")
                    with ui.column().classes("w-full gap-3 q-pa-sm"):
                        meta = Meta(key=index, title=f"{self.item_title} {index + 1}", description="", required=True,
                                    default=MISSING, nullable=False)
                        view = FieldView(self.form, item_loc)
                        self.form.register(item_loc, view)
                        kind = self.form.schemas.kind(self.item_schema)
                        slot = index_slot(self.slot, index)
                        if kind == "object":
                            render_object_fields(self.form, self.item_schema, slot, item_loc)
                        else:
                            render_body(self.form, view, slot, meta, self.item_schema, kind, item_loc)
                        view.error_label = ui.label().classes("fb-error")
                        view.refresh()
            self.add_button(f"Add {self.item_title.lower()}",
                            lambda: self.add(seed_entry(self.form.schemas, self.item_schema)))

    @staticmethod
    def _tool(icon: str, tip: str, action: Callable[[], None], loc: str, role: str, enabled: bool = True) -> None:
        button = ui.button(icon=icon, on_click=action).props("flat dense round size=sm color=grey-7")
        button.mark(mark(loc, role))
        button.tooltip(tip)
        button.props(f'aria-label="{tip}"')
        button.set_enabled(enabled)


class RowsEditor(ListEditorBase):
    """Key-value rows: `dict[str, X]` (stored as an object) or a list of small objects such as `{name, value}`."""

    def __init__(self, form: ConfigForm, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
        super().__init__(form, slot, meta, loc)
        schemas = form.schemas
        variants = schemas.variants(schema) or [schema]
        as_list = next((v for v in variants if v.get("type") == "array"), None)
        as_dict = next((v for v in variants if v.get("type") == "object"), None)
        value = slot.get()
        self.dict_mode = as_dict is not None and (isinstance(value, dict) or as_list is None)
        self.columns: list[tuple[str, Any, str, bool]] = []  # key, schema, title, required
        self.empty_value: Any = None
        if self.dict_mode:
            assert as_dict is not None
            extra = as_dict.get("additionalProperties")
            self.value_schema: Any = extra if isinstance(extra, dict) else {}
            value_kind = schemas.unwrap_nullable(self.value_schema)
            self.empty_value = "" if value_kind[0].get("type") == "string" and not value_kind[1] else None
            self.pairs: list[list[Any]] = [[k, v] for k, v in value.items()] if isinstance(value, dict) else []
            self.columns = [("key", {"type": "string"}, "Name", True), ("value", self.value_schema, "Value", False)]
        else:
            assert as_list is not None
            item = schemas.resolve(as_list.get("items", {}))
            required = set(item.get("required", []))
            for key, raw in item.get("properties", {}).items():
                if schemas.const_of(raw) is MISSING:
                    self.columns.append((key, raw, field_title(key, raw), key in required))
        self.draw()

    # dict mode keeps its own (key, value) pairs, so a half-typed or repeated key is not lost while editing
    def entries(self) -> list[Any]:
        return [list(p) for p in self.pairs] if self.dict_mode else super().entries()

    def store(self, entries: list[Any]) -> None:
        if self.dict_mode:
            self.pairs = entries
            self.commit()
            self.form.forget(self.loc, children_only=True)
            self.draw()
        else:
            super().store(entries)

    def commit(self) -> None:
        data: dict[str, Any] = {}
        for key, value in self.pairs:
            if key:
                data[key] = value
        empty_default = self.meta.default in (MISSING, {}, [], None)
        self.slot.set(MISSING if not self.pairs and not self.meta.required and empty_default else data)

    def draw(self) -> None:
        self.container.clear()
        with self.container.classes("gap-1"):
            entries = self.entries()
            if entries:
                with ui.row().classes("w-full no-wrap gap-1 fb-rows-head"):
                    for _, _, title, required in self.columns:
                        ui.label(title + (" *" if required else "")).classes("grow basis-0")
                    ui.element("div").classes("fb-row-tools")
            for index, _ in enumerate(entries):
                with ui.row().classes("fb-entry w-full no-wrap items-start gap-1") \
                        .mark(mark(loc_of(self.loc, index), "row")):
                    if self.dict_mode:
                        self._dict_row(index)
                    else:
                        self._list_row(index)
                    with ui.row().classes("fb-row-tools no-wrap gap-0 pt-1"):
                        CardsEditor._tool("close", "Remove", partial(self.remove, index),
                                          loc_of(self.loc, index), "remove")
            noun = "pair" if self.dict_mode or len(self.columns) == 2 else "row"
            self.add_button(f"Add {noun}", lambda: self.add(["", self.empty_value] if self.dict_mode else {}))

    def _list_row(self, index: int) -> None:
        slot = index_slot(self.slot, index)
        for column, (key, raw, title, required) in enumerate(self.columns):
            meta = Meta(key=key, title=title, description="", required=required, default=MISSING, nullable=False,
                        compact=True, fx=column > 0)  # names stay fixed; values may be expressions
            render_field(self.form, raw, key_slot(slot, key), meta, loc_of(loc_of(self.loc, index), key))

    def _dict_row(self, index: int) -> None:
        key = self.pairs[index][0]
        key_view = FieldView(self.form, loc_of(self.loc, index) + ".key")
        with ui.column().classes("fb-cell gap-0 grow"):
            box = ui.input(value=key, placeholder="name").props(INPUT_PROPS).classes("w-full")
            box.mark(mark(loc_of(self.loc, index), "key"))
            key_view.attach(box)
            key_view.error_label = ui.label().classes("fb-error")
            key_view.refresh()

        def key_changed(e: Any) -> None:
            self.pairs[index][0] = e.value or ""
            names = [p[0] for p in self.pairs]
            problem = "Needs a name" if not e.value else "Used twice" if names.count(e.value) > 1 else None
            key_view.set_client_error(problem)
            if value_view is not None:  # the value's errors are reported under its key: headers.Accept
                self.form.views.pop(value_view.loc, None)
                value_view.loc = loc_of(self.loc, e.value or index)
                self.form.register(value_view.loc, value_view)
            self.commit()

        box.on_value_change(key_changed)

        def put(value: Any) -> None:
            self.pairs[index][1] = self.empty_value if value is MISSING else value
            self.commit()

        value_slot = Slot(lambda: self.pairs[index][1] if index < len(self.pairs) else MISSING, put)
        meta = Meta(key="value", title="value", description="", required=False, default=MISSING, nullable=False,
                    compact=True)
        value_view = render_field(self.form, self.value_schema, value_slot, meta, loc_of(self.loc, key or index))


@body("cards")
def cards(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
    CardsEditor(form, slot, meta, schema, loc)


@body("rows")
def rows(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
    RowsEditor(form, slot, meta, schema, loc)
