"""The shared HTTP client behind `ctx.http`: httpx's API, aiohttp underneath, and a short way through for plain calls.

httpx on the aiohttp transport cost 2.6-3.5x raw aiohttp per call (`bench/http_client.py`): the time went to httpx's
layers (a Request with its headers normalised, the URL parsed twice, the auth and redirect generators, a streamed
Response read back through decoders), not to the network. `Client.request` therefore sends a plain call (bytes or
no body, no auth, no params, no cookies, no file or form, redirects not followed) straight on the aiohttp session:
the client's default headers are merged once per client, timeouts are built once per value, and the answer is read
whole and handed back as an `httpx.Response` whose request is built only if someone asks for it. Anything else
(`auth=`, `json=`, `data=`, `files=`, `params=`, `follow_redirects=True`, `stream()`, a proxy mounted from the
environment, event hooks) takes httpx's own path on the same aiohttp session, unchanged.

The client keeps no cookies, neither in httpx nor in aiohttp's session: a session cookie one flow receives must never
ride along on another flow's requests (a node that needs one sends a `Cookie` header)."""

from __future__ import annotations

import datetime
import time
from typing import Any

import aiohttp
import httpx
from httpx._client import USE_CLIENT_DEFAULT, ClientState
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from multidict import CIMultiDict
from yarl import URL as YarlURL


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


_EXTENSIONS = {"http_version": b"HTTP/1.1"}


class Client(httpx.AsyncClient):
    """httpx.AsyncClient with a short way to aiohttp for plain calls (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self._aio = AiohttpTransport(client=self._session)
        self._session_obj: aiohttp.ClientSession | None = None
        super().__init__(transport=self._aio, **kwargs)
        self._defaults: CIMultiDict[str] = CIMultiDict()
        self._defaults_of: list[Any] = []  # the client's header list they were built from
        self._timeouts: dict[Any, aiohttp.ClientTimeout] = {}
        self._urls: dict[str | int, YarlURL] = {}
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
                and self._state is not ClientState.CLOSED):
            merged = self._merge(headers)
            target = self._urls.get(url if type(url) is str else id(url))
            if target is not None and type(url) is not str and self._parsed.get(id(url)) is not url:
                target = None  # another URL object that took a forgotten one's place in memory
            if target is None and merged is not None:
                target = self._aio_url(url)
            if target is not None and merged is not None:
                return await self._short(method, target, content, merged, timeout)
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
                if "\r" in value or "\n" in value:
                    return None
                key = name.lower()
                if key in seen:  # a header given twice goes as one line, its values joined, as httpx sends it
                    merged[name] = f"{merged[name]}, {value}"
                else:
                    seen.add(key)
                    merged[name] = value
        return merged

    def _aio_url(self, url: httpx.URL | str) -> YarlURL | None:
        """The URL as httpx writes it, for aiohttp (which then sends it as it is), or None for one that httpx's own
        path should report on. Remembered (a fan-out calls the same one many times)."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL:
            return None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return None
        target = YarlURL(str(parsed), encoded=True)
        if len(self._urls) >= 512:
            self._urls.clear()
            self._parsed.clear()
        if isinstance(url, httpx.URL):  # immutable: remembered by identity, the object kept alive with it
            self._urls[id(url)] = target
            self._parsed[id(url)] = url
        else:
            self._urls[url] = target
        return target

    def _aio_timeout(self, timeout: Any) -> aiohttp.ClientTimeout:
        key = timeout if isinstance(timeout, int | float | None) else repr(timeout)
        found = self._timeouts.get(key)
        if found is None:
            t = self.timeout if timeout is USE_CLIENT_DEFAULT else httpx.Timeout(timeout)
            found = aiohttp.ClientTimeout(sock_connect=t.connect, sock_read=t.read, connect=t.pool)
            if len(self._timeouts) < 64:
                self._timeouts[key] = found
        return found

    async def _short(self, method: str, url: YarlURL, content: bytes | None, headers: CIMultiDict[str],
                     timeout: Any) -> httpx.Response:
        session = self._session()
        start = time.perf_counter()
        with map_aiohttp_exceptions():
            async with session.request(method, url, headers=headers,
                                       data=content or None, allow_redirects=False, compress=False,
                                       timeout=self._aio_timeout(timeout)) as answer:
                body = await answer.read()
                raw = answer.raw_headers
                reason = answer.reason
        response = _Response(answer.status, headers=raw, stream=httpx.ByteStream(body),
                             extensions={**_EXTENSIONS, "reason_phrase": reason.encode()} if reason else _EXTENSIONS)
        response._lazy = (method, url, headers)
        response._content = body
        response.is_stream_consumed = True
        response.is_closed = True
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        return response

    async def aclose(self) -> None:
        await super().aclose()  # closes the transport, and the session if httpx's own path ever used it
        if self._session_obj is not None and not self._session_obj.closed:
            await self._session_obj.close()


def make_client(timeout: float = 30.0) -> Client:
    return Client(timeout=timeout, follow_redirects=False)
