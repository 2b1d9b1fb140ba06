"""The pages. Thin: each builds one page object per visit, which calls services and shows what comes back.

    /              flows: list, search, create, rename, duplicate, delete, import, export, active switch
    /flow/{id}     the editor: canvas, inspector, test runs, versions
    /runs          every run, live, with filters and retention settings
    /run/{id}      one run on a read-only canvas, each node's data in the inspector
    /credentials   credentials (secrets flows use) and REST API keys
    /connectors    APIs imported from OpenAPI documents: import, operations, re-import with changes, remove
    /tables        data tables: list, create, rename, delete
    /table/{id}    one table's rows in a grid: edit in place, filter, sort, page, CSV import and export
    /inbox         the approval tasks the signed-in person may decide
    /users         users and their roles, passwords, out-of-office delegates (admins)
    /login, /me, /account   signing in, what a user can do, their password (account_pages.py)

Each page declares who may open it (`access.require(Permission...)`); a test checks that every page does.
"""

from __future__ import annotations

from nicegui import app, ui
from starlette.responses import PlainTextResponse, Response

from ..api.downloads import download
from ..auth import Permission
from ..services import Flowboard
from ..store import NotFound
from .access import require, use_accounts
from .layout import frame

PRIMARY = "#1d5fbf"  # 5.9:1 on white


def register(fb: Flowboard) -> None:
    from . import account_pages
    from .connectors_page import ConnectorsPage
    from .credentials_page import CredentialsPage
    from .editor import Editor
    from .flows_page import FlowsPage
    from .inbox_page import InboxPage, open_count
    from .layout import BADGES
    from .run_page import RunPage
    from .runs_page import RunsPage
    from .tables_page import TablePage, TablesPage
    from .users_page import UsersPage

    BADGES["inbox"] = lambda principal: open_count(fb, principal)
    # Colours white text can sit on, and that read as text on white, at WCAG AA (4.5:1): tests/test_contrast_browser.py
    app.colors(primary=PRIMARY, positive="#15803d", negative="#b91c1c", info="#0369a1", warning="#b45309")

    @ui.page("/")
    @require(Permission.flows)
    def flows_page() -> None:
        FlowsPage(fb)

    @ui.page("/flow/{flow_id}")
    @require(Permission.flows)
    def editor_page(flow_id: str) -> None:
        if not fb.store.flow_exists(flow_id):
            return not_found(f"There is no flow {flow_id!r}. It may have been deleted.")
        Editor(fb, flow_id)

    @ui.page("/runs")
    @require(Permission.flows)
    def runs_page(flow: str | None = None, status: str | None = None, source: str | None = None,
                  since: str | None = None) -> None:
        RunsPage(fb, flow_id=flow, status=status, source=source, since=since)

    @ui.page("/credentials")
    @require(Permission.credentials)
    def credentials_page(connected: str | None = None) -> None:
        CredentialsPage(fb, connected=connected)

    @ui.page("/connectors")
    @require(Permission.flows)
    def connectors_page() -> None:
        ConnectorsPage(fb)

    @ui.page("/inbox")
    @require(Permission.inbox)
    def inbox_page(show: str = "open") -> None:
        InboxPage(fb, show)

    @ui.page("/users")
    @require(Permission.users)
    def users_page() -> None:
        UsersPage(fb)

    @ui.page("/tables")
    @require(Permission.tables)
    def tables_page() -> None:
        TablesPage(fb)

    @ui.page("/table/{table_id}")
    @require(Permission.tables)
    def table_page(table_id: str) -> None:
        from ..store.datatables import TableNotFound

        try:
            fb.tables.tables.get(table_id)
        except TableNotFound:
            return not_found(f"There is no data table {table_id!r}. It may have been deleted.")
        TablePage(fb, table_id)

    @ui.page("/run/{run_id}")
    @require(Permission.flows)
    def run_page(run_id: str) -> None:
        try:
            fb.store.get_run(run_id)
        except NotFound:
            return not_found(f"There is no run {run_id!r}. It may have been deleted.")
        RunPage(fb, run_id)

    @ui.page("/run/{run_id}/files/{file_id}")
    @require(Permission.flows)
    def run_file(run_id: str, file_id: str) -> Response:
        """A run's file as a download, for the data view's links (the API has the same at /api/v1/runs/...)."""
        try:
            ref, where = fb.file_of_run(run_id, file_id)
        except NotFound as exc:
            return PlainTextResponse(f"{exc}. It may have been deleted with its run.", 404)
        return download(ref, where)

    use_accounts(fb.accounts)
    account_pages.register(fb)


def not_found(message: str) -> None:
    frame("")
    with ui.column().classes("fb-page items-center gap-3 pt-16"):
        ui.icon("search_off", size="48px").classes("text-grey-5")
        ui.label(message).classes("fb-muted").mark("not-found")
        ui.link("Back to the flows", "/")
