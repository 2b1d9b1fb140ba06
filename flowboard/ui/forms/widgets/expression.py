"""A value that is fixed or an expression (`{{ … }}`), with a field picker and a live preview."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from nicegui import background_tasks, core, ui

from ..fields import FIXED, SWITCHABLE
from ..schema import JSON_INLINE, MISSING, TEXT_KINDS, Meta, NoPreview, Slot, is_expression, to_json
from ..view import INPUT_PROPS, FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


# Only a fixed value that is not a text box takes the drop here (an input or a code box inserts it where it falls).
_TARGET = "!(e.target.closest && e.target.closest('input, textarea')) && e.currentTarget.dataset.fbExpr !== '1'"
_ACCEPT_EXPRESSION = f"(e) => {{ if ({_TARGET} && e.dataTransfer.types.includes('text/plain')) e.preventDefault(); }}"
_DROP_EXPRESSION = (f"(e) => {{ const t = e.dataTransfer.getData('text/plain'); if ({_TARGET} && t.trim().startsWith("
                    "'{{') && t.trim().endsWith('}}')) { e.preventDefault(); e.stopPropagation(); emit(t); } }")


class ScalarField:
    """A value that is either fixed (a typed widget) or an expression (`{{ … }}` text with a preview and a picker)."""

    def __init__(self, form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], kind: str,
                 actions: ui.row) -> None:
        self.form, self.view, self.slot, self.meta, self.schema, self.kind = form, view, slot, meta, schema, kind
        value = slot.get()
        self.expression = is_expression(value) or not self._fits(value)
        with actions:
            self.fx = ui.button("fx", on_click=self.toggle).classes("fb-sm").props("dense no-caps") \
                .classes("fb-fx").mark(mark(view.loc, "fx"))
            self.fx.tooltip("Fixed value or expression")
        self.body = ui.column().classes("w-full gap-0")
        # A field dragged in from the input (`{{ item.email }}`) onto a fixed value that is not text (a number, a
        # JSON box): the field becomes an expression holding it. Text boxes take the drop as typed text themselves.
        self.body.on("dragover", js_handler=_ACCEPT_EXPRESSION)
        self.body.on("drop", self._dropped, js_handler=_DROP_EXPRESSION)
        self.render()

    def _dropped(self, e: Any) -> None:
        text = str(e.args or "").strip()
        if self.expression or not is_expression(text):
            return
        self.slot.set(text)
        self.expression = True
        self.render()

    def _fits(self, value: Any) -> bool:
        if value is MISSING or value is None:
            return True
        kind = self.kind
        if kind in TEXT_KINDS:
            return isinstance(value, str)
        if kind == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "boolean":
            return isinstance(value, bool)
        if kind == "enum":
            return value in self.schema.get("enum", [])
        if kind == "scalar":
            return isinstance(value, str | int | float | bool)
        if kind == "chips":
            return isinstance(value, list)
        return True

    def toggle(self) -> None:
        value = self.slot.get()
        self.view.set_client_error(None)
        if not self.expression:
            if isinstance(value, str):
                text = value
            elif isinstance(value, bool | int | float | list | dict):  # `}} }}` would end the expression early
                text = "{{ " + to_json(value).replace("}}", "} }") + " }}"
            else:
                text = ""
            self.slot.set(text or self.meta.empty())
        else:
            self.slot.set(self._from_text(value) if isinstance(value, str) else MISSING)
        self.expression = not self.expression
        self.render()

    def _from_text(self, text: str) -> Any:
        """The fixed value an expression's text stands for, if it plainly is one (`{{ 5 }}`, `abc`), else MISSING."""
        inline = JSON_INLINE.match(text)
        if inline:
            try:
                value = json.loads(inline.group(1))
            except ValueError:
                return MISSING
        elif is_expression(text):
            return MISSING
        elif self.kind in TEXT_KINDS or self.kind == "lenient":
            value = text
        else:
            try:
                value = json.loads(text)
            except ValueError:
                value = text
        if self.kind == "chips" and not isinstance(value, list):
            return MISSING
        return value if self._fits(value) else MISSING

    def render(self) -> None:
        self.body.clear()
        if self.expression:
            self.fx.props(add="unelevated color=deep-orange-10 text-color=white", remove="flat")
        else:
            self.fx.props(add="flat color=grey-8", remove="unelevated text-color")
        self.fx.classes(add="fb-on" if self.expression else None, remove=None if self.expression else "fb-on")
        self.body.props(f"data-fb-expr={'1' if self.expression else '0'}")
        self.view.inputs.clear()
        with self.body:
            if self.expression:
                ExpressionBox(self.form, self.view, self.slot, self.meta, multiline=self.kind in ("textarea", "json"))
            else:
                FIXED[self.kind](self.form, self.view, self.slot, self.meta, self.schema)
        self.view.refresh()


SWITCHABLE.append(ScalarField)


class ExpressionBox:
    """`{{ … }}` text, a picker of the fields earlier nodes produced, and a live preview of the result."""

    def __init__(self, form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, *, multiline: bool) -> None:
        self.form, self.view, self.slot = form, view, slot
        value = slot.get()
        text = value if isinstance(value, str) else ""
        factory = ui.textarea if multiline else ui.input
        self.input = factory(value=text, placeholder="{{ item.field }}").props(INPUT_PROPS)
        if multiline:
            self.input.props("autogrow")
        self.input.classes("fb-expr w-full").mark(mark(view.loc, "expr"))
        view.attach(self.input)
        with self.input.add_slot("append"):
            picker = ui.button(icon="data_object").props("flat dense round size=sm").mark(mark(view.loc, "pick"))
            picker.tooltip("Insert a field from earlier nodes")
            picker.props('aria-label="Insert a field from earlier nodes"')
            with picker, ui.menu().props("auto-close").classes("fb-menu").mark(mark(view.loc, "pick-menu")):
                if not form.field_names:
                    ui.label("No data yet: run the flow to see the fields earlier nodes produce.") \
                        .classes("fb-hint q-pa-sm")
                for name in form.field_names:
                    ui.menu_item(name, on_click=lambda n=name: self.insert(n)).classes("fb-mono") \
                        .mark(mark(view.loc, "pick-item"))
        self.preview = ui.label().classes("fb-preview").mark(mark(view.loc, "preview"))
        self.preview.set_visibility(False)
        self._pending: asyncio.Task[None] | None = None
        self.input.on_value_change(self.changed)
        if text:
            self.schedule(0)

    def insert(self, name: str) -> None:
        text = self.input.value or ""
        sep = "" if not text or text.endswith(" ") else " "
        self.input.value = f"{text}{sep}{{{{ {name} }}}}"

    def changed(self, e: Any) -> None:
        text = e.value or ""
        self.slot.set(text if text else MISSING)
        self.schedule(0.3)

    def schedule(self, delay: float) -> None:
        """Preview after `delay` seconds of quiet (typing restarts the wait)."""
        if self.form.preview is None or core.loop is None:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = background_tasks.create(self._later(delay), name="expression preview", context=self.preview)

    async def _later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.show_preview()

    async def show_preview(self) -> None:
        if self.preview.is_deleted or self.form.preview is None:
            return
        text = self.input.value or ""
        if not text.strip():
            self.preview.set_visibility(False)
            return
        try:
            result = self.form.preview(text)
            if hasattr(result, "__await__"):
                result = await result
        except NoPreview as exc:  # nothing wrong: no data to preview with yet
            self._show(str(exc), style="fb-hint-preview")
            return
        except Exception as exc:  # the expression's own error, shown to the user
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._show(message, style="fb-bad")
            return
        self._show(to_json(result))

    def _show(self, text: str, *, style: str | None = None) -> None:
        """Show the result (green), an error (`fb-bad`, red) or a hint (`fb-hint-preview`, grey)."""
        if self.preview.is_deleted:
            return
        self.preview.text = text if len(text) <= 400 else text[:400] + " …"
        self.preview.classes(remove="fb-bad fb-hint-preview")
        if style:
            self.preview.classes(add=style)
        self.preview.set_visibility(True)
