"""The inspector's generated form, driven in-process by NiceGUI's simulated `user`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction
from pydantic import BaseModel, Field, ValidationError

from flowboard.expressions import compile_string, evaluate
from flowboard.registry import Registry, default_registry
from flowboard.ui.forms import ConfigForm, errors_from_validation
from flowboard.ui.forms.schema import NoPreview

# NiceGUI's `user` fixture is not auto-loaded; loading it here keeps it out of the other test modules.
pytest_plugins = ["nicegui.testing.user_plugin"]


@pytest.fixture(autouse=True)
def _no_main_file(request: pytest.FixtureRequest) -> None:
    """The pages are defined by each test, so the user fixture must not run a main file (its default is main.py).
    Added here, not at import time: the marker is only known once the plugin above is registered."""
    request.node.add_marker(pytest.mark.nicegui_main_file(""))


class Address(BaseModel):
    street: str = Field("", description="Street and number.")
    city: str = Field("Berlin", description="City.")


class Email(BaseModel):
    type: Literal["email"] = Field(description="Send an email.")
    to: str = Field(description="Recipient.")


class Sms(BaseModel):
    type: Literal["sms"] = Field(description="Send a text message.")
    number: str = Field(min_length=5, description="Phone number.")
    flash: bool = False


class Line(BaseModel):
    sku: str = Field(min_length=1, description="Article number.")
    qty: int = Field(1, ge=1, description="How many.")


class Rich(BaseModel):
    name: str = Field(description="Who to greet.")
    count: int = Field(3, ge=1, le=10, description="How many times.")
    ratio: float = Field(0.5, description="A share.")
    active: bool = Field(True, description="Whether it runs.")
    color: Literal["red", "green", "blue"] = Field("red", description="A color.")
    tags: list[str] = Field(default_factory=list, description="Labels.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    address: Address = Field(Address.model_validate({}), description="Where.")
    notify: Annotated[Email | Sms, Field(discriminator="type")] = Field(description="How to tell them.")
    data: Any = Field(None, description="Any JSON.", json_schema_extra={"widget": "json"})
    note: str = Field("", description="Free text.", json_schema_extra={"widget": "textarea"})
    query: str = Field("select 1", description="SQL.", json_schema_extra={"widget": "code", "language": "sql"})
    site: str = Field("", description="Home page.", json_schema_extra={"format": "uri"})
    limit: int | None = Field(None, ge=1, description="At most this many.")
    lines: list[Line] = Field(default_factory=list, description="Order lines.")


SCHEMA = Rich.model_json_schema()
SAMPLE = {"item": {"email": "ada@example.com", "n": 4}}


def preview(text: str) -> Any:
    return evaluate(compile_string(text), SAMPLE)


class Page:
    """Serves one form at / and records what it reports."""

    def __init__(self, value: dict[str, Any], schema: dict[str, Any] = SCHEMA, **options: Any) -> None:
        self.changes: list[dict[str, Any]] = []
        self.form: ConfigForm | None = None

        @ui.page("/")
        def _page() -> None:
            self.form = ConfigForm(schema, value, on_change=self.changes.append, **options)

    @property
    def last(self) -> dict[str, Any]:
        assert self.changes, "on_change was never called"
        return self.changes[-1]


def one(user: User, marker: str) -> Any:
    elements = user.find(marker=marker).elements
    assert len(elements) == 1, f"{len(elements)} elements marked {marker}"
    return next(iter(elements))


def pick(user: User, loc: str, name: str) -> None:
    """Click the picker's entry for `name` (its text sits in a child section, so find the item by its marker)."""
    items = [e for e in user.find(marker=f"pick-item:{loc}").elements
             if any(getattr(d, "text", None) == name for d in e.descendants())]
    assert len(items) == 1
    UserInteraction(user, set(items), None).click()


START = {"name": "Ada", "notify": {"type": "email", "to": "ada@example.com"}}


async def test_each_construct_gets_its_widget(user: User) -> None:
    Page(START)
    await user.open("/")
    expected = {"name": ui.input, "count": ui.number, "ratio": ui.number, "active": ui.switch, "color": ui.select,
                "tags": ui.input_chips, "address.street": ui.input, "address.city": ui.input, "notify.to": ui.input,
                "data": ui.codemirror, "note": ui.textarea, "query": ui.codemirror, "site": ui.input,
                "limit": ui.number}
    for loc, kind in expected.items():
        assert isinstance(one(user, f"input:{loc}"), kind), loc
    assert isinstance(one(user, "choice:notify"), ui.toggle)
    one(user, "add:headers")  # key-value rows start empty, with an add button
    one(user, "add:lines")
    for text in ("Name", "Who to greet.", "Count", "Ratio", "Active", "Color", "Street", "Notify", "Send an email."):
        await user.should_see(text)
    assert one(user, "input:count").props.get("placeholder") == "3"  # the default is the placeholder
    assert one(user, "input:count").props.get("max") == 10
    assert one(user, "input:color").value == "red"  # shown, not stored
    assert one(user, "input:query").value == "select 1"
    with user.scope(marker="field:name"):
        await user.should_see("*")  # required
    with user.scope(marker="field:count"):
        await user.should_not_see("*")


async def test_typing_updates_the_value_with_the_right_types(user: User) -> None:
    page = Page(START)
    await user.open("/")
    user.find(marker="input:name").type(" Lovelace")
    assert page.last["name"] == "Ada Lovelace"
    user.find(marker="input:count").type("7")
    assert page.last["count"] == 7 and type(page.last["count"]) is int
    user.find(marker="input:ratio").type("0.25")
    assert page.last["ratio"] == 0.25
    user.find(marker="input:active").click()
    assert page.last["active"] is False
    one(user, "input:color").value = "blue"
    assert page.last["color"] == "blue"
    one(user, "input:tags").value = ["vip", "eu"]
    assert page.last["tags"] == ["vip", "eu"]
    user.find(marker="fx:tags").click()  # a list as an expression, and back
    assert page.last["tags"] == '{{ ["vip", "eu"] }}'
    user.find(marker="fx:tags").click()
    assert page.last["tags"] == ["vip", "eu"]
    user.find(marker="input:address.street").type("Main St 1")
    assert page.last["address"] == {"street": "Main St 1"}
    user.find(marker="input:note").type("line 1\nline 2")
    assert page.last["note"] == "line 1\nline 2"
    user.find(marker="input:limit").type("5")
    assert page.last["limit"] == 5
    user.find(marker="input:limit").clear()
    assert "limit" not in page.last  # emptied optional: back to its default (null)
    assert page.last["name"] == "Ada Lovelace" and page.last["notify"] == START["notify"]
    assert page.form is not None and page.form.value == page.last


async def test_client_checks_show_at_the_field(user: User) -> None:
    page = Page(START)
    await user.open("/")
    user.find(marker="input:count").type("12")
    await user.should_see("Must be at most 10")
    assert page.last["count"] == 12  # in range or not, a number is passed on; the server check agrees
    n = len(page.changes)
    one(user, "input:count").value = 2.5
    await user.should_see("Must be a whole number")
    assert len(page.changes) == n
    user.find(marker="input:name").clear()
    with user.scope(marker="field:name"):
        await user.should_see("Required")
    assert "name" not in page.last
    user.find(marker="input:site").type("example.com")
    await user.should_see("Must be a URL starting with http:// or https://")
    one(user, "input:site").value = "https://example.com"
    await user.should_not_see("Must be a URL")


async def test_bad_json_shows_a_parse_error_and_is_not_passed_on(user: User) -> None:
    page = Page({**START, "data": {"a": 1}})
    await user.open("/")
    assert one(user, "input:data").value == '{\n  "a": 1\n}'
    n = len(page.changes)
    one(user, "input:data").value = '{"a": 1,'
    await user.should_see("Not valid JSON")
    assert len(page.changes) == n
    one(user, "input:data").value = '{"a": [1, 2]}'
    await user.should_not_see("Not valid JSON")
    assert page.last["data"] == {"a": [1, 2]}


async def test_switching_the_union_swaps_fields_and_tag(user: User) -> None:
    page = Page(START)
    await user.open("/")
    await user.should_see(marker="input:notify.to")
    one(user, "choice:notify").value = 1
    assert page.last["notify"] == {"type": "sms"}
    await user.should_not_see(marker="input:notify.to")
    user.find(marker="input:notify.number").type("+4912345")
    assert page.last["notify"] == {"type": "sms", "number": "+4912345"}
    user.find(marker="input:notify.flash").click()
    assert page.last["notify"]["flash"] is True
    one(user, "choice:notify").value = 0  # back: what was typed in the email variant is still there
    assert page.last["notify"] == {"type": "email", "to": "ada@example.com"}
    assert one(user, "input:notify.to").value == "ada@example.com"


async def test_a_new_union_value_gets_its_tag(user: User) -> None:
    page = Page({"name": "x"})
    await user.open("/")
    user.find(marker="input:notify.to").type("bob@example.com")
    assert page.last["notify"] == {"type": "email", "to": "bob@example.com"}


async def test_expression_mode_stores_templates_and_previews_them(user: User) -> None:
    page = Page(START, field_names=["item.email", "item.n"], preview=preview)
    await user.open("/")
    user.find(marker="fx:name").click()
    assert one(user, "expr:name").value == "Ada"  # a fixed text is where the expression starts
    one(user, "expr:name").value = ""
    user.find(marker="pick:name").click()
    one(user, "pick-menu:name").open()  # Quasar opens it in the browser; the simulation has no browser
    pick(user, "name", "item.email")
    assert page.last["name"] == "{{ item.email }}"
    await user.should_see(marker="preview:name", content='"ada@example.com"', retries=20)
    user.find(marker="expr:name").type(" {{ item.nope.deeper }}")
    await user.should_see(marker="preview:name", content="there is no `nope` here", retries=20)
    assert "fb-bad" in one(user, "preview:name").classes

    user.find(marker="fx:count").click()
    one(user, "expr:count").value = "{{ item.n * 2 }}"
    assert page.last["count"] == "{{ item.n * 2 }}"
    await user.should_see(marker="preview:count", content="8", retries=20)
    user.find(marker="fx:count").click()  # back to fixed: an expression has no fixed value, so the default
    assert "count" not in page.last
    assert isinstance(one(user, "input:count"), ui.number)


async def test_a_preview_without_data_is_a_grey_hint_not_an_error(user: User) -> None:
    """Before any run there is nothing to preview with: the preview says so as a neutral hint; an expression that is
    wrong is still shown as an error."""
    def no_data(text: str) -> Any:
        compile_string(text)  # a broken expression is still an error
        raise NoPreview("No data yet: run the flow to preview this with real items.")

    Page({**START, "name": "{{ item.email }}"}, preview=no_data)
    await user.open("/")
    await user.should_see(marker="preview:name", content="No data yet: run the flow", retries=20)
    assert "fb-hint-preview" in one(user, "preview:name").classes
    assert "fb-bad" not in one(user, "preview:name").classes
    one(user, "expr:name").value = "{{ item.email + }}"
    await user.should_see(marker="preview:name", content="not finished", retries=20)
    assert "fb-bad" in one(user, "preview:name").classes
    assert "fb-hint-preview" not in one(user, "preview:name").classes


async def test_the_preview_waits_for_typing_to_pause(user: User) -> None:
    calls: list[str] = []

    def counting(text: str) -> Any:
        calls.append(text)
        return preview(text)

    Page({**START, "name": "{{ item.email }}"}, preview=counting)
    await user.open("/")
    await user.should_see(marker="preview:name", content="ada@example.com", retries=20)
    assert calls == ["{{ item.email }}"]  # shown at once for a stored expression
    for text in ("{{ item", "{{ item.n", "{{ item.n }}"):
        one(user, "expr:name").value = text
    await user.should_see(marker="preview:name", content="4", retries=20)
    assert calls[1:] == ["{{ item.n }}"]  # one evaluation after the last keystroke, not one per keystroke


async def test_a_value_with_braces_starts_as_an_expression(user: User) -> None:
    page = Page({**START, "count": "{{ item.n }}", "active": "{{ item.on }}"}, preview=preview)
    await user.open("/")
    assert one(user, "expr:count").value == "{{ item.n }}"
    assert one(user, "expr:active").value == "{{ item.on }}"
    await user.should_see(marker="input:name")  # plain text stays a fixed value
    await user.should_see(marker="preview:count", content="4", retries=20)
    user.find(marker="fx:active").click()
    assert "active" not in page.last
    assert isinstance(one(user, "input:active"), ui.switch)


async def test_server_errors_show_at_their_fields(user: User) -> None:
    page = Page({"notify": {"type": "sms", "number": "1"}, "lines": [{"sku": ""}]})
    await user.open("/")
    assert page.form is not None
    try:
        Rich.model_validate(page.form.value)
    except ValidationError as exc:
        errors = errors_from_validation(exc)
    assert set(errors) == {"name", "notify.sms.number", "lines[0].sku"}
    page.form.set_errors({**errors, "": "The flow is locked"})
    assert one(user, "error:name").text == "Is required"
    assert one(user, "error:notify.number").text == "Must have at least 5 characters"
    assert one(user, "error:lines[0].sku").text == "Must have at least 1 characters"
    await user.should_see("The flow is locked")
    user.find(marker="input:name").type("Ada")  # editing a field clears its server error
    await user.should_not_see(marker="error:name")
    page.form.set_errors({})
    await user.should_not_see(marker="error:notify.number")


async def test_key_value_rows(user: User) -> None:
    page = Page({**START, "headers": {"Accept": "text/html"}})
    await user.open("/")
    assert one(user, "key:headers[0]").value == "Accept"
    user.find(marker="add:headers").click()
    user.find(marker="key:headers[1]").type("X-Token")
    assert page.last["headers"] == {"Accept": "text/html", "X-Token": ""}  # a str value starts empty, not null
    user.find(marker="input:headers[1]").type("{{ item.token }}")
    assert page.last["headers"] == {"Accept": "text/html", "X-Token": "{{ item.token }}"}
    assert page.form is not None
    page.form.set_errors({"headers.X-Token": "must not start with X-"})  # a dict value's error, at its row
    with user.scope(marker="row:headers[1]"):
        await user.should_see("Must not start with X-")
    one(user, "key:headers[1]").value = "Accept"
    await user.should_see("Used twice")
    user.find(marker="remove:headers[0]").click()
    assert page.last["headers"] == {"Accept": "{{ item.token }}"}


async def test_cards_add_move_remove(user: User) -> None:
    page = Page({**START, "lines": [{"sku": "A"}, {"sku": "B", "qty": 2}]})
    await user.open("/")
    user.find(marker="down:lines[0]").click()
    assert page.last["lines"] == [{"sku": "B", "qty": 2}, {"sku": "A"}]
    assert one(user, "input:lines[0].sku").value == "B"
    user.find(marker="add:lines").click()
    assert page.last["lines"][2] == {}
    user.find(marker="input:lines[2].sku").type("C")
    assert page.last["lines"][2] == {"sku": "C"}
    user.find(marker="remove:lines[0]").click()
    assert page.last["lines"] == [{"sku": "A"}, {"sku": "C"}]
    user.find(marker="remove:lines[1]").click()
    user.find(marker="remove:lines[0]").click()
    assert "lines" not in page.last


async def test_unknown_keys_are_kept_and_shown(user: User) -> None:
    page = Page({**START, "legacy": 1})
    await user.open("/")
    await user.should_see("not fields of this node: legacy")
    user.find(marker="input:name").type("!")
    assert page.last["legacy"] == 1


class Pair(BaseModel):
    name: str
    value: str | int | float | bool | None = None


class Rule(BaseModel):
    field: str = Field(min_length=1)
    op: Literal["equals", "gt"] = "equals"


class Group(BaseModel):
    combine: Literal["and", "or"] = "and"
    rules: list[Rule | Group] = Field(default_factory=list)


class Mixed(BaseModel):
    pairs: Annotated[list[Pair] | dict[str, str | int | None], Field(json_schema_extra={"widget": "key_value"})] = \
        Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    value: Any = Field(None, json_schema_extra={"widget": "expression"})
    rules: list[Rule | Group] = Field(default_factory=list)
    numbers: list[int] = Field(default_factory=list)


async def test_pairs_params_and_untagged_unions(user: User) -> None:
    page = Page({"rules": [{"field": "a"}, {"combine": "or", "rules": []}]}, schema=Mixed.model_json_schema())
    await user.open("/")
    user.find(marker="add:pairs").click()
    user.find(marker="input:pairs[0].name").type("page")
    user.find(marker="input:pairs[0].value").type("2")
    assert page.last["pairs"] == [{"name": "page", "value": "2"}]
    user.find(marker="add:params").click()
    user.find(marker="key:params[0]").type("limit")
    user.find(marker="input:params[0]").type("10")  # valid JSON is read as JSON
    assert page.last["params"] == {"limit": 10}
    user.find(marker="input:value").type("hello")
    assert page.last["value"] == "hello"
    one(user, "input:numbers").value = ["1", "x"]
    await user.should_see("'x' is not a whole number")
    one(user, "input:numbers").value = ["1", "2"]
    assert page.last["numbers"] == [1, 2]
    # an untagged union: each entry is matched to its variant; switching seeds the new variant's defaults
    assert one(user, "choice:rules[0]").value == 0 and one(user, "choice:rules[1]").value == 1
    one(user, "choice:rules[0]").value = 1
    assert page.last["rules"][0] == {"combine": "and"}
    user.find(marker="add:rules[0].rules").click()
    assert page.last["rules"][0]["rules"] == [{"op": "equals"}]


async def test_forms_for_every_registered_node(user: User, registry: Registry) -> None:
    forms: list[ConfigForm] = []

    @ui.page("/")
    def _page() -> None:
        for entry in registry.catalog():
            forms.append(ConfigForm(entry["config_schema"], {}, on_change=lambda v: None))

    await user.open("/")
    assert len(forms) == len(registry.catalog())


async def test_pickers_offer_tables_their_columns_and_flows(user: User) -> None:
    """The Data table node's form: the table from a list, each condition's column from that table's columns."""

    schema = default_registry().get("data.table").Config.model_json_schema()
    offered: list[tuple[str, str | None]] = []

    def choices(widget: str, table: str | None) -> list[str]:
        offered.append((widget, table))
        return {"table": ["Employees", "Invoices"], "table_column": ["employee", "days_left"] if table ==
                "Employees" else [], "flow": ["Invoice rules"]}[widget]

    changes: list[dict[str, Any]] = []
    value = {"table": "Employees", "action": {"operation": "find", "conditions": [
        {"column": "employee", "op": "is", "value": "ada"}]}}

    @ui.page("/")
    def page() -> None:
        ConfigForm(schema, value, on_change=changes.append, choices=choices)

    await user.open("/")
    table = one(user, "input:table")
    assert isinstance(table, ui.select) and list(table.options) == ["Employees", "Invoices"]
    column = one(user, "input:action.conditions[0].column")
    assert isinstance(column, ui.select) and list(column.options) == ["employee", "days_left"]
    assert ("table_column", "Employees") in offered
    column.set_value("days_left")
    assert changes[-1]["action"]["conditions"][0]["column"] == "days_left"
    table.set_value("Invoices")
    assert changes[-1]["table"] == "Invoices"


async def test_test_items_are_entered_in_a_table_and_json_stays_available(user: User) -> None:

    schema = default_registry().get("trigger.manual").Config.model_json_schema()  # type: ignore[union-attr]
    seen: list[dict[str, Any]] = []

    @ui.page("/items")
    def page() -> None:
        ConfigForm(schema, {"items": [{"employee": "ada", "days": 3}]}, on_change=seen.append, expressions=False)

    await user.open("/items")
    await user.should_see(marker="table:items")
    assert one(user, "cell:0:0:items").value == "ada" and one(user, "cell:0:1:items").value == "3"
    user.find(marker="add-item:items").click()
    one(user, "cell:1:0:items").value = "grace"
    one(user, "cell:1:1:items").value = "12"
    assert seen[-1] == {"items": [{"employee": "ada", "days": 3}, {"employee": "grace", "days": 12}]}  # 12 a number
    one(user, "cell:0:1:items").value = "three"
    assert seen[-1]["items"][0] == {"employee": "ada", "days": "three"}  # text stays text
    user.find(marker="remove-item:0:items").click()
    assert seen[-1] == {"items": [{"employee": "grace", "days": 12}]}
    one(user, "mode:items").value = "json"
    await user.should_see(marker="input:items")


async def test_the_credential_picker_names_the_kind_by_its_label(user: User) -> None:
    """The empty picker says which saved credential fits in words ("Email server (SMTP)"), never a type code."""
    config = next(c for c in default_registry() if c.type == "email.send").Config
    Page({"to": "ada@example.com"}, config.model_json_schema(), credentials=lambda types: [])
    await user.open("/")
    assert one(user, "input:credential").props.get("placeholder") == "Pick a saved Email server (SMTP) credential"
