"""A code editor (CodeMirror) that never writes an old copy of its text over what the user is typing.

NiceGUI's `ui.codemirror` re-applies its `value` prop to the document on every update of the element, and an update
happens for reasons that have nothing to do with the text (a red outline added or removed, a class, a prop). The prop
holds the server's copy, which lags behind the browser by the keys still in flight: at 35 ms per key the update wrote
`CEATE TABLE` over `CREATE TABLE`, and the changes still in flight then landed at the wrong places. Here the browser's
document is the only truth while the user types: an update never touches the document, and text set from Python
(`set_value`) is sent as an explicit call instead.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui


class CodeBox(ui.codemirror):
    def __init__(self, value: str = "", **kwargs: Any) -> None:
        super().__init__(value, **kwargs)
        self._update_method = None  # updates re-send props only; the document stays the browser's own
        self._built = True

    def _handle_value_change(self, value: Any) -> None:
        super()._handle_value_change(value)
        # `_send_update_on_value_change` is False only while applying the browser's own change event.
        if getattr(self, "_built", False) and self._send_update_on_value_change:
            self.run_method("setEditorValue", value)
