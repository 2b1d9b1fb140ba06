"""The credentials page (`/credentials`): the secrets flows use (encrypted at rest, never shown again once saved), and
the keys of the REST API (shown once, when made)."""

from __future__ import annotations

import contextlib
from typing import Any

from nicegui import ui

from .. import credential_types
from ..oauth import OAuth2Failed
from ..services import Flowboard
from ..store import CredentialInfo, CredentialInUse, NotFound, SecretKeyError
from .access import page_principal
from .layout import ago, frame


class CredentialsPage:
    def __init__(self, fb: Flowboard, connected: str | None = None) -> None:
        self.fb = fb
        self.tested: dict[str, tuple[bool, str]] = {}  # the last "Test connection" of each credential on this page
        frame("credentials")
        with ui.column().classes("fb-page gap-4") as self.root:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Credentials").classes("fb-h1")
                ui.space()
                ui.button("New credential", icon="add", on_click=lambda: self._edit(None)) \
                    .props("unelevated no-caps").mark("new-credential")
            ui.label("Secrets that flows use by name: API keys, sign-ins, databases, mail servers. They are encrypted "
                     "in the database and never shown again once saved.").classes("fb-muted")
            self.credentials = ui.column().classes("w-full gap-1").mark("credentials")
            with ui.row().classes("w-full items-center gap-3 pt-6"):
                ui.label("API keys").classes("fb-h1")
                ui.space()
                ui.button("New API key", icon="key", on_click=self._create_key) \
                    .props("unelevated no-caps").mark("new-api-key")
            ui.label("Keys for the REST API (/api/v1): send one in the X-API-Key header or as Authorization: "
                     "Bearer. Only a hash of each key is kept.").classes("fb-muted")
            self.keys = ui.column().classes("w-full gap-1").mark("api-keys")
        self.refresh()
        if connected:
            ui.notify(f"{connected} is connected: flows can use it now", type="positive")

    def refresh(self) -> None:
        self.credentials.clear()
        with self.credentials:
            items = self.fb.store.list_credentials()
            if not items:
                ui.label("No credentials yet.").classes("fb-muted py-4").mark("no-credentials")
            for info in items:
                self._credential_row(info)
        self.keys.clear()
        with self.keys:
            keys = self.fb.store.list_api_keys()
            if not keys:
                ui.label("No API keys yet.").classes("fb-muted py-4").mark("no-api-keys")
            for key in keys:
                with ui.row().classes("fb-row w-full items-center no-wrap gap-4 py-2").mark(f"api-key:{key.id}"):
                    ui.icon("key", size="20px").classes("text-grey-6")
                    ui.label(key.name).classes("font-semibold grow")
                    ui.label(f"{key.prefix}…").classes("fb-mono w-28")
                    ui.label(f"created {ago(key.created)}").classes("fb-small w-36 text-right")
                    ui.label(f"used {ago(key.last_used)}" if key.last_used else "never used") \
                        .classes("fb-small w-36 text-right")
                    ui.button(icon="block", on_click=lambda kid=key.id, name=key.name: self._revoke(kid, name)) \
                        .props("flat round dense color=negative").mark(f"revoke:{key.id}").tooltip("Revoke")

    def _credential_row(self, info: CredentialInfo) -> None:
        declaration = credential_types.get(info.type)
        name = info.name
        with ui.row().classes("fb-row w-full items-center no-wrap gap-4 py-2").mark(f"credential:{name}"):
            ui.icon("error" if info.problem else "lock", size="20px") \
                .classes("text-negative" if info.problem else "text-grey-6")
            with ui.column().classes("grow gap-0"):
                ui.label(name).classes("font-semibold")
                if info.problem:
                    ui.label(info.problem).classes("text-negative text-sm").mark(f"credential-problem:{name}")
                tested = self.tested.get(name)
                if tested is not None:
                    ui.label(tested[1]).classes(("text-positive" if tested[0] else "text-negative") + " text-sm") \
                        .mark(f"credential-tested:{name}")
            ui.label(declaration.label if declaration else info.type).classes("fb-small w-60") \
                .mark(f"credential-type:{name}")
            ui.label(f"updated {ago(info.updated)}").classes("fb-small w-32 text-right whitespace-nowrap")
            if declaration is not None and declaration.oauth2 == "code":
                ui.button("Connect", icon="login", on_click=lambda: self._connect(name)) \
                    .props("flat dense no-caps").classes("shrink-0 whitespace-nowrap") \
                    .mark(f"connect-credential:{name}") \
                    .tooltip("Sign in at the provider, so flows can use this account")
            if declaration is not None and (declaration.test is not None or declaration.oauth2):
                ui.button(icon="network_check", on_click=lambda: self._test(name)) \
                    .props("flat round dense").mark(f"test-credential:{name}").tooltip("Test connection")
            ui.button(icon="edit", on_click=lambda: self._edit(name)) \
                .props("flat round dense").mark(f"edit-credential:{name}").tooltip("Change")
            ui.button(icon="delete_outline", on_click=lambda: self._delete(name)) \
                .props("flat round dense").mark(f"delete-credential:{name}").tooltip("Delete")

    # -- credentials --------------------------------------------------------------------------------------------------

    async def _edit(self, name: str | None) -> None:
        store = self.fb.store
        types = credential_types.all_types()
        stored: dict[str, Any] | None = None
        old_type = "api_key"
        if name is not None:
            old_type = next((c.type for c in store.list_credentials() if c.name == name), old_type)
            try:
                stored = store.get_credential(name)
            except SecretKeyError:
                stored = None
        state: dict[str, Any] = {"type": old_type if old_type in types else "secret"}
        inputs: dict[str, Any] = {}
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[520px] gap-3"):
            ui.label("New credential" if name is None else f"Change {name}").classes("text-lg font-semibold")
            name_input = ui.input("Name (flows use it by this name)", value=name or "").props("outlined dense") \
                .classes("w-full").mark("credential-name")
            if name is not None:
                name_input.props("readonly")
            ui.select({key: t.label for key, t in types.items()}, value=state["type"], label="Type",
                      on_change=lambda e: (state.update(type=e.value), fields.refresh())) \
                .props("outlined dense").classes("w-full").mark("credential-type")

            @ui.refreshable
            def fields() -> None:
                inputs.clear()
                declaration = types[state["type"]]
                if declaration.help:
                    ui.label(declaration.help).classes("fb-muted text-sm").mark("credential-help")
                if declaration.oauth2 == "code":
                    with ui.row().classes("w-full items-center no-wrap gap-2 bg-grey-2 p-2 rounded"):
                        ui.label("Redirect URL:").classes("text-sm")
                        ui.label(self.fb.oauth.redirect_uri).classes("fb-mono text-sm break-all") \
                            .mark("credential-redirect-url")
                same = name is not None and state["type"] == old_type
                for f in declaration.fields:
                    shown = "" if f.secret or not same or stored is None else str(stored.get(f.key, ""))
                    label = f.label if not f.optional or "optional" in f.label or "empty" in f.label \
                        else f"{f.label} (optional)"
                    if f.choices:
                        value = shown or f.default or None
                        field: Any = ui.select(dict(f.choices), value=value, label=label, clearable=f.optional) \
                            .props("outlined dense").classes("w-full").mark(f"credential-field:{f.key}")
                    else:
                        value = shown or ("" if same else f.default)
                        if "certificate" in f.key:
                            field = ui.textarea(label, value=value)
                        else:
                            field = ui.input(label, value=value, password=f.secret, password_toggle_button=f.secret)
                        field.props("outlined dense").classes("w-full").mark(f"credential-field:{f.key}")
                        if f.secret and same and stored is not None and stored.get(f.key):
                            field.props('placeholder="unchanged (leave blank to keep)"')
                    inputs[f.key] = field

            fields()
            error = ui.label("").classes("text-negative text-sm").mark("credential-error")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button("Save", on_click=lambda: dialog.submit(True)).props("unelevated no-caps") \
                    .mark("credential-save")
        while await dialog:
            new_name = (name_input.value or "").strip()
            if not new_name:
                error.text = "Enter a name: flows use the credential by its name"
                continue
            if name is None and any(c.name == new_name for c in store.list_credentials()):
                error.text = f"A credential called {new_name!r} exists already: choose another name"
                continue
            entered = {key: str(field.value or "") for key, field in inputs.items()}
            try:
                data = credential_types.credential_data(state["type"], entered,
                                                        stored if state["type"] == old_type else None)
            except ValueError as exc:
                error.text = str(exc)
                continue
            store.set_credential(new_name, state["type"], data)
            self.tested.pop(new_name, None)
            ui.notify(f"Saved {new_name}", type="positive")
            self.refresh()
            break
        dialog.delete()

    async def _test(self, name: str) -> None:
        try:
            self.tested[name] = (True, await self.fb.test_credential(name))
        except (ValueError, NotFound, SecretKeyError) as exc:
            text = str(exc)
            self.tested[name] = (False, text[:1].upper() + text[1:])
        self.refresh()

    def _connect(self, name: str) -> None:
        try:
            url = self.fb.oauth.start(name)
        except OAuth2Failed as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.navigate.to(url)

    async def _delete(self, name: str) -> None:
        users = self.fb.store.credential_users(name)
        if users:
            with self.root, ui.dialog() as dialog, ui.card().classes("w-[460px] gap-2").mark("credential-in-use"):
                ui.label(f"{name} cannot be deleted: these flows use it").classes("font-semibold")
                for flow in users:
                    ui.label(f"• {flow}").mark(f"credential-user:{flow}")
                ui.label("Change them to use another credential (or delete them) first.").classes("fb-muted")
                with ui.row().classes("w-full justify-end"):
                    ui.button("OK", on_click=lambda: dialog.submit(True)).props("unelevated no-caps")
            await dialog
            dialog.delete()
            return
        if not await self._confirm(f"Delete the credential {name!r}? No flow uses it. This cannot be undone.",
                                   "Delete", "confirm-delete"):
            return
        try:
            self.fb.store.delete_credential(name)
        except NotFound:
            pass
        except CredentialInUse as exc:  # a flow started using it meanwhile
            ui.notify(str(exc), type="negative")
        self.refresh()

    # -- API keys -----------------------------------------------------------------------------------------------------

    async def _create_key(self) -> None:
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[440px] gap-3"):
            ui.label("New API key").classes("text-lg font-semibold")
            field = ui.input("Name", placeholder="who or what will use it, e.g. backup script") \
                .props("outlined dense autofocus").classes("w-full").mark("api-key-name")
            error = ui.label("").classes("text-negative text-sm")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button("Create", on_click=lambda: dialog.submit(True)).props("unelevated no-caps") \
                    .mark("api-key-create")
        key = None
        while await dialog:
            try:
                _info, key = self.fb.store.create_api_key(field.value or "", user_id=_owner())
            except ValueError as exc:
                error.text = str(exc)[:1].upper() + str(exc)[1:]
                continue
            break
        dialog.delete()
        if key is None:
            return
        self.refresh()
        with self.root, ui.dialog().props("persistent") as shown, ui.card().classes("w-[560px] gap-3"):
            ui.label("Your new API key").classes("text-lg font-semibold")
            ui.label("Copy it now: it cannot be shown again. Flowboard keeps only its hash.") \
                .classes("text-sm bg-amber-50 p-2 rounded").mark("api-key-warning")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(key).classes("fb-mono grow break-all bg-grey-2 p-2 rounded").mark("api-key-value")
                ui.button(icon="content_copy", on_click=lambda: self._copy(key)) \
                    .props("flat round dense").mark("api-key-copy").tooltip("Copy")
            with ui.row().classes("w-full justify-end"):
                ui.button("Done", on_click=lambda: shown.submit(True)).props("unelevated no-caps") \
                    .mark("api-key-done")
        await shown
        shown.delete()

    @staticmethod
    def _copy(key: str) -> None:
        ui.clipboard.write(key)
        ui.notify("Copied")

    async def _revoke(self, key_id: str, name: str) -> None:
        if not await self._confirm(f"Revoke the API key {name!r}? Calls made with it are refused from now on. This "
                                   "cannot be undone.", "Revoke", "confirm-revoke"):
            return
        with contextlib.suppress(NotFound):
            self.fb.store.revoke_api_key(key_id)
        self.refresh()

    async def _confirm(self, message: str, action: str, marker: str) -> bool:
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[440px]"):
            ui.label(message)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button(action, on_click=lambda: dialog.submit(True)).props("color=negative no-caps unelevated") \
                    .mark(marker)
        confirmed = bool(await dialog)
        dialog.delete()
        return confirmed


def _owner() -> str | None:
    """A key made here acts for the signed-in user, with their roles (None in single-user mode: an admin key)."""
    principal = page_principal()
    return principal.user_id if principal is not None else None
