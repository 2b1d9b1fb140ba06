"""Accounts: users with roles and argon2id passwords, sign-in sessions with idle and absolute expiry, throttled
sign-in, and who an API key acts for.

A session is a random 256-bit token in an HttpOnly cookie; the database keeps only its SHA-256, so a copy of the
database lets nobody in. A session found valid is trusted for `CACHE` seconds without another read (the guard asks on
every request); signing out in this process takes effect at once, from another process (the CLI changing a password
or removing a user) within those seconds. `last_seen` is written at most once a minute.

Single-user mode: with no users at all, the server on a loopback address treats its one local user as an admin, as
before accounts existed. The first user must be an admin, and the last admin can be neither removed nor demoted, so
"there are users" always means "there is an admin".
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterable

from ..errors import FlowboardError
from ..store import ApiKeyInfo, Store
from ..store.users import SessionRecord, UserRecord, UserStore
from .passwords import hash_password, needs_rehash, password_problem, verify_password
from .principal import Principal
from .roles import Role, parse_roles
from .throttle import Throttle, minutes_text

CACHE = 2.0  # seconds a session (or the "are there users" answer) is trusted without reading the database again
TOUCH = 60.0  # seconds between writes of a session's last_seen
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
ADD_ADMIN = "flowboard user add --role admin NAME"


class AccountError(FlowboardError):
    """A refused change to the accounts, in plain words for the person who asked."""


class SignInRefused(AccountError):
    """Wrong name or password, or too many attempts (`wait` seconds)."""

    def __init__(self, message: str, wait: float = 0.0):
        super().__init__(message)
        self.wait = wait


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_name(name: str) -> str:
    """A login name as stored: trimmed, lower-case; refused unless it is 1-64 letters, digits, `.`, `_`, `@`, `-`."""
    cleaned = name.strip().lower()
    if not NAME_RULE.fullmatch(cleaned):
        raise AccountError(f"{name!r} cannot be a user name: use 1 to 64 letters, digits, dots, dashes, underscores "
                           "or @, starting with a letter or digit (for example ada or ada.lovelace)")
    return cleaned


class Accounts:
    def __init__(self, store: Store, *, idle: float | None = None, lifetime: float | None = None,
                 throttle: Throttle | None = None):
        self.users = UserStore(store.engine)
        self.store = store
        #: a session ends after this many seconds without a request (env FLOWBOARD_SESSION_IDLE_MINUTES, 12 h)
        self.idle = idle if idle is not None else _env_float("FLOWBOARD_SESSION_IDLE_MINUTES", 720) * 60
        #: and at the latest this many seconds after sign-in (env FLOWBOARD_SESSION_DAYS, 7 days)
        self.lifetime = lifetime if lifetime is not None else _env_float("FLOWBOARD_SESSION_DAYS", 7) * 86400
        self.throttle = throttle or Throttle()
        self._sessions: dict[str, tuple[Principal, SessionRecord, float]] = {}  # hash -> (who, row, checked at)
        self._owners: dict[str, tuple[UserRecord | None, float]] = {}  # API key owners, by user id
        self._has_users: tuple[bool, float] = (False, -CACHE)
        #: the server listens on a public address: sign-in is required even before a user exists (and `serve`
        #: refuses to start without an admin)
        self.public = False
        #: NiceGUI client ids of open sign-in pages: their websocket is let through without a session
        self.sign_in_clients: set[str] = set()

    def required(self) -> bool:
        """Whether every page needs a session or an API key: a user exists, or the server is public."""
        return self.public or self.has_users()

    # -- users ------------------------------------------------------------------------------------------------------

    def has_users(self) -> bool:
        """Whether any user exists (then every page needs a session). Read again at most every `CACHE` seconds."""
        known, at = self._has_users
        now = time.monotonic()
        if now - at > CACHE:
            known = self.users.count() > 0
            self._has_users = (known, now)
        return known

    def list_users(self) -> list[UserRecord]:
        return self.users.all()

    def users_with_role(self, role: Role | str) -> list[UserRecord]:
        """Everyone holding `role` (an approval given to "the approvers" goes to them)."""
        return [user for user in self.users.all() if Role(role).value in user.roles]

    def get_user(self, name: str) -> UserRecord:
        user = self.users.get(name=name.strip().lower())
        if user is None:
            raise AccountError(f"there is no user {name!r} (see `flowboard user list`)")
        return user

    def add_user(self, name: str, password: str, roles: Iterable[Role | str], *, full_name: str = "",
                 email: str | None = None) -> UserRecord:
        name = clean_name(name)
        try:
            role_list = parse_roles(roles)
        except ValueError as exc:
            raise AccountError(str(exc)) from None
        if self.users.get(name=name) is not None:
            raise AccountError(f"there is a user {name!r} already; change their password with "
                               f"`flowboard user passwd {name}`")
        if Role.admin not in role_list and not self._admins():
            raise AccountError(f"the first user must be an admin, who can then add the others: {ADD_ADMIN}")
        if problem := password_problem(password, name):
            raise AccountError(problem)
        now = time.time()
        user = UserRecord(uuid.uuid4().hex, name, full_name.strip()[:200], (email or "").strip() or None,
                          [r.value for r in role_list], hash_password(password), now, now)
        self.users.insert(user)
        self._has_users = (True, time.monotonic())
        return user

    def set_roles(self, name: str, roles: Iterable[Role | str]) -> UserRecord:
        user = self.get_user(name)
        try:
            role_list = parse_roles(roles)
        except ValueError as exc:
            raise AccountError(str(exc)) from None
        if Role.admin.value in user.roles and Role.admin not in role_list and len(self._admins()) <= 1:
            raise AccountError(f"{user.name} is the only admin; make another user an admin first")
        self.users.update(user.id, roles=[r.value for r in role_list], updated=time.time())
        self._forget(user.id)
        user.roles = [r.value for r in role_list]
        return user

    def set_password(self, name: str, password: str, *, keep_session: str | None = None) -> int:
        """Change a user's password and end their other sessions (all, unless `keep_session`, a session hash, is
        the browser that changed it). Returns how many sessions ended."""
        user = self.get_user(name)
        if problem := password_problem(password, user.name):
            raise AccountError(problem)
        self.users.update(user.id, password_hash=hash_password(password), updated=time.time())
        ended = self.users.delete_sessions(user_id=user.id, keep=keep_session)
        self._forget(user.id, keep=keep_session)
        return ended

    def change_own_password(self, principal: Principal, current: str, new: str) -> int:
        """A signed-in user changing their password: the current one is checked (and throttled like a sign-in)."""
        if principal.user_id is None:
            raise AccountError("there is no account to change a password for: in single-user mode nobody signs in")
        user = self.users.get(user_id=principal.user_id)
        if user is None:
            raise AccountError("your account was removed meanwhile")
        wait = self.throttle.wait(user.name, None)
        if wait > 0:
            raise SignInRefused(f"Too many attempts; try again in {minutes_text(wait)}.", wait)
        if not verify_password(user.password_hash, current):
            self.throttle.failed(user.name, None)
            raise AccountError("the current password is not right")
        return self.set_password(user.name, new, keep_session=principal.session_id)

    def remove_user(self, name: str) -> None:
        user = self.get_user(name)
        if Role.admin.value in user.roles and len(self._admins()) <= 1 and self.users.count() > 1:
            raise AccountError(f"{user.name} is the only admin; make another user an admin first")
        self.users.delete(user.id)
        self._forget(user.id)
        self._has_users = (False, -CACHE)

    def _admins(self) -> list[UserRecord]:
        return self.users_with_role(Role.admin)

    def _forget(self, user_id: str, keep: str | None = None) -> None:
        for key, (principal, _, _) in list(self._sessions.items()):
            if principal.user_id == user_id and key != keep:
                del self._sessions[key]
        self._owners.pop(user_id, None)

    # -- sessions ---------------------------------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, address: str | None = None) -> tuple[str, Principal]:
        """Check a sign-in and start a session: the cookie's value (shown to nobody else) and who it is. Blocking
        (argon2 takes ~0.25 s on purpose): run it in a thread from an event loop."""
        key = name.strip().lower()[:64]
        if not key or not password:  # not an attempt: nothing to count
            raise SignInRefused("Type your user name and your password.")
        wait = self.throttle.wait(key, address)
        if wait > 0:
            raise SignInRefused(f"Too many attempts; try again in {minutes_text(wait)}.", wait)
        user = self.users.get(name=key) if NAME_RULE.fullmatch(key) else None
        if not verify_password(user.password_hash if user else None, password) or user is None:
            self.throttle.failed(key, address)
            raise SignInRefused("The user name or the password is not right. Check both and try again.")
        self.throttle.succeeded(key)
        if needs_rehash(user.password_hash):
            self.users.update(user.id, password_hash=hash_password(password))
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = SessionRecord(hash_token(token), user.id, now, now, now + self.lifetime, address)
        self.users.add_session(session)
        if secrets.randbelow(50) == 0:  # now and then, clear out sessions that ended long ago
            self.users.delete_sessions(expired_before=now)
        principal = self._principal(user, session.id)
        self._sessions[session.id] = (principal, session, time.monotonic())
        return token, principal

    def cached_session(self, token: str) -> Principal | None:
        """The session's principal if it was checked less than `CACHE` seconds ago (no database read), else None:
        then ask `session`."""
        hit = self._sessions.get(hash_token(token)) if token and len(token) <= 100 else None
        if hit is None or time.monotonic() - hit[2] > CACHE or not self._alive(hit[1], time.time()):
            return None
        return hit[0]

    def session(self, token: str) -> Principal | None:
        """Who the session cookie `token` belongs to, or None when it is unknown, ended, or expired (then it is
        deleted)."""
        if not token or len(token) > 100:
            return None
        key = hash_token(token)
        now = time.time()
        hit = self._sessions.get(key)
        if hit is not None and time.monotonic() - hit[2] <= CACHE:
            principal, record, _ = hit
            if self._alive(record, now):
                return principal
        found = self.users.get_session(key)
        if found is None:
            self._sessions.pop(key, None)
            return None
        record, user = found
        if not self._alive(record, now):
            self.users.delete_sessions(session_id=key)
            self._sessions.pop(key, None)
            return None
        if now - record.last_seen >= TOUCH:
            self.users.touch_session(key, now)
            record.last_seen = now
        principal = self._principal(user, key)
        self._sessions[key] = (principal, record, time.monotonic())
        return principal

    def _alive(self, record: SessionRecord, now: float) -> bool:
        return now < record.expires and now - record.last_seen < self.idle

    def sign_out(self, token: str | None = None, *, session_id: str | None = None) -> None:
        key = session_id or (hash_token(token) if token else None)
        if key is None:
            return
        self.users.delete_sessions(session_id=key)
        self._sessions.pop(key, None)

    @staticmethod
    def _principal(user: UserRecord, session_id: str | None, via: str = "session") -> Principal:
        return Principal.of(user.id, user.name, user.roles, full_name=user.full_name, via=via,
                            session_id=session_id)

    # -- API keys ---------------------------------------------------------------------------------------------------

    def cached_key_principal(self, info: ApiKeyInfo) -> Principal | None:
        """`key_principal` without a database read, or None when that would need one."""
        if info.user_id is None:
            return Principal.of(None, f"API key {info.name}", [Role.admin], via="api_key")
        hit = self._owners.get(info.user_id)
        if hit is None or hit[0] is None or time.monotonic() - hit[1] > CACHE:
            return None
        return self._principal(hit[0], None, via="api_key")

    def key_principal(self, info: ApiKeyInfo) -> Principal | None:
        """Who an API key acts for: its owner with their roles, or, for a key made with the CLI before users existed
        (no owner), an admin. None when the owner was removed."""
        if info.user_id is None:
            return Principal.of(None, f"API key {info.name}", [Role.admin], via="api_key")
        hit = self._owners.get(info.user_id)
        if hit is None or time.monotonic() - hit[1] > CACHE:
            hit = (self.users.get(user_id=info.user_id), time.monotonic())
            self._owners[info.user_id] = hit
        user = hit[0]
        return self._principal(user, None, via="api_key") if user is not None else None
