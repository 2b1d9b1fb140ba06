"""`http.request` through the real engine against a real local server (tests/servers.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from aiohttp import web

from flowboard.blobs import BlobStore
from flowboard.engine import Engine, Plan, RunResult, RunStatus, build_plan
from flowboard.errors import FlowInvalid
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.sdk import Services

from .conftest import make_flow
from .servers import HttpServer, ThreadedHttpServer, serve

SECRET = f"s3cr3t-{secrets.token_hex(10)}"
ODD = f"a+b/c=d&e {secrets.token_hex(6)}"  # a secret that changes when URL-encoded or base64-encoded
CREDENTIALS: dict[str, dict[str, Any]] = {
    "api": {"type": "bearer", "token": SECRET},
    "basic": {"type": "basic", "user": "alice", "password": "pa55word-xyz"},
    "apikey": {"type": "header", "name": "X-Api-Key", "value": SECRET},
    "qkey": {"type": "query", "name": "api_key", "value": SECRET},
    "session": {"type": "cookie", "name": "sid", "value": SECRET},
    "odd": {"type": "query", "name": "key", "value": ODD},
}
#: Where each credential shows up in the echo of a request that carried it.
CARRIED = {
    "api": lambda r: r["headers"].get("authorization") == f"Bearer {SECRET}",
    "basic": lambda r: r["headers"].get("authorization", "").startswith("Basic "),
    "apikey": lambda r: r["headers"].get("x-api-key") == SECRET,
    "qkey": lambda r: r["query"].get("api_key") == SECRET,
    "session": lambda r: f"sid={SECRET}" in r["headers"].get("cookie", ""),
    "odd": lambda r: r["query"].get("key") == ODD,
}


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    async with HttpServer() as srv:
        yield srv


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(services=Services(credentials=CREDENTIALS.get, blobs=BlobStore(tmp_path / "blobs")))
    yield eng
    await eng.aclose()


def plan(config: dict[str, Any], version: int = 1, **settings: Any) -> Plan:
    node: dict[str, Any] = {"id": "http", "type": "http.request", "version": version, "config": config}
    if settings:
        node["settings"] = settings
    flow = make_flow([{"id": "t", "type": "trigger.manual"}, node], [("t", "http")])
    return build_plan(parse_flow(flow), default_registry())


async def run(engine: Engine, config: dict[str, Any], items: list[dict[str, Any]] | None = None,
              version: int = 1) -> RunResult:
    return await engine.run(plan(config, version), items if items is not None else [{}])


async def ok(engine: Engine, config: dict[str, Any], items: list[dict[str, Any]] | None = None,
             version: int = 1) -> list[Any]:
    result = await run(engine, config, items, version)
    assert result.status is RunStatus.succeeded, result.error
    return result.output


async def failed(engine: Engine, config: dict[str, Any], items: list[dict[str, Any]] | None = None) -> dict:
    result = await run(engine, config, items)
    assert result.status is RunStatus.failed, result.output
    assert result.error is not None
    return result.error


# -- methods, query, headers, bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_every_method_reaches_the_server(engine: Engine, server: HttpServer, method: str) -> None:
    [item] = await ok(engine, {"method": method, "url": server.url("/echo/m")})
    assert server.requests[-1]["method"] == method
    assert item["status"] == 200
    assert item["headers"]["x-echo"] == "yes"
    if method == "HEAD":
        assert item["body"] == ""
    else:
        assert item["body"]["method"] == method
        assert item["body"]["path"] == "/echo/m"


async def test_query_and_headers_reach_the_server(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {
        "url": server.url("/echo/q?fixed=1"),
        "query": [{"name": "tag", "value": "a"}, {"name": "tag", "value": "b"}, {"name": "n", "value": 5},
                  {"name": "flag", "value": True}, {"name": "skipped", "value": None}],
        "headers": {"X-Trace": "abc", "Accept": "application/json"},
    })
    seen = server.requests[-1]
    assert seen["query_list"] == [["fixed", "1"], ["tag", "a"], ["tag", "b"], ["n", "5"], ["flag", "true"]]
    assert seen["headers"]["x-trace"] == "abc"
    assert seen["headers"]["accept"] == "application/json"


async def test_json_body_from_an_expression(engine: Engine, server: HttpServer) -> None:
    items: list[dict[str, Any]] = [{"name": "Ada", "tags": ["x", "y"], "n": 1.5},
                                   {"name": "Bob", "tags": [], "n": None}]
    out = await ok(engine, {"method": "POST", "url": server.url("/echo/json"),
                            "body": {"type": "json", "data": "{{ item }}"}}, items)
    assert [r["json"] for r in server.requests] == items
    assert server.requests[0]["headers"]["content-type"] == "application/json"
    assert [o["body"]["json"] for o in out] == items


async def test_json_body_fixed_value_with_nested_expression(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {"method": "POST", "url": server.url("/echo"),
                      "body": {"type": "json", "data": {"user": {"id": "{{ item.id }}"}, "list": [1, 2]}}},
             [{"id": 7}])
    assert server.requests[-1]["json"] == {"user": {"id": 7}, "list": [1, 2]}


async def test_form_body_is_urlencoded(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {"method": "POST", "url": server.url("/echo/form"),
                      "body": {"type": "form", "fields": {"name": "{{ item.name }}", "city": "Köln & Bonn"}}},
             [{"name": "Ada Lovelace"}])
    seen = server.requests[-1]
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["form"] == {"name": "Ada Lovelace", "city": "Köln & Bonn"}


async def test_multipart_fields_and_files(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {"method": "POST", "url": server.url("/echo/upload"), "body": {
        "type": "multipart",
        "fields": [{"name": "title", "value": "Report"}, {"name": "year", "value": 2024}],
        "files": [{"name": "doc", "filename": "a.txt", "content": "hello file", "content_type": "text/plain"},
                  {"name": "bin", "filename": "b.bin", "encoding": "base64",
                   "content": base64.b64encode(b"ascii bytes").decode()}],
    }})
    seen = server.requests[-1]
    assert seen["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert seen["form"] == {"title": "Report", "year": "2024"}
    assert seen["files"]["doc"] == {"filename": "a.txt", "content_type": "text/plain", "text": "hello file"}
    assert seen["files"]["bin"]["text"] == "ascii bytes"
    assert seen["files"]["bin"]["filename"] == "b.bin"


async def test_multipart_with_fields_only_is_still_multipart(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {"method": "POST", "url": server.url("/echo"),
                      "body": {"type": "multipart", "fields": {"a": "1"}}})
    assert server.requests[-1]["headers"]["content-type"].startswith("multipart/form-data")
    assert server.requests[-1]["form"] == {"a": "1"}


async def test_raw_body_keeps_text_and_content_type(engine: Engine, server: HttpServer) -> None:
    xml = "<order id='{{ item.id }}'>ä</order>"
    await ok(engine, {"method": "PUT", "url": server.url("/echo/raw"),
                      "body": {"type": "raw", "text": xml, "content_type": "application/xml; charset=utf-8"}},
             [{"id": 3}])
    seen = server.requests[-1]
    assert seen["body"] == "<order id='3'>ä</order>"
    assert seen["headers"]["content-type"] == "application/xml; charset=utf-8"


async def test_a_content_type_header_wins_over_the_body_default(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {"method": "POST", "url": server.url("/echo"), "headers": {"content-type": "application/vnd+json"},
                      "body": {"type": "json", "data": {"a": 1}}})
    assert server.requests[-1]["headers"]["content-type"] == "application/vnd+json"
    assert server.requests[-1]["json"] == {"a": 1}


# -- answers ------------------------------------------------------------------------------------------------------


async def test_non_2xx_fails_the_node_with_status_method_url_and_excerpt(engine: Engine, server: HttpServer) -> None:
    url = server.url("/status/404")
    error = await failed(engine, {"method": "DELETE", "url": url})
    assert error["message"] == f'DELETE {url} answered 404 Not Found: {{"status": 404}}'
    assert error["node_id"] == "http"
    assert error["item_index"] == 0


async def test_non_2xx_error_points_at_the_failing_item(engine: Engine, server: HttpServer) -> None:
    error = await failed(engine, {"url": server.url("/status/{{ item.code }}?text=went+wrong")},
                         [{"code": 200}, {"code": 503}, {"code": 200}])
    assert error["item_index"] == 1
    assert "answered 503 Service Unavailable: went wrong" in error["message"]


async def test_non_2xx_as_data(engine: Engine, server: HttpServer) -> None:
    out = await ok(engine, {"url": server.url("/status/{{ item.code }}"), "non_2xx": "data"},
                   [{"code": 500}, {"code": 201}, {"code": 404}])
    assert [(o["status"], o["body"]) for o in out] == [(500, {"status": 500}), (201, {"status": 201}),
                                                       (404, {"status": 404})]


async def test_redirects_followed_by_default(engine: Engine, server: HttpServer) -> None:
    [item] = await ok(engine, {"url": server.url("/redirect/3")})
    assert item["status"] == 200
    assert item["body"]["path"] == "/echo/redirected"
    assert [r["path"] for r in server.requests] == ["/redirect/3", "/redirect/2", "/redirect/1", "/echo/redirected"]


async def test_redirect_not_followed_is_the_answer(engine: Engine, server: HttpServer) -> None:
    [item] = await ok(engine, {"url": server.url("/redirect/2"), "follow_redirects": False})
    assert item["status"] == 302
    assert item["headers"]["location"] == "/redirect/1"
    assert len(server.requests) == 1


async def test_too_many_redirects(engine: Engine, server: HttpServer) -> None:
    error = await failed(engine, {"url": server.url("/redirect/25")})
    assert error["message"].endswith("more than 20 redirects")


@pytest.mark.parametrize(("path", "fmt", "expected"), [
    ("/text?text=plain+words", "auto", "plain words"),
    ("/html", "auto", "<!doctype html><p>hello</p>"),
    ('/json?body={"a":[1,2]}', "auto", {"a": [1, 2]}),
    ('/json?body={"a":1}', "text", '{"a":1}'),
    ('/text?text=[1,2]', "json", [1, 2]),
    ("/bytes/4", "auto", base64.b64encode(bytes([0, 1, 2, 3])).decode()),  # version 1 as it was written
    ("/bytes/4", "auto v2", {"$file": hashlib.sha256(bytes([0, 1, 2, 3])).hexdigest(), "name": "4",
                             "mime_type": "application/octet-stream", "size": 4}),
    ("/bytes/300", "base64", base64.b64encode(bytes(i % 256 for i in range(300))).decode()),
    ("/text?text=abc", "file", {"$file": hashlib.sha256(b"abc").hexdigest(), "name": "text",
                                "mime_type": "text/plain", "size": 3}),
    ("/text?text=abc", "base64", base64.b64encode(b"abc").decode()),
    ("/status/204", "auto", ""),
])
async def test_response_formats(engine: Engine, server: HttpServer, path: str, fmt: str, expected: Any) -> None:
    fmt, _, version = fmt.partition(" v")
    [item] = await ok(engine, {"url": server.url(path), "response_format": fmt}, version=int(version or 1))
    assert item["body"] == expected


# A real (tiny) PDF and PNG, served as a download and inline.
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360"
                    "0000000500010d0a2db40000000049454e44ae426082")


async def test_binary_answers_become_files_with_their_name_type_and_size(engine: Engine, tmp_path: Path) -> None:
    async def invoice(request: web.Request) -> web.Response:
        return web.Response(body=PDF, content_type="application/pdf",
                            headers={"Content-Disposition": 'attachment; filename="invoice 42.pdf"'})

    async def logo(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/invoices/42", invoice)
    app.router.add_get("/static/logo.png", logo)
    runner, port = await serve(app)
    base = f"http://127.0.0.1:{port}"
    try:
        [pdf] = await ok(engine, {"url": base + "/invoices/42"}, version=2)
        [png] = await ok(engine, {"url": base + "/static/logo.png", "output": "body"}, version=2)
        [old] = await ok(engine, {"url": base + "/static/logo.png", "output": "body"})  # version 1: base64 text
    finally:
        await runner.cleanup()
    blobs = BlobStore(tmp_path / "blobs")
    assert pdf["status"] == 200 and {k: v for k, v in pdf["body"].items() if k != "$file"} == {
        "name": "invoice 42.pdf", "mime_type": "application/pdf", "size": len(PDF)}
    assert blobs.get(pdf["body"]) == PDF
    assert png["body"]["name"] == "logo.png" and png["body"]["mime_type"] == "image/png"
    assert blobs.get(png["body"]) == PNG
    assert old == {"body": base64.b64encode(PNG).decode()}


async def test_json_format_on_text_fails_clearly(engine: Engine, server: HttpServer) -> None:
    error = await failed(engine, {"url": server.url("/text?text=not+json"), "response_format": "json"})
    assert error["message"] == f"GET {server.url('/text?text=not+json')}: the answer is not JSON ('not json')"


async def test_output_body_makes_the_json_object_the_item(engine: Engine, server: HttpServer) -> None:
    out = await ok(engine, {"url": server.url('/json?body={"id":{{ item.id }},"ok":true}'), "output": "body"},
                   [{"id": 1}, {"id": 2}])
    assert out == [{"id": 1, "ok": True}, {"id": 2, "ok": True}]
    [text] = await ok(engine, {"url": server.url("/text"), "output": "body"})
    assert text == {"body": "hello"}


# -- failures below HTTP ------------------------------------------------------------------------------------------


async def test_connection_refused(engine: Engine) -> None:
    error = await failed(engine, {"url": "http://127.0.0.1:1/x"})
    assert error["message"] == "could not connect to http://127.0.0.1:1/x: connection refused"
    assert error["item_index"] == 0


async def test_timeout(engine: Engine, server: HttpServer) -> None:
    url = server.url("/sleep/3000")
    started = time.perf_counter()
    error = await failed(engine, {"url": url, "timeout": 0.3})
    assert time.perf_counter() - started < 2
    assert error["message"] == f"GET {url}: no answer within 0.3 s"


async def test_the_shared_clients_timeout_reads_as_the_nodes_own(http_client: httpx.AsyncClient,
                                                                  server: HttpServer) -> None:
    """ctx.http's own connections time out with httpx.ReadTimeout (no asyncio TimeoutError behind it, as aiohttp's
    had): whichever of the client's timer and the node's fires first, the person reads the same sentence."""
    from flowboard.nodes.http import _transport_message

    url = server.url("/sleep/3000")
    with pytest.raises(httpx.ReadTimeout) as caught:
        await http_client.get(url, timeout=0.3)
    assert _transport_message(caught.value, "GET", url, 0.3) == f"GET {url}: no answer within 0.3 s"


async def test_a_password_in_the_url_never_appears_in_errors(engine: Engine) -> None:
    error = await failed(engine, {"url": "http://bob:hunter2-pass@127.0.0.1:1/x"})
    assert "hunter2" not in json.dumps(error)
    assert error["message"] == "could not connect to http://bob:***@127.0.0.1:1/x: connection refused"


# -- URL checks ---------------------------------------------------------------------------------------------------


def test_url_must_be_http_at_plan_time() -> None:
    with pytest.raises(FlowInvalid) as caught:
        plan({"url": "ftp://example.com/file"})
    [problem] = caught.value.problems
    assert problem.loc == "nodes[1].config.url"
    assert problem.message == "must start with http:// or https:// (got 'ftp://example.com/file')"


async def test_url_from_an_expression_is_checked_per_item(engine: Engine, server: HttpServer) -> None:
    error = await failed(engine, {"url": "{{ item.url }}"}, [{"url": server.url("/echo")}, {"url": "file:///etc"}])
    assert error["item_index"] == 1
    assert "must start with http:// or https://" in error["message"]
    assert server.requests == []  # every item is checked before the first request is sent


# -- per item, concurrency ----------------------------------------------------------------------------------------


async def test_per_item_expressions_in_url(engine: Engine, server: HttpServer) -> None:
    out = await ok(engine, {"url": server.url("/echo/users/{{ item.id }}"), "query": {"v": "{{ item.v }}"}},
                   [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}])
    assert [(o["body"]["path"], o["body"]["query"]) for o in out] == [
        ("/echo/users/1", {"v": "a"}), ("/echo/users/2", {"v": "b"}), ("/echo/users/3", {"v": "c"})]


async def test_twenty_slow_requests_run_concurrently_and_keep_item_order(engine: Engine, server: HttpServer) -> None:
    config = {"url": server.url("/sleep/50?i={{ item.i }}"), "concurrency": 20}
    await ok(engine, config, [{"i": -1}])  # warm the client up: the measured run is about concurrency, not setup
    items = [{"i": i} for i in range(20)]
    started = time.perf_counter()
    out = await ok(engine, config, items)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"20 x 50 ms took {elapsed * 1000:.0f} ms: the requests did not overlap"
    assert [o["body"]["query"]["i"] for o in out] == [str(i) for i in range(20)]


async def test_concurrency_is_bounded(engine: Engine, server: HttpServer) -> None:
    started = time.perf_counter()
    out = await ok(engine, {"url": server.url("/sleep/100?i={{ item.i }}"), "concurrency": 2},
                   [{"i": i} for i in range(6)])
    assert time.perf_counter() - started >= 0.3  # 6 requests, 2 at a time: at least 3 rounds of 100 ms
    assert [o["body"]["query"]["i"] for o in out] == [str(i) for i in range(6)]


# -- credentials --------------------------------------------------------------------------------------------------


async def test_bearer_credential_reaches_the_server_but_not_the_output(engine: Engine, server: HttpServer) -> None:
    result = await run(engine, {"url": server.url("/echo/me"), "credential": "api"})
    assert result.status is RunStatus.succeeded
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    [item] = result.output
    assert item["body"]["headers"]["authorization"] == "Bearer ***"  # the echo is blanked out
    recorded = json.dumps([result.output, [(s.inputs, s.outputs, s.error) for s in result.steps.values()]])
    assert SECRET not in recorded


async def test_credential_overrides_a_configured_authorization_header(engine: Engine, server: HttpServer) -> None:
    await ok(engine, {"url": server.url("/echo"), "headers": {"authorization": "Bearer wrong"}, "credential": "api"})
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"


async def test_basic_and_header_credentials(engine: Engine, server: HttpServer) -> None:
    [item] = await ok(engine, {"url": server.url("/echo"), "credential": "basic"})
    expected = base64.b64encode(b"alice:pa55word-xyz").decode()
    assert server.requests[-1]["headers"]["authorization"] == f"Basic {expected}"
    assert expected not in json.dumps(item)
    [item] = await ok(engine, {"url": server.url("/echo"), "credential": "apikey"})
    assert server.requests[-1]["headers"]["x-api-key"] == SECRET
    assert SECRET not in json.dumps(item)


async def test_secrets_are_blanked_out_of_errors(engine: Engine, server: HttpServer) -> None:
    error = await failed(engine, {"url": server.url(f"/status/401?text=bad+token+{SECRET}"), "credential": "api"})
    assert SECRET not in error["message"]
    assert "answered 401 Unauthorized: bad token ***" in error["message"]


async def test_credential_is_not_sent_to_another_origin_on_redirect(engine: Engine, server: HttpServer) -> None:
    async with HttpServer() as other:
        await ok(engine, {"url": server.url("/redirect-to"), "query": {"url": other.url("/echo/there")},
                          "credential": "api"})
        assert other.requests[-1]["path"] == "/echo/there"
        assert "authorization" not in other.requests[-1]["headers"]
    await ok(engine, {"url": server.url("/redirect-to"), "query": {"url": "/echo/here"}, "credential": "api"})
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"  # same origin: kept


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_no_credential_type_follows_a_redirect_to_another_origin(engine: Engine, server: HttpServer,
                                                                        status: int) -> None:
    """Two local servers on different ports are two origins: every credential type reaches the first only."""
    async with HttpServer() as other:
        for name, carried in CARRIED.items():
            target = other.url("/echo/there?keep=1")
            await ok(engine, {"url": server.url("/redirect-to"), "method": "POST", "body": {"type": "json", "data": {}},
                              "query": {"url": target, "status": status},
                              "headers": {"Cookie": "mine=1", "X-Trace": "t"}, "credential": name})
            first, there = server.requests[-1], other.requests[-1]
            assert carried(first), (name, first)
            assert there["path"] == "/echo/there" and not carried(there), (name, status, there)
            assert SECRET not in json.dumps(there) and ODD not in json.dumps(there), (name, there)
            assert "cookie" not in there["headers"] and there["headers"]["x-trace"] == "t"
            assert there["method"] == ("GET" if status in (301, 302, 303) else "POST")
    await ok(engine, {"url": server.url("/redirect-to"), "query": {"url": "/echo/here"}, "credential": "qkey"})
    assert server.requests[-1]["path"] == "/echo/here" and CARRIED["qkey"](server.requests[-1])  # same origin: kept


async def test_redirect_back_to_the_first_origin_does_not_restore_the_credential(engine: Engine,
                                                                                 server: HttpServer) -> None:
    async with HttpServer() as other:
        back = server.url("/echo/back")
        await ok(engine, {"url": server.url("/redirect-to"),
                          "query": {"url": other.url(f"/redirect-to?url={back}")}, "credential": "apikey"})
        assert server.requests[-1]["path"] == "/echo/back" and not CARRIED["apikey"](server.requests[-1])


@pytest.mark.parametrize("name", list(CARRIED))
async def test_encoded_forms_of_a_secret_are_blanked_out(engine: Engine, server: HttpServer, name: str) -> None:
    """A server that echoes the secret URL-encoded or base64-encoded leaks it as surely as in plain text."""
    value = {"odd": ODD, "basic": CREDENTIALS["basic"]["password"]}.get(name, SECRET)
    echoes = [quote(value, safe=""), quote_plus(value), base64.b64encode(value.encode()).decode(),
              base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")]
    for echo in echoes:
        [item] = await ok(engine, {"url": server.url("/json"), "query": {"body": json.dumps({"seen": echo})},
                                   "credential": name})
        assert echo not in json.dumps(item) and "***" in item["body"]["seen"], (name, echo, item)
        error = await failed(engine, {"url": server.url("/status/400"), "query": {"text": f"bad {echo}"},
                                      "credential": name})
        assert echo not in error["message"], (name, echo)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # aiohttp's own jar ignores IP hosts, not names
async def test_cookies_never_carry_over_between_requests(engine: Engine, server: HttpServer, host: str) -> None:
    base = f"http://{host}:{server.port}"
    [item] = await ok(engine, {"url": base + "/cookies/set", "query": {"session": "abc123"}})
    assert "session=abc123" in item["headers"]["set-cookie"]
    await ok(engine, {"url": base + "/echo/next"})
    assert "cookie" not in server.requests[-1]["headers"]  # the shared client must not leak sessions across flows
    await ok(engine, {"url": base + "/echo/explicit", "headers": {"Cookie": "session=mine"}})
    assert server.requests[-1]["headers"]["cookie"] == "session=mine"


async def test_unknown_credential(engine: Engine, server: HttpServer) -> None:
    error = await failed(engine, {"url": server.url("/echo"), "credential": "nope"})
    assert error["message"] == "there is no credential called 'nope'; add it under Credentials"
    assert error["field"] == "credential"
    assert server.requests == []


async def test_user_and_password_in_the_url_become_basic_auth(engine: Engine, server: HttpServer) -> None:
    url = server.url("/echo/me").replace("http://", "http://bob:hunter2-pass@")
    [item] = await ok(engine, {"url": url})
    expected = base64.b64encode(b"bob:hunter2-pass").decode()
    assert server.requests[-1]["headers"]["authorization"] == f"Basic {expected}"
    assert "hunter2" not in json.dumps(item) and expected not in json.dumps(item)


def test_threaded_server_for_sync_and_subprocess_tests() -> None:
    with ThreadedHttpServer() as server:
        answer = httpx.post(server.url("/echo/sync?a=1"), json={"x": 1})
        assert answer.json()["json"] == {"x": 1}
        assert httpx.get(server.url("/status/418")).status_code == 418
        assert [r["path"] for r in server.requests] == ["/echo/sync", "/status/418"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url("/echo"))


# -- the repeat-safe key (Idempotency-Key) --------------------------------------------------------------------------


async def test_a_repeat_safe_key_goes_with_each_item_of_a_changing_request(engine: Engine, server: HttpServer) -> None:
    """POST, PUT, PATCH and DELETE carry a key per run, node and item (a UUID), the same on every try of that item;
    reads carry none; the header's name is an option; switched off, none is sent; a header of that name set by hand
    is sent instead."""
    from flowboard.engine.plan import PlannedNode

    def keys(name: str = "idempotency-key") -> list[str | None]:
        return [r["headers"].get(name) for r in server.requests]

    for method in ("POST", "PUT", "PATCH", "DELETE"):
        server.requests.clear()
        await ok(engine, {"method": method, "url": server.url("/echo")}, [{"n": 1}, {"n": 2}, {"n": 3}])
        sent = keys()
        assert None not in sent and len(set(sent)) == 3, (method, sent)
    for method in ("GET", "HEAD", "OPTIONS"):
        server.requests.clear()
        await ok(engine, {"method": method, "url": server.url("/echo")})
        assert keys() == [None], method

    server.requests.clear()
    await engine.run(plan({"method": "POST", "url": server.url("/status/503"), "retries": 1, "non_2xx": "data"}),
                     [{}], run_id="one-run")  # busy, tried again after a second
    assert len(server.requests) == 2 and len(set(keys())) == 1, keys()
    tried = keys()[0]
    server.requests.clear()
    await engine.run(plan({"method": "POST", "url": server.url("/echo")}), [{}], run_id="one-run")
    assert keys() == [tried], "the same run, node and item must send the same key"
    server.requests.clear()
    await engine.run(plan({"method": "POST", "url": server.url("/echo")}), [{}], run_id="another-run")
    assert keys()[0] != tried

    server.requests.clear()
    await ok(engine, {"method": "POST", "url": server.url("/echo"), "idempotency_header": "X-Request-Id"})
    assert keys() == [None] and keys("x-request-id")[0]
    server.requests.clear()
    await ok(engine, {"method": "POST", "url": server.url("/echo"), "idempotency_key": False})
    assert keys() == [None]
    server.requests.clear()
    await ok(engine, {"method": "POST", "url": server.url("/echo"),
                      "headers": [{"name": "Idempotency-Key", "value": "order-{{ item.n }}"}]}, [{"n": 7}])
    assert keys() == ["order-7"]

    def unsafe(config: dict[str, Any]) -> bool:
        node: PlannedNode = plan({"url": server.url("/echo"), **config}).nodes["http"]
        return node.unsafe

    assert not unsafe({"method": "POST"}) and not unsafe({"method": "GET"}) and not unsafe({"method": "PUT"})
    assert unsafe({"method": "POST", "idempotency_key": False})
    assert unsafe({"method": "PATCH", "idempotency_key": False})
    assert unsafe({"method": "POST", "pagination": {"type": "page"}}), "pages carry no key: a POST of them is unsafe"
