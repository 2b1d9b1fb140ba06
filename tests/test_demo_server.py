"""`flowboard demo`'s stand-ins when a port is taken (another test run holds 2525 or 8091): the start is refused in
words and leaves nothing open behind it (an unclosed event loop of the mail catcher used to fail the next test that
happened to run the garbage collector)."""

from __future__ import annotations

import gc
import socket
import sys
from typing import Any

import pytest

from flowboard.demo import DemoServer


def test_a_taken_mail_port_is_refused_and_leaves_nothing_open(monkeypatch: pytest.MonkeyPatch) -> None:
    left: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: left.append(repr(u.exc_value)))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server: Any = DemoServer(port=0, smtp_port=port)
        with pytest.raises(RuntimeError, match=rf"^the mail catcher could not start on 127\.0\.0\.1:{port} \(is the "
                                               r"port taken\?\)"):
            server.start()
        server.stop()  # safe after a failed start
    server = None
    gc.collect()
    assert left == []
