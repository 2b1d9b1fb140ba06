"""The shared HTTP client behind `ctx.http`: httpx's API, and a short way through for plain calls.

httpx on the aiohttp transport cost 2.6-3.5x raw aiohttp per call (`bench/http_client.py`): the time went to httpx's
layers (a Request with its headers normalised, the URL parsed twice, the auth and redirect generators, a streamed
Response read back through decoders), not to the network, and aiohttp's client itself cost 46 µs of CPU per call.
`Client.request` therefore sends a plain call (bytes or no body, no auth, no params, no cookies, no file or form,
redirects not followed, no Host or length header of the caller's) on connections of its own kept open per origin
(`flowboard/httpwire.py`, 17 µs per call): the request is written as httpx on aiohttp writes it, the client's
default headers merged once per client, timeouts built once per value, and the answer is read whole and handed back
as an `httpx.Response` whose request is built only if someone asks for it. Anything else (`auth=`, `json=`, `data=`,
`files=`, `params=`, `follow_redirects=True`, `stream()`, a proxy mounted from the environment, event hooks) takes
httpx's own path on an aiohttp session, unchanged.

The client keeps no cookies, neither in httpx nor in aiohttp's session: a session cookie one flow receives must never
ride along on another flow's requests (a node that needs one sends a `Cookie` header)."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from typing import Any, NamedTuple

import aiohttp
import httpx
from httpx._client import USE_CLIENT_DEFAULT, ClientState
from httpx_aiohttp import AiohttpTransport
from multidict import CIMultiDict

from .httpwire import Origin, Wires, request_bytes


class _Target(NamedTuple):
    origin: Origin
    path: bytes  # the request line's target: the path and query as httpx writes them
    host: bytes  # the Host header


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Response(httpx.Response):
    """An answer read whole by the short way: its `request` is built when first asked for (raise_for_status,
    error messages), since most callers never look at it."""

    _lazy: tuple[str, Any, Any] | None = None

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            if self._lazy is None:
                raise RuntimeError("The request instance has not been set on this response.")
            method, url, headers = self._lazy
            self._request = httpx.Request(method, str(url), headers=list(headers.items()))
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value

    def raise_for_status(self) -> httpx.Response:
        self.request  # noqa: B018 - built now: httpx reads the attribute behind it
        return super().raise_for_status()


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch  # a method or a header name (RFC 9110 5.6.2)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})  # tokens, known without the regex
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})  # the short way writes these itself


class Client(httpx.AsyncClient):
    """httpx.AsyncClient with a short way to aiohttp for plain calls (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self._aio = AiohttpTransport(client=self._session)
        self._session_obj: aiohttp.ClientSession | None = None
        super().__init__(transport=self._aio, **kwargs)
        self._defaults: CIMultiDict[str] = CIMultiDict()
        self._defaults_of: list[Any] = []  # the client's header list they were built from
        self._timeouts: dict[Any, tuple[float | None, float | None, float | None]] = {}
        self._urls: dict[str | int, _Target] = {}
        self._wires: Wires | None = None  # the short way's connections
        self._parsed: dict[int, httpx.URL] = {}  # the httpx URLs behind the int keys of _urls

    def _session(self) -> aiohttp.ClientSession:  # what AiohttpTransport builds by default, without a cookie jar
        if self._session_obj is None:
            # up to 1,000 connections at once: aiohttp's default of 100 capped fan-out (32 runs x 20 calls waited for
            # 100 sockets: 94 req/s on bench/peer.py's fanout, Node-RED 363)
            connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=5.0, ssl=self._aio.ssl_context)
            self._session_obj = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session_obj

    @property
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("the shared HTTP client keeps no cookies; send a Cookie header instead")

    async def request(self, method: str, url: httpx.URL | str, *, content: Any = None, data: Any = None,
                      files: Any = None, json: Any = None, params: Any = None, headers: Any = None,
                      cookies: Any = None, auth: Any = USE_CLIENT_DEFAULT, follow_redirects: Any = USE_CLIENT_DEFAULT,
                      timeout: Any = USE_CLIENT_DEFAULT, extensions: Any = None) -> httpx.Response:
        if (data is None and files is None and json is None and params is None and cookies is None
                and (content is None or type(content) is bytes) and not extensions
                and (auth is USE_CLIENT_DEFAULT or auth is None) and self._auth is None
                and (follow_redirects is False or (follow_redirects is USE_CLIENT_DEFAULT
                                                   and not self.follow_redirects))
                and not self._mounts and not self._base_url.raw_path.strip(b"/") and not self._base_url.host
                and not self._event_hooks["request"] and not self._event_hooks["response"]
                and self._state is not ClientState.CLOSED and (method in _METHODS or _TOKEN(method))):
            merged = self._merge(headers)
            target = self._urls.get(url if type(url) is str else id(url))
            if target is not None and type(url) is not str and self._parsed.get(id(url)) is not url:
                target = None  # another URL object that took a forgotten one's place in memory
            if target is None and merged is not None:
                target = self._target(url)
            if target is not None and merged is not None:
                return await self._short(method.upper(), url, target, content, merged, timeout)
        return await super().request(method, url, content=content, data=data, files=files, json=json,
                                     params=params, headers=headers, cookies=cookies, auth=auth,
                                     follow_redirects=follow_redirects, timeout=timeout, extensions=extensions)

    def _merge(self, headers: Any) -> CIMultiDict[str] | None:
        """The client's headers with the call's over them (as httpx merges them), or None when a header is not
        plain ASCII text (httpx's own path then says what is wrong with it)."""
        if self._headers._list != self._defaults_of:  # once, and again whenever someone changes client.headers
            self._defaults_of = list(self._headers._list)
            self._defaults = CIMultiDict(self._headers.items())
        merged = self._defaults.copy()
        if headers:
            pairs = headers.items() if hasattr(headers, "items") else headers
            seen: set[str] = set()
            for name, value in pairs:
                if type(name) is not str or type(value) is not str or not (name.isascii() and value.isascii()):
                    return None
                if not _TOKEN(name):  # a header name is a token (RFC 9110 5.1): no spaces, colons or line ends
                    return None
                if "\r" in value or "\n" in value:
                    return None
                key = name.lower()
                if key in _OWN_HEADERS:
                    return None  # httpx's own path decides what goes out then
                if key in seen:  # a header given twice goes as one line, its values joined, as httpx sends it
                    merged[name] = f"{merged[name]}, {value}"
                else:
                    seen.add(key)
                    merged[name] = value
        return merged

    def _target(self, url: httpx.URL | str) -> _Target | None:
        """Where the call goes and what its request line says, as httpx writes them, or None for one that httpx's
        own path should report on. Remembered (a fan-out calls the same one many times)."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL:
            return None
        scheme = parsed.scheme
        if scheme not in ("http", "https") or not parsed.host:
            return None
        host = parsed.raw_host.decode("ascii")
        target = _Target((scheme, host, parsed.port or (443 if scheme == "https" else 80)), parsed.raw_path,
                         parsed.netloc)
        if len(self._urls) >= 512:
            self._urls.clear()
            self._parsed.clear()
        if isinstance(url, httpx.URL):  # immutable: remembered by identity, the object kept alive with it
            self._urls[id(url)] = target
            self._parsed[id(url)] = url
        else:
            self._urls[url] = target
        return target

    def _wire_timeout(self, timeout: Any) -> tuple[float | None, float | None, float | None]:
        key = timeout if isinstance(timeout, int | float | None) else repr(timeout)
        found = self._timeouts.get(key)
        if found is None:
            t = self.timeout if timeout is USE_CLIENT_DEFAULT else httpx.Timeout(timeout)
            found = (t.connect, t.read, t.pool)
            if len(self._timeouts) < 64:
                self._timeouts[key] = found
        return found

    async def _short(self, method: str, url: httpx.URL | str, target: _Target, content: bytes | None,
                     headers: CIMultiDict[str], timeout: Any) -> httpx.Response:
        start = time.perf_counter()
        wires = self._wires
        if wires is None or wires.loop is not asyncio.get_running_loop():  # (tests run a loop per test)
            if wires is not None:
                wires.close()
            wires = self._wires = Wires(self._aio.ssl_context)
        connect, read, pool = self._wire_timeout(timeout)
        answer = await wires.call(target.origin, request_bytes(method, target.path, target.host, headers,
                                                                     content), method, connect, read, pool)
        extensions = {"http_version": answer.version, "reason_phrase": answer.reason} if answer.reason else \
            {"http_version": answer.version}
        encoded = any(name.lower() == b"content-encoding" for name, _ in answer.headers)
        response = _Response(answer.status, headers=answer.headers, stream=httpx.ByteStream(answer.body),
                             extensions=extensions)
        response._lazy = (method, url, headers)
        if encoded:  # gzip and the rest: unpacked by httpx's own decoders
            await response.aread()
        else:
            response._content = answer.body
            response.is_stream_consumed = True
            response.is_closed = True
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        return response

    async def aclose(self) -> None:
        await super().aclose()  # closes the transport, and the session if httpx's own path ever used it
        if self._wires is not None:
            self._wires.close()
        if self._session_obj is not None and not self._session_obj.closed:
            await self._session_obj.close()


def make_client(timeout: float = 30.0) -> Client:
    return Client(timeout=timeout, follow_redirects=False)
