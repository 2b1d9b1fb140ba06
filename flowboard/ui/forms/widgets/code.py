"""Source text (SQL...) in a code box with its language's colours."""

from __future__ import annotations

import ast
import json
import re
from typing import TYPE_CHECKING, Any

from ...code_box import CodeBox
from ..fields import body
from ..schema import MISSING, Meta, Slot, check_string
from ..view import FieldView, mark

if TYPE_CHECKING:
    from ..form import ConfigForm


def item_keys(field_names: list[str]) -> list[dict[str, str]]:
    """`item["email"]` for every top-level key in the expression picker's `item.email`, `item['a b']` names."""
    keys: dict[str, None] = {}
    for name in field_names:
        found = re.match(r"item(?:\.([A-Za-z_]\w*)|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\])", name)
        if found:
            keys[found.group(1) or ast.literal_eval(found.group(2))] = None
    return [{"label": f"item[{json.dumps(key)}]", "detail": "a field of the last run's items", "type": "property"}
            for key in keys]


@body("code")
def code_widget(form: ConfigForm, view: FieldView, slot: Slot, meta: Meta, schema: dict[str, Any], loc: str) -> None:
    value = slot.get()
    if value is MISSING and isinstance(meta.default, str):
        value = meta.default  # shown to start from; stored once edited
    language = schema.get("language")
    editor = CodeBox(value if isinstance(value, str) else "", language=language or None, indent="  ",
                           line_wrapping=True)
    editor.classes("fb-code w-full").mark(mark(view.loc, "input"))
    view.attach(editor)
    completions = schema.get("completions")
    if isinstance(completions, list):  # names the code can use (the Code node's `items`, `item`), and the keys
        editor.add_completions([*completions, *item_keys(form.field_names)])  # of the last run's input items

    def changed(e: Any) -> None:
        new = e.value or ""
        if not new:
            view.set_client_error("Required" if meta.required and not meta.nullable else None)
            slot.set(meta.empty())
            return
        view.set_client_error(check_string(new, schema, "code"))
        slot.set(new)

    editor.on_value_change(changed)
