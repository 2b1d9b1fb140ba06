"""Send email: one message per item over SMTP (plain, STARTTLS or TLS), text and HTML, attachments from items. The
sending lives in the SDK (`flowboard/notify/email.py`), which the Approval node's notices use too."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email.utils import getaddresses
from typing import Any

from flowboard.sdk import Category, Context, EmailConfig, Inputs, NodeType, Outputs, plain, send_messages

_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


class SendEmail(NodeType):
    """Sends one email for every input item through the mail server of an SMTP credential, and returns one item per
    message: `{"message_id", "from", "to", "cc", "bcc", "subject", "accepted", "rejected"}`.

    Every field may hold expressions, evaluated for each item, and every message is built before the first is sent,
    so a bad address or attachment stops the node before any mail goes out. All messages of one run share one
    connection. The credential's `security` decides how the connection is protected: `starttls` (port 587 by
    default: the connection is upgraded, and the node fails if the server cannot), `tls` (port 465: encrypted from
    the start) or `plain` (port 25: no encryption; only for a server on your own machine or network). The server's
    certificate is always checked; a server with its own (self-signed) certificate needs it in the credential's
    `certificate` field.

    With HTML and no text, a plain-text version is made from the HTML, so every mail program can show the message.
    Attachments come from items: `{{ item.pdf }}` with encoding base64 for a file another node fetched, or text (a
    CSV written with an expression) with encoding text. A recipient the server refuses is listed under `rejected`
    while the others get the message; when the server refuses all of them, the node fails."""

    type = "email.send"
    common = True
    title = "Send email"
    category = Category.integration
    icon = "mail"
    description = "Send an email for every item through your mail server, with text or HTML and attachments."
    Config = EmailConfig
    side_effects = True

    @classmethod
    def name_for(cls, config: Mapping[str, Any]) -> str | None:
        to = config.get("to")
        first = to[0] if isinstance(to, list) and to else to
        name, address = getaddresses([first])[0] if isinstance(first, str) and plain(first) else ("", "")
        who = plain(name) or plain(address)
        return f"Email {who}" if who else None

    @classmethod
    def suggest(cls, config: Mapping[str, Any], fields: Mapping[str, Any], others: Sequence[Mapping[str, Any]],
                tables: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """To: the first field of the items coming in that holds an email address. Sender: the one another Send
        email node of this flow uses with the same mail server."""
        out: dict[str, Any] = {}
        if not config.get("to"):
            path = next((p for p, v in fields.items() if isinstance(v, str) and _ADDRESS.fullmatch(v.strip())), None)
            if path is not None:
                out["to"] = f"{{{{ item{path} }}}}"
        if not config.get("sender"):
            same = [o for o in others if o.get("sender") and isinstance(o.get("sender"), str)
                    and (not config.get("credential") or o.get("credential") == config.get("credential"))]
            if same:
                out["sender"] = same[0]["sender"]
        return out

    async def run(self, ctx: Context, config: EmailConfig, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        return await send_messages(ctx, [cfg for _, _, cfg in ctx.each(items)] if items else [config])
