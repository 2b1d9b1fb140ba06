"""Import a flow file: upload it or paste it. A broken file lists every problem in plain words and stores nothing."""

from __future__ import annotations

from typing import Any

from nicegui import events, ui

from ..errors import FlowInvalid
from ..jsonlimits import JsonRefused, read_json
from ..model import MAX_FLOW_BYTES, Flow
from ..services import Flowboard
from .layout import problem_text


def node_names(text: str) -> dict[str, str]:
    """Node id -> display name, read leniently from a file that may not be a valid flow."""
    try:
        data: Any = read_json(text, max_bytes=MAX_FLOW_BYTES)
    except JsonRefused:
        return {}
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        return {}
    return {str(n["id"]): str(n.get("name") or n["id"]) for n in nodes if isinstance(n, dict) and "id" in n}


class ImportDialog:
    def __init__(self, fb: Flowboard) -> None:
        self.fb = fb
        with ui.dialog() as self.dialog, ui.card().classes("w-[640px] max-w-full gap-3"):
            ui.label("Import a flow").classes("text-lg font-semibold")
            ui.label("Upload a flow file (.json) or paste its text. Nothing is stored unless the whole file is "
                     "valid.").classes("fb-muted")
            ui.upload(label="Flow file", auto_upload=True, on_upload=self._uploaded, max_file_size=5_000_000) \
                .props('accept=".json,application/json" flat bordered').classes("w-full").mark("import-upload")
            self.text = ui.textarea(placeholder='{"name": "My flow", "nodes": [...], "edges": [...]}') \
                .props("outlined autogrow input-class=fb-mono").classes("w-full").mark("import-text")
            self.problems = ui.column().classes("w-full gap-1")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: self.dialog.submit(None)).props("flat no-caps")
                ui.button("Import", on_click=self._import_text).props("no-caps unelevated").mark("import-ok")

    async def ask(self) -> Flow | None:
        self.dialog.open()
        result = await self.dialog
        self.dialog.delete()
        return result

    async def _uploaded(self, e: events.UploadEventArguments) -> None:
        data = await e.file.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self._show([f"{e.file.name} is not a text file; a flow file is JSON text"])
            return
        self.text.value = text
        self.try_import(text)

    def _import_text(self) -> None:
        text = self.text.value or ""
        if not text.strip():
            self._show(["Paste a flow file's text, or upload one"])
            return
        self.try_import(text)

    def try_import(self, text: str) -> None:
        try:
            flow, _ = self.fb.import_flow(text)
        except FlowInvalid as exc:
            names = node_names(text)
            self._show([problem_text(p.loc, p.message, p.node_id, names) for p in exc.problems])
            return
        self.dialog.submit(flow)

    def _show(self, lines: list[str]) -> None:
        self.problems.clear()
        with self.problems:
            count = len(lines)
            ui.label(f"This file cannot be imported ({count} problem{'s' if count != 1 else ''}):") \
                .classes("text-negative font-semibold text-sm")
            with ui.element("ul").classes("fb-problems").mark("import-problems"):
                for line in lines:
                    with ui.element("li"):
                        ui.label(line).mark("import-problem")
