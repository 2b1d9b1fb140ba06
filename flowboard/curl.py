"""Read a curl command, as API docs and browsers ("Copy as cURL") write it, into its parts: method, URL, headers,
body, login. The HTTP request node turns the parts into its form (`HttpRequest.paste_import`).

Understood: bash quoting ('...', "...", $'...', backslashes), line continuations (\\, ^ and ` at a line's end), the
options that shape a request (-X, -H, -d and its kin --data-raw, --data-binary, --data-ascii, --data-urlencode, --json,
-F, --form-string, -u, -G, -I, -A, -e, -b, -k, -x, -m, --oauth2-bearer, --url) and short options written together
(-sSL, -XPOST). Options that only change how curl prints or saves (-s, -v, -o, --compressed ...) are skipped; any other
is reported as skipped. What cannot be carried over (a body read from a file) is an error that says so.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote_plus, urlsplit


class CurlError(ValueError):
    """The text is not a curl command we can read; the message says what to change."""


@dataclass
class CurlRequest:
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: "none", "json" (`data` parsed JSON text), "form" (`fields`), "multipart" (`fields`, `files`), "raw" (`data`)
    body: str = "none"
    data: str = ""
    content_type: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # (field name, file path): the content is not here
    user: str | None = None
    password: str | None = None
    bearer: str | None = None
    insecure: bool = False
    proxy: str | None = None
    timeout: float | None = None
    skipped: list[str] = field(default_factory=list)


_FLAGS = {  # options without a value that change nothing we carry over
    "-s", "--silent", "-S", "--show-error", "-v", "--verbose", "-i", "--include", "--compressed", "-f", "--fail",
    "--fail-with-body", "-L", "--location", "-#", "--progress-bar", "-N", "--no-buffer", "-g", "--globoff",
    "--http1.1", "--http2", "--http1.0", "--tr-encoding", "-j", "--junk-session-cookies", "--location-trusted",
    "-O", "--remote-name", "-J", "--remote-header-name", "-q", "--disable", "--no-progress-meter", "-4", "-6",
    "--ipv4", "--ipv6", "--raw", "--no-keepalive", "--path-as-is", "--ssl-no-revoke", "-n", "--netrc",
}
_VALUED_SKIPPED = {  # options with a value that change nothing we carry over
    "-o", "--output", "-w", "--write-out", "--connect-timeout", "--retry", "--retry-delay", "--retry-max-time",
    "-c", "--cookie-jar", "-D", "--dump-header", "--max-redirs", "-r", "--range", "--resolve", "--interface",
    "--cacert", "--capath", "-E", "--cert", "--key", "--limit-rate", "-y", "--speed-time", "-Y", "--speed-limit",
    "--trace", "--trace-ascii", "--stderr", "-K", "--config", "--connect-to", "--dns-servers", "-U", "--proxy-user",
}
_DATA = {"-d": "data", "--data": "data", "--data-ascii": "data", "--data-binary": "binary", "--data-raw": "raw",
         "--data-urlencode": "urlencode", "--json": "json"}
_VALUED = {"-X", "--request", "-H", "--header", "-F", "--form", "--form-string", "-u", "--user", "-A",
           "--user-agent", "-e", "--referer", "-b", "--cookie", "-x", "--proxy", "-m", "--max-time", "--url",
           "--oauth2-bearer", *_DATA, *_VALUED_SKIPPED}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def parse_curl(text: str) -> CurlRequest:
    words = _split(text)
    if not words or words[0].rsplit("/", 1)[-1].lower() not in ("curl", "curl.exe"):
        raise CurlError("this is not a curl command: it must start with curl, e.g. curl https://api.example.com")
    words = words[1:]
    method: str | None = None
    url: str | None = None
    head = get = False
    data: list[str] = []
    kinds: set[str] = set()
    req = CurlRequest(method="GET", url="")
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            if url is None:
                url = word
            else:
                req.skipped.append(f"a second address {word!r} (only the first is used)")
            continue
        option, value = word, None
        if not word.startswith("--") and len(word) > 2:  # -XPOST, -sSL, -uuser:pw
            if word[:2] in _VALUED:
                option, value = word[:2], word[2:]
            else:
                flags = [f"-{c}" for c in word[1:]]
                for position, flag in enumerate(flags):
                    if flag in _VALUED:  # -sX POST, -sXPOST
                        rest = word[2 + position:]
                        option, value = flag, rest or None
                        break
                    if flag == "-I":
                        head = True
                    elif flag == "-G":
                        get = True
                    elif flag == "-k":
                        req.insecure = True
                    elif flag not in _FLAGS:
                        req.skipped.append(flag)
                else:
                    continue
        if option in _VALUED and value is None:
            if i >= len(words):
                raise CurlError(f"{option} needs a value after it")
            value = words[i]
            i += 1
        if option in ("-X", "--request"):
            method = str(value).upper()
        elif option in ("-H", "--header"):
            _header(req, str(value))
        elif option in _DATA:
            kind = _DATA[option]
            kinds.add(kind)
            data.append(_data(kind, str(value), option))
        elif option in ("-F", "--form", "--form-string"):
            name, sep, content = str(value).partition("=")
            if not sep:
                raise CurlError(f"{option} {value!r} is not name=value")
            if option != "--form-string" and content.startswith(("@", "<")):
                req.files.append((name, content[1:].split(";")[0]))
            else:
                req.fields.append((name, content))
            kinds.add("multipart")
        elif option in ("-u", "--user"):
            user, sep, password = str(value).partition(":")
            req.user, req.password = user, password if sep else None
        elif option == "--oauth2-bearer":
            req.bearer = value
        elif option in ("-A", "--user-agent"):
            req.headers.append(("User-Agent", str(value)))
        elif option in ("-e", "--referer"):
            req.headers.append(("Referer", str(value)))
        elif option in ("-b", "--cookie"):
            if "=" not in str(value):
                raise CurlError(f"{option} {value!r} reads cookies from a file: paste the cookies themselves "
                                "(-b 'name=value')")
            req.headers.append(("Cookie", str(value)))
        elif option in ("-x", "--proxy"):
            req.proxy = value
        elif option in ("-m", "--max-time"):
            try:
                req.timeout = float(str(value))
            except ValueError:
                raise CurlError(f"{option} needs a number of seconds, not {value!r}") from None
        elif option == "--url":
            url = value
        elif option in ("-I", "--head"):
            head = True
        elif option in ("-G", "--get"):
            get = True
        elif option in ("-k", "--insecure"):
            req.insecure = True
        elif option in _FLAGS or option in _VALUED_SKIPPED:
            pass
        else:
            req.skipped.append(option)
    if not url:
        raise CurlError("the curl command has no address (URL) to call")
    if "://" not in url:
        url = "http://" + url  # as curl does
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise CurlError(f"the address {url!r} is not http:// or https://")
    req.url = url
    if "multipart" in kinds and len(kinds) > 1:
        raise CurlError("the command mixes -F (a multipart form) with -d (a body): curl refuses that too")
    if get and data:
        joined = "&".join(data)
        req.url = url + ("&" if urlsplit(url).query else "?") + joined
    elif data:
        _body(req, data, kinds)
    elif kinds == {"multipart"}:
        req.body = "multipart"
    if method is None:
        method = "HEAD" if head else "POST" if req.body != "none" else "GET"
    if method not in _METHODS:
        raise CurlError(f"the method {method} is not one the HTTP request node sends ({', '.join(_METHODS)})")
    req.method = method
    return req


def _header(req: CurlRequest, value: str) -> None:
    name, sep, content = value.partition(":")
    name, content = name.strip(), content.strip()
    if not sep:
        if name.endswith(";"):  # -H 'X-Empty;' sends an empty header
            req.headers.append((name[:-1], ""))
            return
        raise CurlError(f"the header {value!r} has no colon: write it as -H 'Name: value'")
    if not content:
        return  # -H 'Accept:' removes one of curl's own headers: nothing to send
    lower = name.lower()
    if lower == "authorization":
        scheme, _, credentials = content.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            req.bearer = credentials.strip()
            return
        if scheme.lower() == "basic" and credentials.strip():
            try:
                user, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            except ValueError:
                pass
            else:
                if sep:
                    req.user, req.password = user, password
                    return
    if lower == "content-type":
        req.content_type = content
    req.headers.append((name, content))


def _data(kind: str, value: str, option: str) -> str:
    if kind in ("data", "binary", "json") and value.startswith("@"):
        raise CurlError(f"{option} {value} reads the body from a file, which is not here: paste the body itself "
                        f"instead, e.g. {option} '{{\"name\": \"value\"}}'")
    if kind == "urlencode":
        name, sep, content = value.partition("=")
        if content.startswith("@") or (not sep and value.startswith("@")):
            raise CurlError(f"{option} {value} reads from a file, which is not here: paste the value itself")
        if not sep:
            return quote_plus(value)
        return f"{name}={quote_plus(content)}" if name else quote_plus(content)
    if kind == "data":  # -d drops newlines, as curl does; --data-raw and --data-binary keep them
        return value.replace("\r", "").replace("\n", "")
    return value


def _body(req: CurlRequest, data: list[str], kinds: set[str]) -> None:
    text = "&".join(data)
    content_type = req.content_type.split(";")[0].strip().lower()
    if "json" in kinds:
        req.body, req.data = "json", text
        if not content_type:
            req.headers += [("Content-Type", "application/json"), ("Accept", "application/json")]
            req.content_type = "application/json"
        return
    if content_type in ("", "application/x-www-form-urlencoded") and text and _form_like(text):
        req.body = "form"
        req.fields = parse_qsl(text, keep_blank_values=True)
        return
    if content_type == "application/json" or content_type.endswith("+json"):
        req.body, req.data = "json", text
        return
    req.body, req.data = "raw", text
    req.content_type = req.content_type or "application/x-www-form-urlencoded"


def _form_like(text: str) -> bool:
    return all("=" in part for part in text.split("&")) and not text.lstrip().startswith(("{", "["))


# -- words, as bash splits them ---------------------------------------------------------------------------------------

_CONTINUATION = re.compile(r"(?:\\|\^|`)[ \t]*\r?\n")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "e": "\x1b",
            "f": "\f", "v": "\v", "0": "\0"}


def _split(text: str) -> list[str]:
    """The words of a shell command line: quotes, $'...', backslash escapes; line continuations joined first."""
    text = _CONTINUATION.sub(" ", text.strip())
    words: list[str] = []
    word: list[str] = []
    started = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            if started:
                words.append("".join(word))
                word, started = [], False
            i += 1
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise CurlError("a quote ' is not closed: check the command is complete")
            word.append(text[i + 1:end])
            started, i = True, end + 1
        elif c == "$" and text.startswith("$'", i):
            i, part = _ansi_c(text, i + 2)
            word.append(part)
            started = True
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise CurlError('a quote " is not closed: check the command is complete')
                if text[i] == '"':
                    i += 1
                    break
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`\n':
                    word.append(text[i + 1] if text[i + 1] != "\n" else "")
                    i += 2
                else:
                    word.append(text[i])
                    i += 1
            started = True
        elif c == "\\" and i + 1 < n:
            word.append(text[i + 1])
            started, i = True, i + 2
        else:
            word.append(c)
            started, i = True, i + 1
    if started:
        words.append("".join(word))
    return words


def _ansi_c(text: str, i: int) -> tuple[int, str]:
    """A $'...' string from just after its quote: the end index and its text, escapes decoded."""
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            return i + 1, "".join(out)
        if c == "\\" and i + 1 < n:
            e = text[i + 1]
            if e == "x" and re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:i + 4]):
                digits = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:i + 4])
                assert digits is not None
                out.append(chr(int(digits.group(), 16)))
                i += 2 + len(digits.group())
                continue
            if e in "uU":
                size = 4 if e == "u" else 8
                digits = re.match(rf"[0-9a-fA-F]{{1,{size}}}", text[i + 2:i + 2 + size])
                if digits:
                    out.append(chr(int(digits.group(), 16)))
                    i += 2 + len(digits.group())
                    continue
            out.append(_ESCAPES.get(e, "\\" + e))
            i += 2
            continue
        out.append(c)
        i += 1
    raise CurlError("a quote $' is not closed: check the command is complete")
