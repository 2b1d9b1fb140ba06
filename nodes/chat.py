"""Post to chat: a message per item to a Slack, Microsoft Teams, Discord or Mattermost incoming webhook, in each
service's own format, with link buttons where the service has them. The posting lives in the SDK
(`flowboard/notify/chat.py`), which the Approval node's notices use too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowboard.sdk import SERVICE_NAMES, Category, ChatConfig, Context, Inputs, NodeType, Outputs, post_messages


class PostToChat(NodeType):
    """Posts one message per input item to a chat channel through its incoming webhook, and returns one item per
    message: `{"service", "status", "answer"}`.

    The webhook URL lives in a credential (type chat_webhook), never in the flow. Each service gets its documented
    format: Slack Block Kit (a header, the message, fields, and button elements that open their URL), Microsoft Teams
    an Adaptive Card with Action.OpenUrl buttons (or a legacy MessageCard with OpenUri actions), Discord an embed with
    link buttons (sent with `with_components=true`, which plain channel webhooks need), Mattermost a message
    attachment whose buttons become links (Mattermost's own buttons call a server, not a browser).

    Messages are built for every item before the first is posted, so a bad button URL stops the node before anything
    is sent. When the service answers 429 (too many messages), the node waits as long as it asks (up to 30 s) and
    tries again, twice at most. Any other refusal fails the node with the service's answer; the webhook URL is never
    shown in an error."""

    type = "chat.post"
    title = "Post to chat"
    category = Category.integration
    icon = "chat"
    description = "Post a message with link buttons to Slack, Microsoft Teams, Discord or Mattermost."
    Config = ChatConfig
    side_effects = True

    @classmethod
    def name_for(cls, config: Mapping[str, Any]) -> str | None:
        service = SERVICE_NAMES.get(str(config.get("service")))
        return f"Post to {service}" if service else None

    async def run(self, ctx: Context, config: ChatConfig, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        return await post_messages(ctx, [cfg for _, _, cfg in ctx.each(items)] if items else [config])
