"""Sending email over SMTP (plain, STARTTLS or TLS), text and HTML, attachments from items: what the Send email node
and the Approval node's notices use (`flowboard.sdk` exposes `EmailConfig` and `send_messages`)."""

from __future__ import annotations

import base64
import binascii
import errno
import html
import mimetypes
import re
import socket
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import NodeError

if TYPE_CHECKING:
    import aiosmtplib  # imported where a mail is sent: it costs a quarter of a second of start-up

    from ..sdk import Context

Item = dict[str, Any]

Addresses = str | list[str]
_ADDRESS_HELP = ("One address, or several separated by commas, e.g. ada@example.com, Grace <grace@example.com>; or "
                 "an expression giving a list.")
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "plain": 25}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attachment(_Strict):
    filename: str = Field(min_length=1, description="The file name the recipient sees, e.g. "
                          "invoice-{{ item.number }}.pdf.")
    content: str = Field("", description="The file's content: usually an expression reading an item's field, such as "
                         "{{ item.pdf }}, or text written here.", json_schema_extra={"widget": "textarea"})
    encoding: Literal["text", "base64"] = Field("text", description="How the content above is written: as plain text, "
                                                "or as base64 (a file, as the HTTP request node gives it).",
                                                json_schema_extra={"widget": "select",
                                                                   "enum_labels": ["plain text", "base64"]})
    content_type: str = Field("", description="The file's media type, e.g. application/pdf; empty: guessed from "
                              "the file name.")


class EmailConfig(_Strict):
    credential: str = Field(min_length=1, description="The mail server to send through: pick a saved Email "
                            "server (SMTP) credential, which holds its address, port, user and password.",
                            json_schema_extra={"widget": "credential", "credential_types": ["smtp"]})
    sender: str = Field(min_length=1, description="From: the sender's address, e.g. "
                        "Flowboard <flows@example.com>. Many servers only accept their own addresses here.")
    to: Addresses = Field(description=f"To. {_ADDRESS_HELP}")
    cc: Addresses = Field(default_factory=list, description=f"Cc: copies everybody sees. {_ADDRESS_HELP}")
    bcc: Addresses = Field(default_factory=list, description=f"Bcc: hidden copies. {_ADDRESS_HELP}")
    reply_to: Addresses = Field(default_factory=list, description=f"Reply-To: where answers go. {_ADDRESS_HELP}")
    subject: str = Field(min_length=1, description="Subject line, e.g. Vacation request from {{ item.employee }}.")
    text: str = Field("", description="The message as plain text. Empty: made from the HTML.",
                      json_schema_extra={"widget": "textarea"})
    html: str = Field("", description="The message as HTML (shown by most mail programs instead of the text). "
                      "Expressions are inserted as they are: write {{ item.name | e }} for text from outside.",
                      json_schema_extra={"widget": "code", "language": "html"})
    attachments: list[Attachment] = Field(default_factory=list, description="Files to attach.")
    timeout: float = Field(30, gt=0, le=600, description="How many seconds to wait for the mail server at each "
                           "step, e.g. 30.")

    @field_validator("cc", "bcc", "reply_to", "text", "html", mode="before")
    @classmethod
    def _missing_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value  # `{{ item.manager }}` on an item without a manager

    @model_validator(mode="after")
    def _has_body(self) -> Self:
        if not self.text.strip() and not self.html.strip():
            raise ValueError("write the message in `text` or `html` (or both)")
        return self


async def send_messages(ctx: Context, configs: list[EmailConfig]) -> list[Item]:
    """Send one message per config over one connection to the first config's mail server (the Send email node,
    and the Approval node to notify approvers). Every message is built before the first is sent."""
    messages = [_message(cfg, index) for index, cfg in enumerate(configs)]
    server = await _Server.load(ctx, configs[0].credential)
    out: list[Item] = []
    async with server.connect(configs[0].timeout) as smtp:
        for index, (message, recipients) in enumerate(messages):
            ctx.check_cancelled()
            out.append(await server.send(smtp, message, recipients, index))
    return out


# -- building a message ---------------------------------------------------------------------------------------------


def _message(cfg: EmailConfig, index: int) -> tuple[EmailMessage, list[str]]:
    def fail(message: str, field: str) -> NodeError:
        return NodeError(message, item_index=index, field=field)

    sender = _addresses(cfg.sender, "sender", index)
    if len(sender) != 1:
        raise fail(f"sender must be one address, not {len(sender)}", "sender")
    to, cc, bcc = (_addresses(value, name, index) for name, value in (("to", cfg.to), ("cc", cfg.cc),
                                                                        ("bcc", cfg.bcc)))
    reply_to = _addresses(cfg.reply_to, "reply_to", index)
    if not (to or cc or bcc):
        raise fail("there is no recipient: `to` is empty (after evaluating expressions)", "to")
    if "\n" in cfg.subject or "\r" in cfg.subject:
        raise fail("subject must be one line (it holds a line break)", "subject")
    message = EmailMessage()
    message["From"] = sender[0]
    if to:
        message["To"] = to
    if cc:
        message["Cc"] = cc
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = cfg.subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender[0].domain or None)
    text = cfg.text if cfg.text.strip() else _html_to_text(cfg.html)
    message.set_content(text)
    if cfg.html.strip():
        message.add_alternative(cfg.html, subtype="html")
    for number, attachment in enumerate(cfg.attachments):
        data, maintype, subtype = _attachment(attachment, index, f"attachments[{number}]")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message, [a.addr_spec for a in (*to, *cc, *bcc)]


def _addresses(value: Addresses, field: str, index: int) -> list[Address]:
    """Parsed addresses from text ("a@x, Ada <ada@x>"; semicolons work too) or a list of such texts."""
    texts = [value] if isinstance(value, str) else [str(v) for v in value if v is not None]
    out: list[Address] = []
    for text in texts:
        if "\n" in text or "\r" in text:
            raise NodeError(f"{field}: an address holds a line break ({_shorten(text, 60)!r})", item_index=index,
                            field=field)
        for name, addr in getaddresses([text.replace(";", ",")]):
            if not name and not addr:
                continue
            local, at, domain = addr.rpartition("@")
            if not at or not local or ("." not in domain.strip(".") and domain != "localhost"):
                shown = addr or name
                raise NodeError(f"{field}: {shown!r} is not an email address (like ada@example.com)",
                                item_index=index, field=field)
            try:
                out.append(Address(display_name=name, addr_spec=addr))
            except (ValueError, IndexError) as exc:
                raise NodeError(f"{field}: {addr!r} is not an email address ({exc})", item_index=index,
                                field=field) from None
    return out


def _attachment(attachment: Attachment, index: int, where: str) -> tuple[bytes, str, str]:
    if attachment.encoding == "base64":
        try:
            data = base64.b64decode("".join(attachment.content.split()), validate=True)
        except (binascii.Error, ValueError):
            raise NodeError(f"{where}: the content of {attachment.filename!r} is not valid base64; set encoding to "
                            "text if it is text", item_index=index, field="attachments") from None
    else:
        data = attachment.content.encode()
    content_type = attachment.content_type.strip() or mimetypes.guess_type(attachment.filename)[0] \
        or ("text/plain" if attachment.encoding == "text" else "application/octet-stream")
    maintype, slash, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    if not slash or not maintype or not subtype:
        raise NodeError(f"{where}: {content_type!r} is not a media type (like application/pdf)", item_index=index,
                        field="attachments")
    return data, maintype, subtype


class _TextOfHtml(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
                         "blockquote", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "td":
            self.parts.append("  ")
        if tag == "a":
            self._links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href and href.startswith(("http://", "https://", "mailto:")):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data))  # a non-breaking space stays


def _html_to_text(markup: str) -> str:
    """A readable plain-text version of an HTML message: blocks on their own lines, links with their address."""
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return html.unescape(text) + "\n"


# -- the mail server ------------------------------------------------------------------------------------------------


class _Server:
    """One SMTP credential: where the server is, how to protect the connection, and how to log in."""

    def __init__(self, name: str, host: str, port: int, security: str, user: str, password: str,
                 certificate: str) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.security = security
        self.user = user
        self.password = password
        self.certificate = certificate

    @classmethod
    async def load(cls, ctx: Context, name: str) -> _Server:
        try:
            fields = await ctx.credential(name)
        except NodeError as exc:
            exc.field = exc.field or "credential"
            raise
        host = str(fields.get("host") or "").strip()
        if not host:
            raise NodeError(f"credential {name!r} has no mail server host; it needs the fields of an smtp credential "
                            "(host, port, security, user, password)", field="credential")
        security = str(fields.get("security") or "starttls").strip().lower()
        if security not in _DEFAULT_PORTS:
            raise NodeError(f"credential {name!r}: security must be starttls, tls or plain, not {security!r}",
                            field="credential")
        port_text = str(fields.get("port") or "").strip()
        if not port_text:
            port = _DEFAULT_PORTS[security]
        elif port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            raise NodeError(f"credential {name!r}: port must be a number from 1 to 65535, not {port_text!r}",
                            field="credential")
        return cls(name, host, port, security, str(fields.get("user") or ""), str(fields.get("password") or ""),
                   str(fields.get("certificate") or ""))

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, timeout: float) -> _Connection:
        return _Connection(self, timeout)

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.certificate.strip():
            try:
                context.load_verify_locations(cadata=_pem(self.certificate))
            except (ssl.SSLError, ValueError):
                raise NodeError(f"credential {self.name!r}: the trusted certificate is not a PEM certificate (it "
                                "starts with -----BEGIN CERTIFICATE-----)", field="credential") from None
        return context

    async def send(self, smtp: aiosmtplib.SMTP, message: EmailMessage, recipients: list[str], index: int) -> Item:
        import aiosmtplib

        sender = str(message["From"].addresses[0].addr_spec)
        try:
            rejected, _reply = await smtp.send_message(message, sender=sender, recipients=recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = "; ".join(f"{e.recipient} ({e.code} {_one_line(e.message)})" for e in exc.recipients)
            raise NodeError(f"the mail server {self.where} refused every recipient: {refused}",
                            item_index=index) from None
        except aiosmtplib.SMTPSenderRefused as exc:
            raise NodeError(f"the mail server {self.where} refused the sender {exc.sender} ({exc.code} "
                            f"{_one_line(exc.message)}); use an address the server accepts", item_index=index,
                            field="sender") from None
        except aiosmtplib.SMTPDataError as exc:
            raise NodeError(f"the mail server {self.where} refused the message ({exc.code} {_one_line(exc.message)})",
                            item_index=index) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise NodeError(self.problem(exc, "while sending"), item_index=index) from None
        accepted = [r for r in recipients if r not in rejected]
        return {
            "message_id": str(message["Message-ID"]),
            "from": str(message["From"]),
            "to": [str(a) for a in message["To"].addresses] if message["To"] else [],
            "cc": [str(a) for a in message["Cc"].addresses] if message["Cc"] else [],
            "bcc": [r for r in recipients if r not in _header_addrs(message)],
            "subject": str(message["Subject"]),
            "accepted": accepted,
            "rejected": {r: f"{resp.code} {_one_line(resp.message)}" for r, resp in rejected.items()},
        }

    def problem(self, exc: BaseException, when: str) -> str:
        """Plain words for a failure talking to the mail server."""
        import aiosmtplib

        where = f"the mail server {self.where}"
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return (f"{where} refused the user name or password of credential {self.name!r} ({exc.code} "
                    f"{_one_line(exc.message)})")
        chain = _chain(exc)
        for err in chain:
            if isinstance(err, ssl.SSLCertVerificationError):
                return (f"{where} has a certificate this machine does not trust ({err.verify_message}); put the "
                        f"server's certificate in credential {self.name!r} (field certificate), or check the host "
                        "name")
        for err in chain:
            if isinstance(err, ssl.SSLError):
                hint = ("starttls usually uses port 587 and tls port 465; check the credential's port and security"
                        if self.security != "plain" else "check the credential's security")
                return f"could not make a secure connection to {where} ({err.reason or err}); {hint}"
        for err in chain:
            if isinstance(err, OSError) and err.errno == errno.ECONNREFUSED:
                return f"could not connect to {where}: connection refused (is the host and port right?)"
            if isinstance(err, socket.gaierror):
                return f"could not connect to {where}: the host name {self.host!r} was not found"
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return f"{where} did not answer in time {when}"
        message = str(exc)
        if "STARTTLS extension not supported" in message:
            return (f"{where} does not offer STARTTLS, so the connection cannot be encrypted; set the credential's "
                    "security to tls (if the server encrypts from the start) or plain")
        if "AUTH" in message and "not supported" in message:
            return (f"{where} does not accept a login on this connection; leave the credential's user and password "
                    "empty, or use starttls or tls")
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            return f"{where} closed the connection {when}; check the credential's port and security"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return f"{where} answered {exc.code} {_one_line(exc.message)} {when}"
        return f"could not talk to {where} {when}: {_one_line(message) or type(exc).__name__}"


class _Connection:
    """`async with`: a connected (and, when the credential says so, logged-in) SMTP client; closed on the way out."""

    def __init__(self, server: _Server, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.smtp: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> aiosmtplib.SMTP:
        import aiosmtplib

        server = self.server
        context = server.tls_context() if server.security != "plain" else None
        smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=self.timeout,
                               local_hostname=socket.gethostname() or "localhost",
                               use_tls=server.security == "tls", start_tls=server.security == "starttls",
                               tls_context=context)
        try:
            await smtp.connect()
            if server.user:
                await smtp.login(server.user, server.password)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise NodeError(server.problem(exc, "while connecting"), field="credential") from None
        self.smtp = smtp
        return smtp

    async def __aexit__(self, *exc: object) -> None:
        import aiosmtplib

        if self.smtp is not None:
            try:
                await self.smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                self.smtp.close()


# -- small helpers ------------------------------------------------------------------------------------------------


def _pem(text: str) -> str:
    """A PEM certificate as the ssl module wants it, even when pasted into a one-line field (newlines lost)."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, flags=re.S)
    if not blocks:
        raise ValueError("no certificate")
    out = []
    for block in blocks:
        body = "".join(block.split())
        out.append("-----BEGIN CERTIFICATE-----\n" + "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
                   + "\n-----END CERTIFICATE-----\n")
    return "".join(out)


def _header_addrs(message: EmailMessage) -> set[str]:
    return {a.addr_spec for key in ("To", "Cc") if message[key] for a in message[key].addresses}


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def _one_line(text: Any) -> str:
    return _shorten(" ".join(str(text).split()), 200)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
