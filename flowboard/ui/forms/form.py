"""The inspector's form, generated from a node's config JSON Schema (its pydantic `Config` model): no per-node UI.

    form = ConfigForm(describe(cls)["config_schema"], node.config, on_change=save,
                      field_names=["item.email"], preview=lambda text: evaluate_on_last_run(text))
    form.set_errors(errors_from_validation(exc))       # {"url": "is required", "conditions[0].value": "..."}

What each schema construct becomes is listed in `schema.Schemas.kind` (NiceGUI-free); the widget of each kind lives in
its own module under `widgets/`. Widget hints come from `json_schema_extra` (`widget`: textarea, code (+ `language`),
json, url, select, key_value, expression, credential).
"""

from __future__ import annotations

import copy
import re
import weakref
from collections.abc import Callable
from typing import Any

from nicegui import Client, context, ui
from pydantic import ValidationError

from ...errors import problems_from_validation
from . import widgets  # noqa: F401 (registers every widget under its field kind)
from .fields import render_object_fields
from .schema import MISSING, Schemas, Slot
from .view import FieldView

__all__ = ["ConfigForm", "errors_from_validation"]

_LOC_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_styled_clients: weakref.WeakSet[Client] = weakref.WeakSet()

CSS = """
.fb-form { font-size: 13px; color: #2c2f36; }
.fb-form .fb-label { font-size: 12.5px; font-weight: 600; color: #3b3f4a; line-height: 1.6; }
.fb-form .fb-req { color: #c4262e; font-weight: 700; }
.fb-form .fb-hint { font-size: 12px; color: #596070; line-height: 1.35; margin-top: 3px; }
.fb-form .fb-hint code, .fb-form .fb-warn code { background: #eef0f4; border-radius: 3px; padding: 0 3px;
  font-size: 11px; color: #4a4f5c; }
.fb-form .fb-error { font-size: 12px; color: #c4262e; margin-top: 2px; }
.fb-form .fb-warn { font-size: 11.5px; color: #9a6700; background: #fff8c5; border-radius: 4px; padding: 2px 6px; }
.fb-form .fb-group { border: 1px solid #e3e6ec; border-radius: 6px; padding: 10px 12px; background: #fafbfc; }
.fb-form .fb-card { border: 1px solid #e3e6ec; border-radius: 6px; background: #fff; overflow: hidden; }
.fb-form .fb-card-head { background: #f4f5f8; border-bottom: 1px solid #e3e6ec; padding: 1px 4px 1px 10px; }
.fb-form .fb-card-title { font-size: 12px; font-weight: 600; color: #555b68; }
.fb-form .fb-rows-head { font-size: 11px; font-weight: 600; color: #5f6675; text-transform: uppercase;
  letter-spacing: .04em; }
.fb-form .fb-row-tools { width: 28px; flex: none; }
.fb-form .fb-cell { min-width: 0; flex: 1 1 0; }
.fb-form .fb-hint-top { margin: 0 0 6px 0; }
.fb-form .fb-fx { font-family: ui-monospace, monospace; font-style: italic; font-weight: 700;
  font-size: 12px !important; min-height: 18px; min-width: 24px; padding: 0 4px; border-radius: 4px; }
.fb-form .fb-expr .q-field__control { background: #fff7f5; }
.fb-form .fb-expr input, .fb-form .fb-expr textarea { font-family: ui-monospace, monospace; font-size: 12px; }
.fb-form .fb-preview { font-family: ui-monospace, monospace; font-size: 11.5px; color: #3f6e3f; background: #f0f7f0;
  border-radius: 0 0 4px 4px; padding: 2px 8px; white-space: pre-wrap; word-break: break-all; margin-top: -1px; }
.fb-form .fb-preview.fb-bad { color: #c62828; background: #fdecea; word-break: break-word; }
.fb-form .fb-preview.fb-hint-preview { color: #5f6672; background: #f4f5f7; font-family: inherit;
  word-break: break-word; }
.fb-form .fb-code { height: auto; border: 1px solid #c8ccd4; border-radius: 4px; font-size: 12px; overflow: hidden; }
.fb-form .fb-code.fb-invalid { border-color: #d93036; }
.fb-form .fb-code .cm-editor { min-height: 56px; max-height: 320px; }
.fb-form .fb-code .cm-scroller { overflow: auto; }
.fb-form .fb-code .cm-gutters { background: #f6f7f9; }
.fb-form .fb-choice .q-btn { padding: 0 10px; min-height: 26px; }
.fb-form .q-field--dense .q-field__control, .fb-form .q-field--dense .q-field__marginal,
.fb-form .q-field--dense .q-field__native, .fb-form .q-field--dense .q-field__input { min-height: 34px; }
.fb-form .q-field--dense .q-field__control, .fb-form .q-field--dense .q-field__marginal { height: auto; }
.fb-form .q-field--dense .q-field__native { padding: 4px 0; }
.fb-form .q-textarea.q-field--dense .q-field__native { padding-top: 7px; }
.fb-form .q-field--outlined .q-field__control { padding: 0 8px; border-radius: 4px; }
.fb-form .q-field__native, .fb-form .q-field__input { font-size: 13px; }
.fb-form .fb-add { align-self: flex-start; }
.fb-menu .fb-mono { font-family: ui-monospace, monospace; font-size: 12px; min-height: 30px; }
"""


class ConfigForm:
    """A node's config form, drawn in the current NiceGUI container.

    `value` is the config as JSON: what was given, plus what the user set (keys the schema does not know are kept).
    Every change calls `on_change` with a copy of the whole config.
    """

    def __init__(self, schema: dict[str, Any], value: dict[str, Any], *, on_change: Callable[[dict[str, Any]], None],
                 field_names: list[str] | None = None, preview: Callable[[str], Any] | None = None,
                 credentials: Callable[[list[str]], list[str]] | None = None, expressions: bool = True,
                 choices: Callable[..., list[str]] | None = None) -> None:
        self.schema = schema
        self.schemas = Schemas(schema)
        self.value: dict[str, Any] = copy.deepcopy(value) if isinstance(value, dict) else {}
        self.on_change = on_change
        self.field_names = list(field_names or [])
        self.preview = preview
        self.credentials = credentials  # names of stored credentials of the given types (optional)
        self.choices = choices  # what picker fields offer: (widget, table[, config]) -> names; widgets/picker.py
        self.expressions = expressions  # offer `fx` (a trigger's config, settings: there is no item to work on)
        self.server_errors: dict[str, str] = {}
        self.views: dict[str, FieldView] = {}
        _add_css()
        with ui.column().classes("fb-form w-full gap-3") as self.element:
            self._banner = ui.column().classes("w-full gap-0")
            root = self.schemas.resolve(schema)
            render_object_fields(self, root, Slot(lambda: self.value, self._set_root), "")
            if not root.get("properties"):
                ui.label("This node has nothing to set.").classes("fb-hint")

    def _set_root(self, value: Any) -> None:
        self.value = value if isinstance(value, dict) and value is not MISSING else {}
        self.on_change(copy.deepcopy(self.value))

    # ------------------------------------------------------------------------------------------------ errors

    def register(self, loc: str, view: FieldView) -> None:
        self.views[loc] = view

    def forget(self, loc: str, *, children_only: bool = False) -> None:
        """Drop the views (and the server's stale errors) under `loc`, before that part of the form is redrawn."""
        def under(key: str) -> bool:
            return key.startswith((loc + ".", loc + "[")) or (not children_only and key == loc)

        for key in [k for k in self.views if under(k)]:
            del self.views[key]
        for key in [k for k in self.server_errors if under(k)]:
            del self.server_errors[key]

    def set_errors(self, errors: dict[str, str]) -> None:
        """Show the server's validation messages at their fields ({} clears them). A location that names no field
        (a union's tag, a list's own check) is shown at the nearest field above it, else at the top of the form."""
        self.server_errors = {}
        unplaced: list[str] = []
        for loc, message in errors.items():
            target, rest = self._place(loc)
            if target is None:
                unplaced.append(f"{loc}: {message}" if loc else message)
                continue
            message = message[:1].upper() + message[1:]
            text = f"{rest}: {message}" if rest else message
            old = self.server_errors.get(target)
            self.server_errors[target] = f"{old}; {text}" if old else text
        for view in list(self.views.values()):
            view.refresh()
        self._banner.clear()
        with self._banner:
            for line in unplaced:
                ui.label(line).classes("fb-error").mark("error:form")

    def _place(self, loc: str) -> tuple[str | None, str]:
        if loc in self.views:
            return loc, ""
        parts: list[str | int] = [int(i) if i else name for i, name in _LOC_PART.findall(loc)]
        for skip in range(len(parts)):  # a discriminated union's tag inside the location: body.json.data
            if isinstance(parts[skip], str):
                candidate = _join(parts[:skip] + parts[skip + 1:])
                if candidate in self.views:
                    return candidate, ""
        for end in range(len(parts) - 1, 0, -1):
            candidate = _join(parts[:end])
            if candidate in self.views:
                return candidate, _join(parts[end:])
        return None, ""


def _join(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def errors_from_validation(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors for a node config as `set_errors` takes them: {"conditions[0].value": "is required"}."""
    out: dict[str, str] = {}
    for problem in problems_from_validation(exc):
        out[problem.loc] = f"{out[problem.loc]}; {problem.message}" if problem.loc in out else problem.message
    return out


def _add_css() -> None:
    """The form's styles, once per page."""
    client = context.client
    if client not in _styled_clients:
        _styled_clients.add(client)
        ui.add_css(CSS)
