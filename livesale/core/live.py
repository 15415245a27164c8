"""What viewers of a session are sent: the payloads of the live push (no Flask, no Socket.IO)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import tables as t
from .auth import Actor
from .errors import Forbidden, InvalidInput, NotFound
from .sessions import SessionInfo, Store, load_session, session_totals
from .totals import FeedEntry
from .validation import MAX_ID

#: The Socket.IO contract, in one place: namespace, client events, server events.
NAMESPACE = "/live"
JOIN = "join"
TOTALS = "totals"
ORDERS = "orders"
ERROR = "error"


def room_of(session_id: int) -> str:
    return f"s:{session_id}"


def resolve_join(store: Store, *, actor: Actor | None, data: Any) -> SessionInfo:
    """The session a ``join`` asks for, if the asker may watch it.

    ``{"session": id}`` needs a person who may read the session;
    ``{"widget": key}`` is public and read-only.
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
        return info
    if "widget" in data:
        key = data["widget"]
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise InvalidInput("must be a widget key", field="widget")
        with store.db.connect() as conn:
            session_id = conn.execute(
                sa.select(t.live_sessions.c.id).where(t.live_sessions.c.widget_key == key)
            ).scalar()
            if session_id is None:
                raise NotFound("no widget with this key")
            return load_session(conn, session_id=session_id)
    raise InvalidInput('send {"session": <id>} or {"widget": "<key>"}', field="join")


def totals_payload(store: Store, *, info: SessionInfo) -> dict[str, Any]:
    """The ``totals`` event: the API's totals plus what a live screen needs to draw."""
    payload = session_totals(store, info=info, timeline=True)
    payload["started_at"] = info.started_at.isoformat().replace("+00:00", "Z") if info.started_at else None
    payload["planned_duration_min"] = info.planned_duration_min
    return payload


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
