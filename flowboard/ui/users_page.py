"""The users page (`/users`, admins only): everyone who may sign in, with their roles; add a user, change roles, set a
new password, set an out-of-office delegate (who receives their new approval tasks), remove a user.

The same rules as `flowboard user ...` hold, since both call `Accounts`: the first user is an admin, the last admin
stays, a new password signs the user out of their other browsers. Hashing a password takes a quarter of a second on
purpose (argon2), so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from nicegui import ui

from ..auth import AccountError, Role
from ..auth.roles import DESCRIPTIONS
from ..services import Flowboard
from ..store.approvals import ApprovalError
from .access import page_principal
from .layout import frame

ROLE_WORDS = {Role.admin: "Admin", Role.editor: "Editor", Role.approver: "Approver", Role.requester: "Requester"}


def _sentence(exc: Exception) -> str:
    text = str(exc).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class UsersPage:
    def __init__(self, fb: Flowboard) -> None:
        self.fb = fb
        self.principal = page_principal()
        frame("users")
        with ui.column().classes("fb-page gap-4") as self.root:  # as wide as every other page
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Users").classes("fb-h1")
                ui.space()
                ui.button("Add a user", icon="person_add", on_click=self._add).props("unelevated no-caps") \
                    .mark("add-user")
            ui.label("Everyone who may sign in, and what their roles let them do. "
                     + " ".join(f"{ROLE_WORDS[r]}: {DESCRIPTIONS[r]}." for r in Role)).classes("fb-muted")
            self.list = ui.column().classes("w-full gap-2").mark("users")
        self.refresh()

    def refresh(self) -> None:
        users = self.fb.accounts.list_users()
        away = self.fb.approvals.store.out_of_office()
        self.list.clear()
        with self.list:
            if not users:
                ui.label("Nobody signs in yet: Flowboard runs for this computer alone. Add the first user (an admin) "
                         "to have everyone sign in.").classes("fb-muted py-4").mark("no-users")
            for user in users:
                with ui.row().classes("fb-row w-full items-center gap-3").mark(f"user:{user.name}"):
                    with ui.column().classes("gap-0 grow"):
                        ui.label(user.full_name or user.name).classes("font-semibold")
                        details = [f"signs in as {user.name}" if user.full_name else "", user.email or "no email"]
                        ui.label(" · ".join(p for p in details if p)).classes("fb-small")
                    ui.label(", ".join(ROLE_WORDS[Role(r)] for r in user.roles)).classes("text-sm") \
                        .mark(f"roles:{user.name}")
                    if user.name in away:
                        entry = away[user.name]
                        until = f" until {_day(entry['until'])}" if entry.get("until") else ""
                        ui.label(f"Away{until}: new tasks go to {entry['delegate']}") \
                            .classes("fb-chip fb-chip-waiting").mark(f"away:{user.name}")
                    with ui.row().classes("gap-0"):
                        for label, action, mark in (("Roles", self._roles, "edit-roles"),
                                                    ("New password", self._password, "edit-password"),
                                                    ("Away", self._away, "edit-away"),
                                                    ("Remove", self._remove, "remove")):
                            ui.button(label, on_click=lambda a=action, n=user.name: a(n)) \
                                .props("flat dense no-caps" + (" color=negative" if mark == "remove" else "")) \
                                .mark(f"{mark}:{user.name}")

    # -- the dialogs --------------------------------------------------------------------------------------------------

    def _role_boxes(self, chosen: list[str]) -> dict[Role, ui.checkbox]:
        ui.label("Roles").classes("text-sm font-medium")
        boxes = {}
        for role in Role:
            boxes[role] = ui.checkbox(f"{ROLE_WORDS[role]}: {DESCRIPTIONS[role]}", value=role.value in chosen) \
                .classes("text-sm").mark(f"role:{role.value}")
        return boxes

    @contextmanager
    def _dialog(self, title: str, *, wide: bool = False) -> Iterator[ui.dialog]:
        """A dialog on this page with its title; the body goes inside the `with`, `_buttons` last."""
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[480px] gap-2" if wide else "w-[440px] gap-2"):
            ui.label(title).classes("text-lg font-semibold")
            yield dialog

    @staticmethod
    def _buttons(dialog: ui.dialog, action: str, mark: str, other: tuple[str, str] | None = None) -> ui.label:
        """The dialog's error line, then Cancel and its action (answers False and True), after an `other` button
        (label, mark: answers its mark) when given."""
        error = ui.label("").classes("text-negative text-sm").mark("user-error")
        with ui.row().classes("w-full justify-end gap-2"):
            if other is not None:
                ui.button(other[0], on_click=lambda: dialog.submit(other[1])).props("flat no-caps").mark(other[1])
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
            ui.button(action, on_click=lambda: dialog.submit(True)).props("unelevated no-caps").mark(mark)
        return error

    async def _answer(self, dialog: ui.dialog, error: ui.label, attempt: Callable[[Any], Awaitable[str]], *,
                      refresh: bool = True) -> None:
        """Until the dialog is cancelled, try `attempt(answer)` on each answer: a refusal (the accounts' or the
        approvals' rules, a date not understood, `_Refused`) shows in the dialog, which stays open with what was
        typed; success closes it and says `attempt`'s message."""
        while answer := await dialog:
            try:
                message = await attempt(answer)
            except (_Refused, AccountError, ApprovalError, ValueError) as exc:
                error.text = _sentence(exc)
                continue
            _done(dialog)
            ui.notify(message, type="positive")
            if refresh:
                self.refresh()
            return
        _done(dialog)

    async def _add(self) -> None:
        first = not self.fb.accounts.list_users()
        with self._dialog("Add a user", wide=True) as dialog:
            name = ui.input("User name (what they sign in with), e.g. grace").props("outlined dense") \
                .classes("w-full").mark("new-name")
            full = ui.input("Full name (optional)").props("outlined dense").classes("w-full").mark("new-full-name")
            email = ui.input("Email (optional; approval requests are sent there)").props("outlined dense") \
                .classes("w-full").mark("new-email")
            boxes = self._role_boxes(["admin"] if first else ["approver"])
            password = ui.input("Password (at least 8 characters)", password=True, password_toggle_button=True) \
                .props("outlined dense autocomplete=new-password").classes("w-full").mark("new-password")
            again = ui.input("Password again", password=True).props("outlined dense autocomplete=new-password") \
                .classes("w-full").mark("new-password-again")
            if first:
                ui.label("The first user must be an admin. Once a user exists, everyone signs in, you too.") \
                    .classes("fb-small")
            error = self._buttons(dialog, "Add", "save-user")

        async def add(_: Any) -> str:
            roles = [r for r, box in boxes.items() if box.value]
            if password.value != again.value:
                raise _Refused("The two passwords are not the same. Type the password twice.")
            added = await asyncio.to_thread(self.fb.accounts.add_user, name.value or "", password.value or "",
                                            roles, full_name=full.value or "", email=email.value or None)
            return f"{added.name} can sign in now."

        await self._answer(dialog, error, add)

    async def _roles(self, name: str) -> None:
        user = self.fb.accounts.get_user(name)
        with self._dialog(f"Roles of {user.name}", wide=True) as dialog:
            boxes = self._role_boxes(user.roles)
            error = self._buttons(dialog, "Save", "save-roles")

        async def save(_: Any) -> str:
            self.fb.accounts.set_roles(name, [r for r, box in boxes.items() if box.value])
            return f"The roles of {user.name} are changed."

        await self._answer(dialog, error, save)

    async def _password(self, name: str) -> None:
        with self._dialog(f"A new password for {name}") as dialog:
            ui.label("Tell them the new password yourself; they are signed out of the browsers where they are signed "
                     "in now.").classes("fb-small")
            password = ui.input("New password (at least 8 characters)", password=True, password_toggle_button=True) \
                .props("outlined dense autocomplete=new-password").classes("w-full").mark("reset-password")
            again = ui.input("New password again", password=True).props("outlined dense autocomplete=new-password") \
                .classes("w-full").mark("reset-password-again")
            error = self._buttons(dialog, "Set the password", "save-password")

        async def save(_: Any) -> str:
            if password.value != again.value:
                raise _Refused("The two passwords are not the same. Type the new one twice.")
            ended = await asyncio.to_thread(self.fb.accounts.set_password, name, password.value or "")
            out = f" They were signed out of {ended} browser{'s' if ended != 1 else ''}." if ended else ""
            return f"The password of {name} is changed.{out}"

        await self._answer(dialog, error, save, refresh=False)

    async def _away(self, name: str) -> None:
        store = self.fb.approvals.store
        current = store.out_of_office().get(name) or {}
        others = [u.name for u in self.fb.accounts.list_users() if u.name != name]
        with self._dialog(f"{name} is away") as dialog:
            ui.label(f"While {name} is away, new approval tasks for them go to the person chosen here. Tasks they "
                     "have already stay theirs (they can hand them on from their inbox).").classes("fb-small")
            delegate = ui.select(others, value=current.get("delegate") if current.get("delegate") in others else None,
                                 label="Who receives their new tasks").props("outlined dense").classes("w-full") \
                .mark("delegate")
            until = ui.input("Last day away (optional)", value=_day(current.get("until"))) \
                .props("outlined dense type=date").classes("w-full").mark("away-until")
            error = self._buttons(dialog, "Save", "save-away", other=(f"{name} is back", "back") if current else None)

        async def save(answer: Any) -> str:
            if answer == "back":
                store.set_out_of_office(name, None)
                return f"{name} is back: new tasks go to them again."
            if not delegate.value:
                raise _Refused("Choose who receives their new tasks meanwhile.")
            back = _parse_day(until.value)
            store.set_out_of_office(name, delegate.value, back)
            return f"New tasks for {name} go to {delegate.value}" + (
                f" until {_day(back)}." if back else " until you say they are back.")

        await self._answer(dialog, error, save)

    async def _remove(self, name: str) -> None:
        with self._dialog(f"Remove {name}?") as dialog:
            ui.label(f"{name} can no longer sign in, and their API keys stop working. Their decisions stay on record. "
                     "This cannot be undone.").classes("text-sm")
            error = self._buttons(dialog, "Remove", "confirm-remove")

        async def remove(_: Any) -> str:
            self.fb.accounts.remove_user(name)
            self.fb.approvals.store.set_out_of_office(name, None)
            return f"{name} is removed."

        await self._answer(dialog, error, remove)


class _Refused(Exception):
    """What the person must change in a dialog before it can do its work, in words."""


def _done(dialog: ui.dialog) -> None:
    """Close a dialog and take it off the page (a page open all day would otherwise collect them)."""
    dialog.close()
    dialog.delete()


def _day(at: Any) -> str:
    return datetime.fromtimestamp(float(at)).strftime("%Y-%m-%d") if isinstance(at, int | float) else ""


def _parse_day(text: str | None) -> float | None:
    """The end of the day written (local time), or None for empty. Raises ValueError in words."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"{text!r} is not a date: write it as year-month-day, e.g. 2026-12-24") from None
    back = day.replace(hour=23, minute=59, second=59).timestamp()
    if back < datetime.now().timestamp():
        raise ValueError(f"{text} has passed already: choose a day from today on")
    return back
