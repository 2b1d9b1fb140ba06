"""A local stand-in for the four chat services' incoming webhooks: a real aiohttp server on 127.0.0.1 that checks
each payload against the service's documented format and limits, and answers the way the service does (Slack 200
`ok`, Teams Workflows 202, a Teams connector 200 `1`, Discord 204, Mattermost 200 `ok`); a payload that breaks the
format gets the service's 400. Routes: `/slack`, `/teams`, `/discord`, `/mattermost`; `/gone` answers 404
`no_service` (Slack's deleted webhook); `/busy/{n}` answers 429 n times (Retry-After: 0), then 200 `ok`.

    async with ChatServer() as server:
        server.url("/slack"); server.received   # [(route, query, payload)] of every accepted post
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import urlsplit

from aiohttp import web

from .servers import serve

__all__ = ["ChatServer"]


class Invalid(Exception):
    pass


def need(condition: Any, message: str) -> None:
    if not condition:
        raise Invalid(message)


def is_link(url: Any) -> bool:
    return isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and bool(urlsplit(url).hostname)


def check_slack(payload: dict[str, Any], query: dict[str, str]) -> None:
    need(payload.get("text") or payload.get("blocks"), "no_text")
    need(len(payload.get("blocks", [])) <= 50, "invalid_blocks: more than 50 blocks")
    action_ids: set[str] = set()
    for block in payload.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            need(block["text"]["type"] == "plain_text" and 0 < len(block["text"]["text"]) <= 150, "invalid_blocks")
        elif kind == "section":
            need("text" in block or "fields" in block, "invalid_blocks: a section needs text or fields")
            if "text" in block:
                need(block["text"]["type"] in ("mrkdwn", "plain_text") and len(block["text"]["text"]) <= 3000,
                     "invalid_blocks: section text")
            fields = block.get("fields", [])
            need(len(fields) <= 10 and all(len(f["text"]) <= 2000 for f in fields), "invalid_blocks: fields")
        elif kind == "actions":
            elements = block["elements"]
            need(0 < len(elements) <= 25, "invalid_blocks: actions")
            for element in elements:
                need(element["type"] == "button", "invalid_blocks: unknown element")
                need(element["text"]["type"] == "plain_text" and 0 < len(element["text"]["text"]) <= 75,
                     "invalid_blocks: button text")
                need(is_link(element["url"]) and len(element["url"]) <= 3000, "invalid_blocks: button url")
                need(element.get("style", "primary") in ("primary", "danger"), "invalid_blocks: button style")
                need(element["action_id"] not in action_ids, "invalid_blocks: duplicate action_id")
                action_ids.add(element["action_id"])
        else:
            raise Invalid(f"invalid_blocks: unknown block type {kind!r}")


def check_teams(payload: dict[str, Any], query: dict[str, str]) -> None:
    if payload.get("@type") == "MessageCard":
        need(payload.get("@context") == "http://schema.org/extensions", "@context is required")
        need(payload.get("summary") or payload.get("text"), "Summary or Text is required.")
        for action in payload.get("potentialAction", []):
            need(action["@type"] == "OpenUri" and action["name"], "unknown action")
            need(all(t["os"] == "default" and is_link(t["uri"]) for t in action["targets"]), "bad OpenUri target")
        return
    need(payload.get("type") == "message", "type must be message")
    [attachment] = payload["attachments"]
    need(attachment["contentType"] == "application/vnd.microsoft.card.adaptive", "not an adaptive card")
    card = attachment["content"]
    need(card["type"] == "AdaptiveCard" and card["version"] in ("1.0", "1.2", "1.3", "1.4", "1.5"), "bad card")
    for element in card["body"]:
        need(element["type"] in ("TextBlock", "FactSet"), "unknown element")
        if element["type"] == "FactSet":
            need(all(set(f) == {"title", "value"} for f in element["facts"]), "bad fact")
    for action in card.get("actions", []):
        need(action["type"] == "Action.OpenUrl" and action["title"] and is_link(action["url"]), "bad action")
        need(action.get("style", "default") in ("default", "positive", "destructive"), "bad action style")


def check_discord(payload: dict[str, Any], query: dict[str, str]) -> None:
    embeds = payload.get("embeds", [])
    need(payload.get("content") or embeds, "Cannot send an empty message")
    need(len(embeds) <= 10, "too many embeds")
    for embed in embeds:
        need(len(embed.get("title", "")) <= 256 and len(embed.get("description", "")) <= 4096, "embed too long")
        need(len(embed.get("fields", [])) <= 25, "too many fields")
        for field in embed.get("fields", []):
            need(0 < len(field["name"]) <= 256 and 0 < len(field["value"]) <= 1024, "bad field")
        need(isinstance(embed.get("color", 0), int), "color must be an integer")
    if "components" in payload and query.get("with_components") != "true":
        payload.pop("components")  # what Discord does: a plain webhook drops components it was not told to expect
    for row in payload.get("components", []):
        need(row["type"] == 1 and 0 < len(row["components"]) <= 5, "bad action row")
        for button in row["components"]:
            need(button["type"] == 2 and button["style"] == 5 and "custom_id" not in button, "not a link button")
            need(0 < len(button["label"]) <= 80 and is_link(button["url"]) and len(button["url"]) <= 512,
                 "bad link button")


def check_mattermost(payload: dict[str, Any], query: dict[str, str]) -> None:
    need(payload.get("text") or payload.get("attachments"), "Unable to parse incoming data")
    for attachment in payload.get("attachments", []):
        need(attachment.get("fallback"), "an attachment needs a fallback")
        for field in attachment.get("fields", []):
            need(set(field) <= {"short", "title", "value"} and field["title"], "bad field")


CHECKS = {"slack": check_slack, "teams": check_teams, "discord": check_discord, "mattermost": check_mattermost}


class ChatServer:
    def __init__(self) -> None:
        self.port = 0
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.refused: list[str] = []
        self._busy: dict[str, int] = {}
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        route = request.match_info.get("service", "busy")
        query = dict(request.query)
        if route == "gone":
            return web.Response(status=404, text="no_service")
        if route == "busy":
            left = self._busy.setdefault(request.path, int(request.match_info.get("n", "1")))
            if left > 0:
                self._busy[request.path] = left - 1
                return web.json_response({"message": "You are being rate limited.", "retry_after": 0.01},
                                         status=429, headers={"Retry-After": "0"})
            route = "slack"
        try:
            payload = await request.json()
            need(isinstance(payload, dict), "invalid_payload")
            need(request.content_type == "application/json", "invalid_payload: content type")
            CHECKS[route](payload, query)
        except (Invalid, KeyError, TypeError, ValueError) as exc:
            self.refused.append(str(exc))
            return web.Response(status=400, text=str(exc) or "invalid_payload")
        self.received.append((route, query, payload))
        if route == "teams":
            return web.Response(status=200, text="1") if payload.get("@type") == "MessageCard" \
                else web.Response(status=202)
        if route == "discord":
            return web.Response(status=204)
        return web.Response(status=200, text="ok")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/busy/{n:\\d+}", self._handle)
        app.router.add_post("/{service:slack|teams|discord|mattermost|gone}", self._handle)
        app.router.add_post("/api/webhooks/1/{service:discord}", self._handle)
        self._runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
