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
    if password is not None:
        check_password(password)
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


#: The shortest password accepted (a page login; API clients use tokens).
MIN_PASSWORD_LENGTH = 8


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password")


def user_id(conn: sa.Connection, user_name: str) -> int:
    """The id of the user named ``user_name``; NotFound if there is none."""
    found = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == user_name)).scalar()
    if found is None:
        raise NotFound(f"no user named {user_name!r}", field="name")
    return found


def set_role(conn: sa.Connection, *, user_name: str, role: str) -> None:
    """Give a user another role (it applies to their next request: roles are read per request)."""
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    conn.execute(sa.update(t.users).where(t.users.c.id == user_id(conn, user_name)).values(role=role))


def set_password(conn: sa.Connection, *, user_name: str, password: str | None) -> None:
    """Set (or, with ``None``, remove: tokens only) a user's page-login password."""
    if password is not None:
        check_password(password)
    conn.execute(
        sa.update(t.users).where(t.users.c.id == user_id(conn, user_name))
        .values(password_hash=generate_password_hash(password) if password else None)
    )


def issue_token(conn: sa.Connection, *, user_name: str, label: str | None = None) -> str:
    """Create a token for a user and return it; only its hash is stored."""
    if label is not None:
        label = text(label, "label", max_length=100) or None
    owner = user_id(conn, user_name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(sa.insert(t.api_tokens).values(user_id=owner, token_hash=hash_token(token), label=label))
    return token


def revoke_tokens(conn: sa.Connection, *, user_name: str) -> int:
    """Revoke every token of a user; returns how many (0 for an unknown name: see ``user_id``)."""
    tok = t.api_tokens
    ids = sa.select(t.users.c.id).where(t.users.c.name == user_name).scalar_subquery()
    result = conn.execute(
        sa.update(tok)
        .where(tok.c.user_id == ids, tok.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return result.rowcount


@dataclasses.dataclass(frozen=True, slots=True)
class TokenSummary:
    """A token as an admin may see it: never the token, only what it is for and when."""

    id: int
    user_name: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def list_tokens(conn: sa.Connection, *, user_name: str | None = None, revoked: bool = False) -> list[TokenSummary]:
    """Tokens (live ones only unless ``revoked``), of one user or of everyone, oldest first."""
    u, tok = t.users, t.api_tokens
    query = (
        sa.select(tok.c.id, u.c.name, tok.c.label, tok.c.created_at, tok.c.revoked_at)
        .join(u, u.c.id == tok.c.user_id)
        .order_by(tok.c.id)
    )
    if user_name is not None:
        query = query.where(tok.c.user_id == user_id(conn, user_name))
    if not revoked:
        query = query.where(tok.c.revoked_at.is_(None))
    return [TokenSummary(*row) for row in conn.execute(query)]


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


def set_active(conn: sa.Connection, *, actor: Actor | None, user_name: str, active: bool) -> None:
    """Let a user in again, or keep them out (their logins and tokens stop working).

    ``actor`` is the admin doing it on a page; ``None`` for the command line (the machine's operator).
    """
    if not active and actor is not None and user_name == actor.name:
        raise Conflict("you cannot deactivate yourself", field="name")
    changed = conn.execute(sa.update(t.users).where(t.users.c.name == user_name).values(active=active)).rowcount
    if not changed:
        raise NotFound(f"no user named {user_name!r}", field="name")
