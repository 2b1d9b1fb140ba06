"""Drawing one field (label, widget, hint, error line) and an object's fields; widgets are looked up by field kind.

A widget module registers itself for the kinds it draws (`@fixed("number")`, `@body("union")`); this module never
imports one, so the widgets may draw fields inside them (a list's entries, a union's variant) without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nicegui import ui

from .schema import (
    CELL_KINDS,
    FX_KINDS,
    MISSING,
    Meta,
    Slot,
    field_title,
    hint_html,
    is_expression,
    key_slot,
    loc_of,
    offers_expression,
)
from .view import FieldView, mark

if TYPE_CHECKING:
    from .form import ConfigForm

FixedWidget = Callable[["ConfigForm", FieldView, Slot, Meta, dict[str, Any]], None]
BodyWidget = Callable[["ConfigForm", FieldView, Slot, Meta, dict[str, Any], str], Any]
FIXED: dict[str, FixedWidget] = {}  # a fixed value of this kind (text, number, enum...)
BODIES: dict[str, BodyWidget] = {}  # a structured value (union, rows, cards, code, credential)
SWITCHABLE: list[Callable[..., Any]] = []  # the field that switches a fixed value to an expression and back


def fixed(*kinds: str) -> Callable[[FixedWidget], FixedWidget]:
    def register(widget: FixedWidget) -> FixedWidget:
        FIXED.update(dict.fromkeys(kinds, widget))
        return widget
    return register


def body(*kinds: str) -> Callable[[BodyWidget], BodyWidget]:
    def register(widget: BodyWidget) -> BodyWidget:
        BODIES.update(dict.fromkeys(kinds, widget))
        return widget
    return register


def render_field(form: ConfigForm, raw: Any, slot: Slot, meta: Meta, loc: str) -> FieldView | None:
    """One field: label row (title, required star, fx), its widget, hint and error line."""
    schema, nullable = form.schemas.unwrap_nullable(raw)
    meta.nullable = meta.nullable or nullable
    if meta.default is MISSING and "default" in schema:
        meta.default = schema["default"]
    kind = form.schemas.kind(schema)
    if kind == "const":
        return None
    if meta.compact and (kind not in CELL_KINDS or kind == "json"):
        kind = "lenient"
    view = FieldView(form, loc)
    form.register(loc, view)
    inner_set = slot.set

    def set_and_clear(value: Any) -> None:
        view.clear_server_error()
        inner_set(value)

    slot = Slot(slot.get, set_and_clear)
    classes = "fb-field w-full gap-0" if not meta.compact else "fb-cell gap-0 grow"
    with ui.column().classes(classes).mark(mark(loc, "field")):
        actions: ui.row | None = None
        if not meta.compact:
            with ui.row().classes("fb-label-row w-full items-center no-wrap gap-1"):
                ui.label(meta.title).classes("fb-label")
                if meta.required:
                    ui.label("*").classes("fb-req")
                ui.space()
                actions = ui.row().classes("items-center gap-1")
        hint_first = kind in ("object", "union", "rows", "cards")  # long bodies: say what it is before it
        if meta.description and not meta.compact and hint_first:
            ui.html(hint_html(meta.description), sanitize=False).classes("fb-hint fb-hint-top")
        with ui.row().classes("w-full no-wrap items-start gap-1"):
            body = ui.column().classes("grow gap-0 min-w-0")
            if meta.compact:
                actions = ui.row().classes("items-center gap-0 pt-1")
        if meta.description and not meta.compact and not hint_first:
            ui.html(hint_html(meta.description), sanitize=False).classes("fb-hint")
        view.error_label = ui.label().classes("fb-error").mark(mark(loc, "error"))
        view.error_label.set_visibility(False)
    assert actions is not None
    with body:
        switchable = meta.fx and form.expressions and offers_expression(schema, kind)
        if kind in FX_KINDS and (switchable or is_expression(slot.get())):
            SWITCHABLE[0](form, view, slot, meta, schema, kind, actions)
        elif kind in FX_KINDS:
            FIXED[kind](form, view, slot, meta, schema)
        else:
            render_body(form, view, slot, meta, schema, kind, loc)
    view.refresh()
    return view


def render_body(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], kind: str,
                loc: str) -> None:
    if kind == "object":
        with ui.column().classes("fb-group w-full gap-3"):
            render_object_fields(form, schema, slot, loc, drop_empty=True, default=meta.default)
    elif kind in BODIES:
        BODIES[kind](form, view, slot, meta, schema, loc)
    else:  # pragma: no cover - every kind is handled above or by ScalarField
        raise ValueError(f"no widget for {kind}")


def render_object_fields(form: ConfigForm, schema: dict[str, Any], slot: Slot, loc: str, *,
                         skip: tuple[str, ...] = (), ensure: dict[str, Any] | None = None, drop_empty: bool = False,
                         default: Any = MISSING) -> None:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    for key, raw in props.items():
        if key in skip:
            continue
        resolved = form.schemas.resolve(raw)
        child_default = default.get(key, MISSING) if isinstance(default, dict) else MISSING
        meta = Meta(key=key, title=field_title(key, raw), description=resolved.get("description", ""),
                    required=key in required, default=resolved.get("default", child_default), nullable=False)
        render_field(form, raw, key_slot(slot, key, ensure, drop_empty), meta, loc_of(loc, key))
    value = slot.get()
    unknown = [k for k in value if k not in props and k not in (ensure or {})] if isinstance(value, dict) else []
    if unknown and schema.get("additionalProperties") is not True:
        ui.label(f"Kept as they are, but not fields of this node: {', '.join(unknown)}").classes("fb-warn")
