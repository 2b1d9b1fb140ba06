"""Where one field's problems are shown (FieldView), and the markers tests find fields by."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from nicegui import ui

if TYPE_CHECKING:
    from .form import ConfigForm

INPUT_PROPS = "dense outlined hide-bottom-space no-error-icon"


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
