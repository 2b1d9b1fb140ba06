"""Files in items: the bytes live in a content-addressed blob store, an item carries a reference to them.

A reference is a small JSON object, so items stay plain JSON (expressions, run data and exports work as before)::

    {"$file": "<sha256 of the bytes>", "name": "invoice.pdf", "mime_type": "application/pdf", "size": 48211}

The store keeps each distinct content once, under its SHA-256 in `<data folder>/blobs/ab/abcdef...`: the name a
node gives a file is never part of a path on disk (nor a secret that may be in it). Nodes reach it through
`ctx.files` (flowboard.sdk.Files), never directly. Files at most MAX_FILE_BYTES (FLOWBOARD_MAX_FILE_MB) each.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

FILE_KEY = "$file"
#: A kept file that nothing names is deleted after this long (seconds): a node's new file is named only once its
#: step is recorded. (Flowboard.sweep_files; the server sweeps every FILE_GRACE.)
FILE_GRACE = 3600.0
_SHA = re.compile(r"[0-9a-f]{64}")


def max_file_bytes() -> int:
    return int(float(os.environ.get("FLOWBOARD_MAX_FILE_MB") or 100) * 1024 * 1024)


def checked_sha(data: bytes, name: str) -> str:
    """The SHA-256 that names `data` in a file store, once its size is checked: FileTooLarge in words when it has
    more bytes than a file may have."""
    limit = max_file_bytes()
    if len(data) > limit:
        raise FileTooLarge(f"the file {name!r} has {len(data):,} bytes, more than the {limit:,} bytes a file may have "
                           "(FLOWBOARD_MAX_FILE_MB)")
    return hashlib.sha256(data).hexdigest()


def is_file_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(FILE_KEY), str) and bool(_SHA.fullmatch(value[FILE_KEY]))


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class FileTooLarge(ValueError):
    pass


class Blobs(Protocol):
    """Where files' bytes are kept: a folder (BlobStore) or the database (store.blobs.DatabaseBlobs)."""

    def put(self, data: bytes, name: str, mime_type: str | None = None) -> dict[str, Any]: ...
    def get(self, ref: dict[str, Any]) -> bytes: ...
    def local_path(self, sha: str) -> Path | None: ...
    def exists(self, sha: str) -> bool: ...
    def all(self) -> set[str]: ...
    def age(self, sha: str) -> float: ...
    def delete(self, sha: str, older_than: float | None = None) -> None: ...


class BlobStore:
    """Content-addressed bytes in a folder (created owner-only on first write)."""

    def __init__(self, root: Path | Callable[[], Path]):
        self._root = root

    @property
    def root(self) -> Path:
        """The folder (a function giving it is called on first use: the data folder is made only when needed)."""
        return Path(self._root() if callable(self._root) else self._root)

    def path(self, sha: str) -> Path:
        if not _SHA.fullmatch(sha):
            raise ValueError("not a file reference")
        return self.root / sha[:2] / sha

    def put(self, data: bytes, name: str, mime_type: str | None = None) -> dict[str, Any]:
        """Keep `data`; returns its reference. Content kept before is not written again."""
        sha = checked_sha(data, name)
        target = self.path(sha)
        if target.exists():
            os.utime(target)  # made again: young again, so a sweep does not take it while the node goes on
        else:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, target)  # atomic: a reader sees all of it or nothing
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return {FILE_KEY: sha, "name": name, "mime_type": mime_type or guess_mime(name), "size": len(data)}

    def get(self, ref: dict[str, Any]) -> bytes:
        if not is_file_ref(ref):
            raise ValueError("this is not a file: a file is an item field like {\"$file\": ..., \"name\": ...}")
        try:
            return self.path(ref[FILE_KEY]).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"the file {ref.get('name')!r} is no longer kept (its run was deleted)") from None

    def local_path(self, sha: str) -> Path | None:
        """The file on disk, to stream it (None when it is gone)."""
        path = self.path(sha)
        return path if path.exists() else None

    def exists(self, sha: str) -> bool:
        return _SHA.fullmatch(sha) is not None and self.path(sha).exists()

    def all(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {p.name for p in self.root.glob("??/*") if _SHA.fullmatch(p.name)}

    def age(self, sha: str) -> float:
        """Seconds since the file was last kept (0 when it is gone)."""
        import time

        try:
            return time.time() - self.path(sha).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def delete(self, sha: str, older_than: float | None = None) -> None:
        """Delete it; with `older_than`, only while it is at least that many seconds old (not made again since)."""
        if older_than is None or self.age(sha) >= older_than:
            self.path(sha).unlink(missing_ok=True)


def refs_in(value: Any) -> set[str]:
    """The SHA-256s of every file reference anywhere in `value` (items, run data)."""
    return {ref[FILE_KEY] for ref in files_in(value)}


def files_in(value: Any, found: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every file reference anywhere in `value`, in order (the same file under two names counts twice)."""
    found = [] if found is None else found
    if isinstance(value, dict):
        if is_file_ref(value):
            found.append(value)
        else:
            for v in value.values():
                files_in(v, found)
    elif isinstance(value, list):
        for v in value:
            files_in(v, found)
    return found


_KINDS = {"application/pdf": "PDF document", "text/csv": "CSV file", "application/json": "JSON file",
          "text/plain": "text file", "application/zip": "zip archive", "text/html": "web page",
          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "spreadsheet (xlsx)",
          "application/octet-stream": "file"}


def kind_text(mime_type: str) -> str:
    """A file's type as people say it: "PDF document", "image (png)", "spreadsheet (xlsx)"; else its MIME type."""
    mime = (mime_type or "").lower()
    if mime in _KINDS:
        return _KINDS[mime]
    major, _, minor = mime.partition("/")
    if major in ("image", "audio", "video") and minor:
        return f"{major} ({minor.split('+')[0]})"
    return mime or "file"


def download_headers(ref: dict[str, Any]) -> dict[str, str]:
    """Headers that serve a file as a download under its name, never shown inline (an HTML or SVG file of a run must
    not run as a page of Flowboard's site)."""
    from urllib.parse import quote

    name = str(ref.get("name") or "download")
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return {"Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


def size_text(size: int) -> str:
    """A size as people read it: 812 bytes, 48.2 kB, 3.1 MB."""
    if size < 1000:
        return f"{size} byte{'s' if size != 1 else ''}"
    for unit in ("kB", "MB", "GB"):
        size /= 1000  # type: ignore[assignment]
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")
