"""The forms' schema reading is plain Python (no NiceGUI), and every field of every built-in node type has a widget."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from flowboard.registry import default_registry
from flowboard.ui.forms.schema import MISSING, Schemas, humanize


def test_reading_a_schema_loads_no_nicegui() -> None:
    code = ("import sys, flowboard.ui.forms.schema as s; "
            "assert s.Schemas({}).kind({'type': 'string'}) == 'text'; "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('nicegui', 'fastapi', 'starlette')]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def fields(schemas: Schemas, schema: dict[str, Any], where: str = "") -> list[tuple[str, str]]:
    """(place, kind) of every field, into objects, unions and list entries."""
    out: list[tuple[str, str]] = []
    for key, raw in schema.get("properties", {}).items():
        s, _ = schemas.unwrap_nullable(raw)
        kind = schemas.kind(s)
        out.append((f"{where}{key}", kind))
        if kind == "object":
            out.extend(fields(schemas, s, f"{where}{key}."))
        for variant in schemas.variants(s) or []:
            out.extend(fields(schemas, variant, f"{where}{key}."))
        if kind in ("cards", "rows") and s.get("type") == "array":
            out.extend(fields(schemas, schemas.resolve(s.get("items", {})), f"{where}{key}[]."))
    return out


@pytest.mark.parametrize("cls", sorted(default_registry(), key=lambda c: c.type), ids=lambda c: c.type)
def test_every_field_of_every_node_type_has_a_widget(cls: Any) -> None:
    from flowboard.ui.forms import fields as drawing  # registers the widgets (NiceGUI)
    from flowboard.ui.forms import widgets  # noqa: F401

    schema = cls.Config.model_json_schema()
    schemas = Schemas(schema)
    known = set(drawing.FIXED) | set(drawing.BODIES) | {"object", "const"}
    found = fields(schemas, schemas.resolve(schema))
    assert all(kind in known for _, kind in found), [f for f in found if f[1] not in known]


@pytest.mark.parametrize(("name", "title"), [("url", "URL"), ("api_key", "API key"), ("keepOnly", "Keep Only"),
                                              ("_id", "ID"), ("sql_query", "SQL query")])
def test_titles_from_names(name: str, title: str) -> None:
    assert humanize(name) == title


def test_missing_is_falsy_and_says_so() -> None:
    assert not MISSING and repr(MISSING) == "MISSING"
