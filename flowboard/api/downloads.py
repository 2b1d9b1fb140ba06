"""A kept file as a download: streamed from the data folder or sent from the database's bytes, always as an
attachment under its name (the run page's links and the REST API both answer with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, Response

from ..blobs import download_headers


def download(ref: dict[str, Any], where: Path | bytes) -> Response:
    media_type = str(ref.get("mime_type") or "application/octet-stream")
    if isinstance(where, Path):
        return FileResponse(where, media_type=media_type, headers=download_headers(ref))
    return Response(where, media_type=media_type, headers=download_headers(ref))
