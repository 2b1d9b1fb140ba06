"""The Tables pages: `/tables` lists the data tables (create, rename, delete); `/table/{id}` is one table's grid.

The grid is NiceGUI's AG Grid showing ONE page of rows at a time: sorting (header clicks), filtering (the filter bar,
in the same words as the Data table node) and paging all ask the database, so a table of 100,000 rows opens as fast
as one of 10. A cell edited in place is saved at once through the TableService (so table-change triggers see it); a
value that does not fit its column is refused with the reason and the cell goes back.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from nicegui import events, ui

from ..datatables import NO_VALUE, Column, ColumnType, Condition, Op, Sort, TableSchema, ValueInvalid, plain_errors
from ..services import Flowboard
from ..store.datatables import ChangeSource, TableError, TableInfo
from .layout import ago, frame

PAGE_SIZES = [50, 100, 500]
TYPE_LABELS = {ColumnType.text: "Text", ColumnType.number: "Number", ColumnType.boolean: "Yes / no",
               ColumnType.date: "Date", ColumnType.datetime: "Date and time", ColumnType.choice: "Choice",
               ColumnType.user: "User", ColumnType.json: "JSON data"}
GRID = ChangeSource(via="grid")


class TablesPage:
    """`/tables`: every data table with its columns and row count."""

    def __init__(self, fb: Flowboard):
        self.fb = fb
        frame("tables")
        with ui.column().classes("fb-page gap-4"):
            with ui.row().classes("w-full items-center"):
                ui.label("Data tables").classes("fb-h1")
                ui.space()
                ui.button("New table", icon="add", on_click=self.new_table).props("unelevated").mark("new-table")
            ui.label("Tables keep data that several flows share, such as employees and their leave balances. Flows "
                     "read and change them with the Data table node, and a Table change trigger starts a flow when "
                     "rows change.").classes("fb-muted")
            self.list = ui.column().classes("w-full gap-2")
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        tables = self.fb.tables.tables.list_tables()
        with self.list:
            if not tables:
                ui.label("No tables yet. Press New table to make the first one.").classes("fb-muted") \
                    .mark("no-tables")
            for info in tables:
                with ui.row().classes("fb-row w-full items-center gap-3").mark(f"table:{info.name}"):
                    ui.icon("table_chart", size="22px").classes("text-grey-7")
                    with ui.column().classes("gap-0"):
                        ui.link(info.name, f"/table/{info.id}").classes("fb-name")
                        columns = ", ".join(c.name for c in info.schema.columns) or "no columns yet"
                        rows = self.fb.tables.tables.count(info.id)
                        ui.label(f"{rows:,} rows · {columns} · changed {ago(info.updated)}").classes("fb-small")
                    ui.space()
                    ui.button(icon="edit", on_click=lambda i=info: self.rename(i)).props(
                        'flat round aria-label="Rename the table"').tooltip("Rename")
                    ui.button(icon="delete", on_click=lambda i=info: self.delete(i)).props(
                        'flat round color=negative aria-label="Delete the table"').tooltip("Delete")

    def new_table(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-[640px] max-w-full gap-3"):
            ui.label("New table").classes("text-lg font-semibold")
            name = ui.input("Table name", placeholder="e.g. Employees").classes("w-full").mark("table-name")
            ui.label("Columns: you can add, rename and change them later too.").classes("fb-muted")
            editor = ColumnsEditor([Column(name="name")])
            key = ui.select({"": "(none)"}, value="", label="Key column: the column that tells rows apart "
                            "(optional; needed to add-or-change rows by it)").classes("w-full")
            editor.on_change = lambda: _set_options(key, {"": "(none)", **{n: n for n in editor.names() if n}})
            editor.on_change()
            error = ui.label().classes("text-negative text-sm")

            async def create() -> None:
                try:
                    schema = TableSchema(name=name.value or "", columns=editor.columns(), key=key.value or None)
                    info = await self.fb.tables.call("create", schema)
                except (ValueError, TableError) as exc:
                    error.text = _words(exc)
                    return
                dialog.close()
                ui.navigate.to(f"/table/{info.id}")

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Create", on_click=create).props("unelevated").mark("create-table")
        dialog.open()

    def rename(self, info: TableInfo) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-96 gap-3"):
            ui.label(f"Rename {info.name}").classes("text-lg font-semibold")
            name = ui.input("New name", value=info.name).classes("w-full")
            error = ui.label().classes("text-negative text-sm")

            async def save() -> None:
                try:
                    await self.fb.tables.call("rename", info.id, name.value or "")
                except TableError as exc:
                    error.text = str(exc)
                    return
                dialog.close()
                self.refresh()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Rename", on_click=save).props("unelevated")
        dialog.open()

    def delete(self, info: TableInfo) -> None:
        rows = self.fb.tables.tables.count(info.id)
        with ui.dialog() as dialog, ui.card().classes("w-96 gap-3"):
            ui.label(f"Delete {info.name}?").classes("text-lg font-semibold")
            ui.label(f"Its {rows:,} rows are deleted with it, and flows that use it will stop with an error. This "
                     "cannot be undone.").classes("fb-muted")

            async def go() -> None:
                await self.fb.tables.call("drop", info.id)
                dialog.close()
                ui.notify(f"{info.name} was deleted")
                self.refresh()

            with ui.row().classes("w-full justify-end"):
                ui.button("Keep it", on_click=dialog.close).props("flat")
                ui.button("Delete", on_click=go).props("unelevated color=negative").mark("confirm-delete")
        dialog.open()


FAST_HELP = ("Keeps an index of this column, so sorting the grid by it and finding rows by it stay fast on large "
             "tables (each change of a row then costs a little more)")


class ColumnsEditor:
    """Rows of (name, type, required, unique, choices) for a new table."""

    def __init__(self, columns: list[Column]):
        self.rows: list[dict[str, Any]] = []
        self.on_change: Any = None
        self.box = ui.column().classes("w-full gap-1")
        for column in columns:
            self.add(column)
        ui.button("Add a column", icon="add", on_click=lambda: self.add(Column(name=f"column {len(self.rows) + 1}"))
                  ).props("flat dense")

    def add(self, column: Column) -> None:
        with self.box, ui.row().classes("w-full items-center gap-2 no-wrap") as line:
            row: dict[str, Any] = {"line": line}
            row["name"] = ui.input("Column name", value=column.name,
                                   on_change=lambda: self.on_change and self.on_change()).classes("w-40")
            row["type"] = ui.select({t.value: TYPE_LABELS[t] for t in ColumnType}, value=column.type.value,
                                    label="Holds").classes("w-36")
            row["choices"] = ui.input("Choices (comma between)", value=", ".join(column.choices)).classes("w-44")
            row["choices"].bind_visibility_from(row["type"], "value", value="choice")
            row["required"] = ui.checkbox("Required", value=column.required)
            row["remove"] = ui.button(icon="close", on_click=lambda r=row: self.remove(r)).props(
                'flat round dense aria-label="Remove this column"')
        self.rows.append(row)
        if self.on_change:
            self.on_change()

    def remove(self, row: dict[str, Any]) -> None:
        self.rows.remove(row)
        row["line"].delete()
        if self.on_change:
            self.on_change()

    def names(self) -> list[str]:
        return [(r["name"].value or "").strip() for r in self.rows]

    def columns(self) -> list[Column]:
        return [Column(name=r["name"].value or "", type=ColumnType(r["type"].value), required=r["required"].value,
                       choices=[c.strip() for c in (r["choices"].value or "").split(",") if c.strip()])
                for r in self.rows]


class TablePage:
    """`/table/{id}`: one table's rows in a grid, a page at a time."""

    def __init__(self, fb: Flowboard, table_id: str):
        self.fb = fb
        self.service = fb.tables
        self.info = fb.tables.tables.get(table_id)
        self.conditions: list[Condition] = []
        self.sort: list[Sort] = []
        self.page = 1
        self.page_size = 100
        self.total = 0
        frame("tables")
        with ui.column().classes("fb-page gap-3").style("max-width: none"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.link("Tables", "/tables").classes("fb-muted")
                ui.label("/").classes("fb-muted")
                self.title = ui.label(self.info.name).classes("fb-h1").mark("table-title")
                ui.space()
                ui.button("Add row", icon="add", on_click=self.add_row).props("unelevated").mark("add-row")
                ui.button("Delete selected", icon="delete", on_click=self.delete_selected).props(
                    "outline color=negative").mark("delete-rows")
                ui.button("Columns", icon="view_column", on_click=self.edit_columns).props("outline")
                ui.button("Import CSV", icon="upload", on_click=self.import_csv).props("outline").mark("import")
                ui.button("Export CSV", icon="download", on_click=self.export_csv).props("outline").mark("export")
            self.filter_bar = ui.row().classes("w-full items-center gap-2")
            self.grid = ui.aggrid(self._options(), auto_size_columns=False).classes("w-full").style(
                "height: calc(100vh - 260px); min-height: 320px").mark("grid")
            self.grid.on("cellValueChanged", self.cell_changed)
            self.grid.on("sortChanged", self.sort_changed)
            with ui.row().classes("w-full items-center gap-3"):
                self.count = ui.label().classes("fb-muted").mark("row-count")
                ui.space()
                ui.select(PAGE_SIZES, value=self.page_size, label="Rows per page",
                          on_change=lambda e: self.set_page_size(e.value)).classes("w-32")
                self.pager = ui.pagination(1, 1, direction_links=True, on_change=lambda e: self.go(e.value)) \
                    .props("max-pages=7 boundary-numbers").mark("pager")
        self.draw_filters()
        self.load()

    # -- the grid ---------------------------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        columns: list[dict[str, Any]] = [{"field": "id", "headerName": "#", "editable": False, "width": 90,
                                          "pinned": "left", "checkboxSelection": True,
                                          "headerCheckboxSelection": True}]
        for column in self.info.schema.columns:
            spec: dict[str, Any] = {"field": column.name, "headerName": column.name, "editable": True,
                                    "headerTooltip": f"{column.name}: {TYPE_LABELS[column.type].lower()}"
                                    + (", required" if column.required else "") + (", unique" if column.unique
                                                                                  else "")}
            if column.type is ColumnType.number:
                spec["cellDataType"] = "number"
            elif column.type is ColumnType.boolean:
                spec["cellDataType"] = "boolean"
            elif column.type is ColumnType.date:
                spec["cellDataType"] = "dateString"
            elif column.type is ColumnType.choice:
                spec.update(cellDataType="text", cellEditor="agSelectCellEditor",
                            cellEditorParams={"values": ["", *column.choices]})
            elif column.type is ColumnType.json:
                spec.update(cellDataType="text", cellEditor="agLargeTextCellEditor", cellEditorPopup=True)
            else:
                spec["cellDataType"] = "text"
            columns.append(spec)
        return {"columnDefs": columns, "rowData": [], "rowSelection": "multiple", "suppressRowClickSelection": True,
                "defaultColDef": {"sortable": True, "resizable": True, "minWidth": 110, "flex": 1,
                                  ":comparator": "() => 0"},  # the database sorts; the grid keeps its order
                ":getRowId": "params => String(params.data.id)", "stopEditingWhenCellsLoseFocus": True,
                "undoRedoCellEditing": False, "animateRows": False}

    def load(self, count: bool = True) -> None:
        """Show the current page. `count=False` when only the page changed (the total is known)."""
        tables = self.fb.tables.tables
        try:
            if count:
                self.total = tables.count(self.info.id, self.conditions)
            pages = max(1, math.ceil(self.total / self.page_size))
            self.page = min(self.page, pages)
            rows = tables.find(self.info.id, self.conditions, self.sort, limit=self.page_size,
                               offset=(self.page - 1) * self.page_size)
        except TableError as exc:
            ui.notify(str(exc), type="warning")
            return
        self.grid.run_grid_method("setGridOption", "rowData", [self._shown(r) for r in rows])
        self.pager.max = pages
        self.pager.value = self.page
        first = (self.page - 1) * self.page_size + 1 if self.total else 0
        last = min(self.total, self.page * self.page_size)
        filtered = " matching the filters" if self.conditions else ""
        self.count.text = f"Rows {first:,} to {last:,} of {self.total:,}{filtered}"

    def _shown(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for column in self.info.schema.columns:
            if column.type is ColumnType.json and out.get(column.name) is not None:
                out[column.name] = orjson.dumps(out[column.name]).decode()
        return out

    def go(self, page: int) -> None:
        if page != self.page:
            self.page = page
            self.load(count=False)

    def set_page_size(self, size: int) -> None:
        self.page_size = size
        self.page = 1
        self.load()

    async def sort_changed(self) -> None:
        state = await self.grid.run_grid_method("getColumnState")
        sorted_columns = sorted((c for c in state or [] if c.get("sort")), key=lambda c: c.get("sortIndex") or 0)
        self.sort = [Sort(column=c["colId"], descending=c["sort"] == "desc") for c in sorted_columns]
        self.page = 1  # a new order starts at its top
        self.load()

    async def cell_changed(self, e: events.GenericEventArguments) -> None:
        args = e.args
        row_id, column, value = args["data"]["id"], args["colId"], args.get("newValue")
        if args.get("oldValue") == value:
            return
        try:
            await self.service.call("update_row", self.info.id, row_id, {column: value}, GRID)
        except (TableError, ValueInvalid) as exc:
            ui.notify(f"Not saved: {exc}", type="warning", multi_line=True)
            self.load()  # the cell shows what is stored again

    # -- filters ----------------------------------------------------------------------------------------------------

    def draw_filters(self) -> None:
        self.filter_bar.clear()
        names = [c.name for c in self.info.schema.columns]
        with self.filter_bar:
            ui.icon("filter_alt").classes("text-grey-7")
            for index, cond in enumerate(self.conditions):
                text = f"{cond.column} {cond.op.value}" + ("" if cond.op in NO_VALUE else f" {cond.value}")
                ui.chip(text, removable=True, on_value_change=lambda _, i=index: self.drop_filter(i)).props(
                    "outline").mark("filter-chip")
            column = ui.select(names, value=names[0] if names else None, label="Column").classes("w-36") \
                .mark("filter-column")
            op = ui.select({o.value: o.value for o in Op}, value=Op.eq.value, label="Condition").classes("w-52") \
                .mark("filter-op")
            value = ui.input("Value").classes("w-40").mark("filter-value")
            value.bind_visibility_from(op, "value", backward=lambda v: Op(v) not in NO_VALUE)

            def add() -> None:
                if not column.value:
                    return
                cond = Condition(column=column.value, op=Op(op.value), value=value.value)
                try:
                    self.fb.tables.tables.count(self.info.id, [*self.conditions, cond])
                except TableError as exc:
                    ui.notify(str(exc), type="warning")
                    return
                self.conditions.append(cond)
                self.page = 1
                self.draw_filters()
                self.load()

            value.on("keydown.enter", add)
            ui.button("Filter", icon="add", on_click=add).props("flat").mark("add-filter")

    def drop_filter(self, index: int) -> None:
        del self.conditions[index]
        self.page = 1
        self.draw_filters()
        self.load()

    # -- rows -------------------------------------------------------------------------------------------------------

    def add_row(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-[480px] max-w-full gap-2"):
            ui.label(f"New row in {self.info.name}").classes("text-lg font-semibold")
            fields = {c.name: _field(c) for c in self.info.schema.columns}
            error = ui.label().classes("text-negative text-sm").mark("row-error")

            async def save() -> None:
                values = {name: _value(f) for name, f in fields.items()}
                try:
                    await self.service.call("insert", self.info.id, [values], GRID)
                except (TableError, ValueInvalid) as exc:
                    error.text = str(exc)
                    return
                dialog.close()
                self.load()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Add", on_click=save).props("unelevated").mark("save-row")
        dialog.open()

    async def delete_selected(self) -> None:
        rows = await self.grid.get_selected_rows()
        if not rows:
            ui.notify("Tick the rows to delete first (the boxes on the left).")
            return
        await self.service.call("delete_rows", self.info.id, [r["id"] for r in rows], GRID)
        ui.notify(f"{len(rows)} row{'s' if len(rows) != 1 else ''} deleted")
        self.load()

    def export_csv(self) -> None:
        text = self.fb.tables.tables.export_csv(self.info.id, self.conditions, self.sort)
        ui.download.content(text.encode("utf-8"), f"{self.info.name}.csv", "text/csv")

    # -- columns ----------------------------------------------------------------------------------------------------

    def edit_columns(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-[720px] max-w-full gap-2"):
            ui.label(f"Columns of {self.info.name}").classes("text-lg font-semibold")
            ui.label("Changing a column's type checks every row first: if one cannot be converted, nothing changes "
                     "and you see which rows to fix. Tick Fast sorting for a column you often sort or find by in a "
                     "big table.").classes("fb-muted")
            for column in self.info.schema.columns:
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    name = ui.input("Name", value=column.name).classes("w-44")
                    kind = ui.select({t.value: TYPE_LABELS[t] for t in ColumnType}, value=column.type.value,
                                     label="Holds").classes("w-40")
                    choices = ui.input("Choices", value=", ".join(column.choices)).classes("w-40")
                    choices.bind_visibility_from(kind, "value", value="choice")
                    fast = ui.checkbox("Fast sorting", value=column.indexed or column.unique).tooltip(
                        FAST_HELP).props(f'aria-label="Fast sorting of {column.name}"')
                    if column.unique:  # a unique column has its index already
                        fast.disable()
                    ui.button("Save", on_click=lambda c=column, n=name, k=kind, ch=choices, f=fast: self.change_column(
                        dialog, c, n.value, k.value, ch.value, f.value)).props("flat dense")
                    ui.button(icon="delete", on_click=lambda c=column: self.drop_column(dialog, c)).props(
                        'flat round dense color=negative aria-label="Remove this column"').tooltip("Remove")
            ui.separator()
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                new_name = ui.input("New column").classes("w-44")
                new_kind = ui.select({t.value: TYPE_LABELS[t] for t in ColumnType}, value="text",
                                     label="Holds").classes("w-40")
                new_choices = ui.input("Choices").classes("w-40")
                new_choices.bind_visibility_from(new_kind, "value", value="choice")
                ui.button("Add", on_click=lambda: self.add_column(dialog, new_name.value, new_kind.value,
                                                                  new_choices.value)).props("unelevated dense")
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    async def _schema_change(self, dialog: ui.dialog, method: str, *args: Any) -> None:
        try:
            self.info = await self.service.call(method, self.info.id, *args)
        except (TableError, ValueError) as exc:
            ui.notify(_words(exc), type="warning", multi_line=True, timeout=10000)
            return
        dialog.close()
        self.grid.options.update(self._options())
        self.grid.update()
        self.draw_filters()
        self.load()

    async def change_column(self, dialog: ui.dialog, column: Column, name: str, kind: str, choices: str,
                            fast: bool | None = None) -> None:
        try:
            new = column.model_copy(update={"name": name, "type": ColumnType(kind),
                                            "choices": [c.strip() for c in choices.split(",") if c.strip()],
                                            "indexed": column.indexed if fast is None or column.unique else fast})
            new = Column.model_validate(new.model_dump())
        except ValueError as exc:
            ui.notify(_words(exc), type="warning")
            return
        await self._schema_change(dialog, "change_column", column.name, new)

    async def add_column(self, dialog: ui.dialog, name: str, kind: str, choices: str) -> None:
        try:
            column = Column(name=name or "", type=ColumnType(kind),
                            choices=[c.strip() for c in (choices or "").split(",") if c.strip()])
        except ValueError as exc:
            ui.notify(_words(exc), type="warning")
            return
        await self._schema_change(dialog, "add_column", column)

    async def drop_column(self, dialog: ui.dialog, column: Column) -> None:
        await self._schema_change(dialog, "drop_column", column.name)

    # -- CSV import -------------------------------------------------------------------------------------------------

    def import_csv(self) -> None:
        CsvImport(self)


class CsvImport:
    """Upload or paste CSV, map its columns, check every line (nothing written), then import all or nothing."""

    def __init__(self, page: TablePage):
        self.page = page
        self.text = ""
        with ui.dialog() as self.dialog, ui.card().classes("w-[760px] max-w-full gap-2"):
            ui.label(f"Import CSV into {page.info.name}").classes("text-lg font-semibold")
            ui.label("The first line names the columns. Nothing is written until every line fits.") \
                .classes("fb-muted")
            ui.upload(label="Choose a CSV file", auto_upload=True, on_upload=self.uploaded).props(
                'accept=".csv,text/csv"').classes("w-full")
            self.paste = ui.textarea("… or paste it here", on_change=lambda e: self.read(e.value or "")).classes(
                "w-full").props("rows=4").mark("csv-text")
            self.mapping_box = ui.column().classes("w-full gap-1")
            self.mode = ui.radio({"insert": "Add every line as a new row",
                                  "upsert": "Add new rows and change rows with the same key value"},
                                 value="insert").props("dense")
            self.report = ui.column().classes("w-full gap-1").mark("import-report")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Check", on_click=lambda: self.run(dry_run=True)).props("outline").mark("check-import")
                ui.button("Import", on_click=lambda: self.run(dry_run=False)).props("unelevated").mark("do-import")
        self.selects: dict[str, ui.select] = {}
        self.dialog.open()

    async def uploaded(self, e: events.UploadEventArguments) -> None:
        data = await e.file.read()
        try:
            self.read(data.decode("utf-8"))
        except UnicodeDecodeError:
            ui.notify("The file is not UTF-8 text; save it as CSV UTF-8 and choose it again.", type="warning")

    def read(self, text: str) -> None:
        import csv
        import io

        self.text = text
        self.mapping_box.clear()
        self.selects = {}
        try:
            reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
            header = next(reader, [])
            preview = [row for _, row in zip(range(3), reader, strict=False)]
        except csv.Error:
            return
        names = [c.name for c in self.page.info.schema.columns]
        with self.mapping_box:
            if header:
                ui.label("Which column does each CSV column go to?").classes("text-sm font-medium")
            for index, title in enumerate(header):
                sample = ", ".join(r[index] for r in preview if index < len(r))[:60]
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    ui.label(title).classes("w-40 font-medium")
                    ui.label(f"e.g. {sample}" if sample else "").classes("fb-small w-64")
                    self.selects[title] = ui.select({"": "(leave out)", **{n: n for n in names}},
                                                    value=title if title in names else "").classes("w-48")

    async def run(self, dry_run: bool) -> None:
        if not self.text.strip():
            ui.notify("Choose a CSV file or paste its text first.")
            return
        mapping = {title: select.value for title, select in self.selects.items()}
        report = await self.page.service.call("import_csv", self.page.info.id, self.text, mapping=mapping,
                                              dry_run=dry_run, mode=self.mode.value, source=ChangeSource(via="import"))
        self.report.clear()
        with self.report:
            if report.problems:
                many = len(report.problems) != 1
                ui.label(f"{len(report.problems)} line{'s' if many else ''} cannot be imported, so nothing was "
                         f"written. Fix {'them' if many else 'it'} and check again:").classes("text-negative text-sm")
                with ui.element("ul").classes("fb-problems"):
                    for problem in report.problems[:50]:
                        ui.html(f"<li>{_escape(problem)}</li>", sanitize=False)
            elif dry_run:
                ui.label(f"All {report.rows:,} lines fit: press Import to add them.").classes("text-positive text-sm")
        if report.committed:
            self.dialog.close()
            ui.notify(f"Imported {report.rows:,} lines ({report.inserted:,} new rows, {report.updated:,} changed)")
            self.page.load()


def _field(column: Column) -> Any:
    label = column.name + (" (required)" if column.required else "")
    if column.type is ColumnType.boolean:
        return ui.checkbox(label, value=bool(column.default))
    if column.type is ColumnType.choice:
        return ui.select({"": "(empty)", **{c: c for c in column.choices}}, value=column.default or "",
                         label=label).classes("w-full")
    if column.type is ColumnType.number:
        return ui.number(label, value=column.default).classes("w-full")
    if column.type is ColumnType.date:
        return ui.input(label, value=column.default or "", placeholder="2026-12-24").props("type=date") \
            .classes("w-full")
    if column.type is ColumnType.json:
        return ui.textarea(label, value="" if column.default is None else orjson.dumps(column.default).decode()) \
            .classes("w-full")
    return ui.input(label, value=column.default or "").classes("w-full")


def _value(field: Any) -> Any:
    value = field.value
    return None if value == "" else value


def _set_options(select: ui.select, options: dict[str, str]) -> None:
    select.options = options
    if select.value not in options:
        select.value = ""
    select.update()


def _words(exc: Exception) -> str:
    from pydantic import ValidationError

    return plain_errors(exc) if isinstance(exc, ValidationError) else str(exc)


def _escape(text: str) -> str:
    import html

    return html.escape(text)
