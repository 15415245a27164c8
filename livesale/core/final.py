"""Which figures of a session stand: the live count or the platform's record.

A session's **final figures** are the live count (orders recorded through the
console, the API or a signed push) until an official or an admin confirms
the platform's record (its imported order lines) as final. A session that
has no live orders at all but has platform lines is on the platform's record
automatically: there is nothing else to stand. Every confirmation, a host's
proposal (which decides nothing) and every revert is a row of
``final_decisions``; the newest confirmation or revert decides.

The platform's figures are computed here from the paid platform lines, in
the shape of the live ones (``Figures``): by product from the line's sku, by
region from province + city as one label, per minute since the session's
start by the time the line was paid. A line paid before the start counts in
minute 0 (exports are selected by a window around the stream, so a few
minutes early is normal; the timeline has no negative minutes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from livesale.models import utcnow

from . import tables as t
from .auth import Actor
from .db import write_transaction
from .errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from .figures import Figures
from .validation import text

if TYPE_CHECKING:  # core.sessions imports this module
    from .sessions import Store

SOURCES = ("live", "platform")
#: The reason given for a session on the platform's record because it has no live orders.
AUTOMATIC = "automatic"
MAX_REASON = 500


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True, slots=True)
class FinalState:
    """Which figures stand, and who decided when and why (``by``/``at`` None: nobody did)."""

    source: str = "live"
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None
    #: The newest host proposal made since the last decision, or None.
    proposal: dict[str, Any] | None = None
    #: How many confirmations and reverts there have been (results' version rises with each).
    changes: int = 0

    @property
    def is_platform(self) -> bool:
        return self.source == "platform"

    def view(self) -> dict[str, Any]:
        """The JSON shape (``"final"`` in results, reconciliation and comparisons)."""
        return {"source": self.source, "by": self.by, "at": _iso(self.at), "reason": self.reason,
                "proposal": self.proposal}


LIVE = FinalState()


def region_label(province: str, city: str) -> str:
    """Province and city as one region label, like the live orders' ``buyer_region`` ("浙江杭州"):
    a city that repeats its province (上海市 / 上海市) is said once."""
    province, city = (province or "").strip(), (city or "").strip()
    if not city:
        return province
    if not province or city.startswith(province) or province.startswith(city):
        return city if len(city) >= len(province) else province
    return province + city


# --- the state --------------------------------------------------------------------------------------


def _decisions(conn: sa.Connection, session_ids: list[int]) -> dict[int, list[sa.Row[Any]]]:
    d, u = t.final_decisions, t.users
    out: dict[int, list[sa.Row[Any]]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return out
    rows = conn.execute(
        sa.select(d.c.session_id, d.c.action, d.c.source, d.c.reason, d.c.created_at, u.c.name)
        .select_from(d.outerjoin(u, u.c.id == d.c.user_id))
        .where(d.c.session_id.in_(session_ids))
        .order_by(d.c.session_id, d.c.id)
    )
    for row in rows:
        out[row.session_id].append(row)
    return out


def _has_live_orders(conn: sa.Connection, session_ids: list[int]) -> set[int]:
    o = t.orders
    if not session_ids:
        return set()
    return set(conn.execute(sa.select(o.c.session_id).where(o.c.session_id.in_(session_ids)).distinct()).scalars())


def _has_platform_lines(conn: sa.Connection, session_ids: list[int]) -> set[int]:
    p = t.platform_lines
    if not session_ids:
        return set()
    return set(conn.execute(sa.select(p.c.session_id).where(p.c.session_id.in_(session_ids)).distinct()).scalars())


def final_states(conn: sa.Connection, session_ids: Iterable[int]) -> dict[int, FinalState]:
    """The final state of each session (three queries whatever the number of sessions)."""
    ids = list(dict.fromkeys(session_ids))
    decisions = _decisions(conn, ids)
    with_orders = _has_live_orders(conn, ids)
    with_lines = _has_platform_lines(conn, ids)
    out: dict[int, FinalState] = {}
    for sid in ids:
        decided: sa.Row[Any] | None = None
        proposal: dict[str, Any] | None = None
        changes = 0
        for row in decisions[sid]:
            if row.action == "propose":
                proposal = {"source": row.source, "by": row.name, "at": _iso(row.created_at), "reason": row.reason}
            else:
                decided, proposal, changes = row, None, changes + 1
        if decided is not None and decided.action == "confirm":
            out[sid] = FinalState(decided.source, decided.name, decided.created_at, decided.reason, proposal, changes)
        elif sid not in with_orders and sid in with_lines:
            out[sid] = FinalState("platform", None, None, AUTOMATIC, proposal, changes)
        else:
            out[sid] = FinalState(proposal=proposal, changes=changes)
    return out


def final_state(conn: sa.Connection, *, session_id: int) -> FinalState:
    return final_states(conn, [session_id])[session_id]


def decision_history(conn: sa.Connection, *, session_id: int) -> list[dict[str, Any]]:
    """Every confirmation, proposal and revert of a session, oldest first."""
    return [
        {"action": row.action, "source": row.source, "by": row.name, "at": _iso(row.created_at), "reason": row.reason}
        for row in _decisions(conn, [session_id])[session_id]
    ]


# --- deciding ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    action: str
    state: FinalState

    @property
    def proposed(self) -> bool:
        return self.action == "propose"


def parse_decision(body: Any) -> tuple[str | None, str]:
    """``{"source": "platform" | "live" | null, "reason": "…"}`` → (source, reason). A reason is required
    to confirm or propose (it is what the record says why); a revert may go without."""
    if not isinstance(body, dict):
        raise InvalidInput("send an object: {\"source\", \"reason\"}", field="body")
    unknown = sorted(set(body) - {"source", "reason"})
    if unknown:
        raise InvalidInput("unknown field", field=unknown[0])
    if "source" not in body:
        raise InvalidInput("required: platform, live, or null to revert", field="source")
    source = body["source"]
    if source is not None and source not in SOURCES:
        raise InvalidInput("must be platform, live, or null to revert", field="source")
    return source, text(body.get("reason"), "reason", max_length=MAX_REASON, required=source is not None)


def decide(conn: sa.Connection, *, actor: Actor, owner_id: int | None, status: str, session_id: int,
           source: str | None, reason: str) -> Decision:
    """Record a decision on a session's final figures, in ``conn``'s (write) transaction.

    Officials and admins confirm (``source``) or revert (``source`` None); the session's host may only
    propose a source, which changes nothing. Only an ended session has final figures; the platform's
    record can only be confirmed once it has lines.
    """
    if actor.role in ("official", "admin"):
        action = "confirm" if source is not None else "revert"
    elif actor.role == "host" and actor.can_manage(owner_id):
        if source is None:
            raise Forbidden("a host may propose figures, not revert a decision")
        action = "propose"
    else:
        raise Forbidden("this session belongs to another host")
    if status != "ended":
        raise Conflict("final figures are decided once the session has ended", code="session_not_ended")
    if source == "platform" and action == "confirm" and session_id not in _has_platform_lines(conn, [session_id]):
        raise Conflict("the platform's record of this session is empty: import its export first",
                       code="no_platform_lines", field="source")
    conn.execute(sa.insert(t.final_decisions).values(
        session_id=session_id, action=action, source=source or "live", reason=reason,
        user_id=actor.user_id, created_at=utcnow(),
    ))
    return Decision(action=action, state=final_state(conn, session_id=session_id))


def require_session(conn: sa.Connection, session_id: int) -> sa.Row[Any]:
    """(owner_id, status, started_at, ended_at) of a session, or NotFound."""
    s = t.live_sessions
    row = conn.execute(
        sa.select(s.c.owner_id, s.c.status, s.c.started_at, s.c.ended_at, s.c.scheduled_start, s.c.created_at)
        .where(s.c.id == session_id)
    ).first()
    if row is None:
        raise NotFound(f"no session {session_id}")
    return row


# --- the platform's figures -------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class PlatformFigures:
    """The figures of a session's paid platform lines, in the live figures' shape."""

    figures: Figures = dataclasses.field(default_factory=Figures)
    refunded_orders: int = 0
    refunded_fen: int = 0
    #: platform -> [orders (lines), amount_fen]
    by_platform: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    #: minute -> {sku: [quantity, amount_fen]} (for the peak minute's products)
    minute_products: dict[int, dict[str, list[int]]] = dataclasses.field(default_factory=dict)

    def peak_products(self) -> dict[str, list[int]]:
        peak = self.figures.peak_minute()
        return {} if peak is None else self.minute_products.get(peak, {})


def platform_figures(conn: sa.Connection, *, session_id: int, start: datetime | None) -> PlatformFigures:
    """Sum a session's platform lines (grouped by SQL per product, region, platform and paid second)."""
    p = t.platform_lines
    out = PlatformFigures()
    rows = conn.execute(
        sa.select(p.c.status, p.c.sku, p.c.province, p.c.city, p.c.platform, p.c.paid_at,
                  sa.func.count(), sa.func.sum(p.c.quantity), sa.func.sum(p.c.amount_fen))
        .where(p.c.session_id == session_id)
        .group_by(p.c.status, p.c.sku, p.c.province, p.c.city, p.c.platform, p.c.paid_at)
    )
    for status, sku, province, city, platform, paid_at, count, quantity, amount in rows:
        count, quantity, amount = int(count), int(quantity), int(amount)
        if status != "paid":
            out.refunded_orders += count
            out.refunded_fen += amount
            continue
        minute = max(0, int((paid_at - start).total_seconds() // 60)) if start is not None else 0
        f = out.figures
        f.amount_fen += amount
        f.orders += count
        f.items += quantity
        product = f.by_product.setdefault(sku, [0, 0])
        product[0] += quantity
        product[1] += amount
        region = f.by_region.setdefault(region_label(province, city), [0, 0])
        region[0] += count
        region[1] += amount
        per_minute = f.by_minute.setdefault(minute, [0, 0])
        per_minute[0] += amount
        per_minute[1] += count
        plat = out.by_platform.setdefault(platform, [0, 0])
        plat[0] += count
        plat[1] += amount
        sold = out.minute_products.setdefault(minute, {}).setdefault(sku, [0, 0])
        sold[0] += quantity
        sold[1] += amount
    out.figures.by_channel = {k: list(v) for k, v in out.by_platform.items()}  # its channels are the platforms
    return out


def platform_totals(conn: sa.Connection, session_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """(amount_fen, orders, items) of the paid platform lines of each session (for lists)."""
    p = t.platform_lines
    if not session_ids:
        return {}
    rows = conn.execute(
        sa.select(p.c.session_id, sa.func.sum(p.c.amount_fen), sa.func.count(), sa.func.sum(p.c.quantity))
        .where(p.c.session_id.in_(session_ids), p.c.status == "paid")
        .group_by(p.c.session_id)
    )
    return {sid: (int(amount), int(count), int(items)) for sid, amount, count, items in rows}


def decide_final(store: Store, *, actor: Actor, session_id: int, source: str | None, reason: str) -> Decision:
    """Confirm, propose or revert a session's final figures (the session looked up first: 404, then 403).

    A confirmation or revert changes what an ended session's screens, widget and totals show:
    they are told at once (the ticker pushes the figures that now stand).
    """
    with write_transaction(store.db) as conn:
        row = require_session(conn, session_id)
        if not actor.can_read(row.owner_id):
            raise Forbidden("this session belongs to another host")
        decision = decide(conn, actor=actor, owner_id=row.owner_id, status=row.status,
                          session_id=session_id, source=source, reason=reason)
    if not decision.proposed:
        try:
            store.totals.mark_changed(session_id=session_id)
        except Unavailable:
            pass  # they take the figures on their next join
    return decision
