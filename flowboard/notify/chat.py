"""Posting to chat: a message to a Slack, Microsoft Teams, Discord or Mattermost incoming webhook, in each service's
own format, with link buttons (an approval link, a run) where the service has them. What the Post to chat node and
the Approval node's notices use (`flowboard.sdk` exposes `ChatConfig`, `Service`, `SERVICESERVICE_NAMES` and
`post_messages`).

Why not `apprise`: it sends one title and body to a hundred services, which is what makes it simple, and also what
hides what we need here: Slack button elements, Teams card actions and Discord link buttons are not in its model. Each
payload below is a small documented format; building it directly keeps the buttons and keeps the dependency tree
small.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import NodeError
from ..sdk import secret_forms

if TYPE_CHECKING:
    from ..sdk import Context

Item = dict[str, Any]

Service = Literal["slack", "teams", "discord", "mattermost"]
SERVICE_NAMES = {"slack": "Slack", "teams": "Microsoft Teams", "discord": "Discord", "mattermost": "Mattermost"}
_COLOR = re.compile(r"^#?[0-9a-fA-F]{6}$")
_MAX_TRIES = 3  # a 429 (too many messages) is retried after the wait the service asks for, twice at most
_MAX_RETRY_WAIT = 30.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Button(_Strict):
    title: str = Field(min_length=1, description="Text on the button, e.g. Approve.")
    url: str = Field(description="Address the button opens (http:// or https://), e.g. {{ item.approve_url }}. "
                                 "A button whose address is empty is left out.", json_schema_extra={"widget": "url"})
    style: Literal["default", "primary", "danger"] = Field(
        "default", description="How it looks where the service allows it: primary (green or blue) or danger (red).",
        json_schema_extra={"widget": "select"})


class Detail(_Strict):
    name: str = Field(min_length=1, description="Label, e.g. Days.")
    value: str | int | float | bool | None = Field(None, description="Its value, e.g. {{ item.days }}; empty "
                                                   "(null) leaves the line out.")


Details = Annotated[list[Detail] | dict[str, str | int | float | bool | None],
                    Field(description="Name/value lines shown under the message (Slack fields, Teams facts, Discord "
                                      "and Mattermost fields).")]


class ChatConfig(_Strict):
    service: Service = Field(description="Where the webhook URL points: slack, teams (a Workflows or connector "
                             "webhook), discord or mattermost.", json_schema_extra={"widget": "select"})
    credential: str = Field(min_length=1, description="Credential holding the incoming webhook URL (type "
                            "chat_webhook, field url). The URL is a password: anyone who has it can post.",
                            json_schema_extra={"widget": "credential", "credential_types": ["chat_webhook"]})
    title: str = Field("", description="A heading, e.g. Vacation request from {{ item.employee }}.")
    message: str = Field("", description="The message. Markdown works in every service (bold, links); mentions "
                         "from the data do not ping anyone in Discord.", json_schema_extra={"widget": "textarea"})
    details: Details = Field(default_factory=list, json_schema_extra={"widget": "key_value"})
    buttons: list[Button] = Field(default_factory=list, description="Link buttons (at most 5), e.g. Approve and "
                                  "Reject links. Mattermost shows them as links under the message.")
    color: str = Field("", description="Accent colour as #RRGGBB (Discord, Mattermost, Teams message cards).")
    teams_card: Literal["adaptive", "message_card"] = Field(
        "adaptive", description="Teams only: adaptive (Teams Workflows webhooks) or message_card (the older "
        "Office 365 connector webhooks).", json_schema_extra={"widget": "select"})
    timeout: float = Field(30, gt=0, le=600, description="Seconds to wait for the service's answer.")

    @field_validator("title", "message", "color", mode="before")
    @classmethod
    def _missing_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value  # `{{ item.note }}` on an item without a note

    @field_validator("color")
    @classmethod
    def _hex_color(cls, value: str) -> str:
        value = value.strip()
        if value and "{{" not in value and not _COLOR.match(value):
            raise ValueError(f"must be a colour written #RRGGBB, such as #2e7d32 (got {value!r})")
        return value

    @field_validator("buttons")
    @classmethod
    def _few_buttons(cls, value: list[Button]) -> list[Button]:
        if len(value) > 5:
            raise ValueError("at most 5 buttons fit in one message")
        return value


async def post_messages(ctx: Context, configs: list[ChatConfig]) -> list[Item]:
    """Post one message per config, in order (the Post to chat node, and the Approval node to notify
    approvers). Every message is
    built before the first is posted."""
    posts = [_payload(cfg, index) for index, cfg in enumerate(configs)]
    urls: dict[str, str] = {}
    for cfg in configs:
        if cfg.credential not in urls:
            urls[cfg.credential] = await _webhook_url(ctx, cfg.credential)
    out: list[Item] = []
    for index, (cfg, (payload, params)) in enumerate(zip(configs, posts, strict=True)):
        ctx.check_cancelled()
        out.append(await _post(ctx.http, cfg, urls[cfg.credential], payload, params, index))
    return out


# -- payloads, one builder per service ---------------------------------------------------------------------------


class _Message:
    """What every service shows, read from one item's config: checked, limits applied per service by the builders."""

    def __init__(self, cfg: ChatConfig, index: int) -> None:
        self.title = cfg.title.strip()
        self.text = cfg.message.strip()
        pairs = cfg.details.items() if isinstance(cfg.details, dict) else ((d.name, d.value) for d in cfg.details)
        self.details = [(str(name), _text(value)) for name, value in pairs if value is not None and value != ""]
        self.buttons: list[tuple[str, str, str]] = []
        for number, button in enumerate(cfg.buttons):
            url = button.url.strip()
            if not url:
                continue
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise NodeError(f"buttons[{number}].url: {_shorten(url, 80)!r} is not an address starting with "
                                "http:// or https://", item_index=index, field="buttons")
            self.buttons.append((button.title.strip(), url, button.style))
        color = cfg.color.strip()
        if color and not _COLOR.match(color):
            raise NodeError(f"color: {color!r} is not a colour written #RRGGBB", item_index=index, field="color")
        self.color = color.lstrip("#").lower()
        if not (self.title or self.text or self.details):
            raise NodeError("the message is empty: write a title, a message or details", item_index=index,
                            field="message")

    @property
    def fallback(self) -> str:
        """One plain line for notifications and clients that show no cards."""
        return " - ".join(part for part in (self.title, self.text.splitlines()[0] if self.text else "") if part) \
            or ", ".join(f"{n}: {v}" for n, v in self.details)


def _payload(cfg: ChatConfig, index: int) -> tuple[dict[str, Any], dict[str, str]]:
    message = _Message(cfg, index)
    if cfg.service == "slack":
        return _slack(message), {}
    if cfg.service == "teams":
        return (_teams_adaptive(message) if cfg.teams_card == "adaptive" else _teams_message_card(message)), {}
    if cfg.service == "discord":
        return _discord(message), ({"with_components": "true"} if message.buttons else {})
    return _mattermost(message), {}


def _slack(m: _Message) -> dict[str, Any]:
    """Block Kit: https://docs.slack.dev/reference/block-kit/blocks (text is the notification fallback)."""
    blocks: list[dict[str, Any]] = []
    if m.title:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": _shorten(m.title, 150)}})
    if m.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _shorten(m.text, 3000)}})
    for start in range(0, min(len(m.details), 50), 10):  # a section holds at most 10 fields
        fields = [{"type": "mrkdwn", "text": _shorten(f"*{name}*\n{value}", 2000)}
                  for name, value in m.details[start:start + 10]]
        blocks.append({"type": "section", "fields": fields})
    if m.buttons:
        elements = []
        for number, (title, url, style) in enumerate(m.buttons):
            element: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": _shorten(title, 75)},
                                       "url": url, "action_id": f"link-{number}"}
            if style != "default":
                element["style"] = style
            elements.append(element)
        blocks.append({"type": "actions", "elements": elements})
    return {"text": _shorten(m.fallback, 3000), "blocks": blocks}


def _teams_adaptive(m: _Message) -> dict[str, Any]:
    """An Adaptive Card as a message attachment, the format Teams Workflows webhooks take."""
    body: list[dict[str, Any]] = []
    if m.title:
        body.append({"type": "TextBlock", "text": m.title, "size": "Large", "weight": "Bolder", "wrap": True})
    if m.text:
        body.append({"type": "TextBlock", "text": m.text, "wrap": True})
    if m.details:
        body.append({"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in m.details]})
    styles = {"default": "default", "primary": "positive", "danger": "destructive"}
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    if m.buttons:
        card["actions"] = [{"type": "Action.OpenUrl", "title": title, "url": url, "style": styles[style]}
                           for title, url, style in m.buttons]
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "contentUrl": None, "content": card}]}


def _teams_message_card(m: _Message) -> dict[str, Any]:
    """The legacy actionable MessageCard of Office 365 connector webhooks, with OpenUri actions."""
    card: dict[str, Any] = {"@type": "MessageCard", "@context": "http://schema.org/extensions",
                            "summary": _shorten(m.fallback, 80)}
    if m.color:
        card["themeColor"] = m.color.upper()
    if m.title:
        card["title"] = m.title
    if m.text:
        card["text"] = m.text
    if m.details:
        card["sections"] = [{"facts": [{"name": name, "value": value} for name, value in m.details]}]
    if m.buttons:
        card["potentialAction"] = [{"@type": "OpenUri", "name": title, "targets": [{"os": "default", "uri": url}]}
                                   for title, url, _style in m.buttons]
    return card


def _discord(m: _Message) -> dict[str, Any]:
    """An embed plus an action row of link buttons (style 5); mentions in the data never ping anyone."""
    embed: dict[str, Any] = {}
    if m.title:
        embed["title"] = _shorten(m.title, 256)
    if m.text:
        embed["description"] = _shorten(m.text, 4096)
    if m.details:
        embed["fields"] = [{"name": _shorten(name, 256), "value": _shorten(value, 1024), "inline": True}
                           for name, value in m.details[:25]]
    if m.color:
        embed["color"] = int(m.color, 16)
    payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if m.buttons:
        payload["components"] = [{"type": 1, "components": [
            {"type": 2, "style": 5, "label": _shorten(title, 80), "url": url} for title, url, _style in m.buttons]}]
    return payload


def _mattermost(m: _Message) -> dict[str, Any]:
    """A message attachment; the buttons are markdown links (attachment actions post to a server, not a browser)."""
    text = m.text
    if m.buttons:
        links = " · ".join(f"[{title.replace(']', ')')}]({url.replace(')', '%29')})" for title, url, _ in m.buttons)
        text = f"{text}\n\n{links}" if text else links
    attachment: dict[str, Any] = {"fallback": m.fallback}
    if m.color:
        attachment["color"] = f"#{m.color}"
    if m.title:
        attachment["title"] = m.title
    if text:
        attachment["text"] = text
    if m.details:
        attachment["fields"] = [{"short": len(value) <= 40, "title": name, "value": value} for name, value in m.details]
    return {"attachments": [attachment]}


# -- sending ------------------------------------------------------------------------------------------------------


async def _webhook_url(ctx: Context, name: str) -> str:
    try:
        fields = await ctx.credential(name)
    except NodeError as exc:
        exc.field = exc.field or "credential"
        raise
    url = str(fields.get("url") or fields.get("value") or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise NodeError(f"credential {name!r} holds no webhook URL: it needs a field url starting with https://",
                        field="credential")
    return url


async def _post(client: httpx.AsyncClient, cfg: ChatConfig, url: str, payload: dict[str, Any],
                params: dict[str, str], index: int) -> Item:
    name = SERVICE_NAMES[cfg.service]
    host = urlsplit(url).netloc.rpartition("@")[2]
    target = httpx.URL(url)
    if params:
        target = target.copy_merge_params(params)
    content = orjson.dumps(payload)
    for attempt in range(1, _MAX_TRIES + 1):
        try:
            async with asyncio.timeout(cfg.timeout):
                response = await client.post(target, content=content, timeout=cfg.timeout,
                                             headers={"Content-Type": "application/json"})
        except TimeoutError:
            raise NodeError(f"the {name} webhook at {host} did not answer within {cfg.timeout:g} s",
                            item_index=index) from None
        except (httpx.HTTPError, OSError) as exc:
            raise NodeError(_connect_problem(exc, name, host), item_index=index) from None
        if response.status_code == 429 and attempt < _MAX_TRIES:
            await asyncio.sleep(_retry_after(response))
            continue
        break
    answer = _answer(response)
    if response.status_code >= 300:
        shown = answer if isinstance(answer, str) else orjson.dumps(answer).decode()
        for form in sorted(secret_forms(url), key=len, reverse=True):  # the URL is the secret, in any encoding
            shown = shown.replace(form, "<webhook URL>")
        shown = " ".join(shown.split())
        advice = {401: "the webhook URL is not valid any more; make a new one and put it in the credential",
                  403: "the webhook may not post here; check it in the service",
                  404: "the webhook does not exist (deleted?); make a new one and put it in the credential",
                  429: "too many messages; the service asked to slow down"}.get(response.status_code, "")
        raise NodeError(f"{name} refused the message: {response.status_code} {response.reason_phrase}"
                        + (f" ({_shorten(shown, 300)})" if shown else "") + (f"; {advice}" if advice else ""),
                        item_index=index, data={"status": response.status_code})
    return {"service": cfg.service, "status": response.status_code, "answer": answer}


def _answer(response: httpx.Response) -> Any:
    text = response.content.decode("utf-8", errors="replace")
    if "json" in response.headers.get("content-type", ""):
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
    return _shorten(text.strip(), 2000)


def _retry_after(response: httpx.Response) -> float:
    """Seconds the service asks to wait: Retry-After, or Discord's JSON retry_after; 1 s when it says nothing."""
    wait: float = 1.0
    header = response.headers.get("retry-after", "")
    try:
        wait = float(header)
    except ValueError:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            wait = float(orjson.loads(response.content).get("retry_after", 1.0))
    return min(max(wait, 0.0), _MAX_RETRY_WAIT)


def _connect_problem(exc: BaseException, name: str, host: str) -> str:
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for err in chain:
        if isinstance(err, OSError) and err.errno == errno.ECONNREFUSED:
            return f"could not reach the {name} webhook at {host}: connection refused"
        if isinstance(err, socket.gaierror):
            return f"could not reach the {name} webhook: the host name {host!r} was not found"
    for err in chain:
        if isinstance(err, TimeoutError):
            return f"the {name} webhook at {host} did not answer in time"
    return f"could not reach the {name} webhook at {host}: {_shorten(str(exc) or type(exc).__name__, 200)}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
