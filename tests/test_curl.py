"""Import from cURL: a corpus of 20 real-world curl commands (API docs, browsers' "Copy as cURL", Windows cmd), each
read into the HTTP request node's config, then sent for real to a local echo server (the command's host swapped for
it), which must receive the method, path, headers and body curl would send."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from flowboard.nodes.http import HttpRequest, from_curl

from flowboard.curl import CurlError, parse_curl
from flowboard.engine import Engine, RunStatus, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.sdk import Services

from .conftest import make_flow
from .servers import HttpServer

#: Throwaway keys made at run time, in the shapes the docs show (GitHub token, Stripe test key).
GITHUB_TOKEN = "ghp_" + secrets.token_hex(12)
STRIPE_KEY = "sk_test_" + secrets.token_hex(12)

#: (curl command, what the echo server must receive: method, path, query, headers (a subset), json / form / body /
#: files, and the credential the import makes: (type, data)).
CORPUS: list[tuple[str, dict[str, Any]]] = [
    # 1 GitHub REST docs
    (f"""curl -L \\
  -H "Accept: application/vnd.github+json" \\
  -H "Authorization: Bearer {GITHUB_TOKEN}" \\
  -H "X-GitHub-Api-Version: 2022-11-28" \\
  https://api.github.com/repos/OWNER/REPO/issues""",
     {"method": "GET", "path": "/repos/OWNER/REPO/issues",
      "headers": {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28",
                  "authorization": f"Bearer {GITHUB_TOKEN}"},
      "credential": ("bearer", {"token": GITHUB_TOKEN})}),
    # 2 Stripe docs: -u key: and repeated -d
    (f"""curl https://api.stripe.com/v1/customers \\
  -u "{STRIPE_KEY}:" \\
  -d name="Jenny Rosen" \\
  --data-urlencode email="jenny.rosen@example.com\"""",
     {"method": "POST", "path": "/v1/customers", "form": {"name": "Jenny Rosen", "email": "jenny.rosen@example.com"},
      "credential": ("basic", {"user": STRIPE_KEY, "password": ""})}),
    # 3 Slack incoming webhook
    ("""curl -X POST -H 'Content-type: application/json' --data '{"text":"Hello, World!"}' \
https://hooks.slack.com/services/T000/B000/XXXX""",
     {"method": "POST", "path": "/services/T000/B000/XXXX", "json": {"text": "Hello, World!"},
      "headers": {"content-type": "application/json"}}),
    # 4 Twilio: --data-urlencode with spaces and +, -u SID:token
    ("""curl -X POST "https://api.twilio.com/2010-04-01/Accounts/ACXXXX/Messages.json" \\
--data-urlencode "Body=Hi there & welcome" \\
--data-urlencode "From=+15017122661" \\
--data-urlencode "To=+15558675310" \\
-u ACXXXX:your_auth_token""",
     {"method": "POST", "path": "/2010-04-01/Accounts/ACXXXX/Messages.json",
      "form": {"Body": "Hi there & welcome", "From": "+15017122661", "To": "+15558675310"},
      "credential": ("basic", {"user": "ACXXXX", "password": "your_auth_token"})}),
    # 5 Chrome "Copy as cURL (bash)": $'...' body, many headers, --compressed
    ("""curl 'https://example.com/api/graphql' \\
  -H 'accept: */*' \\
  -H 'accept-language: en-US,en;q=0.9' \\
  -H 'content-type: application/json' \\
  -H 'cookie: session=abc123; theme=dark' \\
  -H 'origin: https://example.com' \\
  -H 'user-agent: Mozilla/5.0 (X11; Linux x86_64)' \\
  --data-raw $'{"query":"query { me { name } }","variables":{"note":"it\\'s \\u00e9t\\u00e9"}}' \\
  --compressed""",
     {"method": "POST", "path": "/api/graphql",
      "json": {"query": "query { me { name } }", "variables": {"note": "it's été"}},
      "headers": {"cookie": "session=abc123; theme=dark", "accept-language": "en-US,en;q=0.9",
                  "user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}}),
    # 6 Windows cmd "Copy as cURL (cmd)": ^ continuations, double quotes
    ("""curl "https://api.example.com/v2/items?limit=10" ^
  -H "Accept: application/json" ^
  -H "X-Request-Id: 42" ^
  --compressed""",
     {"method": "GET", "path": "/v2/items", "query": {"limit": "10"},
      "headers": {"accept": "application/json", "x-request-id": "42"}}),
    # 7 Mailgun: -F fields, --user api:key
    ("""curl -s --user 'api:key-3ax6xnjp29jd6fds4gc373sgvjxteol0' \\
    https://api.mailgun.net/v3/sandbox.mailgun.org/messages \\
    -F from='Excited User <mailgun@sandbox.mailgun.org>' \\
    -F to=bar@example.com \\
    -F subject='Hello' \\
    -F text='Testing some Mailgun awesomeness!'""",
     {"method": "POST", "path": "/v3/sandbox.mailgun.org/messages",
      "form": {"from": "Excited User <mailgun@sandbox.mailgun.org>", "to": "bar@example.com", "subject": "Hello",
               "text": "Testing some Mailgun awesomeness!"},
      "credential": ("basic", {"user": "api", "password": "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"})}),
    # 8 OpenAI docs: JSON over several lines
    ("""curl https://api.openai.com/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $OPENAI_API_KEY" \\
  -d '{
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Say this is a test!"}],
    "temperature": 0.7
  }'""",
     {"method": "POST", "path": "/v1/chat/completions",
      "json": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say this is a test!"}],
               "temperature": 0.7},
      "credential": ("bearer", {"token": "$OPENAI_API_KEY"})}),
    # 9 Elasticsearch: -XPUT, host without scheme, ?pretty
    ("""curl -XPUT 'localhost:9200/customer/_doc/1?pretty' -H 'Content-Type: application/json' -d'
{
  "name": "John Doe"
}'""",
     {"method": "PUT", "path": "/customer/_doc/1", "query": {"pretty": ""}, "json": {"name": "John Doe"}}),
    # 10 --json (curl 7.82+)
    ("""curl --json '{"tool": "curl", "version": 8}' https://example.com/api/tools""",
     {"method": "POST", "path": "/api/tools", "json": {"tool": "curl", "version": 8},
      "headers": {"content-type": "application/json", "accept": "application/json"}}),
    # 11 -G with --data-urlencode: a search query
    ("""curl -G https://api.example.com/search --data-urlencode "q=hello world" -d per_page=5""",
     {"method": "GET", "path": "/search", "query": {"q": "hello world", "per_page": "5"}}),
    # 12 -I: a HEAD request
    ("""curl -I https://www.example.com/index.html""", {"method": "HEAD", "path": "/index.html"}),
    # 13 DELETE with an API key header, -sS combined flags
    ("""curl -sS -X DELETE "https://api.cloudflare.com/client/v4/zones/023e105f/dns_records/372e6795" \\
     -H "X-Auth-Email: user@example.com" -H "X-Auth-Key: c2547eb745079dac9320b638f5e225cf483cc5cfdda41\"""",
     {"method": "DELETE", "path": "/client/v4/zones/023e105f/dns_records/372e6795",
      "headers": {"x-auth-email": "user@example.com", "x-auth-key": "c2547eb745079dac9320b638f5e225cf483cc5cfdda41"}}),
    # 14 PATCH with a basic Authorization header (decoded into a credential)
    ("""curl --request PATCH --url 'https://example.atlassian.net/rest/api/3/issue/KEY-1' \\
  --header 'Authorization: Basic YWRhQGV4YW1wbGUuY29tOnMzY3JldC10b2tlbg==' \\
  --header 'Content-Type: application/json' \\
  --data '{"fields": {"summary": "New title"}}'""",
     {"method": "PATCH", "path": "/rest/api/3/issue/KEY-1", "json": {"fields": {"summary": "New title"}},
      "credential": ("basic", {"user": "ada@example.com", "password": "s3cret-token"})}),
    # 15 a raw XML body with its own content type
    ("""curl -X POST https://example.com/soap -H "Content-Type: text/xml; charset=utf-8" \\
  --data-binary '<?xml version="1.0"?><Envelope><Body><Ping/></Body></Envelope>'""",
     {"method": "POST", "path": "/soap", "body": '<?xml version="1.0"?><Envelope><Body><Ping/></Body></Envelope>',
      "headers": {"content-type": "text/xml; charset=utf-8"}}),
    # 16 -XPOST attached, -d form fields, -A user agent, -e referer
    ("""curl -XPOST -A "MyClient/1.0" -e https://example.com/from -d "grant_type=client_credentials&scope=read" \\
  https://auth.example.com/oauth/token""",
     {"method": "POST", "path": "/oauth/token", "form": {"grant_type": "client_credentials", "scope": "read"},
      "headers": {"user-agent": "MyClient/1.0", "referer": "https://example.com/from"}}),
    # 17 -F with a file and a field: the file's content is not in the command
    ("""curl -F "file=@/home/ada/report.pdf" -F "comment=Monthly report" https://upload.example.com/files""",
     {"method": "POST", "path": "/files", "form": {"comment": "Monthly report"}, "files": {"file": "report.pdf"},
      "notes": "the file /home/ada/report.pdf is not here"}),
    # 18 -k, -x proxy and --max-time, cookies with -b
    ("""curl -k -m 12 -b "sid=xyz; lang=en" https://internal.example.com/health""",
     {"method": "GET", "path": "/health", "headers": {"cookie": "sid=xyz; lang=en"},
      "config": {"verify_tls": False, "timeout": 12.0}}),
    # 19 --oauth2-bearer and an escaped quote in double quotes
    ("""curl --oauth2-bearer "tok-123" -H "X-Note: say \\"hi\\"" https://api.example.com/me""",
     {"method": "GET", "path": "/me", "headers": {"x-note": 'say "hi"'},
      "credential": ("bearer", {"token": "tok-123"})}),
    # 20 PowerShell-style backtick continuation, PUT with form data -d repeated and an empty value
    ('curl -X PUT https://api.example.com/settings ` \n  -d "notify=true" `\n  -d "nickname=" ',
     {"method": "PUT", "path": "/settings", "form": {"notify": "true", "nickname": ""}}),
]


def test_the_corpus_has_twenty_commands() -> None:
    assert len(CORPUS) == 20


@pytest.fixture
async def echo() -> AsyncIterator[HttpServer]:
    async with HttpServer() as server:
        yield server


def _local(url: str, server: HttpServer) -> str:
    parts = urlsplit(url)
    return urlunsplit(("http", f"127.0.0.1:{server.port}", parts.path, parts.query, ""))


@pytest.mark.parametrize(("command", "expected"), CORPUS, ids=[f"curl{i + 1}" for i in range(len(CORPUS))])
async def test_curl_import_fills_the_node_and_sends_what_curl_would(command: str, expected: dict[str, Any],
                                                                   echo: HttpServer) -> None:
    pasted = from_curl(command)
    config = pasted.config
    for key, value in expected.get("config", {}).items():
        assert config[key] == value
    if "notes" in expected:
        assert any(expected["notes"] in note for note in pasted.notes), pasted.notes
    credentials: dict[str, dict[str, Any]] = {}
    if "credential" in expected:
        assert pasted.credential is not None
        name, type_, data = pasted.credential
        assert (type_, data) == expected["credential"]
        config = {**config, "credential": name}
        credentials[name] = {"type": type_, **data}
    else:
        assert pasted.credential is None
    config = {**config, "url": _local(config["url"], echo), "verify_tls": True}
    config.pop("proxy", None)
    flow = make_flow([{"id": "t", "type": "trigger.manual"}, {"id": "h", "type": "http.request", "config": config}],
                     [("t", "h")])
    engine = Engine(services=Services(credentials=credentials.get))
    try:
        result = await engine.run(build_plan(parse_flow(flow), default_registry()), [{}])
    finally:
        await engine.aclose()
    assert result.status is RunStatus.succeeded, result.error
    got = echo.requests[-1]
    assert got["method"] == expected["method"]
    assert got["path"] == expected["path"]
    assert got["query"] == expected.get("query", {})
    for name, value in expected.get("headers", {}).items():
        assert got["headers"].get(name) == value, (name, got["headers"])
    if "json" in expected:
        assert json.loads(got["body"]) == expected["json"]
    if "form" in expected:
        assert got["form"] == expected["form"]
    if "body" in expected:
        assert got["body"] == expected["body"]
    if "files" in expected:
        assert {k: v["filename"] for k, v in got["files"].items()} == expected["files"]
    if expected.get("credential", ("",))[0] == "basic":
        user, password = expected["credential"][1]["user"], expected["credential"][1]["password"]
        assert got["headers"]["authorization"] == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("command", "message"), [
    ("wget https://example.com", "this is not a curl command"),
    ("curl -H 'Accept: x'", "has no address"),
    ("curl -d @body.json https://example.com", "reads the body from a file"),
    ("curl 'https://example.com", "a quote ' is not closed"),
    ("curl -X PROPFIND https://example.com", "the method PROPFIND is not one"),
    ("curl -F a=b -d c=d https://example.com", "mixes -F"),
    ("curl ftp://example.com/file", "is not http:// or https://"),
    ("curl -H NoColon https://example.com", "has no colon"),
    ("curl https://example.com -X", "-X needs a value"),
])
def test_commands_that_cannot_be_imported_say_why(command: str, message: str) -> None:
    with pytest.raises(CurlError, match=message):
        parse_curl(command)


def test_the_http_node_offers_the_import() -> None:
    assert HttpRequest.paste_import is not None and HttpRequest.paste_import.label == "Import from cURL"
    assert "skipped --unknown-option" in "; ".join(from_curl("curl --unknown-option https://example.com").notes)
