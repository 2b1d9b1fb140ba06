"""Passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile: 64 MiB, 3 passes), never the
password itself. Hashing costs a quarter of a second on purpose: callers in an event loop run it in a thread."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a megabyte "password" would only be a way to waste the server's time
# A hash of a password nobody has: checking a login for an unknown user costs the same time as for a known one, so
# the answer's timing does not tell which user names exist. Made at the first check, not at import: it costs a
# quarter of a second and 64 MiB of work that the server's start-up does not need.
_DUMMY: str | None = None


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = _hasher.hash("flowboard: no such user")
    return _DUMMY


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash. With no hash (unknown user) the same work is done, then False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker settings than today's (then it is replaced at the next login)."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def password_problem(password: str, name: str = "") -> str | None:
    """Why this password is refused, in plain words, or None when it is fine."""
    if len(password) < MIN_LENGTH:
        return f"the password is too short: use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password is too long: use at most {MAX_LENGTH} characters"
    if name and password.strip().lower() == name.strip().lower():
        return "the password must not be the user name"
    return None
