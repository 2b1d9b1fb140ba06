"""The connectors page (`/connectors`): APIs imported from their OpenAPI documents, each operation a node in the
palette under the API's name. Import by web address, file or pasted text; see each connector's operations; re-import
with the list of what changes (and which flows it touches) before anything is stored; remove one no flow uses."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import events, ui

from ..connectors import ConnectorInUse, Preview
from ..openapi import ApiInvalid
from ..services import Flowboard
from ..store import NotFound
from ..store.connectors import ConnectorRecord
from .layout import ago, frame

_METHOD_COLORS = {"GET": "#0f766e", "POST": "#4338ca", "PUT": "#b45309", "PATCH": "#a16207", "DELETE": "#b91c1c"}


class ConnectorsPage:
    def __init__(self, fb: Flowboard) -> None:
        self.fb = fb
        frame("connectors")
        with ui.column().classes("fb-page gap-4") as self.root:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Connectors").classes("fb-h1")
                ui.space()
                ui.button("Import an API", icon="add", on_click=lambda: self._import(None)) \
                    .props("unelevated no-caps").mark("import-api")
            ui.label("Any API with an OpenAPI document becomes nodes: each of its operations appears in the editor's "
                     "node list under the API's name, with a form made from what the operation takes.") \
                .classes("fb-muted")
            self.list = ui.column().classes("w-full gap-2").mark("connectors")
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        with self.list:
            records = self.fb.connectors.all()
            if not records:
                ui.label("No connectors yet. Import an API by its OpenAPI document's web address (often ending in "
                         "/openapi.json), a file, or its pasted text.").classes("fb-muted py-4").mark("no-connectors")
            for record in records:
                self._card(record)

    def _card(self, record: ConnectorRecord) -> None:
        api = self.fb.connectors.apis.get(record.name)
        with ui.column().classes("fb-row w-full gap-2").mark(f"connector:{record.name}"):
            with ui.row().classes("w-full items-center no-wrap gap-3"):
                ui.icon("api", size="22px").classes("text-indigo-7")
                with ui.column().classes("gap-0 grow"):
                    ui.label(f"{record.title} {api.version if api else ''}".strip()).classes("font-semibold text-base")
                    where = record.source or "pasted text"
                    server = (api.server if api else "") or "no server address (set it on each node)"
                    ui.label(f"From {where} · calls {server} · updated {ago(record.updated)}").classes("fb-small")
                ui.button("Re-import", icon="refresh", on_click=lambda r=record: self._import(r)) \
                    .props("flat no-caps dense").mark(f"reimport:{record.name}")
                ui.button(icon="delete_outline", on_click=lambda r=record: self._remove(r)) \
                    .props("flat round dense").mark(f"remove:{record.name}").tooltip("Remove this connector")
            if api is None:
                ui.label("This connector's document no longer reads; re-import it.").classes("text-negative text-sm")
                return
            with ui.expansion(f"{len(api.operations)} operations", icon="list").classes("w-full") \
                    .props("dense").mark(f"operations:{record.name}"):
                for op in api.operations.values():
                    with ui.row().classes("items-center no-wrap gap-3 py-1"):
                        ui.label(op.method).classes("fb-mono text-white rounded px-2 w-16 text-center") \
                            .style(f"background: {_METHOD_COLORS.get(op.method, '#475569')}")
                        ui.label(op.path).classes("fb-mono w-64")
                        ui.label(op.title).classes("grow")
            for warning in api.warnings:
                ui.label(warning).classes("fb-small text-amber-9")
            for flow, ops in self.fb.connectors.orphans(record.name).items():
                ui.label(f"The flow {flow!r} uses {', '.join(ops)}, which {record.title} no longer has: change that "
                         "flow.").classes("text-negative text-sm").mark(f"orphan:{flow}")

    # -- import and re-import -----------------------------------------------------------------------------------

    async def _import(self, record: ConnectorRecord | None) -> None:
        state: dict[str, Any] = {"preview": None, "file": None, "source": ""}
        title = "Import an API" if record is None else f"Re-import {record.title}"
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[680px] max-w-full gap-3"):
            ui.label(title).classes("text-lg font-semibold")
            ui.label("Give the API's OpenAPI document (version 3.0 or 3.1, JSON or YAML): its web address, a file, "
                     "or its text. You see what it brings before anything is stored.").classes("fb-muted")
            url = ui.input("Web address of the document", placeholder="https://api.example.com/openapi.json",
                           value=record.source if record and record.source.startswith("http") else "") \
                .props("outlined dense").classes("w-full").mark("connector-url")
            ui.upload(label="…or a file", auto_upload=True, max_file_size=10_000_000,
                      on_upload=lambda e: self._uploaded(e, state, check)) \
                .props('accept=".json,.yaml,.yml" flat bordered').classes("w-full").mark("connector-upload")
            text = ui.textarea(placeholder="…or paste the document here") \
                .props("outlined input-class=fb-mono rows=4").classes("w-full").mark("connector-text")
            server = ui.input("Server address (only if the document names none, or to use another)",
                              placeholder="https://api.example.com",
                              value=record.server if record else "") \
                .props("outlined dense").classes("w-full").mark("connector-server")
            result = ui.column().classes("w-full gap-1").mark("connector-preview")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button("Check", on_click=lambda: check()).props("outline no-caps").mark("connector-check")
                save = ui.button("Import" if record is None else "Apply the changes",
                                 on_click=lambda: dialog.submit(True)).props("unelevated no-caps") \
                    .mark("connector-save")
                save.disable()

        async def check() -> None:
            save.disable()
            name = record.name if record else ""
            try:  # pasted text first, then a chosen file, then the web address
                if (text.value or "").strip():
                    preview = self.fb.connectors.read(text.value, server=server.value or "", name=name)
                elif state["file"] is not None:
                    preview = self.fb.connectors.read(state["file"], source=state["source"],
                                                      server=server.value or "", name=name)
                elif (url.value or "").strip():
                    preview = await asyncio.to_thread(self.fb.connectors.fetch, url.value, server=server.value or "",
                                                      name=name)
                else:
                    self._show(result, ["Give the document's web address, choose a file, or paste its text."],
                               bad=True, heading=False)
                    return
            except ApiInvalid as exc:
                self._show(result, [str(p) for p in exc.problems], bad=True)
                return
            if record is None and preview.existing:
                self._show(result, [f"A connector called {preview.api.name!r} exists already; use its Re-import "
                                    "button to update it."], bad=True, heading=False)
                return
            state["preview"] = preview
            self._show_preview(result, preview)
            save.enable()

        url.on("keydown.enter", check)
        while await dialog:
            preview: Preview | None = state["preview"]
            if preview is None:
                continue
            self.fb.connectors.save(preview)
            ui.notify(f"Imported {preview.api.title}: its {len(preview.api.operations)} operations are in the "
                      "node list", type="positive")
            self.refresh()
            break
        dialog.delete()

    async def _uploaded(self, e: events.UploadEventArguments, state: dict[str, Any], check: Any) -> None:
        state["file"] = await e.file.read()
        state["source"] = e.file.name
        await check()

    def _show(self, box: ui.column, lines: list[str], bad: bool = False, heading: bool = True) -> None:
        box.clear()
        with box:
            if bad and heading:
                count = len(lines)
                ui.label(f"This document cannot be imported ({count} problem{'s' if count != 1 else ''}):") \
                    .classes("text-negative font-semibold text-sm")
            with ui.element("ul").classes("fb-problems"):
                for line in lines:
                    with ui.element("li"):
                        ui.label(line).classes("text-negative" if bad else "").mark(
                            "connector-problem" if bad else "connector-line")

    def _show_preview(self, box: ui.column, preview: Preview) -> None:
        api = preview.api
        box.clear()
        with box:
            if not preview.existing:
                ui.label(f"{api.title} {api.version}: {len(api.operations)} operations become nodes").classes(
                    "font-semibold text-sm")
            elif preview.changes:
                ui.label(f"What changes in {api.title} (now {api.version}):").classes("font-semibold text-sm")
            else:
                ui.label(f"{api.title} {api.version}: no operation changed").classes("font-semibold text-sm")
            with ui.element("ul").classes("fb-problems"):
                for line in preview.lines():
                    with ui.element("li"):
                        warn = line.startswith("flow ") or line.startswith("removed")
                        ui.label(line).classes("text-amber-10" if warn else "").mark("connector-line")

    # -- remove ---------------------------------------------------------------------------------------------------

    async def _remove(self, record: ConnectorRecord) -> None:
        users = self.fb.connectors.used_by(record.name)
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[460px] gap-3"):
            if users:
                ui.label(f"{record.title} cannot be removed: these flows use its nodes. Remove those nodes first, "
                         "then try again.").mark("remove-refused")
                with ui.element("ul").classes("fb-problems"):
                    for name in users:
                        with ui.element("li"):
                            ui.label(name).mark("remove-user")
                with ui.row().classes("w-full justify-end"):
                    ui.button("OK", on_click=lambda: dialog.submit(False)).props("unelevated no-caps")
            else:
                ui.label(f"Remove {record.title}? Its nodes leave the node list. No flow uses them.")
                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                    ui.button("Remove", on_click=lambda: dialog.submit(True)) \
                        .props("color=negative no-caps unelevated").mark("confirm-remove")
        if await dialog:
            try:
                self.fb.connectors.remove(record.name)
            except (ConnectorInUse, NotFound) as exc:
                ui.notify(str(exc), type="negative")
            self.refresh()
        dialog.delete()
