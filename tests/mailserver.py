"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 in its own thread, plain, STARTTLS or implicit TLS, with an
optional login, and a self-signed certificate made with `cryptography` at run time. No mocks.

    with MailServer(security="starttls", login=("ada", "pw")) as server:
        server.port, server.certificate_pem      # for the credential
        server.messages                          # every message received: (envelope, email.message.EmailMessage)
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import warnings
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed() -> tuple[str, str]:
    """A certificate for 127.0.0.1 and localhost, and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowboard test mail server")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert_pem, key_pem


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.server.messages.append((envelope, message))
        self.server.sessions.add(id(session))
        return "250 Message accepted"


class _Controller(Controller):
    def factory(self) -> SMTPServer:
        """One server session per connection, without aiosmtpd's warning about AUTH without STARTTLS: it cannot tell
        that an implicit-TLS connection is encrypted already."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return super().factory()


class MailServer:
    """aiosmtpd in a thread. `security`: plain, starttls (STARTTLS required) or tls (encrypted from the start)."""

    def __init__(self, security: Literal["plain", "starttls", "tls"] = "plain",
                 login: tuple[str, str] | None = None) -> None:
        self.security = security
        self.login = login
        self.port = free_port()
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.sessions: set[int] = set()
        self.logins: list[str] = []
        self.certificate_pem, self._key_pem = self_signed()
        self._controller: Controller | None = None
        self._dir = tempfile.TemporaryDirectory()

    def _context(self) -> ssl.SSLContext:
        cert, key = Path(self._dir.name, "cert.pem"), Path(self._dir.name, "key.pem")
        cert.write_text(self.certificate_pem)
        key.write_text(self._key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def _authenticate(self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.login is not None \
                and (auth_data.login.decode(), auth_data.password.decode()) == self.login:
            self.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def __enter__(self) -> Self:
        kwargs: dict[str, Any] = {}
        if self.security == "starttls":
            kwargs.update(tls_context=self._context(), require_starttls=True)
        elif self.security == "tls":
            kwargs["ssl_context"] = self._context()
        if self.login is not None:
            # aiosmtpd sees TLS only when it came by STARTTLS; an implicit-TLS connection is just as safe
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.security == "starttls")
        self._controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._controller is not None:
            self._controller.stop()
        self._dir.cleanup()

    def credential(self, **fields: str) -> dict[str, str]:
        """The smtp credential for this server (fields override)."""
        out = {"host": "127.0.0.1", "port": str(self.port), "security": self.security}
        if self.login is not None:
            out.update(user=self.login[0], password=self.login[1])
        if self.security != "plain":
            out["certificate"] = self.certificate_pem
        out.update(fields)
        return out
