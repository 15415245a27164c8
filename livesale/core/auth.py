"""People, roles and API tokens.

Tokens are random and long, so a plain SHA-256 is the right stored form: it
cannot be reversed, and lookups stay a single indexed equality. Passwords
are short and guessable, so they get a slow salted hash (werkzeug's scrypt).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from . import tables as t
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .validation import text

ROLES = ("admin", "host", "official")
TOKEN_PREFIX = "ls_"


@dataclasses.dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: a user and their role."""

    user_id: int
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "host")

    def can_manage(self, owner_id: int | None) -> bool:
        """May this actor change a session owned by ``owner_id``?"""
        return self.role == "admin" or (self.role == "host" and owner_id == self.user_id)

    def can_read(self, owner_id: int | None) -> bool:
        return self.role in ("admin", "official") or owner_id == self.user_id


def require_writer(actor: Actor) -> None:
    if not actor.can_write:
        raise Forbidden(f"the {actor.role} role may not change sessions or orders")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(conn: sa.Connection, *, name: str, role: str, password: str | None = None) -> int:
    name = text(name, "name", max_length=64, required=True)
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    if password is not None and len(password) < 8:
        raise InvalidInput("must be at least 8 characters", field="password")
    exists = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == name)).first()
    if exists:
        raise Conflict(f"a user named {name!r} exists", field="name")
    return conn.execute(
        sa.insert(t.users)
        .values(
            name=name,
            role=role,
            password_hash=generate_password_hash(password) if password else None,
            active=True,
        )
        .returning(t.users.c.id)
    ).scalar_one()


def issue_token(conn: sa.Connection, *, user_name: str, label: str | None = None) -> str:
    """Create a token for a user and return it; only its hash is stored."""
    if label is not None:
        label = text(label, "label", max_length=100) or None
    user_id = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == user_name)).scalar()
    if user_id is None:
        raise NotFound(f"no user named {user_name!r}", field="name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(sa.insert(t.api_tokens).values(user_id=user_id, token_hash=hash_token(token), label=label))
    return token


def revoke_tokens(conn: sa.Connection, *, user_name: str) -> int:
    """Revoke every token of a user; returns how many."""
    tok = t.api_tokens
    ids = sa.select(t.users.c.id).where(t.users.c.name == user_name).scalar_subquery()
    result = conn.execute(
        sa.update(tok)
        .where(tok.c.user_id == ids, tok.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return result.rowcount


def actor_for_token(conn: sa.Connection, *, token: str) -> Actor | None:
    """The active user a bearer token belongs to, or ``None``."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    u, tok = t.users, t.api_tokens
    row = conn.execute(
        sa.select(u.c.id, u.c.name, u.c.role)
        .join(tok, tok.c.user_id == u.c.id)
        .where(tok.c.token_hash == hash_token(token), tok.c.revoked_at.is_(None), u.c.active.is_(True))
    ).first()
    return Actor(user_id=row[0], name=row[1], role=row[2]) if row else None


def actor_for_login(conn: sa.Connection, *, name: str, password: str) -> Actor | None:
    """The user if ``password`` is theirs, else ``None``."""
    u = t.users
    row = conn.execute(
        sa.select(u.c.id, u.c.name, u.c.role, u.c.password_hash).where(u.c.name == name, u.c.active.is_(True))
    ).first()
    if row is None or not row[3] or not check_password_hash(row[3], password):
        return None
    return Actor(user_id=row[0], name=row[1], role=row[2])


def actor_by_id(conn: sa.Connection, *, user_id: int) -> Actor | None:
    u = t.users
    row = conn.execute(
        sa.select(u.c.id, u.c.name, u.c.role).where(u.c.id == user_id, u.c.active.is_(True))
    ).first()
    return Actor(user_id=row[0], name=row[1], role=row[2]) if row else None


def require_admin(actor: Actor) -> None:
    if actor.role != "admin":
        raise Forbidden("only an admin manages users and tokens")


@dataclasses.dataclass(frozen=True, slots=True)
class UserSummary:
    id: int
    name: str
    role: str
    active: bool
    can_log_in: bool
    active_tokens: int
    created_at: datetime


def list_users(conn: sa.Connection) -> list[UserSummary]:
    """Every user with how many live tokens they hold (never the tokens themselves)."""
    u, tok = t.users, t.api_tokens
    live = (
        sa.select(sa.func.count()).where(tok.c.user_id == u.c.id, tok.c.revoked_at.is_(None)).scalar_subquery()
    )
    rows = conn.execute(
        sa.select(u.c.id, u.c.name, u.c.role, u.c.active, u.c.password_hash.is_not(None), live, u.c.created_at)
        .order_by(u.c.name)
    )
    return [UserSummary(*row) for row in rows]


def set_active(conn: sa.Connection, *, actor: Actor, user_name: str, active: bool) -> None:
    """Let a user in again, or keep them out (their logins and tokens stop working)."""
    if not active and user_name == actor.name:
        raise Conflict("you cannot deactivate yourself", field="name")
    changed = conn.execute(sa.update(t.users).where(t.users.c.name == user_name).values(active=active)).rowcount
    if not changed:
        raise NotFound(f"no user named {user_name!r}", field="name")
