"""Review figures of a session and the comparison of several, for officials.

Everything here reads the results persisted when a session ended (or the
live totals of a live session): never a scan of the orders, so a report or
a comparison costs the same for a session of a hundred orders or a million.
Money stays integer fen; ratios are percentages rounded to one decimal.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from . import tables as t
from .audience import AUDIENCE_FIELDS, FIGURE_FIELDS, audience_figures, audiences_of, divide_half_even
from .auth import Actor
from .errors import InvalidInput, NotFound
from .sessions import SessionFigures, SessionInfo, Store, get_session, load_session, session_figures, session_view
from .validation import MAX_ID

MIN_COMPARE = 2
MAX_COMPARE = 6
_IDS_RE = re.compile(rf"[1-9][0-9]{{0,9}}(?:,[1-9][0-9]{{0,9}}){{{MIN_COMPARE - 1},{MAX_COMPARE - 1}}}\Z")

#: The key figures, in the order a comparison table shows them.
KEY_FIGURES = (
    "amount_fen", "orders", "items", "avg_order_fen", "duration_s", "sales_per_hour_fen", "goal_pct",
    "peak_minute", "peak_minute_fen",
)




def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part * 100 / whole, 1)


def key_figures(sf: SessionFigures) -> dict[str, Any]:
    """Totals, average order, sales per hour, goal attainment and the peak minute."""
    f = sf.figures
    peak = sf.peak_minute
    return {
        "amount_fen": f.amount_fen,
        "orders": f.orders,
        "items": f.items,
        "avg_order_fen": divide_half_even(f.amount_fen, f.orders) if f.orders else 0,
        "duration_s": sf.duration_s,
        # Under a minute on air says nothing about an hour.
        "sales_per_hour_fen": divide_half_even(f.amount_fen * 3600, sf.duration_s) if sf.duration_s >= 60 else None,
        "goal_pct": _pct(f.amount_fen, sf.info.goal_fen),
        "peak_minute": peak,
        "peak_minute_fen": f.by_minute[peak][0] if peak is not None else 0,
    }


def cumulative(sf: SessionFigures) -> list[int]:
    """Sales so far at the end of each minute since the start (index = minute), in fen."""
    out: list[int] = []
    running = 0
    for point in sf.figures.timeline():
        running += point["amount_fen"]
        out.append(running)
    return out


def _difference(value: Any, first: Any) -> dict[str, Any]:
    if not isinstance(value, int) or not isinstance(first, int) or isinstance(value, bool):
        return {"abs": None, "pct": None}
    return {"abs": value - first, "pct": _pct(value - first, first)}


#: What a comparison says about each session (its view minus products and the widget's secret key).
HEAD_FIELDS = (
    "id", "title", "village", "hosts", "platform", "status", "timezone", "goal_fen", "started_at", "ended_at",
)


def session_head(info: SessionInfo) -> dict[str, Any]:
    """What a review says about a session: its view minus products and the widget's key."""
    view = session_view(info)
    return {k: view[k] for k in HEAD_FIELDS}


def parse_ids(raw: str | None) -> list[int]:
    """``ids=3,5,9``: 2 to 6 session ids, in the order given (the first is the reference).

    An id too large to exist is no such session (404, as in paths), not a format error.
    """
    if raw is None or not _IDS_RE.match(raw):
        raise InvalidInput(f"list {MIN_COMPARE} to {MAX_COMPARE} session ids, comma-separated", field="ids")
    ids = [int(part) for part in raw.split(",")]
    for sid in ids:
        if sid > MAX_ID:
            raise NotFound(f"no session {sid}")
    return ids


def compare_sessions(store: Store, *, actor: Actor, session_ids: list[int]) -> dict[str, Any]:
    """Key figures side by side with differences against the first session, the
    cumulative-sales curves aligned by minutes since each start, and products and
    regions across the sessions. Every session must be readable by ``actor``."""
    if not MIN_COMPARE <= len(session_ids) <= MAX_COMPARE:
        raise InvalidInput(f"compare {MIN_COMPARE} to {MAX_COMPARE} sessions", field="ids")
    loaded: list[SessionFigures] = []
    for sid in session_ids:
        # get_session refuses a session the actor may not read.
        loaded.append(session_figures(store, info=get_session(store, actor=actor, session_id=sid)))

    figures = [key_figures(sf) for sf in loaded]
    first = figures[0]
    # Audience figures on the same sales as the key figures (the figures that stand).
    with store.db.connect() as conn:
        audiences = audiences_of(conn, [sf.info.id for sf in loaded])
    audience = [
        {**audiences[sf.info.id], **audience_figures(amount_fen=sf.figures.amount_fen, orders=sf.figures.orders,
                                                     audience=audiences[sf.info.id])}
        for sf in loaded
    ]
    sessions = [
        {
            "session": session_head(sf.info),
            "figures": fig,
            "difference": None if i == 0 else {k: _difference(fig[k], first[k]) for k in KEY_FIGURES},
            # Which figures these are: the live count, or the platform's record once confirmed (core.final).
            "final": sf.final.view(),
            "audience": {k: aud[k] for k in AUDIENCE_FIELDS},
            "audience_figures": {k: aud[k] for k in FIGURE_FIELDS},
            "audience_difference": None if i == 0 else {k: _difference(aud[k], audience[0][k])
                                                        for k in (*AUDIENCE_FIELDS, *FIGURE_FIELDS)},
        }
        for i, (sf, fig, aud) in enumerate(zip(loaded, figures, audience, strict=True))
    ]

    products: dict[str, dict[str, Any]] = {}
    for i, sf in enumerate(loaded):
        names = {p.sku: p.name for p in sf.info.products}
        for sku in [*names, *sf.figures.by_product]:
            entry = products.setdefault(
                sku, {"sku": sku, "name": names.get(sku, sku), "sessions": [None] * len(loaded)}
            )
            quantity, amount = sf.figures.by_product.get(sku, (0, 0))
            entry["sessions"][i] = {"quantity": quantity, "amount_fen": amount}
    regions: dict[str, dict[str, Any]] = {}
    for i, sf in enumerate(loaded):
        for region, (count, amount) in sf.figures.by_region.items():
            entry = regions.setdefault(region, {"region": region, "sessions": [None] * len(loaded)})
            entry["sessions"][i] = {"orders": count, "amount_fen": amount}
    channels: dict[str, dict[str, Any]] = {}
    for i, sf in enumerate(loaded):
        for channel, (count, amount) in sf.figures.by_channel.items():
            entry = channels.setdefault(channel, {"channel": channel, "sessions": [None] * len(loaded)})
            entry["sessions"][i] = {"orders": count, "amount_fen": amount}

    def total_of(entry: dict[str, Any]) -> int:
        return sum(s["amount_fen"] for s in entry["sessions"] if s)

    return {
        "sessions": sessions,
        "cumulative": [{"session_id": sf.info.id, "amount_fen": cumulative(sf)} for sf in loaded],
        "pace": [pace for sf in loaded if (pace := live_pace(store, actor=actor, live=sf)) is not None],
        "products": sorted(products.values(), key=lambda e: (-total_of(e), e["sku"])),
        "regions": sorted(regions.values(), key=lambda e: (-total_of(e), e["region"])),
        "channels": sorted(channels.values(), key=lambda e: (-total_of(e), e["channel"])),
    }


def earlier_session(store: Store, *, actor: Actor, info: SessionInfo, best: bool) -> SessionInfo | None:
    """An ended session of the same village that started before ``info`` (among those ``actor`` may
    read): the one with the highest total if ``best``, else the latest."""
    if info.started_at is None:
        return None
    s, r = t.live_sessions, t.session_results
    query = (
        sa.select(s.c.id)
        .where(s.c.village == info.village, s.c.status == "ended", s.c.id != info.id,
               s.c.started_at < info.started_at)
        .limit(1)
    )
    if best:
        query = query.join(r, r.c.session_id == s.c.id).order_by(r.c.amount_fen.desc(), s.c.id)
    else:
        query = query.order_by(s.c.started_at.desc(), s.c.id.desc())
    if actor.role == "host":
        query = query.where(s.c.owner_id == actor.user_id)
    with store.db.connect() as conn:
        found = conn.execute(query).scalar()
        return None if found is None else load_session(conn, session_id=found)


def live_pace(store: Store, *, actor: Actor, live: SessionFigures) -> dict[str, Any] | None:
    """A live session against the best earlier session of its village at the same minute:
    "at minute 45: ¥18,300 vs ¥12,900". None when not live or nothing to compare with."""
    if live.info.status != "live":
        return None
    best = earlier_session(store, actor=actor, info=live.info, best=True)
    if best is None:
        return None
    minute = live.duration_s // 60
    now_curve, best_curve = cumulative(live), cumulative(session_figures(store, info=best))

    def at(curve: list[int]) -> int:
        # Past its last sale a curve stays flat; before the first there is nothing yet.
        return curve[min(minute, len(curve) - 1)] if curve else 0

    ours, theirs = at(now_curve), at(best_curve)
    return {
        "session_id": live.info.id,
        "minute": minute,
        "amount_fen": ours,
        "best_session_id": best.id,
        "best_title": best.title,
        "best_amount_fen": theirs,
        "difference": _difference(ours, theirs),
    }
