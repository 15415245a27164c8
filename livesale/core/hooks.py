"""Signed pushes of live orders: the hooks of a sale session and how a push is checked.

A shop's middleware or a platform relay posts the API's order JSON to
``/hooks/orders/<hook_id>``, signed with the hook's secret::

    X-Livesale-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The signature covers the raw bytes as sent (checked before any JSON parsing),
and the time, so that a captured push cannot be replayed after
``TOLERANCE_S``. A replay inside the window is harmless: a hook's orders must
carry an ``external_id``, and the same ``external_id`` counts once.

The secret is kept as given (an HMAC needs it), shown once when the hook is
made or rotated, and never listed. A deleted hook keeps its row (who made it,
when it stopped), and refuses pushes like an unknown one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from livesale.models import utcnow

from . import tables as t
from .auth import Actor, actor_by_id
from .db import write_transaction
from .errors import Forbidden, InvalidInput, NotFound, Unauthorized
from .sessions import Store, manageable
from .validation import OrderInput

HEADER = "X-Livesale-Signature"
#: How far a push's ``t`` may be from the server's clock, either way.
TOLERANCE_S = 300
#: A hook id in a URL: what ``new_hook_id`` makes (anything else is no hook, without a query).
HOOK_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_SECONDS_RE = re.compile(r"[0-9]{1,12}")


@dataclasses.dataclass(frozen=True, slots=True)
class HookInfo:
    """A hook as listed: never its secret."""

    hook_id: str
    session_id: int
    created_by: str | None
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class NewSecret:
    """A hook and its secret, as answered once (at creation or rotation)."""

    hook_id: str
    secret: str


def hook_view(hook: HookInfo) -> dict[str, object]:
    return {
        "hook_id": hook.hook_id,
        "created_by": hook.created_by,
        "created_at": hook.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def new_secret() -> str:
    """43 URL-safe characters (256 random bits)."""
    return secrets.token_urlsafe(32)


def new_hook_id() -> str:
    """22 URL-safe characters: unguessable, though the hook id is an address, not a credential."""
    return secrets.token_urlsafe(16)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (what a sender computes)."""
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """hex HMAC-SHA256(secret, "<t>.<raw body>")."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# --- managing hooks (the session's host or an admin) ----------------------------------------------


def create_hook(store: Store, *, actor: Actor, session_id: int) -> NewSecret:
    """A new hook for the session; its secret is in the answer and nowhere else the caller can read it."""
    with write_transaction(store.db) as conn:
        manageable(conn, actor, session_id)
        made = NewSecret(hook_id=new_hook_id(), secret=new_secret())
        conn.execute(sa.insert(t.order_hooks).values(
            hook_id=made.hook_id, session_id=session_id, secret=made.secret, created_by=actor.user_id,
            created_at=utcnow(),
        ))
    return made


def list_hooks(store: Store, *, actor: Actor, session_id: int) -> list[HookInfo]:
    """The session's hooks that take pushes, oldest first (no secrets)."""
    h, u = t.order_hooks, t.users
    with store.db.connect() as conn:
        manageable(conn, actor, session_id)
        rows = conn.execute(
            sa.select(h.c.hook_id, h.c.session_id, u.c.name, h.c.created_at)
            .select_from(h.outerjoin(u, u.c.id == h.c.created_by))
            .where(h.c.session_id == session_id, h.c.revoked_at.is_(None))
            .order_by(h.c.created_at, h.c.id)
        ).all()
    return [HookInfo(hook_id=r[0], session_id=r[1], created_by=r[2], created_at=r[3]) for r in rows]


def _live_hook(conn: sa.Connection, session_id: int, hook_id: str) -> int:
    h = t.order_hooks
    row = conn.execute(
        sa.select(h.c.id).where(h.c.hook_id == hook_id, h.c.session_id == session_id, h.c.revoked_at.is_(None))
    ).first()
    if row is None:
        raise NotFound(f"no hook {hook_id} on session {session_id}")
    return row[0]


def rotate_hook(store: Store, *, actor: Actor, session_id: int, hook_id: str) -> NewSecret:
    """A new secret for the hook (same address); pushes signed with the old one are refused at once."""
    with write_transaction(store.db) as conn:
        manageable(conn, actor, session_id)
        row_id = _live_hook(conn, session_id, hook_id)
        secret = new_secret()
        conn.execute(sa.update(t.order_hooks).where(t.order_hooks.c.id == row_id).values(secret=secret))
    return NewSecret(hook_id=hook_id, secret=secret)


def delete_hook(store: Store, *, actor: Actor, session_id: int, hook_id: str) -> None:
    """The hook stops taking pushes at once (its row stays, marked revoked)."""
    with write_transaction(store.db) as conn:
        manageable(conn, actor, session_id)
        row_id = _live_hook(conn, session_id, hook_id)
        conn.execute(sa.update(t.order_hooks).where(t.order_hooks.c.id == row_id).values(revoked_at=utcnow()))


# --- checking a push ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Push:
    """A push whose signature held: the session it is for, and whom it acts as (the session's owner)."""

    session_id: int
    actor: Actor


def parse_header(value: str | None) -> tuple[int, list[str]]:
    """``t=<seconds>,v1=<hex>[,v1=<hex>…]`` -> (t, signatures); Unauthorized if it is not that."""
    if not value:
        raise Unauthorized(f"send the {HEADER} header: t=<unix seconds>,v1=<hex HMAC-SHA256>", code="bad_signature")
    timestamp: int | None = None
    given: list[str] = []
    for part in value.split(","):
        name, _, item = part.strip().partition("=")
        if name == "t" and _SECONDS_RE.fullmatch(item):
            timestamp = int(item)
        elif name == "v1" and _SIGNATURE_RE.fullmatch(item.lower()):
            given.append(item.lower())
    if timestamp is None or not given:
        raise Unauthorized(f"{HEADER} must be t=<unix seconds>,v1=<64 hex digits>", code="bad_signature")
    return timestamp, given


def verify_push(store: Store, *, hook_id: str, header: str | None, body: bytes, now: float | None = None) -> Push:
    """Whether ``body`` was signed by the hook's current secret within ``TOLERANCE_S`` of ``now``.

    Every refusal is Unauthorized (401) and stores nothing. The message says what to fix and
    never repeats the secret, the expected signature or the one given.
    """
    if not HOOK_ID_RE.fullmatch(hook_id):
        raise Unauthorized("no such hook (or it was deleted)", code="unknown_hook")
    timestamp, given = parse_header(header)
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_S:
        raise Unauthorized(
            f"the signature's time t={timestamp} is more than {TOLERANCE_S} s from the server's clock "
            f"({int(now)}): sign each push when you send it", code="stale_signature",
        )
    h, s = t.order_hooks, t.live_sessions
    with store.db.connect() as conn:
        row = conn.execute(
            sa.select(h.c.secret, h.c.session_id, s.c.owner_id)
            .select_from(h.join(s, s.c.id == h.c.session_id))
            .where(h.c.hook_id == hook_id, h.c.revoked_at.is_(None))
        ).first()
        if row is None:
            raise Unauthorized("no such hook (or it was deleted)", code="unknown_hook")
        expected = signature(row.secret, body, timestamp)
        # Every given signature is compared (constant time each): which one matched says nothing.
        if not any([hmac.compare_digest(expected, g) for g in given]):
            raise Unauthorized("the signature does not match this body and the hook's secret", code="bad_signature")
        owner = actor_by_id(conn, user_id=row.owner_id) if row.owner_id is not None else None
    if owner is None:
        raise Forbidden("the session's host no longer has an active account: its hooks take no orders")
    return Push(session_id=row.session_id, actor=owner)


def require_external_ids(orders: list[OrderInput]) -> None:
    """A hook's orders carry ``external_id``: a re-sent push (a retry, a replay) is then always recognised."""
    for order in orders:
        if order.external_id is None:
            field = f"{order.field}.external_id" if order.field else "external_id"
            raise InvalidInput("is required for pushed orders (the same external_id counts once)", field=field)
