"""Form trigger: a public web page, generated from a list of fields, whose answers start a run.

While the flow is active the server shows the form at `/form/<path>` (`flowboard/forms_public.py`). Answers are
checked at the field (required, number, email, date, choice) before anything runs; the run's item is the answers by
field name::

    {"name": "Ada", "days": 3, "start": "2025-07-01", "email": "ada@example.com", "urgent": false, "note": null}

Numbers are numbers, dates `YYYY-MM-DD` text, a checkbox true or false, a field left empty null.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowboard.sdk import Category, Context, Inputs, Item, NodeType, Outputs, UrlPath

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
FieldType = Literal["text", "long_text", "number", "date", "email", "choice", "checkbox", "file"]
MAX_TEXT = {"long_text": 100_000}
DEFAULT_MAX_TEXT = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormField(_Strict):
    model_config = ConfigDict(extra="forbid", title="Question")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="The name the answer gets in the flow's "
                      "data, e.g. email or start_date: letters, digits and underscores, no spaces.")
    label: str = Field("", max_length=500, description="The question the person sees, e.g. Your email address; "
                       "empty: the name.")
    type: FieldType = Field("text", description="What kind of answer the field takes; a choice offers the "
                            "options below.", json_schema_extra={
                                "widget": "select", "enum_labels": ["short text", "long text", "number", "date",
                                                                    "email address", "choice", "checkbox",
                                                                    "file upload"]})
    required: bool = Field(False, description="The form is not sent until this field is filled in (a checkbox: "
                           "ticked).")
    placeholder: str = Field("", max_length=500, description="A hint shown in the empty field, e.g. ada@example.com.")
    options: list[str] = Field(default_factory=list, description="For a choice field: the options to "
                                  "pick from, one per line, e.g. Berlin.")

    @model_validator(mode="after")
    def _choice_has_options(self) -> FormField:
        if self.type == "choice" and not [o for o in self.options if o.strip()]:
            raise ValueError(f"the choice field {self.name!r} needs at least one option")
        return self

    @property
    def caption(self) -> str:
        return self.label or self.name


class MessageResponse(_Strict):
    type: Literal["message"] = Field(title="A message",
                                     description="Thank the person with a fixed message; the flow runs on.")
    message: str = Field("Thank you! Your answers were sent.", min_length=1, max_length=10_000,
                         description="Shown after sending.")


class FlowResponse(_Strict):
    type: Literal["flow"] = Field(title="The flow's answer",
                                  description="Wait for the flow and show what it answers: the message or text "
                                  "field of the first item of its last node, else all of that item's fields.")


Respond = Annotated[MessageResponse | FlowResponse, Field(discriminator="type")]


class FormConfig(_Strict):
    path: UrlPath = Field(description="The page's address after /form/, e.g. vacation or hr/leave: letters, "
                      "digits, - _ . and ~, parts separated by /.", min_length=1, max_length=200)
    title: str = Field("Form", min_length=1, max_length=200,
                       description="The heading of the page, e.g. Vacation request.")
    description: str = Field("", max_length=10_000, description="Text under the heading.",
                             json_schema_extra={"widget": "textarea"})
    fields: list[FormField] = Field(min_length=1, max_length=100, description="The questions, in order.")
    submit_label: str = Field("Submit", min_length=1, max_length=100,
                              description="The text of the send button, e.g. Send request.")
    respond: Respond = Field(default_factory=lambda: MessageResponse(type="message"),
                             description="What the person sees after sending.", json_schema_extra={"widget": "union"})

    @field_validator("fields")
    @classmethod
    def _unique_names(cls, value: list[FormField]) -> list[FormField]:
        seen: set[str] = set()
        for f in value:
            if f.name in seen:
                raise ValueError(f"two fields are called {f.name!r}; every field needs its own name")
            seen.add(f.name)
        return value


def read_answers(config: FormConfig, form: dict[str, Any]) -> tuple[Item, dict[str, str]]:
    """The item from the submitted text values (checkbox: present or not; a file field: the reference of the file
    kept, `{"$file", name, mime_type, size}`), and a message per field that is wrong. Nothing may run unless the
    messages are empty."""
    item: Item = {}
    errors: dict[str, str] = {}
    for f in config.fields:
        if f.type == "file":
            sent = form.get(f.name)
            item[f.name] = sent if isinstance(sent, dict) else None
            if f.required and item[f.name] is None:
                errors[f.name] = "Please choose a file to send."
            continue
        if f.type == "checkbox":
            item[f.name] = f.name in form
            if f.required and not item[f.name]:
                errors[f.name] = "Please tick this box to go on."
            continue
        raw = form.get(f.name, "")
        raw = raw if isinstance(raw, str) else ""
        text = raw.rstrip() if f.type == "long_text" else raw.strip()
        item[f.name] = None
        if not text:
            if f.required:
                errors[f.name] = "Please choose one." if f.type == "choice" else "Please fill in this field."
            continue
        limit = MAX_TEXT.get(f.type, DEFAULT_MAX_TEXT)
        if len(text) > limit:
            errors[f.name] = f"Please keep this under {limit:,} characters."
            continue
        value, problem = _convert(f, text)
        if problem:
            errors[f.name] = problem
        else:
            item[f.name] = value
    return item, errors


def _convert(f: FormField, text: str) -> tuple[Any, str | None]:
    if f.type == "number":
        if not _NUMBER.match(text) or len(text) > 40:
            return None, "Please enter a number, such as 42 or 3.5."
        if text.lstrip("+-").isdigit():
            return int(text), None
        number = float(text)
        if number in (float("inf"), float("-inf")):
            return None, "Please enter a smaller number."
        return number, None
    if f.type == "email":
        return (text, None) if _EMAIL.match(text) and len(text) <= 254 else \
            (None, "Please enter an email address, such as name@example.com.")
    if f.type == "date":
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            return None, "Please enter a date as YYYY-MM-DD, such as 2025-07-01."
    if f.type == "choice":
        return (text, None) if text in f.options else (None, "Please choose one of the options.")
    return text, None


class FormTrigger(NodeType):
    """Starts the flow when someone sends its form: a public page at `/form/<path>`, shown while the flow is active.

    The page is made from the field list (text, long text, number, date, email, choice, checkbox, file upload;
    required or not). Answers are checked at each field before anything runs; the run's item is the answers by field
    name (numbers as numbers, dates as `YYYY-MM-DD`, checkboxes true/false, an uploaded file as a file like a
    webhook's uploads: name, type and size, its bytes kept by Flowboard; empty fields null). Afterwards the person
    sees the thank-you message, or (respond: flow) what the flow answers: the first item of its last node. Run by
    hand, it starts with an item with every field empty."""

    type = "trigger.form"
    title = "Form"
    category = Category.trigger
    icon = "assignment"
    description = "Start the flow when someone fills in and sends a web form."
    inputs = ()
    Config = FormConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself

    async def run(self, ctx: Context, config: FormConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [{f.name: (False if f.type == "checkbox" else None) for f in config.fields}]
