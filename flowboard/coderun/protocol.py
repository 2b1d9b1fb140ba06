"""The wire between the server and a code worker: frames of a 4-byte big-endian length and an orjson body.

Requests carry the code, the items and the call's limits; answers carry the items or a located error, and the
printed lines. A length above the reader's cap ends the worker: it is never read into memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


class ProtocolError(Exception):
    """The worker broke the protocol (an oversized or malformed frame, or it closed the pipe)."""


def frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return len(body).to_bytes(4, "big") + body


async def read_frame(reader: asyncio.StreamReader, cap: int) -> dict[str, Any]:
    try:
        header = await reader.readexactly(4)
        size = int.from_bytes(header, "big")
        if size > cap:
            raise ProtocolError(f"the worker sent {size:,} bytes, more than the {cap:,} allowed")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the worker stopped") from None
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"the worker sent something that is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("the worker sent something that is not an object")
    return message
