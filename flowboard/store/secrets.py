"""Credential encryption: Fernet (AES-128-CBC + HMAC-SHA256), so the database never holds a secret in clear.

The key comes from env `FLOWBOARD_SECRET_KEY` or from `<data dir>/secret.key`, created with mode 0600 on first use.
`FLOWBOARD_SECRET_KEY` may list several keys separated by commas to rotate: the first encrypts, any of them decrypts.
Losing the key loses the credentials (not the flows or runs): back it up with the database.

`flowboard secret-key rotate` re-encrypts every credential under a new key (`Secrets.rotate`,
`Store.rotate_secret_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..errors import FlowboardError

KEY_ENV = "FLOWBOARD_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretKeyError(FlowboardError):
    """The secret key is missing, malformed, or not the key a credential was saved with."""


def _raw_keys(data_dir: Callable[[], Path]) -> tuple[str, str]:
    """The key text (comma-separated Fernet keys, newest first) and where it came from."""
    raw = os.environ.get(KEY_ENV, "").strip()
    if raw:
        return raw, f"env {KEY_ENV}"
    path = data_dir() / KEY_FILE
    return _read_or_create(path), str(path)


def load_key(data_dir: Callable[[], Path]) -> MultiFernet:
    """The Fernet keys from the environment, else from the key file in the data dir (created when missing)."""
    raw, where = _raw_keys(data_dir)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise SecretKeyError(f"the secret key in {where} is not a Fernet key (32 url-safe base64-encoded bytes; make "
                             "one with `python -c 'from cryptography.fernet import Fernet; "
                             "print(Fernet.generate_key().decode())'`)") from None


def raw_key(data_dir: Callable[[], Path]) -> bytes:
    """The current secret key's bytes (the first of `FLOWBOARD_SECRET_KEY`, else the key file, made when missing), for
    keys derived from it (approval links)."""
    raw = os.environ.get(KEY_ENV, "").strip() or _read_or_create(data_dir() / KEY_FILE)
    return raw.split(",")[0].strip().encode()


def _read_or_create(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    try:  # O_EXCL: two processes starting at once agree on one key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key.decode()


class Secrets:
    """Encrypts and decrypts credential data. The key is loaded on first use, so a store that never touches a
    credential never creates a key file."""

    def __init__(self, data_dir: Callable[[], Path]):
        self._data_dir = data_dir
        self._fernet: MultiFernet | None = None
        self._stamp: tuple[int, int, int] | None = None  # the key file as it was read (rotation replaces it)

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            self._fernet = load_key(self._data_dir)
            self._stamp = self._key_file_stamp()
        return self._fernet

    def _key_file_stamp(self) -> tuple[int, int, int] | None:
        if os.environ.get(KEY_ENV, "").strip():
            return None
        try:
            st = os.stat(self._data_dir() / KEY_FILE)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def signing_key(self, purpose: str) -> bytes:
        """A key to sign links with (HMAC), derived from the newest secret key and `purpose`: links stay valid across
        restarts and processes sharing the key, and rotating the key invalidates them."""
        raw, _ = _raw_keys(self._data_dir)
        newest = raw.split(",")[0].strip().encode()
        return hmac.new(newest, b"flowboard:" + purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, name: str, data: dict[str, Any]) -> str:
        if self._fernet is not None and self._key_file_stamp() != self._stamp:
            self._fernet = None  # another process rotated the key: never write a row under the old one
        # the name goes inside the token, so a token copied onto another credential's row does not decrypt there
        return self.fernet.encrypt(orjson.dumps({"name": name, "data": data})).decode()

    def decrypt(self, name: str, token: str) -> dict[str, Any]:
        try:
            try:
                plain = orjson.loads(self.fernet.decrypt(token.encode()))
            except InvalidToken:  # the key may have been rotated by another process: read it again, once
                self._fernet = None
                plain = orjson.loads(self.fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(f"credential {name!r} cannot be decrypted: it was saved with another secret key than "
                                 f"the current one ({KEY_ENV} or {KEY_FILE} in the data dir)") from None
        if not isinstance(plain, dict) or plain.get("name") != name:
            raise SecretKeyError(f"credential {name!r} holds data saved for another credential; save it again")
        data: dict[str, Any] = plain["data"]
        return data

    @contextmanager
    def rotate(self) -> Iterator[MultiFernet]:
        """Yield the keys to re-encrypt with (`MultiFernet.rotate` encrypts under the first, reads with any), for a
        transaction that re-encrypts every credential.

        With the key file: a new key is made and the file holds "new,old" while the block runs, so every row reads
        whatever happens; when the block ends well the file keeps only the new key, and when it fails the old file is
        put back. With `FLOWBOARD_SECRET_KEY`, which Flowboard cannot change: the user lists the new key first
        (NEW,OLD), the rows are re-encrypted under it, and the user drops OLD afterwards."""
        raw, where = _raw_keys(self._data_dir)
        old = [k.strip() for k in raw.split(",") if k.strip()]
        if where.startswith("env"):
            if len(old) < 2:
                raise SecretKeyError(f"the secret key comes from {KEY_ENV}, which Flowboard cannot change: make a new "
                                     f"key, set {KEY_ENV}=NEW,OLD (the new key first, a comma, the current one), run "
                                     f"this again, then set {KEY_ENV}=NEW")
            self._fernet = None
            yield self.fernet
            return
        path = self._data_dir() / KEY_FILE
        before = path.read_text()
        new = Fernet.generate_key().decode()
        _write_key(path, ",".join([new, *old]))
        self._fernet = None
        try:
            yield self.fernet
        except BaseException:
            _write_key(path, before.strip())
            self._fernet = None
            raise
        _write_key(path, new)
        self._fernet = None


def _write_key(path: Path, text: str) -> None:
    """Replace the key file atomically (a new file renamed over it), owner-only."""
    temp = path.with_name(path.name + ".new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
