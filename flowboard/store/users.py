"""Users and their sign-in sessions, over SQLAlchemy Core. Persistence only: the rules (roles, passwords, expiry,
throttling) live in `flowboard.auth`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .tables import api_keys_t, sessions_t, users_t


@dataclass(slots=True)
class UserRecord:
    id: str
    name: str
    full_name: str
    email: str | None
    roles: list[str]
    password_hash: str
    created: float
    updated: float


@dataclass(slots=True)
class SessionRecord:
    id: str  # the hash of the cookie's value
    user_id: str
    created: float
    last_seen: float
    expires: float
    address: str | None


_USER = (users_t.c.id, users_t.c.name, users_t.c.full_name, users_t.c.email, users_t.c.roles,
         users_t.c.password_hash, users_t.c.created, users_t.c.updated)
_SESSION = (sessions_t.c.id, sessions_t.c.user_id, sessions_t.c.created, sessions_t.c.last_seen,
            sessions_t.c.expires, sessions_t.c.address)


class UserStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # -- users ------------------------------------------------------------------------------------------------------

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(users_t)).scalar() or 0)

    def insert(self, user: UserRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(users_t.insert().values(id=user.id, name=user.name, full_name=user.full_name,
                                                 email=user.email, roles=user.roles,
                                                 password_hash=user.password_hash, created=user.created,
                                                 updated=user.updated))

    def get(self, *, name: str | None = None, user_id: str | None = None) -> UserRecord | None:
        query = sa.select(*_USER).where(users_t.c.name == name if name is not None else users_t.c.id == user_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return UserRecord(*row) if row is not None else None

    def all(self) -> list[UserRecord]:
        with self.engine.connect() as conn:
            return [UserRecord(*row) for row in conn.execute(sa.select(*_USER).order_by(users_t.c.name))]

    def update(self, user_id: str, **values: Any) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(users_t.update().where(users_t.c.id == user_id).values(**values)).rowcount == 1

    def delete(self, user_id: str) -> bool:
        """The user with their sessions and API keys."""
        with self.engine.begin() as conn:
            conn.execute(sessions_t.delete().where(sessions_t.c.user_id == user_id))
            conn.execute(api_keys_t.delete().where(api_keys_t.c.user_id == user_id))
            return conn.execute(users_t.delete().where(users_t.c.id == user_id)).rowcount == 1

    # -- sessions ---------------------------------------------------------------------------------------------------

    def add_session(self, session: SessionRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions_t.insert().values(id=session.id, user_id=session.user_id, created=session.created,
                                                    last_seen=session.last_seen, expires=session.expires,
                                                    address=session.address))

    def get_session(self, session_id: str) -> tuple[SessionRecord, UserRecord] | None:
        query = sa.select(*_SESSION, *_USER).join(users_t, users_t.c.id == sessions_t.c.user_id) \
            .where(sessions_t.c.id == session_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return SessionRecord(*row[:len(_SESSION)]), UserRecord(*row[len(_SESSION):])

    def touch_session(self, session_id: str, when: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions_t.update().where(sessions_t.c.id == session_id).values(last_seen=when))

    def delete_sessions(self, *, session_id: str | None = None, user_id: str | None = None,
                        keep: str | None = None, expired_before: float | None = None) -> int:
        """Delete one session, or a user's (but `keep`), or every session ended before a time. Returns how many."""
        query = sessions_t.delete()
        if session_id is not None:
            query = query.where(sessions_t.c.id == session_id)
        elif user_id is not None:
            query = query.where(sessions_t.c.user_id == user_id)
            if keep is not None:
                query = query.where(sessions_t.c.id != keep)
        elif expired_before is not None:
            query = query.where(sessions_t.c.expires < expired_before)
        else:
            raise ValueError("say which sessions to delete")
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount)

    def user_sessions(self, user_id: str) -> list[SessionRecord]:
        query = sa.select(*_SESSION).where(sessions_t.c.user_id == user_id).order_by(sessions_t.c.created)
        with self.engine.connect() as conn:
            return [SessionRecord(*row) for row in conn.execute(query)]
