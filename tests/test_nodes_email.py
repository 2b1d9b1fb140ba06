"""`email.send` through the real engine against a real SMTP server (aiosmtpd, tests/mailserver.py): plain, STARTTLS
and implicit TLS, with the message, its HTML part and attachments read back from what the server received."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowboard.credential_types import credential_data
from flowboard.engine import Engine, RunResult, RunStatus, build_plan
from flowboard.errors import FlowInvalid
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.sdk import Services

from .conftest import make_flow
from .mailserver import MailServer, free_port

PASSWORD = f"pw-{secrets.token_hex(8)}"
PDF = b"%PDF-1.4\n" + bytes(range(256)) + b"\n%%EOF\n"


@pytest.fixture
async def creds() -> AsyncIterator[dict[str, dict[str, Any]]]:
    yield {}


async def run(creds: dict[str, dict[str, Any]], config: dict[str, Any], items: list[dict[str, Any]]) -> RunResult:
    flow = make_flow([{"id": "t", "type": "trigger.manual"}, {"id": "mail", "type": "email.send", "config": config}],
                     [("t", "mail")])
    engine = Engine(services=Services(credentials=creds.get))
    try:
        return await engine.run(build_plan(parse_flow(flow), default_registry()), items)
    finally:
        await engine.aclose()


def base(**over: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"credential": "mail", "sender": "Flowboard <flows@example.com>",
                              "to": "{{ item.email }}", "subject": "Hello {{ item.name }}",
                              "text": "Dear {{ item.name }},\nyour request is in."}
    config.update(over)
    return config


async def failed(creds: dict[str, dict[str, Any]], config: dict[str, Any],
                 items: list[dict[str, Any]] | None = None) -> str:
    result = await run(creds, config, items if items is not None else [{"email": "ada@example.com", "name": "Ada"}])
    assert result.status is RunStatus.failed, result.output
    assert result.error is not None
    return str(result.error["message"])


def lf(text: str) -> str:
    """Text as written: SMTP carries CRLF line ends, which the received message keeps."""
    return text.replace("\r\n", "\n")


# -- what arrives ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["plain", "starttls", "tls"])
async def test_message_html_and_attachments_arrive(security: str, creds: dict[str, dict[str, Any]]) -> None:
    login = None if security == "plain" else ("ada", PASSWORD)
    items = [{"email": "ada@example.com", "name": "Ada", "manager": "grace@example.com",
              "pdf": base64.b64encode(PDF).decode(), "number": 42},
             {"email": "linus@example.com", "name": "Linus", "manager": "ken@example.com",
              "pdf": base64.b64encode(b"second").decode(), "number": 43}]
    config = base(cc="{{ item.manager }}", bcc=["audit@example.com", "Archive <archive@example.com>"],
                  reply_to="hr@example.com",
                  html="<p>Dear <b>{{ item.name | e }}</b>,</p><p><a href='https://example.com/r/{{ item.number }}'>"
                       "your request</a> is in.</p>",
                  attachments=[{"filename": "invoice-{{ item.number }}.pdf", "content": "{{ item.pdf }}",
                                "encoding": "base64"},
                               {"filename": "summary.csv", "content": "name,number\n{{ item.name }},{{ item.number }}",
                                "content_type": "text/csv"}])
    with MailServer(security, login=login) as server:  # type: ignore[arg-type]
        creds["mail"] = server.credential()
        result = await run(creds, config, items)
        assert result.status is RunStatus.succeeded, result.error
    assert len(server.messages) == 2
    assert len(server.sessions) == 1, "all messages of a run share one connection"
    if login:
        assert server.logins == ["ada"]
    envelope, message = server.messages[0]
    assert envelope.mail_from == "flows@example.com"
    assert sorted(envelope.rcpt_tos) == ["ada@example.com", "archive@example.com", "audit@example.com",
                                         "grace@example.com"]
    assert message["From"] == "Flowboard <flows@example.com>"
    assert message["To"] == "ada@example.com"
    assert message["Cc"] == "grace@example.com"
    assert message["Reply-To"] == "hr@example.com"
    assert message["Bcc"] is None, "Bcc recipients must not be visible in the message"
    assert message["Subject"] == "Hello Ada"
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_content_type() == "multipart/mixed"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert lf(text.get_content()) == "Dear Ada,\nyour request is in.\n"
    assert "<b>Ada</b>" in html.get_content()
    attachments = list(message.iter_attachments())
    assert [(a.get_filename(), a.get_content_type()) for a in attachments] == [
        ("invoice-42.pdf", "application/pdf"), ("summary.csv", "text/csv")]
    assert attachments[0].get_content() == PDF
    assert lf(attachments[1].get_content()) == "name,number\nAda,42"
    second = server.messages[1][1]
    assert second["To"] == "linus@example.com"
    assert next(second.iter_attachments()).get_content() == b"second"
    report = result.output[0]
    assert report["to"] == ["ada@example.com"] and report["cc"] == ["grace@example.com"]
    assert sorted(report["bcc"]) == ["archive@example.com", "audit@example.com"]
    assert report["subject"] == "Hello Ada" and report["rejected"] == {}
    assert report["message_id"] == message["Message-ID"]
    assert PASSWORD not in str(result.output)


async def test_html_only_gets_a_readable_text_part(creds: dict[str, dict[str, Any]]) -> None:
    html = ("<html><head><style>p {color: red}</style></head><body><h1>Vacation request</h1>"
            "<p>Ada asks for <b>3&nbsp;days</b>.</p><p><a href='https://example.com/approve'>Approve</a></p>"
            "<script>alert(1)</script></body></html>")
    with MailServer() as server:
        creds["mail"] = server.credential()
        result = await run(creds, base(text="", html=html), [{"email": "ada@example.com", "name": "Ada"}])
        assert result.status is RunStatus.succeeded, result.error
    message = server.messages[0][1]
    text = message.get_body(("plain",))
    assert text is not None
    assert lf(text.get_content()) == "Vacation request\n\nAda asks for 3\xa0days.\n\nApprove (https://example.com/approve)\n"
    assert message.get_body(("html",)) is not None


async def test_addresses_as_lists_and_with_names(creds: dict[str, dict[str, Any]]) -> None:
    items = [{"team": ["ada@example.com", "Grace Hopper <grace@example.com>"], "name": "Team"}]
    with MailServer() as server:
        creds["mail"] = server.credential()
        result = await run(creds, base(to="{{ item.team }}", cc='"Doe, John" <john@example.com>; ken@example.com',
                                       bcc="{{ item.nobody }}"), items)
        assert result.status is RunStatus.succeeded, result.error
    envelope, message = server.messages[0]
    assert sorted(envelope.rcpt_tos) == ["ada@example.com", "grace@example.com", "john@example.com",
                                         "ken@example.com"]
    assert message["To"] == "ada@example.com, Grace Hopper <grace@example.com>"
    assert message["Cc"] == '"Doe, John" <john@example.com>, ken@example.com'


async def test_a_refused_recipient_is_reported_while_the_others_get_the_message(
        creds: dict[str, dict[str, Any]]) -> None:
    with MailServer() as server:
        creds["mail"] = server.credential()
        result = await run(creds, base(to="ada@example.com, nobody@example.com"), [{"name": "Ada"}])
        assert result.status is RunStatus.succeeded, result.error
    assert server.messages[0][0].rcpt_tos == ["ada@example.com"]
    assert result.output[0]["accepted"] == ["ada@example.com"]
    assert result.output[0]["rejected"] == {"nobody@example.com": "550 5.1.1 no such mailbox here"}


# -- failures, each a plain step error -----------------------------------------------------------------------------


async def test_wrong_password(creds: dict[str, dict[str, Any]]) -> None:
    with MailServer("starttls", login=("ada", PASSWORD)) as server:
        creds["mail"] = server.credential(password="wrong-password")
        message = await failed(creds, base())
    assert message.startswith(f"the mail server 127.0.0.1:{server.port} refused the user name or password of "
                              "credential 'mail' (535")
    assert "wrong-password" not in message and not server.messages


async def test_refused_connection(creds: dict[str, dict[str, Any]]) -> None:
    port = free_port()
    creds["mail"] = {"host": "127.0.0.1", "port": str(port), "security": "plain"}
    assert await failed(creds, base()) == (f"could not connect to the mail server 127.0.0.1:{port}: connection "
                                           "refused (is the host and port right?)")


async def test_untrusted_certificate(creds: dict[str, dict[str, Any]]) -> None:
    for security in ("starttls", "tls"):
        with MailServer(security) as server:  # type: ignore[arg-type]
            creds["mail"] = server.credential(certificate="")
            message = await failed(creds, base())
        assert message.startswith(f"the mail server 127.0.0.1:{server.port} has a certificate this machine does not "
                                  "trust (self-signed certificate)"), message
        assert not server.messages


async def test_certificate_pasted_on_one_line_still_works(creds: dict[str, dict[str, Any]]) -> None:
    with MailServer("tls") as server:
        creds["mail"] = server.credential(certificate=server.certificate_pem.replace("\n", " "))
        result = await run(creds, base(), [{"email": "ada@example.com", "name": "Ada"}])
        assert result.status is RunStatus.succeeded, result.error
    assert len(server.messages) == 1


async def test_security_that_does_not_fit_the_server(creds: dict[str, dict[str, Any]]) -> None:
    with MailServer() as server:  # plain: offers no STARTTLS and no TLS
        creds["mail"] = server.credential(security="starttls")
        message = await failed(creds, base())
        assert message.startswith(f"the mail server 127.0.0.1:{server.port} does not offer STARTTLS"), message
        creds["mail"] = server.credential(security="tls")
        message = await failed(creds, base())
        assert message.startswith(f"could not make a secure connection to the mail server 127.0.0.1:{server.port}"), \
            message
        assert "check the credential's port and security" in message
        creds["mail"] = server.credential(certificate="not a certificate", security="tls")
        message = await failed(creds, base())
        assert message == "credential 'mail': the trusted certificate is not a PEM certificate (it starts with " \
                          "-----BEGIN CERTIFICATE-----)"


async def test_every_recipient_refused(creds: dict[str, dict[str, Any]]) -> None:
    with MailServer() as server:
        creds["mail"] = server.credential()
        message = await failed(creds, base(to="nobody@example.com"))
    assert message == (f"the mail server 127.0.0.1:{server.port} refused every recipient: nobody@example.com "
                       "(550 5.1.1 no such mailbox here)")


@pytest.mark.parametrize(("credential", "expected"), [
    (None, "there is no credential called 'mail'; add it under Credentials"),
    ({"token": "x"}, "credential 'mail' has no mail server host; it needs the fields of an smtp credential "
                     "(host, port, security, user, password)"),
    ({"host": "127.0.0.1", "security": "ssl"}, "credential 'mail': security must be starttls, tls or plain, "
                                               "not 'ssl'"),
    ({"host": "127.0.0.1", "port": "99999"}, "credential 'mail': port must be a number from 1 to 65535, not '99999'"),
])
async def test_bad_credentials(creds: dict[str, dict[str, Any]], credential: dict[str, str] | None,
                               expected: str) -> None:
    if credential is not None:
        creds["mail"] = credential
    assert await failed(creds, base()) == expected


@pytest.mark.parametrize(("over", "item", "expected"), [
    ({}, {"email": "not-an-address", "name": "x"}, "to: 'not-an-address' is not an email address (like "
                                                   "ada@example.com)"),
    ({}, {"email": "", "name": "x"}, "there is no recipient: `to` is empty (after evaluating expressions)"),
    ({"sender": "a@example.com, b@example.com"}, {"email": "ada@example.com"}, "sender must be one address, not 2"),
    ({"subject": "{{ item.name }}"}, {"email": "ada@example.com", "name": "a\nBcc: x@evil.example"},
     "subject must be one line (it holds a line break)"),
    ({}, {"email": "ada@example.com\r\nBcc: x@evil.example"},
     "to: an address holds a line break ('ada@example.com\\r\\nBcc: x@evil.example')"),
    ({"attachments": [{"filename": "a.pdf", "content": "{{ item.pdf }}", "encoding": "base64"}]},
     {"email": "ada@example.com", "pdf": "%%% not base64"},
     "attachments[0]: the content of 'a.pdf' is not valid base64; set encoding to text if it is text"),
    ({"attachments": [{"filename": "a.bin", "content": "x", "content_type": "pdf"}]},
     {"email": "ada@example.com"}, "attachments[0]: 'pdf' is not a media type (like application/pdf)"),
])
async def test_bad_messages_stop_before_anything_is_sent(creds: dict[str, dict[str, Any]], over: dict[str, Any],
                                                         item: dict[str, Any], expected: str) -> None:
    with MailServer() as server:
        creds["mail"] = server.credential()
        good = {"email": "ada@example.com", "name": "Ada", "pdf": "eA=="}
        assert await failed(creds, base(**over), [good, item]) == expected
    assert not server.messages, "a bad second message must stop the node before the first is sent"


def test_smtp_credential_fields() -> None:
    assert credential_data("smtp", {"host": "mail.example.com"}, None) == {"host": "mail.example.com"}
    full = {"host": "h", "port": "2525", "security": "tls", "user": "ada", "password": "pw", "certificate": "c"}
    assert credential_data("smtp", full, None) == full
    with pytest.raises(ValueError, match=r"Security \(security\) must be one of starttls, "
                                         r"tls, plain, not 'ssl'"):
        credential_data("smtp", {"host": "h", "security": "ssl"}, None)
    with pytest.raises(ValueError, match=r"Mail server \(host name\) \(host\) is required"):
        credential_data("smtp", {"user": "ada"}, None)


def test_a_message_needs_text_or_html() -> None:
    flow = make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "mail", "type": "email.send",
                       "config": base(text="", to="ada@example.com", subject="Hi")}], [("t", "mail")])
    with pytest.raises(FlowInvalid) as info:
        build_plan(parse_flow(flow), default_registry())
    assert "write the message in `text` or `html` (or both)" in str(info.value)
