"""What group-chat robots are told, written down before anything is sent (the outbox).

An event (``outbox_events``) is one thing that happened to a sale session —
``started``, ``goal``, ``milestone:<fen>``, ``ended`` — with the figures its
message tells. Writing it also writes one ``robot_deliveries`` row per robot
that hears about the session then (the session's own robots and its village's
defaults, not deleted). The sender (``core.robot_sender``) sends those rows
later, with retries; nothing here talks to the network.

**Started and ended** are written in the same transaction as the change that
causes them (``sessions.start_session`` / ``end_session``): the session is
live (or ended) if and only if its event exists, whatever process dies when.

**Goal and milestones** are not, on purpose. An order learns whether it crossed
a threshold only from the running totals, which move in Redis *after* the
order's commit (``core.orders``); knowing it inside the order's transaction
would cost an SQL sum, or a read of the session's events, on every order —
the hot path that must stay one short transaction. So:

1. after the commit, :func:`note_amount` compares the totals before and after
   the order's change with the session's goal and milestones, in memory. Only
   when a threshold was crossed (a few times a session) does it look up
   whether the session has robots (cached for a few seconds) and write the
   event in a small transaction of its own. The order's answer never waits
   for a robot: this is one local write, and sending is the sender's job;
2. the event's key is unique per session (``(session_id, key)``), so writing it
   twice — two processes, a retry, the sweep below — adds nothing;
3. a process can die between the order's commit and that write. The sender
   therefore **sweeps** every ``SWEEP_S`` seconds the live sessions that have
   robots, and records from SQL figures any crossing that has no event yet;
   ``end_session`` does the same in its transaction, just before ``ended``, so
   the last crossings are never told after the end.

Several milestones passed at once (a big batch, or found by the sweep) make one
message, for the highest; a milestone is not told again once a higher one has
been (a refund that dips below a milestone and a later order that passes it
again tell nothing new). A milestone equal to the goal is told as the goal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from livesale.models import utcnow

from . import tables as t
from .db import insert_ignoring_conflicts, write_transaction

if TYPE_CHECKING:
    from .sessions import SessionInfo

log = logging.getLogger(__name__)

STARTED = "started"
GOAL = "goal"
ENDED = "ended"
MILESTONE_PREFIX = "milestone:"
#: How often the sender records crossings that no order recorded (see the module's docstring).
SWEEP_S = 15.0
#: How long this process trusts what it learned about a session having robots.
ROBOTS_CACHE_S = 5.0


def milestone_key(fen: int) -> str:
    return f"{MILESTONE_PREFIX}{fen}"


def kind_of(key: str) -> str:
    """``started``, ``goal``, ``milestone`` or ``ended``."""
    return "milestone" if key.startswith(MILESTONE_PREFIX) else key


def report_path(session_id: int) -> str:
    return f"/sessions/{session_id}"


def poster_path(session_id: int) -> str:
    return f"/sessions/{session_id}/poster"


# --- waking this process's sender ---------------------------------------------------


class Wakeup:
    """Tells this process's sender that events were written, so it need not wait for its next poll."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()


#: Call ``wakeup.notify()`` after committing a transaction that wrote events.
wakeup = Wakeup()


# --- which robots hear about a session ----------------------------------------------------

_r = t.robots


def _robots_of(session_id: Any, village: Any) -> sa.ColumnElement[bool]:
    """The robots told about a session: its own, and its village's defaults; not deleted."""
    return sa.and_(
        _r.c.deleted_at.is_(None),
        sa.or_(_r.c.session_id == session_id, sa.and_(_r.c.session_id.is_(None), _r.c.village == village)),
    )


class RobotsCache:
    """Whether a session has robots, as this process last learned it (for ``ROBOTS_CACHE_S``).

    Asked only when an order crossed a threshold, so a session without robots
    costs no SQL per order; a robot added elsewhere is noticed within seconds
    (and by the sweep), one added by this process at once (:meth:`forget`).
    """

    MAX_ENTRIES = 10_000

    def __init__(self, ttl_s: float = ROBOTS_CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[int, tuple[float, bool]] = {}

    def has_robots(self, db: sa.Engine, *, session_id: int, village: str) -> bool:
        now = time.monotonic()
        hit = self._entries.get(session_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        with db.connect() as conn:
            found = conn.execute(sa.select(_r.c.id).where(_robots_of(session_id, village)).limit(1)).first() is not None
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[session_id] = (now + self.ttl_s, found)
        return found

    def forget(self, session_id: int | None = None) -> None:
        """Drop what is known of ``session_id`` (of every session when None: a village's robot changed)."""
        if session_id is None:
            self._entries.clear()
        else:
            self._entries.pop(session_id, None)


robots_cache = RobotsCache()


def forget_robots_cache(session_id: int | None = None) -> None:
    """Call after adding or deleting a robot (``None`` for a village default): orders notice it at once."""
    robots_cache.forget(session_id)


# --- writing events ------------------------------------------------------------------


def _session_payload(info: SessionInfo) -> dict[str, Any]:
    return {
        "title": info.title,
        "village": info.village,
        "hosts": list(info.hosts),
        "platform": info.platform,
        "goal_fen": info.goal_fen,
        "currency": info.currency,
        "report_path": report_path(info.id),
        "poster_path": poster_path(info.id),
    }


def record_event(conn: sa.Connection, *, session_id: int, village: str, key: str,
                 payload: dict[str, Any], now: datetime | None = None) -> int | None:
    """Write the event ``key`` and a delivery per robot of the session; the event's id, or None
    if the session already has that event (nothing is written then). In the caller's transaction."""
    now = now or utcnow()
    event_id = conn.execute(
        insert_ignoring_conflicts(conn, t.outbox_events)
        .values(session_id=session_id, key=key, payload=payload, created_at=now)
        .returning(t.outbox_events.c.id)
    ).scalar()
    if event_id is None:
        return None
    robots = sa.select(
        sa.literal(event_id), _r.c.id, sa.literal(session_id), sa.literal("pending"), sa.literal(0),
        sa.literal(now, t.robot_deliveries.c.next_attempt_at.type), sa.literal(""), sa.literal(""),
        sa.literal(now, t.robot_deliveries.c.created_at.type),
    ).where(_robots_of(session_id, village))
    d = t.robot_deliveries
    conn.execute(sa.insert(d).from_select(
        [d.c.event_id, d.c.robot_id, d.c.session_id, d.c.status, d.c.attempts, d.c.next_attempt_at,
         d.c.response_body, d.c.error, d.c.created_at],
        robots,
    ))
    return event_id


def record_started(conn: sa.Connection, info: SessionInfo) -> int | None:
    """The session went live: in ``start_session``'s transaction (``info`` as it is now live)."""
    payload = {**_session_payload(info), "started_at": _iso(info.started_at)}
    return record_event(conn, session_id=info.id, village=info.village, key=STARTED, payload=payload)


def record_ended(conn: sa.Connection, info: SessionInfo, *, amount_fen: int, orders: int, items: int,
                 duration_s: int) -> int | None:
    """The session ended with these figures: in ``end_session``'s transaction, after its results.

    Crossings that no order recorded (its process died first) are recorded first, so that they
    are told before the end, and never after it.
    """
    record_crossings(conn, info, amount_fen=amount_fen, orders=orders, items=items)
    payload = {
        **_session_payload(info),
        "amount_fen": amount_fen, "orders": orders, "items": items, "duration_s": duration_s,
        "started_at": _iso(info.started_at), "ended_at": _iso(info.ended_at),
    }
    return record_event(conn, session_id=info.id, village=info.village, key=ENDED, payload=payload)


def crossed(before_fen: int, after_fen: int, *, goal_fen: int, milestone_fen: int) -> list[str]:
    """The events an amount moving from ``before_fen`` to ``after_fen`` causes: ``goal`` if it reached
    the goal, and the highest milestone it reached (not the goal's amount). Pure: no I/O."""
    if after_fen <= before_fen:
        return []
    keys = []
    if milestone_fen > 0:
        highest = after_fen // milestone_fen * milestone_fen
        if highest == goal_fen:
            highest -= milestone_fen  # told as the goal; a lower one passed at once still counts
        if highest > before_fen and highest > 0:
            keys.append(milestone_key(highest))
    if goal_fen > 0 and before_fen < goal_fen <= after_fen:
        keys.append(GOAL)  # after the milestone: the messages read in the order the amount passed them
    return keys


def _standing_keys(conn: sa.Connection, session_id: int) -> tuple[bool, int]:
    """Whether the session's goal was told, and the highest milestone told (0: none)."""
    e = t.outbox_events
    keys = conn.execute(
        sa.select(e.c.key).where(e.c.session_id == session_id,
                                 sa.or_(e.c.key == GOAL, e.c.key.startswith(MILESTONE_PREFIX)))
    ).scalars().all()
    highest = max((int(k.removeprefix(MILESTONE_PREFIX)) for k in keys if k.startswith(MILESTONE_PREFIX)),
                  default=0)
    return GOAL in keys, highest


def record_crossings(conn: sa.Connection, info: SessionInfo, *, amount_fen: int, orders: int, items: int,
                     keys: Iterable[str] | None = None) -> list[int]:
    """Write the goal and milestone events ``keys`` (by default: those ``amount_fen`` has reached); the ids
    written. Each once (the key is unique); a milestone at or under one already told is skipped."""
    if keys is None:
        keys = crossed(-1, amount_fen, goal_fen=info.goal_fen, milestone_fen=info.widget_milestone_fen)
    keys = list(keys)
    if not keys:
        return []
    _, highest_told = _standing_keys(conn, info.id)
    written = []
    payload = {**_session_payload(info), "amount_fen": amount_fen, "orders": orders, "items": items,
               "milestone_fen": info.widget_milestone_fen}
    for key in keys:
        if key.startswith(MILESTONE_PREFIX) and int(key.removeprefix(MILESTONE_PREFIX)) <= highest_told:
            continue
        event_id = record_event(conn, session_id=info.id, village=info.village, key=key, payload=payload)
        if event_id is not None:
            written.append(event_id)
    return written


def note_amount(db: sa.Engine, info: SessionInfo, *, before_fen: int, after_fen: int, orders: int,
                items: int) -> None:
    """After an order's commit: record the goal or milestone it crossed, if any (see the module's docstring).

    Never raises: the order is committed and answered whatever happens here;
    a crossing not written now is written by the sweep.
    """
    keys = crossed(before_fen, after_fen, goal_fen=info.goal_fen, milestone_fen=info.widget_milestone_fen)
    if not keys:
        return
    try:
        if not robots_cache.has_robots(db, session_id=info.id, village=info.village):
            return
        with write_transaction(db) as conn:
            written = record_crossings(conn, info, amount_fen=after_fen, orders=orders, items=items, keys=keys)
    except Exception:  # noqa: BLE001 - the sweep writes it later; the order must not fail
        log.warning("could not record %s of session %s now; the sweep will", keys, info.id, exc_info=True)
        return
    if written:
        wakeup.notify()


def sweep_crossings(db: sa.Engine) -> int:
    """Record, from SQL figures, the crossings of live sessions with robots that have no event; how many.

    Reads first and writes only when something is missing: on SQLite a write
    transaction takes the database's one write lock, which orders need.
    """
    from .sessions import load_session  # sessions imports this module

    s = t.live_sessions
    has_robots = sa.exists().where(_robots_of(s.c.id, s.c.village))
    with db.connect() as conn:
        candidates = conn.execute(
            sa.select(s.c.id).where(s.c.status == "live", has_robots,
                                    sa.or_(s.c.goal_fen > 0, s.c.widget_milestone_fen > 0))
        ).scalars().all()
    written = 0
    for session_id in candidates:
        with db.connect() as conn:
            info = load_session(conn, session_id=session_id)
            amount, orders, items = _paid_figures(conn, session_id)
            if not _missing(conn, info, amount):
                continue
        with write_transaction(db) as conn:
            written += len(record_crossings(conn, info, amount_fen=amount, orders=orders, items=items))
    return written


def _paid_figures(conn: sa.Connection, session_id: int) -> tuple[int, int, int]:
    o = t.orders
    amount, orders, items = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(o.c.amount_fen), 0), sa.func.count(),
                  sa.func.coalesce(sa.func.sum(o.c.quantity), 0))
        .where(o.c.session_id == session_id, o.c.status == "paid")
    ).one()
    return int(amount), int(orders), int(items)


def _missing(conn: sa.Connection, info: SessionInfo, amount_fen: int) -> bool:
    """Whether the amount has reached a goal or milestone that was never told."""
    keys = crossed(-1, amount_fen, goal_fen=info.goal_fen, milestone_fen=info.widget_milestone_fen)
    if not keys:
        return False
    goal_told, highest_told = _standing_keys(conn, info.id)
    return any((k == GOAL and not goal_told)
               or (k.startswith(MILESTONE_PREFIX) and int(k.removeprefix(MILESTONE_PREFIX)) > highest_told)
               for k in keys)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")
