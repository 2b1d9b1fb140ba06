"""`chat.post` through the real engine against a local server that checks each service's payload format
(tests/chatservers.py): Slack, Microsoft Teams (Adaptive Card and MessageCard), Discord and Mattermost."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowboard.engine import Engine, RunResult, RunStatus, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.sdk import Services

from .chatservers import ChatServer
from .mailserver import free_port

ITEMS = [{"employee": "Ada", "days": 3, "from": "2026-12-21", "task": "t-1"},
         {"employee": "Linus", "days": 5, "from": "2027-01-04", "task": "t-2"}]


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    async with ChatServer() as srv:
        yield srv


async def run(creds: dict[str, dict[str, Any]], config: dict[str, Any],
              items: list[dict[str, Any]] | None = None) -> RunResult:
    flow = {"name": "chat", "nodes": [{"id": "t", "type": "trigger.manual"},
                                      {"id": "chat", "type": "chat.post", "config": config}],
            "edges": [{"source": "t", "target": "chat"}]}
    engine = Engine(services=Services(credentials=creds.get))
    try:
        return await engine.run(build_plan(parse_flow(flow), default_registry()), items if items is not None
                                else ITEMS)
    finally:
        await engine.aclose()


def request_config(service: str, **over: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "service": service, "credential": "hook",
        "title": "Vacation request from {{ item.employee }}",
        "message": "**{{ item.employee }}** asks for {{ item.days }} days.",
        "details": [{"name": "Days", "value": "{{ item.days }}"}, {"name": "From", "value": "{{ item.from }}"},
                    {"name": "Note", "value": None}],
        "buttons": [{"title": "Approve", "url": "https://flows.example.com/a/{{ item.task }}/approve",
                     "style": "primary"},
                    {"title": "Reject", "url": "https://flows.example.com/a/{{ item.task }}/reject", "style": "danger"},
                    {"title": "Hidden", "url": ""}],
        "color": "#2E7D32",
    }
    config.update(over)
    return config


async def posted(server: ChatServer, service: str, path: str | None = None,
                 **over: Any) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    creds = {"hook": {"url": server.url(path or f"/{service}")}}
    result = await run(creds, request_config(service.split(":")[0], **over))
    assert result.status is RunStatus.succeeded, (result.error, server.refused)
    assert len(result.output) == 2 and result.output[0]["service"] == service.split(":")[0]
    assert len(server.received) == 2
    return server.received


# -- each service's format ------------------------------------------------------------------------------------------


async def test_slack_blocks_with_link_buttons(server: ChatServer) -> None:
    [(_, _, payload), (_, _, second)] = await posted(server, "slack")
    assert payload["text"] == "Vacation request from Ada - **Ada** asks for 3 days."
    header, section, fields, actions = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Vacation request from Ada"}}
    assert section["text"] == {"type": "mrkdwn", "text": "**Ada** asks for 3 days."}
    assert [f["text"] for f in fields["fields"]] == ["*Days*\n3", "*From*\n2026-12-21"]
    assert actions["elements"] == [
        {"type": "button", "text": {"type": "plain_text", "text": "Approve"},
         "url": "https://flows.example.com/a/t-1/approve", "action_id": "link-0", "style": "primary"},
        {"type": "button", "text": {"type": "plain_text", "text": "Reject"},
         "url": "https://flows.example.com/a/t-1/reject", "action_id": "link-1", "style": "danger"}]
    assert second["blocks"][0]["text"]["text"] == "Vacation request from Linus"


@pytest.mark.parametrize("card", ["adaptive", "message_card"])
async def test_teams_cards_with_open_url_actions(server: ChatServer, card: str) -> None:
    [(_, _, payload), _] = await posted(server, "teams", teams_card=card)
    if card == "adaptive":
        [attachment] = payload["attachments"]
        content = attachment["content"]
        title, text, facts = content["body"]
        assert title["text"] == "Vacation request from Ada" and title["weight"] == "Bolder"
        assert text["text"] == "**Ada** asks for 3 days."
        assert facts["facts"] == [{"title": "Days", "value": "3"}, {"title": "From", "value": "2026-12-21"}]
        assert content["actions"] == [
            {"type": "Action.OpenUrl", "title": "Approve", "url": "https://flows.example.com/a/t-1/approve",
             "style": "positive"},
            {"type": "Action.OpenUrl", "title": "Reject", "url": "https://flows.example.com/a/t-1/reject",
             "style": "destructive"}]
    else:
        assert payload["title"] == "Vacation request from Ada" and payload["themeColor"] == "2E7D32"
        assert payload["sections"] == [{"facts": [{"name": "Days", "value": "3"},
                                                  {"name": "From", "value": "2026-12-21"}]}]
        assert payload["potentialAction"] == [
            {"@type": "OpenUri", "name": "Approve",
             "targets": [{"os": "default", "uri": "https://flows.example.com/a/t-1/approve"}]},
            {"@type": "OpenUri", "name": "Reject",
             "targets": [{"os": "default", "uri": "https://flows.example.com/a/t-1/reject"}]}]


async def test_discord_embed_with_link_buttons(server: ChatServer) -> None:
    [(_, query, payload), _] = await posted(server, "discord", path="/api/webhooks/1/discord",
                                            message="@everyone {{ item.employee }} asks for {{ item.days }} days.")
    assert query == {"with_components": "true"}, "plain channel webhooks drop components without it"
    [embed] = payload["embeds"]
    assert embed["title"] == "Vacation request from Ada" and embed["color"] == 0x2E7D32
    assert embed["description"] == "@everyone Ada asks for 3 days."
    assert payload["allowed_mentions"] == {"parse": []}, "data from items must never ping a channel"
    assert embed["fields"] == [{"name": "Days", "value": "3", "inline": True},
                               {"name": "From", "value": "2026-12-21", "inline": True}]
    assert payload["components"] == [{"type": 1, "components": [
        {"type": 2, "style": 5, "label": "Approve", "url": "https://flows.example.com/a/t-1/approve"},
        {"type": 2, "style": 5, "label": "Reject", "url": "https://flows.example.com/a/t-1/reject"}]}]


async def test_mattermost_attachment_with_links(server: ChatServer) -> None:
    [(_, _, payload), _] = await posted(server, "mattermost")
    [attachment] = payload["attachments"]
    assert attachment["fallback"] == "Vacation request from Ada - **Ada** asks for 3 days."
    assert attachment["color"] == "#2e7d32" and attachment["title"] == "Vacation request from Ada"
    assert attachment["text"] == ("**Ada** asks for 3 days.\n\n[Approve](https://flows.example.com/a/t-1/approve)"
                                  " · [Reject](https://flows.example.com/a/t-1/reject)")
    assert attachment["fields"] == [{"short": True, "title": "Days", "value": "3"},
                                    {"short": True, "title": "From", "value": "2026-12-21"}]


@pytest.mark.parametrize("service", ["slack", "teams", "discord", "mattermost"])
async def test_long_texts_are_cut_to_each_services_limits(server: ChatServer, service: str) -> None:
    long = "x" * 5000
    over = {"title": long, "message": long, "details": {f"f{n}": long for n in range(30)},
            "buttons": [{"title": long, "url": "https://example.com/" + "y" * 400}]}
    creds = {"hook": {"url": server.url(f"/{service}")}}
    result = await run(creds, request_config(service, **over), [{}])
    assert result.status is RunStatus.succeeded, (result.error, server.refused)


async def test_a_message_without_buttons_and_details(server: ChatServer) -> None:
    for service in ("slack", "teams", "discord", "mattermost"):
        creds = {"hook": {"url": server.url(f"/{service}")}}
        result = await run(creds, {"service": service, "credential": "hook", "message": "Backup finished."}, [{}])
        assert result.status is RunStatus.succeeded, (service, result.error, server.refused)
    assert [route for route, _, _ in server.received] == ["slack", "teams", "discord", "mattermost"]
    assert server.received[2][1] == {}, "no with_components without buttons"


# -- failures ------------------------------------------------------------------------------------------------------


async def failed(creds: dict[str, dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    result = await run(creds, config)
    assert result.status is RunStatus.failed, result.output
    assert result.error is not None
    return result.error


async def test_a_deleted_webhook_gives_a_plain_error_without_the_url(server: ChatServer) -> None:
    secret_path = f"/gone?token={secrets.token_hex(8)}"
    error = await failed({"hook": {"url": server.url(secret_path)}}, request_config("slack"))
    assert error["message"] == ("Slack refused the message: 404 Not Found (no_service); the webhook does not exist "
                                "(deleted?); make a new one and put it in the credential")
    assert error["item_index"] == 0


async def test_a_payload_the_service_refuses(server: ChatServer) -> None:
    # service set to slack, but the URL is a Teams webhook: Teams answers 400, and its words reach the user
    error = await failed({"hook": {"url": server.url("/teams")}}, request_config("slack"))
    assert error["message"] == "Slack refused the message: 400 Bad Request (type must be message)"
    assert server.refused == ["type must be message"]


async def test_too_many_messages_waits_and_tries_again(server: ChatServer) -> None:
    result = await run({"hook": {"url": server.url("/busy/2")}}, request_config("slack"), [ITEMS[0]])
    assert result.status is RunStatus.succeeded, result.error
    assert len(server.received) == 1
    error = await failed({"hook": {"url": server.url("/busy/5")}}, request_config("slack"))
    assert error["message"] == ("Slack refused the message: 429 Too Many Requests ({\"message\":\"You are being rate "
                                "limited.\",\"retry_after\":0.01}); too many messages; the service asked to slow down")


async def test_refused_connection() -> None:
    port = free_port()
    error = await failed({"hook": {"url": f"http://127.0.0.1:{port}/hooks/T000/B000/XXXX"}},
                         request_config("mattermost"))
    assert error["message"] == f"could not reach the Mattermost webhook at 127.0.0.1:{port}: connection refused"
    assert "XXXX" not in error["message"]


@pytest.mark.parametrize(("creds", "expected"), [
    ({}, "there is no credential called 'hook'; add it under Credentials"),
    ({"hook": {"url": "hooks.slack.com/services/x"}},
     "credential 'hook' holds no webhook URL: it needs a field url starting with https://"),
])
async def test_bad_credentials(creds: dict[str, dict[str, Any]], expected: str) -> None:
    error = await failed(creds, request_config("slack"))
    assert error["message"] == expected and error["field"] == "credential"


async def test_a_bad_button_url_stops_before_anything_is_posted(server: ChatServer) -> None:
    config = request_config("slack", buttons=[{"title": "Open", "url": "{{ item.link }}"}])
    result = await run({"hook": {"url": server.url("/slack")}}, config,
                       [{"link": "https://example.com/ok"}, {"link": "javascript:alert(1)"}])
    assert result.status is RunStatus.failed
    assert result.error is not None
    assert result.error["message"] == ("buttons[0].url: 'javascript:alert(1)' is not an address starting with "
                                       "http:// or https://")
    assert result.error["item_index"] == 1
    assert server.received == []


async def test_an_empty_message_is_refused(server: ChatServer) -> None:
    error = await failed({"hook": {"url": server.url("/slack")}},
                         {"service": "slack", "credential": "hook", "message": "{{ item.nothing }}"})
    assert error["message"] == "the message is empty: write a title, a message or details"
