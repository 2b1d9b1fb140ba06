"""Login throttling: after repeated failed sign-ins, a user name, or a client address, must wait.

A sliding window: `per_name` failures for one user name (known or not, so the answer tells nothing about which names
exist) or `per_address` failures from one client address within `window` seconds, and further attempts are refused
without checking the password until the oldest of those failures leaves the window. A successful sign-in clears the
user name's failures. Kept in memory, per server process: a restart forgets them (a guesser still gets a few tries
per quarter hour per name).
"""

from __future__ import annotations

import math
import time
from collections import deque


class Throttle:
    def __init__(self, per_name: int = 5, per_address: int = 20, window: float = 900.0):
        self.per_name = per_name
        self.per_address = per_address
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def wait(self, name: str, address: str | None, now: float | None = None) -> float:
        """Seconds to wait before another attempt may be checked; 0 when it may be checked now."""
        now = time.monotonic() if now is None else now
        waits = [self._wait(f"name:{name.lower()}", self.per_name, now)]
        if address:
            waits.append(self._wait(f"addr:{address}", self.per_address, now))
        return max(waits)

    def failed(self, name: str, address: str | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        keys = [f"name:{name.lower()}"] + ([f"addr:{address}"] if address else [])
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 100_000:  # a flood of made-up names: forget the oldest half rather than grow
            for key in list(self._failures)[:50_000]:
                del self._failures[key]

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"name:{name.lower()}", None)

    def _wait(self, key: str, limit: int, now: float) -> float:
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        if len(failures) < limit:
            return 0.0
        return failures[-limit] + self.window - now


def minutes_text(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
