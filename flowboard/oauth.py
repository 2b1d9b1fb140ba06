"""OAuth2 tokens for credentials: client credentials, and authorization code with PKCE and automatic refresh.

The protocol's pieces come from authlib (the authorization URL, the token request bodies, PKCE's S256 challenge); the
token endpoint is called with httpx. (authlib's own httpx client is deprecated in favour of a package we do not use.)

- Client credentials: a token is fetched on first use and again shortly before it expires; kept in memory only.
- Authorization code: `start(name)` gives the provider's sign-in address (with state and a PKCE challenge) and keeps
  the sign-in in the database (the verifier encrypted, for 10 minutes, used once), so that any server of the same
  database finishes it, after a restart too; the provider sends the browser back to `/oauth/callback`, and
  `finish()` exchanges the code for tokens,
  stored encrypted in the credential. Before a run uses an access token that expires within `LEEWAY` seconds, it is
  refreshed and stored again; a refresh that fails is written on the credential (the credentials page shows it) and
  fails the node with the same words.

No token, secret or code ever goes into a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .credential_types import get as get_type
from .sdk import NodeError
from .store import Store

log = logging.getLogger(__name__)

CALLBACK_PATH = "/oauth/callback"
LEEWAY = 60.0  # refresh a token that expires within this many seconds
PENDING_SECONDS = 600.0  # a sign-in must come back within 10 minutes
TIMEOUT = 15.0


class OAuth2Failed(Exception):
    """Getting a token did not work; the message is plain words without secrets."""


class OAuth2:
    def __init__(self, store: Store, public_url: Callable[[], str]):
        self.store = store
        self.public_url = public_url
        self._client_tokens: dict[str, tuple[tuple[Any, ...], str, float]] = {}  # name -> (settings, token, expiry)
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def redirect_uri(self) -> str:
        return self.public_url().rstrip("/") + CALLBACK_PATH

    # -- what a node gets ---------------------------------------------------------------------------------------------

    async def current(self, name: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """`data` with a valid `access_token` (fetched or refreshed as needed). Raises NodeError in plain words."""
        declaration = get_type(type_)
        kind = declaration.oauth2 if declaration is not None else None
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one refresh at a time per credential: parallel nodes share the new token
            try:
                if kind == "client":
                    return {**data, "access_token": await self._client_token(name, data)}
                if kind == "code":
                    return await self._code_token(name, type_, data)
            except OAuth2Failed as exc:
                raise NodeError(f"credential {name!r}: {exc}", field="credential") from None
        return data

    async def _client_token(self, name: str, data: dict[str, Any], *, fresh: bool = False) -> str:
        settings = tuple(data.get(k) for k in ("token_url", "client_id", "client_secret", "scope", "audience",
                                                "client_auth"))
        cached = self._client_tokens.get(name)
        if not fresh and cached is not None and cached[0] == settings and cached[2] - LEEWAY > time.time():
            return cached[1]
        extra = {"scope": data["scope"]} if data.get("scope") else {}
        if data.get("audience"):
            extra["audience"] = data["audience"]
        token = await self._token_request(data, prepare_token_request("client_credentials", **extra))
        expiry = time.time() + float(token.get("expires_in") or 3600)
        self._client_tokens[name] = (settings, token["access_token"], expiry)
        return str(token["access_token"])

    async def _code_token(self, name: str, type_: str, data: dict[str, Any], *, fresh: bool = False) -> dict[str, Any]:
        if not data.get("access_token"):  # the caller's copy may be older than a sign-in another server just finished
            found = self.store.credential(name)
            data = found[1] if found is not None else data
        if not data.get("access_token"):
            raise OAuth2Failed("it is not connected yet: on the Credentials page, press Connect beside it and sign in "
                               "at the provider")
        expires_at = data.get("expires_at")
        if not fresh and (expires_at is None or float(expires_at) - LEEWAY > time.time()):
            return data
        # renew: the stored data may be newer than what the caller read (another node renewed it meanwhile)
        found = self.store.credential(name)
        if found is not None and not fresh:
            data = found[1]
            if data.get("expires_at") is None or float(data["expires_at"]) - LEEWAY > time.time():
                return data
        if not data.get("refresh_token"):
            problem = ("the sign-in has expired and the provider gave no refresh token to renew it: on the "
                       "Credentials page, press Connect beside it and sign in again")
            self.store.set_credential_problem(name, _stamped(problem))
            raise OAuth2Failed(problem)
        try:
            token = await self._token_request(data, prepare_token_request(
                "refresh_token", refresh_token=data["refresh_token"]))
        except OAuth2Failed as exc:
            again = self.store.credential(name)  # another process (a worker) may have renewed it with that token
            if again is not None and again[1].get("refresh_token") != data["refresh_token"] \
                    and float(again[1].get("expires_at") or 0) - LEEWAY > time.time():
                return again[1]
            problem = (f"renewing the sign-in failed ({exc}). On the Credentials page, press Connect beside it and "
                       "sign in again")
            self.store.set_credential_problem(name, _stamped(problem))
            log.warning("OAuth2 credential %r: %s", name, problem)
            raise OAuth2Failed(problem) from None
        data = _with_token(data, token)
        self.store.set_credential(name, type_, data)  # clears the problem
        return data

    # -- Test connection -----------------------------------------------------------------------------------------------

    async def test(self, name: str, type_: str, data: dict[str, Any]) -> str:
        """Fetch a token now (client credentials), or renew the sign-in (authorization code). Raises ValueError."""
        declaration = get_type(type_)
        kind = declaration.oauth2 if declaration is not None else None
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                if kind == "client":
                    await self._client_token(name, data, fresh=True)
                    return f"{_host(data['token_url'])} gave an access token"
                if not data.get("access_token"):
                    raise OAuth2Failed("it is not connected yet: press Connect and sign in at the provider")
                if data.get("refresh_token"):
                    await self._code_token(name, type_, data, fresh=True)
                    return f"Connected: {_host(data['token_url'])} renewed the sign-in"
                return "Connected (the provider gave no refresh token, so the sign-in cannot be renewed)"
            except OAuth2Failed as exc:
                raise ValueError(str(exc)[:1].upper() + str(exc)[1:]) from None

    # -- sign in (authorization code with PKCE) ------------------------------------------------------------------------

    def start(self, name: str) -> str:
        """The provider's sign-in address for credential `name` (oauth2_code), remembering state and PKCE verifier."""
        found = self.store.credential(name)
        if found is None:
            raise OAuth2Failed(f"there is no credential {name!r}")
        type_, data = found
        declaration = get_type(type_)
        if declaration is None or declaration.oauth2 != "code":
            raise OAuth2Failed(f"the credential {name!r} is not an OAuth2 sign-in (type oauth2_code)")
        state, verifier = generate_token(32), generate_token(64)
        self.store.add_sign_in(state, name, {"verifier": verifier, "redirect_uri": self.redirect_uri},
                               PENDING_SECONDS)
        extra = {"scope": data["scope"]} if data.get("scope") else {}
        return str(prepare_grant_uri(data["authorize_url"], data["client_id"], "code", redirect_uri=self.redirect_uri,
                                     state=state, code_challenge=create_s256_code_challenge(verifier),
                                     code_challenge_method="S256", **extra))

    async def finish(self, state: str, code: str | None, error: str | None = None,
                     description: str | None = None) -> str:
        """Exchange the provider's code for tokens and store them; returns the credential's name. Raises
        OAuth2Failed in plain words."""
        pending = self.store.take_sign_in(state) if state else None
        if pending is None:
            raise OAuth2Failed("this sign-in is unknown, finished already or too old (it must finish within 10 "
                               "minutes): press Connect again")
        name, secret = pending
        if error:
            raise OAuth2Failed(f"the provider refused the sign-in: {_words(error, description)}")
        if not code:
            raise OAuth2Failed("the provider sent no code back: press Connect again")
        found = self.store.credential(name)
        if found is None:
            raise OAuth2Failed(f"the credential {name!r} was deleted meanwhile")
        type_, data = found
        token = await self._token_request(data, prepare_token_request(
            "authorization_code", code=code, redirect_uri=secret["redirect_uri"], code_verifier=secret["verifier"]))
        self.store.set_credential(name, type_, _with_token(data, token))
        return name

    # -- the token endpoint --------------------------------------------------------------------------------------------

    async def _token_request(self, data: dict[str, Any], body: str) -> dict[str, Any]:
        """POST to the token endpoint, the client authenticated with HTTP basic (RFC 6749 2.3.1) when it has a
        secret, or with client_id and client_secret in the body when the credential says so; a public client sends
        its client_id alone."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        client_id, secret = str(data["client_id"]), str(data.get("client_secret") or "")
        if secret and data.get("client_auth", "basic") != "body":
            pair = f"{_form(client_id)}:{_form(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            body += "&client_id=" + _form(client_id) + (f"&client_secret={_form(secret)}" if secret else "")
        url = str(data["token_url"])
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise OAuth2Failed(f"could not reach the token address {_host(url)} ({type(exc).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400 or not isinstance(answer, dict) or "access_token" not in answer:
            if isinstance(answer, dict) and answer.get("error"):
                said = _words(str(answer["error"]), answer.get("error_description"))
                raise OAuth2Failed(f"{_host(url)} answered {response.status_code}: {said}")
            raise OAuth2Failed(f"{_host(url)} answered {response.status_code} without an access token")
        return answer


def _with_token(data: dict[str, Any], token: dict[str, Any]) -> dict[str, Any]:
    out = {**data, "access_token": str(token["access_token"])}
    if token.get("refresh_token"):
        out["refresh_token"] = str(token["refresh_token"])  # else the old one stays valid (RFC 6749 6)
    if token.get("expires_in"):
        out["expires_at"] = time.time() + float(token["expires_in"])
    else:
        out.pop("expires_at", None)
    return out


_KNOWN = {"invalid_grant": "the sign-in is no longer valid (revoked, expired or already used)",
          "invalid_client": "the client ID or secret is wrong", "unauthorized_client": "this client may not do that",
          "access_denied": "access was denied", "invalid_scope": "a scope is not valid",
          "invalid_request": "the request was not valid"}


def _words(error: str, description: Any) -> str:
    said = _KNOWN.get(error, error)
    return f"{said} ({str(description)[:200]})" if description else said


def _stamped(problem: str) -> str:
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime())}: {problem[:1].upper()}{problem[1:]}"


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except httpx.InvalidURL:
        return "the token address"


def _form(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
