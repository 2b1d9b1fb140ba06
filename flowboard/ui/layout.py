"""What every page shares: the top bar, the styles, status chips and times in words."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from nicegui import ui

from ..auth import Permission, Principal
from .access import page_principal

CSS = """
body { background: #f6f7f9; color: #1f2430; }
.nicegui-content { padding: 0; gap: 0; }
a.nicegui-link { color: #1d4ed8; }
.fb-topbar { height: 48px; flex-shrink: 0; background: #1f2430; color: #e8eaf0; padding: 0 16px; overflow-x: auto; }
@media (max-width: 600px) { .fb-brand { display: none; } .fb-topbar a { padding: 4px 6px; } }
.fb-topbar a { color: #c9cdd8; text-decoration: none; font-size: 14px; padding: 4px 10px; border-radius: 6px; }
.fb-topbar a:hover { background: #2d3342; color: #fff; }
.fb-topbar a.fb-on { background: #394052; color: #fff; }
.fb-brand { font-weight: 700; font-size: 16px; letter-spacing: .01em; color: #fff; margin-right: 12px; }
.fb-page { max-width: 1180px; margin: 0 auto; padding: 24px 20px 48px; width: 100%; }
.fb-h1 { font-size: 22px; font-weight: 650; }
.fb-muted { color: #6b7280; font-size: 13px; }
.fb-small { font-size: 12px; color: #6b7280; }
.q-tooltip { font-size: 12px; background: #1f2937; color: #f9fafb; }
.fb-sm .q-btn, .q-btn.fb-sm { font-size: 12px; }
.fb-chip { display: inline-flex; align-items: center; gap: 4px; border-radius: 999px; padding: 1px 9px;
  font-size: 12px; font-weight: 600; line-height: 20px; white-space: nowrap; }
.fb-chip-succeeded { background: #dcfce7; color: #166534; }
.fb-chip-failed, .fb-chip-crashed { background: #fee2e2; color: #991b1b; }
.fb-chip-running, .fb-chip-queued { background: #dbeafe; color: #1e40af; }
.fb-chip-waiting { background: #fef3c7; color: #92400e; }
.fb-chip-cancelled, .fb-chip-skipped, .fb-chip-none { background: #eceef2; color: #4b5563; }
.fb-row { background: #fff; border: 1px solid #e3e6ec; border-radius: 8px; padding: 12px 16px; }
.fb-row:hover { border-color: #c7ccd6; }
.fb-row a.fb-name { font-weight: 600; font-size: 15px; color: #1f2430; text-decoration: none; }
.fb-row a.fb-name:hover { color: #4f46e5; }
.fb-problems li { margin: 2px 0 2px 18px; list-style: disc; font-size: 13px; }
.fb-mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
"""


SECTIONS = (("flows", "Flows", "/", Permission.flows), ("runs", "Runs", "/runs", Permission.flows),
            ("tables", "Tables", "/tables", Permission.tables),
            ("connectors", "Connectors", "/connectors", Permission.flows),
            ("credentials", "Credentials", "/credentials", Permission.credentials),
            ("inbox", "Inbox", "/inbox", Permission.inbox), ("users", "Users", "/users", Permission.users))
#: Counts shown beside a section's link (the inbox's open tasks), set by the pages: key -> principal -> count.
BADGES: dict[str, Any] = {}


def frame(active: str) -> None:
    """The top bar with the sections the user may open and their menu; `active` is "flows", "runs" or
    "credentials" (or "" for none)."""
    ui.add_css(CSS)
    ui.page_title("Flowboard")
    principal = page_principal()
    with ui.row().classes("fb-topbar w-full items-center gap-1 no-wrap"):
        ui.label("Flowboard").classes("fb-brand")
        for key, label, href, permission in SECTIONS:
            if principal is None or principal.can(permission):
                count = BADGES[key](principal) if key in BADGES and principal is not None else 0
                with ui.link(label if not count else f"{label} ", href).classes(
                        "fb-on" if key == active else "").mark(f"nav:{key}"):
                    if count:
                        ui.badge(str(count), color="red").props("rounded").mark(f"badge:{key}") \
                            .tooltip(f"{count} to decide")
        ui.space()
        user_menu(principal)


def user_menu(principal: Principal | None) -> None:
    """The header's right end: who is signed in, with their password and sign-out. Nothing in single-user mode."""
    if principal is None or principal.user_id is None:
        return
    with ui.button(principal.label, icon="account_circle").props("flat no-caps color=white dense") \
            .mark("user-menu"), ui.menu().props("anchor='bottom right' self='top right'"):
        with ui.column().classes("gap-1 px-4 py-3"):
            ui.label(principal.label).classes("font-semibold")
            ui.label(f"{principal.name} · {principal.roles_text}").classes("fb-small")
        ui.separator()
        ui.menu_item("What I can do", on_click=lambda: ui.navigate.to("/me"))
        ui.menu_item("Change password", on_click=lambda: ui.navigate.to("/account"))
        with ui.element("form").props('method="post" action="/logout"').classes("w-full"):
            ui.button("Sign out", icon="logout").props('type="submit" flat no-caps align="left" color="grey-9"') \
                .classes("w-full px-4").mark("sign-out")


def status_chip(status: str | None, text: str | None = None) -> ui.html:
    key = status or "none"
    return ui.html(f'<span class="fb-chip fb-chip-{key}">{text or status or "never run"}</span>',
                   sanitize=False).mark(f"status:{key}")


def ago(ts: float | None) -> str:
    """"3 min ago", "yesterday 14:02", "12 Mar 09:30"."""
    if ts is None:
        return ""
    delta = time.time() - ts
    if delta < 45:
        return "just now"
    if delta < 3600:
        return f"{round(delta / 60)} min ago"
    if delta < 6 * 3600:
        return f"{round(delta / 3600)} h ago"
    when = datetime.fromtimestamp(ts)
    return when.strftime("%H:%M today" if when.date() == datetime.now().date() else "%d %b %H:%M")


def duration(started: float | None, finished: float | None) -> str:
    if started is None or finished is None:
        return ""
    seconds = max(0.0, finished - started)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def problem_text(loc: str, message: str, node_id: str | None = None, names: dict[str, str] | None = None) -> str:
    """A flow problem in the user's words: `Node "Look up", field query: is required`."""
    match = re.match(r"^nodes\[(\d+)\]\.?(.*)$", loc)
    edge = re.match(r"^edges\[(\d+)\]\.?(.*)$", loc)
    if match or node_id:
        number = f"number {int(match.group(1)) + 1}" if match else "?"
        name = (names or {}).get(node_id, node_id) if node_id else number
        rest = match.group(2) if match else loc
        rest = rest.removeprefix("config.").removeprefix("config")
        field = f", field {rest}" if rest and rest not in ("type", "version", "id") else ""
        return f'Node "{name}"{field}: {message}'
    if edge:
        return f"Connection {int(edge.group(1)) + 1}: {message}"
    return f"{loc}: {message}" if loc else message[:1].upper() + message[1:]
