"""The pieces behind `ConfigForm`: reading a pydantic JSON Schema, and one renderer per construct.

Every renderer writes through a `Slot` (get/set of one place in the config; setting `MISSING` removes the key), so a
widget never holds the config itself, and reports problems through the `FieldView` it is drawn in.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from nicegui import background_tasks, core, ui

from ..errors import format_loc
from .code_box import CodeBox

if TYPE_CHECKING:
    from .forms import ConfigForm


class _Missing:
    """No value: the key is absent from the config, so the model's default applies."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
KEY_VALUE_WIDGETS = frozenset({"key_value", "keyvalue", "key-value"})
TEXT_KINDS = frozenset({"text", "textarea", "url", "password"})
FX_KINDS = TEXT_KINDS | {"number", "boolean", "enum", "scalar", "lenient", "json", "chips"}
CELL_KINDS = FX_KINDS | {"credential"}
_ACRONYMS = {"url": "URL", "uri": "URI", "id": "ID", "sql": "SQL", "json": "JSON", "http": "HTTP", "api": "API",
             "ip": "IP", "html": "HTML", "csv": "CSV"}
INPUT_PROPS = "dense outlined hide-bottom-space no-error-icon"
_JSON_INLINE = re.compile(r"^\s*{{\s*(.*?)\s*}}\s*$", re.DOTALL)


# ---------------------------------------------------------------------------------------------------- schema reading

class Schemas:
    """Resolves `$ref`s against the root schema's `$defs` and classifies each schema into a widget kind."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}

    def resolve(self, schema: Any) -> dict[str, Any]:
        if not isinstance(schema, dict):
            return {}  # `true` / missing: anything goes
        for _ in range(32):  # bounded: a $ref chain never needs more
            if "$ref" in schema:
                target = self.defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
                schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                schema = {**self.resolve(schema["allOf"][0]), **rest}
            else:
                break
        return schema

    def unwrap_nullable(self, schema: Any) -> tuple[dict[str, Any], bool]:
        """(the schema without its `null` alternative, whether null is allowed)."""
        s = self.resolve(schema)
        kind = s.get("type")
        if isinstance(kind, list) and "null" in kind:
            rest = [t for t in kind if t != "null"]
            return {**s, "type": rest[0] if len(rest) == 1 else rest}, True
        for key in ("anyOf", "oneOf"):
            options = s.get(key)
            if not isinstance(options, list):
                continue
            others = [o for o in options if self.resolve(o).get("type") != "null"]
            if len(others) == len(options):
                continue
            outer = {k: v for k, v in s.items() if k not in (key, "discriminator")}
            if len(others) == 1:
                inner, _ = self.unwrap_nullable(others[0])
                return {**inner, **{k: v for k, v in outer.items() if k != "title" or "title" not in inner}}, True
            return {**s, key: others}, True
        return s, False

    def variants(self, schema: dict[str, Any]) -> list[dict[str, Any]] | None:
        options = schema.get("oneOf") or schema.get("anyOf")
        if not isinstance(options, list):
            return None
        return [r for r in (self.resolve(o) for o in options) if r.get("type") != "null"]

    def tag_of(self, schema: dict[str, Any], variants: list[dict[str, Any]]) -> str | None:
        """The property that tells the variants apart: the declared discriminator, or a Literal in every variant."""
        disc = schema.get("discriminator")
        if isinstance(disc, dict) and disc.get("propertyName"):
            return str(disc["propertyName"])
        if not variants:
            return None
        common = set.intersection(*(set(v.get("properties", {})) for v in variants))
        for name in sorted(common):
            tags = [self.const_of(v["properties"][name]) for v in variants]
            if all(t is not MISSING for t in tags) and len(set(map(repr, tags))) == len(tags):
                return name
        return None

    def const_of(self, prop: Any) -> Any:
        p = self.resolve(prop)
        if "const" in p:
            return p["const"]
        if isinstance(p.get("enum"), list) and len(p["enum"]) == 1:
            return p["enum"][0]
        return MISSING

    def is_primitive(self, schema: dict[str, Any]) -> bool:
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        return all(k in ("string", "integer", "number", "boolean", "null") for k in kinds) and kind is not None

    def kind(self, s: dict[str, Any]) -> str:
        """The widget kind of a (non-null) schema."""
        widget = s.get("widget")
        if "const" in s:
            return "const"
        variants = self.variants(s)
        if variants is not None:
            if widget in KEY_VALUE_WIDGETS and any(self._rows_capable(v) for v in variants):
                return "rows"
            if variants and all(v.get("type") == "object" and "properties" in v for v in variants):
                return "union"
            if variants and all(self.is_primitive(v) and "enum" not in v for v in variants):
                return "scalar"
            return "lenient" if widget == "expression" else "json"
        if "enum" in s:
            return "enum"
        kind = s.get("type")
        if widget == "json":
            return "json"
        if widget == "code":
            return "code"
        if widget == "credential":
            return "credential"
        if kind is None:
            return "lenient" if widget == "expression" else "json"
        if isinstance(kind, list):
            return "scalar" if self.is_primitive(s) else "json"
        if kind == "string":
            if widget == "textarea":
                return "textarea"
            if widget == "url" or s.get("format") in ("uri", "url"):
                return "url"
            if widget in ("password", "secret") or s.get("format") == "password":
                return "password"
            return "text"
        if kind in ("integer", "number"):
            return "number"
        if kind == "boolean":
            return "boolean"
        if kind == "array":
            items, _ = self.unwrap_nullable(s.get("items", {}))
            item_kind = self.kind(items) if items else "json"
            if item_kind in ("text", "url", "number", "enum", "scalar", "password"):
                return "chips"
            if item_kind in ("object", "union"):
                return "rows" if widget in KEY_VALUE_WIDGETS else "cards"
            return "json"
        if kind == "object":
            if s.get("properties") or s.get("additionalProperties") is False:
                return "object"
            return "rows"
        return "json"

    def _rows_capable(self, s: dict[str, Any]) -> bool:
        if s.get("type") == "array":
            return self.resolve(s.get("items", {})).get("type") == "object"
        return s.get("type") == "object" and not s.get("properties")


def humanize(text: str) -> str:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", text.strip("_")).replace("_", " ").split()
    out = [_ACRONYMS.get(w.lower(), w) for w in words]
    return " ".join(out)[:1].upper() + " ".join(out)[1:] if out else text


def hint_html(text: str) -> str:
    """Plain text with `code` spans, escaped: descriptions are written by node authors, shown as hints."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def loc_of(parent: str, key: str | int) -> str:
    return format_loc([parent, key]) if parent else format_loc([key])


# ---------------------------------------------------------------------------------------------------- plumbing

@dataclass
class Slot:
    """One place in the config: read it, write it (MISSING removes it)."""

    get: Callable[[], Any]
    set: Callable[[Any], None]


@dataclass
class Meta:
    key: str | int
    title: str
    description: str
    required: bool
    default: Any
    nullable: bool
    compact: bool = False  # a cell in a row: no label or hint, the title is the placeholder
    fx: bool = True  # may switch to an expression

    def empty(self) -> Any:
        """What an emptied field stores: null where null is allowed and the key is needed, else no key."""
        return None if self.nullable and self.required else MISSING

    @property
    def placeholder(self) -> str | None:
        if self.default is MISSING or self.default is None or isinstance(self.default, dict | list):
            return self.title if self.compact else None
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


def key_slot(parent: Slot, key: str, ensure: dict[str, Any] | None = None, drop_empty: bool = False) -> Slot:
    def get() -> Any:
        cur = parent.get()
        return cur.get(key, MISSING) if isinstance(cur, dict) else MISSING

    def put(value: Any) -> None:
        cur = parent.get()
        data = dict(cur) if isinstance(cur, dict) else {}
        for k, v in (ensure or {}).items():
            data.setdefault(k, v)
        if value is MISSING:
            data.pop(key, None)
        else:
            data[key] = value
        parent.set(MISSING if drop_empty and not data else data)

    return Slot(get, put)


def index_slot(parent: Slot, index: int) -> Slot:
    def get() -> Any:
        cur = parent.get()
        return cur[index] if isinstance(cur, list) and index < len(cur) else MISSING

    def put(value: Any) -> None:
        cur = parent.get()
        items = list(cur) if isinstance(cur, list) else []
        while len(items) <= index:
            items.append({})
        items[index] = None if value is MISSING else value
        parent.set(items)

    return Slot(get, put)


class FieldView:
    """Where one field's problems are shown: a red line under it (and red outlines on its inputs)."""

    def __init__(self, form: ConfigForm, loc: str) -> None:
        self.form = form
        self.loc = loc
        self.client_error: str | None = None
        self.inputs: list[ui.element] = []
        self.error_label: ui.label | None = None

    def attach(self, element: ui.element) -> ui.element:
        """Outline `element` when the field has a problem; `data-loc` names the field in the page (for tests)."""
        self.inputs.append(element)
        element.props(f'data-loc="{html.escape(self.loc)}"')
        return element

    def set_client_error(self, message: str | None) -> None:
        self.client_error = message
        self.refresh()

    def clear_server_error(self) -> None:
        if self.form.server_errors.pop(self.loc, None) is not None:
            self.refresh()

    def refresh(self) -> None:
        message = self.client_error or self.form.server_errors.get(self.loc)
        if self.error_label is not None:
            self.error_label.text = message or ""
            self.error_label.set_visibility(bool(message))
        for element in self.inputs:
            if not element.is_deleted:
                element.props(add="error" if message else None, remove=None if message else "error")
                element.classes(add="fb-invalid" if message else None, remove=None if message else "fb-invalid")


def mark(loc: str, role: str) -> str:
    return f"{role}:{loc.replace(' ', '_')}"


# ---------------------------------------------------------------------------------------------------- fields

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
        if kind in FX_KINDS and (meta.fx or is_expression(slot.get())):
            ScalarField(form, view, slot, meta, schema, kind, actions)
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
    elif kind == "union":
        UnionEditor(form, slot, meta, schema, loc)
    elif kind == "rows":
        RowsEditor(form, slot, meta, schema, loc)
    elif kind == "cards":
        CardsEditor(form, slot, meta, schema, loc)
    elif kind == "code":
        code_widget(view, slot, meta, schema)
    elif kind == "credential":
        credential_widget(form, view, slot, meta, schema)
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
        title = raw.get("title") if isinstance(raw, dict) and "title" in raw else None
        if title == key.replace("_", " ").title() or title == key.title().replace("_", " "):
            title = None  # pydantic's own ("Non 2Xx", "Url"): say it from the name instead ("Non 2xx", "URL")
        child_default = default.get(key, MISSING) if isinstance(default, dict) else MISSING
        meta = Meta(key=key, title=humanize(title or key), description=resolved.get("description", ""),
                    required=key in required, default=resolved.get("default", child_default), nullable=False)
        render_field(form, raw, key_slot(slot, key, ensure, drop_empty), meta, loc_of(loc, key))
    value = slot.get()
    unknown = [k for k in value if k not in props and k not in (ensure or {})] if isinstance(value, dict) else []
    if unknown and schema.get("additionalProperties") is not True:
        ui.label(f"Kept as they are, but not fields of this node: {', '.join(unknown)}").classes("fb-warn")


# ---------------------------------------------------------------------------------------------------- scalars

class ScalarField:
    """A value that is either fixed (a typed widget) or an expression (`{{ … }}` text with a preview and a picker)."""

    def __init__(self, form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], kind: str,
                 actions: ui.row) -> None:
        self.form, self.view, self.slot, self.meta, self.schema, self.kind = form, view, slot, meta, schema, kind
        value = slot.get()
        self.expression = is_expression(value) or not self._fits(value)
        with actions:
            self.fx = ui.button("fx", on_click=self.toggle).props("dense no-caps size=sm") \
                .classes("fb-fx").mark(mark(view.loc, "fx"))
            self.fx.tooltip("Fixed value or expression")
        self.body = ui.column().classes("w-full gap-0")
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
        inline = _JSON_INLINE.match(text)
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
            self.fx.props(add="unelevated color=deep-orange-5 text-color=white", remove="flat")
        else:
            self.fx.props(add="flat color=grey-6", remove="unelevated text-color")
        self.fx.classes(add="fb-on" if self.expression else None, remove=None if self.expression else "fb-on")
        self.view.inputs.clear()
        with self.body:
            if self.expression:
                ExpressionBox(self.form, self.view, self.slot, self.meta, multiline=self.kind in ("textarea", "json"))
            else:
                FIXED[self.kind](self.form, self.view, self.slot, self.meta, self.schema)
        self.view.refresh()


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


def check_string(text: str, schema: dict[str, Any], kind: str) -> str | None:
    if is_expression(text):
        return None
    if "minLength" in schema and len(text) < schema["minLength"]:
        return f"Must have at least {schema['minLength']} characters"
    if "maxLength" in schema and len(text) > schema["maxLength"]:
        return f"Must have at most {schema['maxLength']} characters"
    if "pattern" in schema:
        try:
            if not re.search(schema["pattern"], text):
                return "Has characters that are not allowed here"
        except re.error:
            pass
    if kind == "url" and not re.match(r"^https?://[^/\s?#]+", text.strip(), re.IGNORECASE):
        return "Must be a URL starting with http:// or https://"
    return None


def number_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    integer = schema.get("type") == "integer"
    element = ui.number(value=value if isinstance(value, int | float) else None, placeholder=meta.placeholder,
                        min=schema.get("minimum"), max=schema.get("maximum"), step=1 if integer else None)
    element.props(INPUT_PROPS).classes("w-full").mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value
        if new is None:
            view.set_client_error("Required" if meta.required and not meta.nullable else None)
            slot.set(meta.empty())
            return
        if integer:
            if not float(new).is_integer():
                view.set_client_error("Must be a whole number")
                return
            new = int(new)
        view.set_client_error(check_number(new, schema))
        slot.set(new)

    element.on_value_change(changed)


def check_number(value: float, schema: dict[str, Any]) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"Must be at least {schema['minimum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return f"Must be more than {schema['exclusiveMinimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"Must be at most {schema['maximum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        return f"Must be less than {schema['exclusiveMaximum']}"
    return None


def boolean_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    shown = value if isinstance(value, bool) else bool(meta.default) if isinstance(meta.default, bool) else False
    element = ui.switch(value=shown).props("dense").mark(mark(view.loc, "input"))
    view.attach(element)
    element.on_value_change(lambda e: slot.set(bool(e.value)))


def enum_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    options = list(schema.get("enum", []))
    labels = schema.get("enum_labels") or schema.get("x-enumNames")
    shown = value if value in options else meta.default if meta.default in options else None
    choices = dict(zip(options, labels, strict=False)) if isinstance(labels, list) else \
        {o: "—" if o is None else str(o) for o in options}
    element = ui.select(choices, value=shown, clearable=meta.nullable)
    element.props(INPUT_PROPS + " options-dense").classes("w-full").mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        if e.value is None and None not in options:
            slot.set(meta.empty())
        else:
            slot.set(e.value)

    element.on_value_change(changed)


def scalar_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """A value of several primitive types (`str | int | bool | None`): text, read as the types allow."""
    types = _types_of(form, schema)
    value = slot.get()
    text = "" if value is MISSING or value is None else value if isinstance(value, str) else to_json(value)
    element = ui.input(value=text, placeholder=meta.placeholder).props(INPUT_PROPS).classes("w-full")
    element.mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value or ""
        view.set_client_error(None)
        if new == "":
            slot.set(None if "null" in types or meta.nullable else meta.empty())
            return
        if "string" in types:
            slot.set(new)
            return
        try:
            parsed = json.loads(new)
        except ValueError:
            parsed = MISSING
        ok = (isinstance(parsed, bool) and "boolean" in types) or \
            (isinstance(parsed, int) and not isinstance(parsed, bool) and types & {"integer", "number"}) or \
            (isinstance(parsed, float) and "number" in types)
        if not ok:
            view.set_client_error(f"Must be {' or '.join(sorted(types - {'null'}))}")
            return
        slot.set(parsed)

    element.on_value_change(changed)


def _types_of(form: ConfigForm, schema: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    variants = form.schemas.variants(schema)
    for s in variants if variants is not None else [schema]:
        kind = s.get("type")
        out.update(kind if isinstance(kind, list) else [kind] if kind else [])
    return out


def lenient_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """Any value on one line: valid JSON is read as JSON (`42`, `true`, `[1]`, `"42"`), anything else as text."""
    value = slot.get()
    if value is MISSING or value is None:
        text = ""
    elif isinstance(value, str):
        text = to_json(value) if _parses(value) else value
    else:
        text = to_json(value)
    element = ui.input(value=text, placeholder=meta.placeholder).props(INPUT_PROPS).classes("w-full")
    element.mark(mark(view.loc, "input"))
    view.attach(element)

    def changed(e: Any) -> None:
        new = e.value or ""
        if new.strip() == "":
            slot.set(meta.empty())
            return
        try:
            slot.set(json.loads(new))
        except ValueError:
            slot.set(new)

    element.on_value_change(changed)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def json_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    shown = meta.default if value is MISSING and meta.default not in (MISSING, None) else value
    text = "" if shown is MISSING else to_json(shown, indent=2)
    editor = CodeBox(text, language="JSON", indent="  ", line_wrapping=True)
    editor.classes("fb-code w-full").mark(mark(view.loc, "input"))
    view.attach(editor)

    def changed(e: Any) -> None:
        new = (e.value or "").strip()
        if not new:
            view.set_client_error("Required" if meta.required else None)
            slot.set(meta.empty())
            return
        try:
            parsed = json.loads(new)
        except ValueError as exc:
            view.set_client_error(f"Not valid JSON: {exc}")
            return
        view.set_client_error(None)
        slot.set(parsed)

    editor.on_value_change(changed)


def code_widget(view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    if value is MISSING and isinstance(meta.default, str):
        value = meta.default  # shown to start from; stored once edited
    language = schema.get("language")
    editor = CodeBox(value if isinstance(value, str) else "", language=language or None, indent="  ",
                           line_wrapping=True)
    editor.classes("fb-code w-full").mark(mark(view.loc, "input"))
    view.attach(editor)

    def changed(e: Any) -> None:
        new = e.value or ""
        if not new:
            view.set_client_error("Required" if meta.required and not meta.nullable else None)
            slot.set(meta.empty())
            return
        view.set_client_error(check_string(new, schema, "code"))
        slot.set(new)

    editor.on_value_change(changed)


def chips_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    """A list of primitives: chips (type and press Enter to add; x removes), or a multi-select for enums."""
    value = slot.get()
    items, _ = form.schemas.unwrap_nullable(schema.get("items", {}))
    current = list(value) if isinstance(value, list) else []
    element: ui.select | ui.input_chips
    if "enum" in items:
        options = list(items["enum"])
        element = ui.select(options, value=[v for v in current if v in options], multiple=True).props("use-chips")
    else:
        element = ui.input_chips(value=[v if isinstance(v, str) else to_json(v) for v in current],
                                 new_value_mode="add")
    element.props(INPUT_PROPS + " placeholder=\"Type and press Enter\"").classes("w-full")
    element.mark(mark(view.loc, "input"))
    view.attach(element)
    item_kind = form.schemas.kind(items) if items else "text"

    def changed(e: Any) -> None:
        out: list[Any] = []
        for chip in e.value or []:
            parsed = _chip_value(chip, items, item_kind)
            if parsed is MISSING:
                wanted = {"integer": "a whole number", "number": "a number"}.get(items.get("type", ""), "valid")
                view.set_client_error(f"{chip!r} is not {wanted}")
                return
            out.append(parsed)
        view.set_client_error(None)
        slot.set(out if out or meta.required else MISSING)

    element.on_value_change(changed)


def _chip_value(chip: Any, items: dict[str, Any], kind: str) -> Any:
    if not isinstance(chip, str) or is_expression(chip) or kind in ("enum", "text", "url", "password"):
        return chip
    try:
        parsed = json.loads(chip)
    except ValueError:
        return chip if kind == "scalar" and "string" in str(items) else MISSING
    if kind == "number" and (isinstance(parsed, bool) or not isinstance(parsed, int | float)):
        return MISSING
    if items.get("type") == "integer" and not (isinstance(parsed, int) or float(parsed).is_integer()):
        return MISSING
    return int(parsed) if items.get("type") == "integer" else parsed


def credential_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any]) -> None:
    value = slot.get()
    types = schema.get("credential_types") or []
    names = list(form.credentials(types)) if form.credentials else []
    shown = value if isinstance(value, str) else None
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


FIXED: dict[str, Callable[[ConfigForm, FieldView, Slot, Meta, dict[str, Any]], None]] = {
    "text": text_widget, "textarea": text_widget, "url": text_widget, "password": text_widget,
    "number": number_widget, "boolean": boolean_widget, "enum": enum_widget, "scalar": scalar_widget,
    "lenient": lenient_widget, "json": json_widget, "chips": chips_widget,
}


# ---------------------------------------------------------------------------------------------------- expressions

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
        except Exception as exc:  # the expression's own error, shown to the user
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._show(message, bad=True)
            return
        self._show(to_json(result), bad=False)

    def _show(self, text: str, *, bad: bool) -> None:
        if self.preview.is_deleted:
            return
        self.preview.text = text if len(text) <= 400 else text[:400] + " …"
        self.preview.classes(add="fb-bad" if bad else None, remove=None if bad else "fb-bad")
        self.preview.set_visibility(True)


# ---------------------------------------------------------------------------------------------------- containers

def _seed(form: ConfigForm, schema: dict[str, Any]) -> Any:
    """A new entry of a list: an empty object (with its tag, for tagged unions), or an empty text."""
    kind = form.schemas.kind(schema)
    if kind == "union":
        variants = form.schemas.variants(schema) or []
        tag = form.schemas.tag_of(schema, variants)
        return UnionEditor.seed(form, variants[0], tag) if variants else {}
    if kind == "object":
        return {}
    return None


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
        ui.button(label, icon="add", on_click=on_click).props("flat dense no-caps size=sm color=primary") \
            .classes("fb-add").mark(mark(self.loc, "add"))


class CardsEditor(ListEditorBase):
    """A list of objects: one card per entry, with move up/down and remove."""

    def __init__(self, form: ConfigForm, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
        super().__init__(form, slot, meta, loc)
        self.item_schema, _ = form.schemas.unwrap_nullable(schema.get("items", {}))
        self.item_title = humanize(str(self.item_schema.get("title") or "Entry"))
        self.draw()

    def draw(self) -> None:
        self.container.clear()
        entries = self.entries()
        with self.container:
            for index, _ in enumerate(entries):
                item_loc = loc_of(self.loc, index)
                with ui.column().classes("fb-card w-full gap-0").mark(mark(item_loc, "card")):
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
            self.add_button(f"Add {self.item_title.lower()}", lambda: self.add(_seed(self.form, self.item_schema)))

    @staticmethod
    def _tool(icon: str, tip: str, action: Callable[[], None], loc: str, role: str, enabled: bool = True) -> None:
        button = ui.button(icon=icon, on_click=action).props("flat dense round size=sm color=grey-7")
        button.mark(mark(loc, role))
        button.tooltip(tip)
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
                    title = raw.get("title") if isinstance(raw, dict) else None
                    self.columns.append((key, raw, humanize(title or key), key in required))
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
                with ui.row().classes("w-full no-wrap items-start gap-1").mark(mark(loc_of(self.loc, index), "row")):
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


class UnionEditor:
    """A choice of variants (a toggle or a select) that swaps the fields below it; each variant keeps what was typed
    in it while another is shown."""

    def __init__(self, form: ConfigForm, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
        self.form, self.slot, self.meta, self.loc = form, slot, meta, loc
        self.variants = form.schemas.variants(schema) or []
        self.tag = form.schemas.tag_of(schema, self.variants)
        self.stash: dict[int, Any] = {}
        labels: dict[int, str] = {}
        for i, v in enumerate(self.variants):
            const = form.schemas.const_of(v["properties"][self.tag]) if self.tag else MISSING
            labels[i] = str(const) if const is not MISSING else humanize(str(v.get("title") or f"Option {i + 1}"))
        if meta.nullable:
            labels[-1] = "None"
        self.index = self.match(slot.get())
        short = len(labels) <= 6 and sum(len(t) for t in labels.values()) <= 48
        if short:
            self.choice: ui.toggle | ui.select = ui.toggle(labels, value=self.index) \
                .props("no-caps dense unelevated toggle-color=primary color=grey-2 text-color=grey-9 size=sm")
        else:
            self.choice = ui.select(labels, value=self.index).props("dense outlined options-dense")
        self.choice.classes("fb-choice").mark(mark(loc, "choice"))
        self.hint = ui.html("", sanitize=False).classes("fb-hint")
        self.body = ui.column().classes("w-full gap-3")
        self.choice.on_value_change(lambda e: self.switch(e.value))
        self.draw()

    @staticmethod
    def seed(form: ConfigForm, variant: dict[str, Any], tag: str | None) -> dict[str, Any]:
        if tag:
            return {tag: form.schemas.const_of(variant["properties"][tag])}
        # untagged: the variant's defaults, so the value says which variant it is
        return {k: copy.deepcopy(p["default"]) for k, p in variant.get("properties", {}).items()
                if isinstance(p, dict) and "default" in p}

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
            new = stashed if isinstance(stashed, dict) else self.seed(self.form, self.variants[index], self.tag)
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
