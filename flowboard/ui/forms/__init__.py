"""The inspector's forms, generated from a config's JSON Schema: no per-node UI.

`schema` reads the schema without NiceGUI (field kinds, titles, defaults, checks); `fields` draws a field and looks its
widget up by kind; `widgets/` holds one small module per kind; `form.ConfigForm` ties them together. The form is
imported on first use, so `schema` can be imported (and tested) without loading NiceGUI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .form import ConfigForm, errors_from_validation

__all__ = ["ConfigForm", "errors_from_validation"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import form

        return getattr(form, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
