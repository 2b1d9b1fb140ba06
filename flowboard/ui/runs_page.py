"""The runs page (`/runs`): every run, newest first, filtered by flow, status, source and time, updated live; stop,
retry, delete, and the retention settings. One run opens on `/run/{id}` (run_page.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from nicegui import context, ui
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine import Event, RunStatus
from ..services import RETRYABLE, Flowboard, RetryRefused
from ..store import NotFound, RunRecord
from .forms import ConfigForm, errors_from_validation
from .layout import ago, duration, frame, status_chip

#: The time filter: key -> (label, seconds back); "" is all time.
SINCE: dict[str, tuple[str, float | None]] = {"": ("All time", None), "1h": ("Last hour", 3600.0),
                                              "24h": ("Last 24 h", 86400.0), "7d": ("Last 7 days", 7 * 86400.0)}
SOURCES = ["manual", "editor", "api", "webhook", "schedule", "form", "error", "cli"]
PAGE = 100
POLL = 1.0  # seconds between looks at unfinished runs


class Retention(BaseModel):
    """What the runs page's settings form edits (the store's retention settings)."""

    model_config = ConfigDict(extra="forbid")
    keep_days: int | None = Field(30, ge=0, description="Delete finished runs older than this many days. Empty: "
                                                         "keep them however old.")
    keep_runs: int | None = Field(10_000, ge=0, description="Per flow, keep at most this many finished runs. Empty: "
                                                            "no limit.")
    keep_success_data: bool = Field(True, description="Keep the items of succeeded runs. Off: keep only their "
                                                      "status and timing (smaller database).")


async def retry(fb: Flowboard, run_id: str) -> bool:
    """Retry a failed run (the same service as `POST /api/v1/runs/{id}/retry`); says why not in a notification."""
    try:
        await fb.retry_run(run_id)
    except (RetryRefused, NotFound) as exc:
        ui.notify(f"Cannot retry: {exc}", type="warning")
        return False
    except Exception as exc:  # the flow version is gone or no longer valid
        ui.notify(f"Cannot retry: {exc}", type="negative")
        return False
    ui.notify("Retrying the run")
    return True


def watch_runs(fb: Flowboard, on_event: Any, run_id: str | None = None) -> None:
    """Call `on_event` (debounced per event-loop tick) for run events while the current page is open."""
    client = context.client
    handle: list[asyncio.Handle] = []

    def listener(event: Event) -> None:
        if run_id is not None and event.run_id != run_id:
            return
        if run_id is None and not event.kind.startswith("run."):
            return
        pending.append(event)
        if not handle:
            handle.append(asyncio.get_running_loop().call_later(0.1, flush))

    pending: list[Event] = []

    def flush() -> None:
        handle.clear()
        events = pending[:]
        pending.clear()
        if not client.is_deleted:
            on_event(events)

    unsubscribe = fb.bus.subscribe(listener)
    client.on_delete(unsubscribe)


class RunsPage:
    def __init__(self, fb: Flowboard, *, flow_id: str | None = None, status: str | None = None,
                 source: str | None = None, since: str | None = None) -> None:
        self.fb = fb
        self.flow_id, self.status, self.source = flow_id, status, source
        self.since = since if since in SINCE else None
        self.limit = PAGE
        self.flows = {f.id: f.name for f in fb.store.list_flows()}
        frame("runs")
        with ui.column().classes("fb-page gap-4"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Runs").classes("fb-h1")
                ui.space()
                ui.select({"": "All flows", **self.flows}, value=flow_id or "", label="Flow",
                          on_change=lambda e: self._filter(flow_id=e.value or None)) \
                    .props("dense outlined options-dense").classes("w-56").mark("filter-flow")
                ui.select({"": "Any status", **{s.value: s.value for s in RunStatus}}, value=status or "",
                          label="Status", on_change=lambda e: self._filter(status=e.value or None)) \
                    .props("dense outlined options-dense").classes("w-36").mark("filter-status")
                ui.select({"": "Any source", **{s: s for s in SOURCES}}, value=source or "", label="Source",
                          on_change=lambda e: self._filter(source=e.value or None)) \
                    .props("dense outlined options-dense").classes("w-36").mark("filter-source")
                ui.select({k: label for k, (label, _) in SINCE.items()}, value=self.since or "", label="Time",
                          on_change=lambda e: self._filter(since=e.value or None)) \
                    .props("dense outlined options-dense").classes("w-36").mark("filter-since")
                ui.button(icon="settings", on_click=self._retention) \
                    .props('flat round aria-label="How long runs are kept"').mark("retention") \
                    .tooltip("How long runs are kept")
            self.list = ui.column().classes("w-full gap-1")
        self.unfinished = False
        self.refresh()
        watch_runs(fb, lambda events: self.refresh())
        ui.timer(POLL, self._poll)

    def _poll(self) -> None:
        """Runs that end without an event (started before anyone listened, or in another process)."""
        if self.unfinished:
            self.refresh()

    def _filter(self, **changes: str | None) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        self.limit = PAGE
        self.refresh()

    def refresh(self) -> None:
        back = SINCE[self.since or ""][1]
        runs = self.fb.store.list_runs(flow_id=self.flow_id, status=self.status, source=self.source,
                                       since=time.time() - back if back is not None else None, limit=self.limit + 1)
        more = len(runs) > self.limit
        self.unfinished = any(not r.status.finished for r in runs)
        self.list.clear()
        with self.list:
            if not runs:
                ui.label("No runs yet." if not (self.flow_id or self.status or self.source or self.since)
                         else "No run matches these filters.").classes("fb-muted py-6").mark("no-runs")
            for run in runs[:self.limit]:
                self._row(run)
            if more:
                ui.button("Show more", on_click=self._more).props("flat no-caps").mark("more")

    def _more(self) -> None:
        self.limit += PAGE
        self.refresh()

    def _row(self, run: RunRecord) -> None:
        with ui.row().classes("fb-row w-full items-center no-wrap gap-4 py-2").mark(f"run:{run.id}"):
            status_chip(run.status.value)
            with ui.column().classes("grow gap-0 min-w-0"):
                ui.link(self.flows.get(run.flow_id, run.flow_id), f"/run/{run.id}").classes("fb-name text-sm") \
                    .mark(f"open-run:{run.id}")
                error = (run.error or {}).get("message")
                if error:
                    ui.label(error).classes("fb-small text-negative ellipsis w-full")
            ui.label(run.source or "").classes("fb-small w-16")
            ui.label(ago(run.created)).classes("fb-small w-28 text-right")
            ui.label(duration(run.started, run.finished)).classes("fb-small w-16 text-right")
            with ui.row().classes("w-20 justify-end gap-0 no-wrap"):
                if not run.status.finished:
                    ui.button(icon="stop", on_click=lambda rid=run.id: self._cancel(rid)) \
                        .props('flat round dense color=negative aria-label="Stop this run"').mark(f"cancel:{run.id}") \
                        .tooltip("Stop this run")
                else:
                    if run.status in RETRYABLE:
                        ui.button(icon="replay", on_click=lambda rid=run.id: self._retry(rid)) \
                            .props("flat round dense color=primary").mark(f"retry:{run.id}") \
                            .tooltip("Retry: run it again from the step that failed")
                    ui.button(icon="delete_outline", on_click=lambda rid=run.id: self._delete(rid)) \
                        .props('flat round dense aria-label="Delete this run"').mark(f"delete-run:{run.id}") \
                        .tooltip("Delete this run")

    def _cancel(self, run_id: str) -> None:
        if self.fb.cancel(run_id):
            ui.notify("Stopping the run")
        else:
            ui.notify("This run is not running in this process (it may be waiting, or run by a worker)")

    async def _retry(self, run_id: str) -> None:
        if await retry(self.fb, run_id):
            self.refresh()

    def _delete(self, run_id: str) -> None:
        with contextlib.suppress(NotFound):
            self.fb.store.delete_run(run_id)
        self.refresh()

    async def _retention(self) -> None:
        store = self.fb.store
        saved = {k: v for k, v in store.get_settings().items() if k in Retention.model_fields}
        value = dict(saved)
        with ui.dialog() as dialog, ui.card().classes("w-[480px] gap-3"):
            ui.label("Keeping runs").classes("text-lg font-semibold")
            ui.label("Running and waiting runs are never deleted.").classes("fb-muted")

            def changed(new: dict[str, Any]) -> None:
                value.clear()
                value.update(new)

            with ui.column().classes("fb-settings-form w-full"):
                form = ConfigForm(Retention.model_json_schema(), value, on_change=changed, expressions=False)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Clean up now", on_click=lambda: self._clean_up()).props("flat no-caps") \
                    .mark("clean-up")
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button("Save", on_click=lambda: dialog.submit(True)).props("unelevated no-caps") \
                    .mark("retention-save")
        while await dialog:
            try:
                checked = Retention.model_validate({**{k: None for k in ("keep_days", "keep_runs")}, **value})
            except ValidationError as exc:
                form.set_errors(errors_from_validation(exc))
                continue
            store.set_settings(checked.model_dump())
            ui.notify("Saved: runs are cleaned up by these rules", type="positive")
            break
        dialog.delete()

    def _clean_up(self) -> None:
        count = self.fb.clean_up()
        ui.notify(f"Deleted {count} run{'s' if count != 1 else ''}")
        self.refresh()
