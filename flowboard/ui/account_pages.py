"""The pages about the person using Flowboard:

    /login     sign in (a plain HTML form posting to POST /login, so the session cookie can be HttpOnly)
    /me        what a signed-in user can do here: their forms, the inbox, their password
    /account   change your password (other browsers are signed out)
"""

from __future__ import annotations

from nicegui import context, ui

from ..auth import DESCRIPTIONS, AccountError, Permission, Role, SignInRefused
from ..auth.roles import home_for
from ..services import Flowboard
from ..triggers import FormTriggers
from .access import page_principal, public, require
from .layout import CSS, frame

LOGIN_CSS = """
.fb-login { max-width: 380px; margin: 12vh auto 0; width: 100%; }
.fb-login .q-card { padding: 28px 28px 20px; border-radius: 12px; box-shadow: 0 6px 24px rgba(31,36,48,.08); }
.fb-login-brand { font-weight: 700; font-size: 20px; color: #1f2430; }
.fb-notice { border-radius: 8px; padding: 10px 12px; font-size: 14px; }
.fb-notice-error { background: #fee2e2; color: #991b1b; }
.fb-notice-info { background: #e0f2fe; color: #075985; }
"""


def register(fb: Flowboard) -> None:
    @ui.page("/login", title="Sign in · Flowboard")
    @public
    def login_page(failed: str | None = None, wait: str | None = None, out: str | None = None, user: str = "",
                   next: str | None = None, missing: str | None = None) -> None:
        client = context.client
        fb.accounts.sign_in_clients.add(client.id)  # this page's websocket may open without a session
        client.on_delete(lambda: fb.accounts.sign_in_clients.discard(client.id))
        ui.add_css(CSS + LOGIN_CSS)
        with ui.column().classes("fb-login gap-4 px-4"), ui.card().classes("w-full gap-4"):
            ui.label("Flowboard").classes("fb-login-brand")
            ui.label("Sign in").classes("fb-h1")
            if failed:
                _notice("The user name or the password is not right. Check both and try again.", "error", "failed")
            elif wait:
                minutes = wait if wait.isdigit() else "a few"
                _notice(f"Too many attempts; try again in {minutes} minute{'' if minutes == '1' else 's'}.",
                        "error", "wait")
            elif missing:
                _notice("Type your user name and your password.", "error", "missing")
            elif out:
                _notice("You have signed out.", "info", "signed-out")
            elif next:
                _notice("Sign in to open that page.", "info", "sign-in-first")
            if not fb.accounts.required():
                _notice("Nobody needs to sign in here yet: Flowboard is serving only this computer and has no users. "
                        "To share it, add an admin with: flowboard user add --role admin NAME", "info", "no-users")
                ui.link("Open the flows", "/").mark("open-flows")
            with ui.element("form").props('method="post" action="/login"').classes("column gap-3 w-full") \
                    .mark("sign-in-form"):
                ui.input("User name", value=user).props('name="user" autocomplete="username" outlined autofocus') \
                    .classes("w-full").mark("user")
                ui.input("Password", password=True, password_toggle_button=True) \
                    .props('name="password" autocomplete="current-password" outlined').classes("w-full") \
                    .mark("password")
                if next:
                    ui.element("input")._props.update({"type": "hidden", "name": "next", "value": next})
                ui.button("Sign in").props('type="submit" unelevated no-caps size="md"').classes("w-full") \
                    .mark("sign-in")
            ui.label("Forgot your password? Ask your Flowboard admin to set a new one.").classes("fb-small")

    @ui.page("/me")
    @require(None)
    def me_page() -> None:
        principal = page_principal()
        assert principal is not None  # require() let only a signed-in user through
        frame("me")
        with ui.column().classes("fb-page gap-4"):
            ui.label(f"Hello, {principal.label}").classes("fb-h1")
            ui.label(f"You are signed in as {principal.name} ({principal.roles_text}). "
                     + " ".join(f"As {role.value}: {DESCRIPTIONS[role]}." for role in Role
                                if role in principal.roles)).classes("fb-muted").mark("roles")
            if principal.can(Permission.flows):
                ui.link("Open the flows", "/").mark("link:flows")
            if principal.can(Permission.inbox) and home_for(frozenset({Permission.inbox})) != "/me":
                ui.link("Open your inbox", home_for(frozenset({Permission.inbox}))).mark("link:inbox")
            _own_requests(fb, principal.name)
            forms = sorted(fb.triggers.kind(FormTriggers).routes.items())
            ui.label("Forms you can fill in").classes("text-lg font-semibold pt-2")
            if not forms:
                ui.label("There are no forms to fill in right now.").classes("fb-muted").mark("no-forms")
            for path, ep in forms:
                title = getattr(ep.config, "title", "") or path
                ui.link(str(title), f"/form/{path}").mark(f"form:{path}")

    @ui.page("/account")
    @require(None)
    def account_page() -> None:
        principal = page_principal()
        assert principal is not None
        frame("me")
        with ui.column().classes("fb-page gap-4").style("max-width: 480px"):
            ui.label("Change your password").classes("fb-h1")
            if principal.user_id is None:
                ui.label("Nobody signs in here (single-user mode), so there is no password to change.") \
                    .classes("fb-muted")
                return
            current = ui.input("Current password", password=True).props("outlined autocomplete=current-password") \
                .classes("w-full").mark("current")
            new = ui.input("New password (at least 8 characters)", password=True) \
                .props("outlined autocomplete=new-password").classes("w-full").mark("new")
            again = ui.input("New password again", password=True).props("outlined autocomplete=new-password") \
                .classes("w-full").mark("again")
            message = ui.label("").classes("fb-notice").mark("message")
            message.set_visibility(False)

            def show(text: str, kind: str) -> None:
                message.text = text
                message.classes(replace=f"fb-notice fb-notice-{kind}")
                message.set_visibility(True)

            def change() -> None:
                if new.value != again.value:
                    return show("The two new passwords are not the same. Type the new one twice.", "error")
                try:
                    ended = fb.accounts.change_own_password(principal, current.value or "", new.value or "")
                except (AccountError, SignInRefused) as exc:
                    text = str(exc)
                    return show(text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."), "error")
                current.value = new.value = again.value = ""
                others = f" {ended} other browser{'s were' if ended != 1 else ' was'} signed out." if ended else ""
                show(f"Your password is changed. You stay signed in here.{others}", "info")

            ui.button("Change password", on_click=change).props("unelevated no-caps").mark("change")


def _own_requests(fb: Flowboard, name: str) -> None:
    """The approvals this user asked for, newest first, with what became of each ("approved by Ada at 10:42")."""
    mine = {name, f"user:{name}"}
    tasks = [t for t in fb.approvals.store.list_tasks(limit=2000) if t.requester in mine][:50]
    ui.label("Your requests").classes("text-lg font-semibold pt-2")
    if not tasks:
        ui.label("You have no requests waiting or decided.").classes("fb-muted").mark("no-requests")
    for task in tasks:
        with ui.row().classes("fb-row w-full items-center gap-3").mark(f"request:{task.id}"):
            ui.label(task.title or "Request").classes("font-semibold grow")
            ui.label(task.describe()).classes("fb-small")


def _notice(text: str, kind: str, mark: str) -> None:
    ui.label(text).classes(f"fb-notice fb-notice-{kind}").mark(f"notice:{mark}")
