"""HTTP interfaces of the server, as plain routes of the outer app (never behind NiceGUI's middleware):

- `webhooks.py`: `/webhook/<path>` and `/webhook-test/<path>`, the triggers of active flows;
- `rest.py`: the REST API `/api/v1` (flows, versions, runs, node catalog), with `schemas.py` (its pydantic models)
  and `keys.py` (API key authentication; keys are made with `flowboard api-key create` or in the editor).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than success: HTTP status, plain words, and where it applies located problems or extra fields
    (`current_version`). Sent as `{"error": ..., "problems": [...]}`."""

    def __init__(self, status: int, error: str, *, problems: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = problems or []
        self.headers = headers
        self.extra = extra
