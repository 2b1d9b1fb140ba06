"""Reading a config's JSON Schema, without NiceGUI: what kind of widget each field needs, its title and default, and
the checks a typed value must pass. Everything here is plain data and functions, testable without a page.

Every widget writes through a `Slot` (get/set of one place in the config; setting `MISSING` removes the key), so a
widget never holds the config itself.
"""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import format_loc


class _Missing:
    """No value: the key is absent from the config, so the model's default applies."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
PICKERS = frozenset({"table", "table_column", "flow", "sql_table", "sql_column"})  # names offered by the editor
KEY_VALUE_WIDGETS = frozenset({"key_value", "keyvalue", "key-value"})
TEXT_KINDS = frozenset({"text", "textarea", "url", "password"})
FX_KINDS = TEXT_KINDS | {"number", "boolean", "enum", "scalar", "lenient", "json", "chips"}
CELL_KINDS = FX_KINDS | {"credential"}
_ACRONYMS = {"url": "URL", "uri": "URI", "id": "ID", "sql": "SQL", "json": "JSON", "http": "HTTP", "api": "API",
             "ip": "IP", "html": "HTML", "csv": "CSV"}
JSON_INLINE = re.compile(r"^\s*{{\s*(.*?)\s*}}\s*$", re.DOTALL)


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
        if widget in PICKERS and kind == "string":
            return "picker"
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
            if item_kind in ("text", "url", "number", "enum", "scalar", "password", "picker"):
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


def chip_value(chip: Any, items: dict[str, Any], kind: str) -> Any:
    if not isinstance(chip, str) or is_expression(chip) or kind in ("enum", "text", "url", "password", "picker"):
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


def parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def types_of(schemas: Schemas, schema: dict[str, Any]) -> set[str]:
    """The JSON types a field of several primitive types takes (`str | int | None`: string, integer, null)."""
    out: set[str] = set()
    variants = schemas.variants(schema)
    for s in variants if variants is not None else [schema]:
        kind = s.get("type")
        out.update(kind if isinstance(kind, list) else [kind] if kind else [])
    return out


def seed_entry(schemas: Schemas, schema: dict[str, Any]) -> Any:
    """A new entry of a list: an empty object (with its tag, for tagged unions), or an empty text."""
    kind = schemas.kind(schema)
    if kind == "union":
        variants = schemas.variants(schema) or []
        tag = schemas.tag_of(schema, variants)
        return variant_seed(schemas, variants[0], tag) if variants else {}
    if kind == "object":
        return {}
    return None


def variant_seed(schemas: Schemas, variant: dict[str, Any], tag: str | None) -> dict[str, Any]:
    """A new value of one variant of a union: its tag, or (untagged) its defaults, so the value says which it is."""
    if tag:
        return {tag: schemas.const_of(variant["properties"][tag])}
    return {k: copy.deepcopy(p["default"]) for k, p in variant.get("properties", {}).items()
            if isinstance(p, dict) and "default" in p}


# ---------------------------------------------------------------------------------------------------- what a user reads

def field_title(key: str, raw: Any) -> str:
    """A field's label: its schema title when a person wrote one, else said from its name (`api_key`: API key)."""
    title = raw.get("title") if isinstance(raw, dict) and "title" in raw else None
    if title == key.replace("_", " ").title() or title == key.title().replace("_", " "):
        title = None  # pydantic's own ("Non 2Xx", "Url"): say it from the name instead ("Non 2xx", "URL")
    return humanize(title or key)


def choice_labels(schema: dict[str, Any]) -> dict[Any, str]:
    """What each choice of an enum reads as: the schema's `enum_labels` (in order), else the value itself."""
    options = list(schema.get("enum", []))
    labels = schema.get("enum_labels") or schema.get("x-enumNames")
    if isinstance(labels, list) and len(labels) == len(options):
        return dict(zip(options, (str(label) for label in labels), strict=True))
    return {o: "—" if o is None else str(o) for o in options}


def variant_labels(schemas: Schemas, schema: dict[str, Any]) -> list[str]:
    """What each variant of a union reads as: its title when it has one, else its tag's value."""
    variants = schemas.variants(schema) or []
    tag = schemas.tag_of(schema, variants)
    out = []
    for i, v in enumerate(variants):
        tag_schema = schemas.resolve(v["properties"][tag]) if tag else {}
        const = schemas.const_of(tag_schema) if tag else MISSING
        if tag and tag_schema.get("title") and tag_schema.get("title") != humanize(tag):
            out.append(str(tag_schema["title"]))
        elif const is not MISSING:
            out.append(humanize(str(const)))
        else:
            out.append(humanize(str(v.get("title") or f"Option {i + 1}")))
    return out


def entry_title(schemas: Schemas, schema: dict[str, Any]) -> str:
    """What one entry of a list of objects is called ("Condition" → cards "Condition 1", "Condition 2"); a list of
    several kinds of entry is named after its first kind."""
    items, _ = schemas.unwrap_nullable(schema.get("items", {}))
    variants = schemas.variants(items) or []
    title = items.get("title") or (variants[0].get("title") if variants else None)
    return humanize(str(title or "Entry"))


def offers_expression(schema: dict[str, Any], kind: str) -> bool:
    """Whether a field gets the `fx` switch: values that can sensibly be worked out per item. A choice from a list
    or a yes/no is picked, not computed; a field can also refuse expressions (`"expressions": False`)."""
    return kind in FX_KINDS and kind not in ("enum", "boolean") and schema.get("expressions") is not False


def outline(schema: dict[str, Any], *, expressions: bool = True) -> list[str]:
    """Every label, choice and help text of a form, as text: what a person reads in it (snapshot tests read this).

    One line per field: `Label *` (required), `[fx]` where it may hold an expression, its help; its choices below."""
    schemas = Schemas(schema)
    lines: list[str] = []
    open_objects: list[int] = []  # a group of conditions holds conditions and groups: each is described once

    def walk(obj: dict[str, Any], depth: int, skip: str | None = None) -> None:
        if id(obj) in open_objects or obj.get("title") in [o for o in titles]:
            lines.append("  " * depth + "(as above)")
            return
        open_objects.append(id(obj))
        titles.append(obj.get("title"))
        try:
            fields_of(obj, depth, skip)
        finally:
            open_objects.pop()
            titles.pop()

    titles: list[Any] = []

    def fields_of(obj: dict[str, Any], depth: int, skip: str | None) -> None:
        pad = "  " * depth
        required = set(obj.get("required", []))
        for key, raw in obj.get("properties", {}).items():
            if key == skip:
                continue
            s, _ = schemas.unwrap_nullable(raw)
            kind = schemas.kind(s)
            if kind == "const":
                continue
            fx = " [fx]" if expressions and offers_expression(s, kind) else ""
            star = " *" if key in required else ""
            help_text = s.get("description") or (raw.get("description") if isinstance(raw, dict) else "") or ""
            lines.append(f"{pad}{field_title(key, raw)}{star}{fx}: {help_text}".rstrip(": "))
            if kind == "enum":
                lines.append(f"{pad}  choices: " + " | ".join(choice_labels(s).values()))
            elif kind == "object":
                walk(s, depth + 1)
            elif kind == "union":
                variants = schemas.variants(s) or []
                tag = schemas.tag_of(s, variants)
                for label, variant in zip(variant_labels(schemas, s), variants, strict=True):
                    lines.append(f"{pad}  choice {label}:")
                    walk(variant, depth + 2, skip=tag)
            elif kind in ("cards", "rows") and s.get("type") == "array":
                items = schemas.resolve(s.get("items", {}))
                if items.get("properties"):
                    lines.append(f"{pad}  each: {entry_title(schemas, s)}")
                    walk(items, depth + 2)
                elif schemas.variants(items):
                    lines.append(f"{pad}  each: {entry_title(schemas, s)}, one of: "
                                 + " | ".join(variant_labels(schemas, items)))
                    for label, variant in zip(variant_labels(schemas, items), schemas.variants(items) or [],
                                              strict=True):
                        lines.append(f"{pad}    {label}:")
                        walk(variant, depth + 3)

    walk(schemas.resolve(schema), 0)
    return lines


class NoPreview(Exception):
    """Raised by a form's `preview` callback when there is nothing to preview with yet (no run): the preview shows
    its message as a grey hint, not as the expression's error."""
