"""Saving never overwrites silently: when the flow was saved (or deleted) in another tab meanwhile, the user chooses
to reload the stored flow or to save the working copy as a new flow."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from nicegui import ui

if TYPE_CHECKING:
    from .editor import Editor


async def resolve_conflict(editor: Editor, current: int | None) -> None:
    """Saved meanwhile in another tab (`current` is its version now) or deleted there (None): never overwrite."""
    with editor.client, ui.dialog() as dialog, ui.card().classes("w-[480px]"):
        ui.label("This flow changed meanwhile").classes("text-lg font-semibold")
        if current is None:
            ui.label("Someone deleted this flow in another tab. Save yours as a copy to keep it.") \
                .classes("text-sm").mark("conflict")
        else:
            ui.label(f"Someone saved this flow in another tab (version {current}). Reload it, or save yours as "
                     "a copy.").classes("text-sm").mark("conflict")
            ui.label("Reloading discards your unsaved changes.").classes("fb-small")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat no-caps")
            if current is not None:
                ui.button("Reload", on_click=lambda: dialog.submit("reload")).props("outline no-caps") \
                    .mark("conflict-reload")
            ui.button("Save as a copy", on_click=lambda: dialog.submit("copy")) \
                .props("unelevated no-caps").mark("conflict-copy")
    choice = await dialog
    dialog.delete()
    if choice == "reload":
        stored = editor.fb.store.get_flow(editor.flow.id)
        editor.load_working_copy(stored.flow, version=stored.version)
        ui.notify(f"Reloaded version {stored.version}")
    elif choice == "copy":
        copy = editor.flow.model_copy(update={"id": uuid.uuid4().hex[:12], "name": f"{editor.flow.name} (copy)"[:200]})
        editor.fb.save_flow(copy, None, note=f"copy of {editor.flow.id}: saved during a conflict")
        editor.client.run_javascript("window.onbeforeunload = null;")
        ui.navigate.to(f"/flow/{copy.id}")
