"""A page with a ConfigForm for a rich schema, to look at it in a browser.

    PYTHONPATH=/work/main python tests/apps/forms_app.py 8765      # then open http://127.0.0.1:8765/
    /?model=http.request  shows that node type's own config (needs `flowboard.nodes` importable)
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from nicegui import ui
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowboard.expressions import compile_string, evaluate
from flowboard.ui.forms import ConfigForm, errors_from_validation

SAMPLE = {"item": {"email": "ada@example.com", "name": "Ada", "days_left": 3, "tags": ["vip"]},
          "nodes": {"Look up": {"items": [{"days_left": 3, "manager": "grace@example.com"}]}}}
FIELDS = ["item.email", "item.name", "item.days_left", "item.tags", "nodes['Look up'].items[0].days_left",
          "nodes['Look up'].items[0].manager"]
EXAMPLES: dict[str, dict[str, Any]] = {
    "http.request": {"method": "POST", "url": "https://api.example.com/users/{{ item.id }}",
                     "headers": [{"name": "Accept", "value": "application/json"}],
                     "body": {"type": "json", "data": {"name": "{{ item.name }}"}}},
    "logic.filter": {"combine": "or", "conditions": [
        {"field": "days_left", "op": "lt", "value": 3},
        {"combine": "and", "conditions": [{"field": "email", "op": "ends_with", "value": "@example.com"}]}]},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pair(_Strict):
    name: str = Field(min_length=1, description="Name of the parameter.")
    value: str | int | float | bool | None = Field(None, description="Its value.")


class NoBody(_Strict):
    type: Literal["none"] = Field("none", description="Send no body.")


class JsonBody(_Strict):
    type: Literal["json"] = Field(description="Send JSON (`Content-Type: application/json`).")
    data: Any = Field(None, description="Any JSON value, or an expression such as `{{ item }}`.",
                      json_schema_extra={"widget": "json"})


class RawBody(_Strict):
    type: Literal["raw"] = Field(description="Send text as it is, with the content type you give.")
    text: str = Field("", description="The body text.", json_schema_extra={"widget": "textarea"})
    content_type: str = Field("text/plain", min_length=1, description="Its media type, e.g. `application/xml`.")


class Retry(_Strict):
    attempts: int = Field(3, ge=1, le=10, description="How many times to try.")
    backoff: float = Field(1.5, gt=0, description="Seconds to wait before the first retry; doubles each time.")


class Condition(_Strict):
    field: str = Field(min_length=1, description="The item field to test, e.g. `customer.email`.")
    op: Literal["equals", "not_equals", "gt", "lt", "contains"] = Field("equals", description="How to compare.")
    value: Any = Field(None, description="What to compare with.", json_schema_extra={"widget": "expression"})


class Demo(_Strict):
    url: str = Field(description="Address to call, e.g. `https://api.example.com/users/{{ item.id }}`.",
                     json_schema_extra={"widget": "url"})
    method: Literal["GET", "POST", "PUT", "DELETE"] = Field("GET", description="HTTP method.")
    to: str = Field("{{ item.email }}", description="Recipient address.")
    retries: int = Field(3, ge=0, le=10, description="Attempts after the first failure.")
    follow_redirects: bool = Field(True, description="Follow 3xx redirects.")
    tags: list[str] = Field(default_factory=list, description="Labels for the run list.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    query: Annotated[list[Pair] | dict[str, str | int | None], Field(json_schema_extra={"widget": "key_value"})] = \
        Field(default_factory=list, description="Query parameters added to the URL.")
    body: Annotated[NoBody | JsonBody | RawBody, Field(discriminator="type")] = Field(
        default_factory=NoBody, description="What to send.")
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    conditions: list[Condition] = Field(default_factory=list, description="Only call for items that pass these.")
    query_sql: str = Field("select 1", description="A statement to log.",
                           json_schema_extra={"widget": "code", "language": "sql"})
    limit: int | None = Field(None, ge=1, description="At most this many calls; empty means no limit.")
    credential: str | None = Field(None, description="Credential to authenticate with.",
                                   json_schema_extra={"widget": "credential", "credential_types": ["bearer"]})


def preview(text: str) -> Any:
    return evaluate(compile_string(text), SAMPLE)


def page(model: str = "demo") -> None:
    ui.query("body").style("background: #eef0f4")
    if model != "demo":  # a registered node type, e.g. /?model=http.request or /?model=logic.filter
        from flowboard.registry import default_registry

        node = default_registry().get(model)
        assert node is not None, f"no node type {model!r}"
        cls: type[BaseModel] = node.Config
        start: dict[str, Any] = EXAMPLES.get(model, {})
    else:
        cls = Demo
        start = {"url": "https://api.example.com/x", "method": "POST", "tags": ["vip", "eu"],
                 "headers": {"Accept": "application/json"}, "query": [{"name": "page", "value": 2}],
                 "body": {"type": "json", "data": {"a": 1}},
                 "conditions": [{"field": "days_left", "op": "lt",
                                 "value": "{{ nodes['Look up'].items[0].days_left }}"}],
                 "retries": 12}
    with ui.card().classes("w-[440px] mx-auto my-4 q-pa-md shadow-sm").style("border-radius: 8px"):
        ui.label(f"{cls.__name__}").classes("text-base font-semibold")
        out = ui.label().classes("hidden").mark("value")

        def changed(value: dict[str, Any]) -> None:
            out.text = json.dumps(value)

        form = ConfigForm(cls.model_json_schema(), start, on_change=changed, field_names=FIELDS, preview=preview,
                          credentials=lambda types: ["crm token", "billing token"])

        def validate() -> None:
            try:
                cls.model_validate(form.value)
            except ValidationError as exc:
                form.set_errors(errors_from_validation(exc))
            else:
                form.set_errors({})

        ui.button("Validate", on_click=validate).props("unelevated no-caps color=primary").mark("validate")
        validate()


if __name__ in {"__main__", "__mp_main__"}:
    ui.page("/")(page)
    ui.run(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8765, show=False, reload=False, title="Form check")
