"""Webhook trigger and Respond to webhook: a flow that answers HTTP calls.

The trigger's settings are read when the flow is activated (the server answers `/webhook/<path>` for active flows
and `/webhook-test/<path>` while the editor listens for a test call); the request reaches the flow as one item::

    {"body": {...}, "query": {...}, "headers": {...}, "method": "POST", "path": "orders/new"}

Header names are lower-case; only the headers the node lists are kept (by default Content-Type and User-Agent), and
the header that carried the authentication never is.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowboard.sdk import Category, Context, Inputs, Item, NodeType, Outputs, UrlPath

MIB = 1024 * 1024
_HEADER = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
#: The request headers a webhook item keeps unless its node lists others.
KEPT_HEADERS = ("content-type", "user-agent")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _header_name(value: str) -> str:
    if not _HEADER.match(value):
        raise ValueError(f"{value!r} is not a header name (letters, digits and - only, e.g. X-Api-Key)")
    return value


class _Secret(_Strict):
    """A secret, always by credential: encrypted at rest, never in the flow file, an export or a run."""

    credential: str = Field(min_length=1, description="The saved credential that holds the secret the caller must "
                            "send, e.g. a Secret value or Bearer token credential.",
                            json_schema_extra={"widget": "credential"})


class NoAuth(_Strict):
    type: Annotated[Literal["none"], Field(title="No check",
                                            description="Anyone who knows the URL may call it.")] = "none"


class HeaderAuth(_Secret):
    type: Literal["header"] = Field(title="A secret in a header",
                                    description="The caller sends a secret token in a header.")
    name: str = Field("X-Api-Key", description="The header that carries the secret, e.g. X-Api-Key.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _header_name(value)


class BasicAuth(_Strict):
    type: Literal["basic"] = Field(title="User and password",
                                   description="HTTP basic authentication (user and password).")
    credential: str = Field(min_length=1, description="The saved credential with the user and password.",
                            json_schema_extra={"widget": "credential", "credential_types": ["basic"]})


class HmacAuth(_Secret):
    type: Literal["hmac"] = Field(title="A signature (HMAC)",
                                  description="The caller signs the raw body with a shared secret (HMAC), as "
                                  "GitHub, Stripe-like and Shopify webhooks do.")
    header: str = Field("X-Signature-256", description="The header that carries the signature, e.g. "
                        "X-Signature-256 (a hex digest, which may start with sha256=).")
    algorithm: Literal["sha256"] = Field("sha256", description="How the signature is computed.",
                                              json_schema_extra={"enum_labels": ["SHA-256"]})

    @field_validator("header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        return _header_name(value)


Auth = Annotated[NoAuth | HeaderAuth | BasicAuth | HmacAuth, Field(discriminator="type")]


class WebhookConfig(_Strict):
    path: UrlPath = Field(description="The address after /webhook/, e.g. orders/new: letters, digits, - _ . "
                      "and ~, parts separated by /.", min_length=1, max_length=200)
    methods: list[Method] = Field(default_factory=lambda: list[Method](["POST"]), min_length=1,
                                  description="The HTTP methods that start the flow, e.g. POST.")
    auth: Auth = Field(default_factory=NoAuth, title="Who may call", description="How callers prove who they are.",
                       json_schema_extra={"widget": "union"})
    respond: Literal["immediately", "when_finished"] = Field(
        "when_finished", description="When to answer the caller: at once (status 202 with the run's number; the flow "
        "runs on), or when the flow has finished, with its result (the last node's items, or what a Respond to "
        "webhook node says).",
        json_schema_extra={"widget": "select", "enum_labels": ["at once", "when the flow has finished"]})
    max_body: int = Field(MIB, ge=0, le=100 * MIB, title="Largest body (bytes)",
                          description="The largest request body accepted, in bytes, e.g. "
                          "1048576 for 1 MB (bigger ones are refused).")
    headers: list[str] = Field(default_factory=lambda: list(KEPT_HEADERS), max_length=100,
                               description="Request headers to keep in the item, by name, e.g. User-Agent; * keeps "
                               "them all. "
                               "Only these are stored with the run, so callers cannot fill the database with "
                               "headers. The authentication header is never kept.")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(name if name == "*" else _header_name(name.strip()).lower() for name in value))

    @field_validator("methods")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class Webhook(NodeType):
    """Starts the flow when an HTTP request arrives at `/webhook/<path>` (only while the flow is active) or at
    `/webhook-test/<path>` (while the editor listens for a test call).

    The run's item is `{"body", "query", "headers", "method", "path"}`: a JSON body is parsed, a form
    (urlencoded or multipart) becomes an object (uploaded files as file references: `{$file, name, mime_type,
    size}`, for Write file or File to items), other text stays text, and a body that is not text is a file.
    Authentication: none, a token header, basic auth, or an HMAC-SHA256 signature of the raw body. The caller
    gets the flow's result (`when_finished`: one item as an object, several as a list, or what a Respond to webhook
    node says; a failed run answers 500) or at once 202 with the run id (`immediately`).

    Refused calls answer with a JSON `{"error": ...}`: 404 unknown path, 405 wrong method, 401/403 missing or wrong
    credentials, 401 bad signature, 413 body too big, 400 unreadable JSON. Under the flow's run mode `skip`, a call
    that arrives while a run is going answers 200 `{"skipped": true}` and starts nothing."""

    type = "trigger.webhook"
    title = "Webhook"
    category = Category.trigger
    icon = "webhook"
    description = "Start the flow when an HTTP request arrives at its URL."
    inputs = ()
    Config = WebhookConfig
    passes_input = True  # `run` below: the engine makes a call's step without calling it

    async def run(self, ctx: Context, config: WebhookConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [{"body": {}, "query": {}, "headers": {}, "method": config.methods[0],
                                "path": config.path}]


class Header(_Strict):
    name: str = Field(min_length=1, description="The header's name, e.g. Content-Type.")
    value: str = Field("", description="Its value, e.g. text/plain; an expression is allowed.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _header_name(value)


class RespondConfig(_Strict):
    status: int = Field(200, ge=100, le=599,
                        description="The status of the answer, e.g. 200 (all right) or 404 (not found).")
    headers: list[Header] = Field(default_factory=list, description="Headers added to the answer, one per line.",
                                  json_schema_extra={"widget": "keyvalue"})
    body: Any = Field(None, description="What to answer: JSON, e.g. {\"ok\": true}, or an expression such as "
                      "{{ item.body }}; empty answers with the items (one item as an object, several as a list).",
                      json_schema_extra={"widget": "expression"})


class Respond(NodeType):
    """Sets the answer of the webhook call that started the run: status code, headers and body.

    The body is worked out with the first item (`{{ item.total }}`, `{{ items | length }}`); left empty it is the
    items themselves. The node's output is the answer as one item, `{"status", "headers", "body"}`, so the run's
    history shows what the caller received. The answer is sent when the run ends (the trigger's `respond` must be
    `when_finished`); if several Respond nodes ran, the first one counts. In runs not started by a webhook it only
    records the answer."""

    type = "webhook.respond"
    title = "Respond to webhook"
    category = Category.logic
    icon = "reply"
    description = "Set the status, headers and body the webhook caller receives."
    Config = RespondConfig

    async def run(self, ctx: Context, config: RespondConfig, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        body = config.body
        if body is None:
            body = items[0] if len(items) == 1 else list(items)
        answer: Item = {"status": config.status, "headers": {h.name: h.value for h in config.headers}, "body": body}
        return [answer]
