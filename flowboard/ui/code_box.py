"""A code editor (CodeMirror) that never writes an old copy of its text over what the user is typing.

NiceGUI's `ui.codemirror` re-applies its `value` prop to the document on every update of the element, and an update
happens for reasons that have nothing to do with the text (a red outline added or removed, a class, a prop). The prop
holds the server's copy, which lags behind the browser by the keys still in flight: at 35 ms per key the update wrote
`CEATE TABLE` over `CREATE TABLE`, and the changes still in flight then landed at the wrong places. Here the browser's
document is the only truth while the user types: an update never touches the document, and text set from Python
(`set_value`) is sent as an explicit call instead.
"""

from __future__ import annotations

import json
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

    def add_completions(self, options: list[dict[str, str]]) -> None:
        """Offer `options` (CodeMirror completions: label, and optionally detail, apply, type) as the user types,
        beside the language's own. Done in the browser once the editor exists."""
        script = _COMPLETIONS_JS % (self.id, json.dumps(options))
        ui.timer(0, lambda: self.client.run_javascript(script), once=True)


_COMPLETIONS_JS = """
(async () => {
  const box = getElement(%d);
  if (!box) return;
  await box.editorPromise;
  const CM = await import("nicegui-codemirror");
  const options = %s;
  const source = (context) => {
    const word = context.matchBefore(/[\\w\\[\\]"']+/);
    if (!word && !context.explicit) return null;
    return {from: word ? word.from : context.pos, options, validFor: /^[\\w\\[\\]"']*$/};
  };
  box.editor.dispatch({effects: CM.StateEffect.appendConfig.of(
    CM.EditorState.languageData.of(() => [{autocomplete: source}]))});
})();
"""
