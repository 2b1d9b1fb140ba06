"""The editor's Versions dialog: every saved version, to view on a read-only canvas or restore into the editor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from ..model import Flow
from .canvas import FlowCanvas
from .graph import to_canvas
from .layout import ago

if TYPE_CHECKING:
    from .editor import Editor


async def versions_dialog(editor: Editor) -> None:
    store = editor.fb.store
    versions = store.list_versions(editor.flow.id)
    with ui.dialog() as dialog, ui.card().classes("w-[560px] max-w-full gap-2"):
        ui.label("Versions").classes("text-lg font-semibold")
        ui.label("Every save keeps a version. Restoring one loads it into the editor; save to keep it.") \
            .classes("fb-muted")
        with ui.column().classes("w-full gap-0 max-h-[60vh] overflow-auto"):
            for info in versions:
                row = ui.row().classes("w-full items-center no-wrap gap-3 py-2 border-b")
                with row.mark(f"version:{info.version}"):
                    ui.label(f"v{info.version}").classes("font-semibold w-10")
                    with ui.column().classes("grow gap-0"):
                        ui.label(ago(info.created)).classes("text-sm")
                        if info.note:
                            ui.label(info.note).classes("fb-small")
                    if info.version == editor.version:
                        ui.label("loaded" + (", edited" if editor.dirty else "")).classes("fb-small")
                    ui.button("View", on_click=lambda v=info.version: view(v)).props("flat dense no-caps") \
                        .mark(f"view:{info.version}")
                    ui.button("Restore", on_click=lambda v=info.version: restore(v)) \
                        .props("flat dense no-caps color=primary").mark(f"restore:{info.version}")
        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=dialog.close).props("flat no-caps")

    def restore(version: int) -> None:
        flow = store.get_version(editor.flow.id, version)
        editor.load_working_copy(flow)
        ui.notify(f"Version {version} is loaded; save to keep it", type="info")
        dialog.close()

    async def view(version: int) -> None:
        flow = store.get_version(editor.flow.id, version)
        if await view_dialog(editor, flow, version):
            restore(version)

    dialog.open()
    await dialog
    dialog.delete()


async def view_dialog(editor: Editor, flow: Flow, version: int) -> bool:
    """Show one version on a read-only canvas; True if the user chose to restore it."""
    nodes, edges = to_canvas(flow, editor.fb.registry)
    with ui.dialog().props("maximized=false") as dialog, ui.card().classes("w-[90vw] max-w-[1200px] h-[80vh] gap-2"):
        with ui.row().classes("w-full items-center"):
            ui.label(f"{flow.name} · version {version}").classes("text-lg font-semibold")
            ui.space()
            ui.button("Restore this version", on_click=lambda: dialog.submit(True)).props("no-caps unelevated") \
                .mark("restore-viewed")
            ui.button(icon="close", on_click=lambda: dialog.submit(False)) \
                .props('flat round dense aria-label="Close"') \
                .tooltip("Close")
        with ui.element("div").classes("w-full grow relative min-h-0"):
            FlowCanvas(editor.catalog, nodes, edges, readonly=True).classes("absolute-full")
    result = await dialog
    dialog.delete()
    return bool(result)
