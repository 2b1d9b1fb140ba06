"""The form's widgets, one module per field kind; importing this package registers them all (fields.FIXED, BODIES)."""

from . import (
    boolean,
    chips,
    choice,
    code,
    credential,
    expression,
    json_box,
    lists,
    number,
    picker,
    scalar,
    text,
    union,
)

__all__ = ["boolean", "chips", "choice", "code", "credential", "expression", "json_box", "lists", "number", "picker",
           "scalar", "text", "union"]
