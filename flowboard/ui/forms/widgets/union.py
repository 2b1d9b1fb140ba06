"""A choice of variants (a toggle or a select) that swaps the fields below it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..fields import body, render_object_fields
from ..schema import MISSING, Meta, Slot, hint_html, variant_labels, variant_seed
from ..view import FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


class UnionEditor:
    """A choice of variants (a toggle or a select) that swaps the fields below it; each variant keeps what was typed
    in it while another is shown."""

    def __init__(self, form: ConfigForm, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
        self.form, self.slot, self.meta, self.loc = form, slot, meta, loc
        self.variants = form.schemas.variants(schema) or []
        self.tag = form.schemas.tag_of(schema, self.variants)
        self.stash: dict[int, Any] = {}
        labels: dict[int, str] = dict(enumerate(variant_labels(form.schemas, schema)))
        if meta.nullable:
            labels[-1] = "None"
        self.index = self.match(slot.get())
        short = len(labels) <= 6 and sum(len(t) for t in labels.values()) <= 48
        if short:
            self.choice: ui.toggle | ui.select = ui.toggle(labels, value=self.index) \
                .classes("fb-sm").props("no-caps dense unelevated toggle-color=primary color=grey-2 text-color=grey-9")
        else:
            self.choice = ui.select(labels, value=self.index).props("dense outlined options-dense")
        self.choice.classes("fb-choice").mark(mark(loc, "choice"))
        self.hint = ui.html("", sanitize=False).classes("fb-hint")
        self.body = ui.column().classes("w-full gap-3")
        self.choice.on_value_change(lambda e: self.switch(e.value))
        self.draw()

    def match(self, value: Any) -> int:
        if value is MISSING and isinstance(self.meta.default, dict):
            value = self.meta.default
        if value is None or value is MISSING:
            if self.meta.nullable and (value is None or self.meta.default in (None, MISSING)):
                return -1
            if self.tag:  # a variant whose tag has a default is what "nothing set" means (e.g. body: none)
                for i, v in enumerate(self.variants):
                    if "default" in self.form.schemas.resolve(v["properties"][self.tag]):
                        return i
            return 0
        if not isinstance(value, dict):
            return 0
        if self.tag:
            for i, v in enumerate(self.variants):
                if self.form.schemas.const_of(v["properties"][self.tag]) == value.get(self.tag):
                    return i
            return 0
        best, best_score = 0, -1e9
        for i, v in enumerate(self.variants):
            props = v.get("properties", {})
            score = sum(1 for k in value if k in props) - 2 * sum(1 for k in value if k not in props)
            score -= sum(1 for k in v.get("required", []) if k not in value)
            if score > best_score:
                best, best_score = i, score
        return best

    def switch(self, index: int) -> None:
        if index == self.index:
            return
        self.stash[self.index] = self.slot.get()
        self.index = index
        if index == -1:
            new: Any = None if self.meta.required else MISSING
        else:
            stashed = self.stash.get(index)
            new = stashed if isinstance(stashed, dict) else \
                variant_seed(self.form.schemas, self.variants[index], self.tag)
        self.slot.set(new)
        self.form.forget(self.loc, children_only=True)
        self.draw()

    def draw(self) -> None:
        self.body.clear()
        if self.index == -1:
            self.hint.set_visibility(False)
            return
        variant = self.variants[self.index]
        tag_schema = self.form.schemas.resolve(variant["properties"][self.tag]) if self.tag else {}
        text = tag_schema.get("description") or variant.get("description") or ""
        self.hint.content = hint_html(text)
        self.hint.set_visibility(bool(text))
        ensure = {self.tag: self.form.schemas.const_of(tag_schema)} if self.tag else None
        with self.body:
            fields = [k for k in variant.get("properties", {}) if k != self.tag]
            if fields:  # boxed, unless it already sits in a list entry's card
                box = "w-full gap-3" + ("" if isinstance(self.meta.key, int) else " fb-group")
                with ui.column().classes(box):
                    render_object_fields(self.form, variant, self.slot, self.loc,
                                         skip=(self.tag,) if self.tag else (), ensure=ensure)


@body("union")
def union(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
    UnionEditor(form, slot, meta, schema, loc)
