"""What viewers of a session are sent: the payloads of the live push (no Flask, no Socket.IO)."""

from __future__ import annotations

import dataclasses
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from . import tables as t
from .auth import Actor
from .errors import Forbidden, InvalidInput
from .sessions import SessionInfo, Store, load_session, session_totals
from .totals import FeedEntry
from .validation import MAX_ID
from .widget import public_feed, public_totals, room_of_widget, widget_session

#: The Socket.IO contract, in one place: namespace, client events, server events.
NAMESPACE = "/live"
JOIN = "join"
TOTALS = "totals"
ORDERS = "orders"
ERROR = "error"
#: Sent to a widget's viewers when its key is rotated or it is turned off; they are then let go.
REVOKED = "revoked"


def room_of(session_id: int) -> str:
    return f"s:{session_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Join:
    """Where a ``join`` leads: the session, its room, and what its viewers get."""

    info: SessionInfo
    room: str
    #: A widget's viewers get the public payloads (``core.widget``), people the full ones.
    public: bool


def resolve_join(store: Store, *, actor: Actor | None, data: Any) -> Join:
    """The session a ``join`` asks for, if the asker may watch it.

    ``{"session": id}`` needs a person who may read the session;
    ``{"widget": key}`` is public and read-only (an enabled widget's current key).
    """
    if not isinstance(data, dict) or len(data) != 1:
        raise InvalidInput('send {"session": <id>} or {"widget": "<key>"}', field="join")
    if "session" in data:
        session_id = data["session"]
        if type(session_id) is not int or not 0 < session_id <= MAX_ID:
            raise InvalidInput("must be a session id", field="session")
        if actor is None:
            raise Forbidden("log in or connect with an API token to watch a session")
        with store.db.connect() as conn:
            info = load_session(conn, session_id=session_id)
        if not actor.can_read(info.owner_id):
            raise Forbidden("this session belongs to another host")
        return Join(info=info, room=room_of(info.id), public=False)
    if "widget" in data:
        key = data["widget"]
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise InvalidInput("must be a widget key", field="widget")
        info = widget_session(store, key=key)
        return Join(info=info, room=room_of_widget(info), public=True)
    raise InvalidInput('send {"session": <id>} or {"widget": "<key>"}', field="join")


def snapshot(store: Store, join: Join) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``totals`` and ``orders`` a viewer gets on joining."""
    entries = store.totals.read_feed(session_id=join.info.id) if join.info.status != "scheduled" else []
    if join.public:
        return public_totals(store, info=join.info), public_feed(join.info, entries)
    return totals_payload(store, info=join.info), feed_payload(join.info, entries)


def totals_payload(store: Store, *, info: SessionInfo) -> dict[str, Any]:
    """The ``totals`` event: the API's totals plus what a live screen needs to draw."""
    payload = session_totals(store, info=info, timeline=True)
    payload["started_at"] = info.started_at.isoformat().replace("+00:00", "Z") if info.started_at else None
    payload["planned_duration_min"] = info.planned_duration_min
    return payload


def latest_orders(store: Store, *, info: SessionInfo, count: int = 20) -> list[FeedEntry]:
    """The session's newest orders as feed entries, oldest first: what a live screen lists.

    While live they come from the Redis feed; once ended from SQL, because the
    feed is discarded with the live totals at the end (an ended session's screen
    must still show its last orders), or when Redis lost the feed. Refunded
    orders are not among them: the figures do not count them either.
    """
    if info.status == "scheduled":
        return []
    if info.status == "live":
        entries = store.totals.read_feed(session_id=info.id, count=count)
        if entries:
            return entries
        # An empty feed with orders sold: Redis lost it (restarted, flushed); SQL still has them.
    o = t.orders
    query = (
        sa.select(o.c.sku, o.c.quantity, o.c.buyer_region, o.c.created_at)
        .where(o.c.session_id == info.id, o.c.status == "paid")
        .order_by(o.c.created_at.desc(), o.c.id.desc())
        .limit(count)
    )
    with store.db.connect() as conn:
        rows = conn.execute(query).all()
    return [
        FeedEntry(sku=r.sku, quantity=r.quantity, region=r.buyer_region,
                  # SQLite hands back naive datetimes: they are UTC.
                  at_ms=int((r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC))
                            .timestamp() * 1000))
        for r in reversed(rows)
    ]


def feed_payload(info: SessionInfo, entries: list[FeedEntry]) -> list[dict[str, Any]]:
    """The ``orders`` event: product, quantity, region and time of new orders; no buyer, no id."""
    names = {p.sku: (p.name, p.unit) for p in info.products}
    return [
        {
            "sku": e.sku,
            "name": names.get(e.sku, (e.sku, ""))[0],
            "unit": names.get(e.sku, ("", ""))[1],
            "quantity": e.quantity,
            "region": e.region,
            "at_ms": e.at_ms,
        }
        for e in entries
    ]
