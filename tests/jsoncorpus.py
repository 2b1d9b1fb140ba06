"""Bad JSON shapes that every place reading JSON from outside must refuse with a located message (jsonlimits.py):
name -> (the document's bytes, a fragment of the message). Shared by the CLI, API, webhook and UI tests."""

from __future__ import annotations

from flowboard.jsonlimits import MAX_DEPTH


def _nested(levels: int, leaf: str = "1") -> bytes:
    return ('{"a":' * levels + leaf + "}" * levels).encode()


DEEP = "nested more than 64 levels deep"
NAN = "NaN and Infinity are not JSON numbers"

BAD_JSON: dict[str, tuple[bytes, str]] = {
    "lists one level too deep": (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), DEEP),
    "objects 200 deep": (_nested(200), DEEP),
    "a flow with a deep config": (b'{"name": "x", "nodes": [{"id": "a", "type": "data.set", "config": {"v": '
                                  + _nested(70) + b"}}], \"edges\": []}", DEEP),
    "100,000 open brackets": (b"[" * 100_000, DEEP),
    "deep and unbalanced objects": (b'{"a":' * 5000, DEEP),
    "NaN": (b'{"name": NaN}', NAN),
    "Infinity in a list": (b'{"x": [1, Infinity]}', NAN),
    "-Infinity": (b'{"x": -Infinity}', NAN),
    "a number beyond a double": (b'{"x": 1e999}', "the number is too large"),
    "cut off": (b'{"name": "x",', "not JSON at line 1"),
    "trailing comma": (b'{"name": "x",}', "not JSON at line 1"),
    "single quotes": (b"{'name': 'x'}", "not JSON at line 1, column 2"),
    "a comment": (b'{"name": "x" // hi\n}', "not JSON at line 1"),
    "a lone surrogate": (b'{"name": "\\ud800"}', "surrogate"),
    "bytes that are not UTF-8": (b'{"name": "\xff\xfe"}', "not UTF-8"),
    "two documents": (b'{"name": "x"} {"name": "y"}', "not JSON at line 1"),
    "second line broken": (b'{\n  "name": "x",\n  "nodes": [}\n', "not JSON at line 3"),
}

#: Exactly at the nesting limit: taken.
DEEP_AT_LIMIT = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
