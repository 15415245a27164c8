"""Reconciliation: the live count beside the platform's record of a session.

The live count is the session's orders (console, API, signed pushes); the
platform's record is its imported order lines (``platform_lines``). Both are
summed the same way: paid only (refunded orders and refunded lines are left
out of every figure and counted apart), a platform line counting as one
order. Differences are platform − live.

Time slots are 10 minutes long and aligned on the session's start (when it
went live; the planned start or its creation for one that has not). A live
order falls in the slot of its ``minute`` (whole minutes from the start to
its ``created_at``, fixed when it was recorded); a platform line in the slot
of its ``paid_at``. A line paid *before* the start falls in a slot with a
negative offset (−10 is the ten minutes before the start): exports are
selected by a window that opens before the stream, and those early lines are
shown where they happened rather than folded into the first slot.

Matching (``only_live`` / ``only_platform``): a live order matches a platform
line when its ``external_id`` is the line's full id, ``<platform>:<line id>``
(``douyin:6921…``) — the id the importer gives a line. A bare platform id is
not matched: the same digits can be an order on two platforms, and a WeChat
Channels line id is made of three columns. Live orders without an
``external_id`` cannot be matched and are counted, not listed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from . import tables as t
from .final import final_state
from .sessions import SessionInfo, Store

SLOT_MINUTES = 10
#: Gaps between slots with sales are filled with empty slots up to this many slots (2 days); beyond, only
#: slots with sales are listed (a stray line a month off must not make a list of 4,000 empty slots).
MAX_FILLED_SLOTS = 288
#: ``only_live`` / ``only_platform`` list at most this many ids each (their full counts are given).
MAX_LISTED = 1000

FIGURES = ("orders", "items", "amount_fen")


def _zero() -> dict[str, int]:
    return {"orders": 0, "items": 0, "amount_fen": 0}


def _add(into: dict[str, int], count: int, quantity: int, amount: int) -> None:
    into["orders"] += count
    into["items"] += quantity
    into["amount_fen"] += amount


def _difference(live: dict[str, int], platform: dict[str, int]) -> dict[str, int]:
    return {k: platform[k] - live[k] for k in FIGURES}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def slot_origin(info: SessionInfo) -> datetime | None:
    """Where slot 0 starts: the actual start, else the planned one (None if neither is known)."""
    return info.started_at or info.scheduled_start


def reconcile(store: Store, *, info: SessionInfo) -> dict[str, Any]:
    """The live count and the platform's record of ``info`` side by side (see the module's doc)."""
    o, p = t.orders, t.platform_lines
    origin = slot_origin(info)
    live, platform = {**_zero(), "refunded_orders": 0, "refunded_fen": 0}, {**_zero(), "refunded_orders": 0,
                                                                            "refunded_fen": 0}
    by_channel: dict[str, dict[str, int]] = {}
    by_platform: dict[str, dict[str, int]] = {}
    products: dict[str, dict[str, Any]] = {
        pr.sku: {"sku": pr.sku, "name": pr.name, "live": _zero(), "platform": _zero()} for pr in info.products
    }
    slots: dict[int, dict[str, Any]] = {}

    def product(sku: str) -> dict[str, Any]:
        return products.setdefault(sku, {"sku": sku, "name": sku, "live": _zero(), "platform": _zero()})

    def slot(index: int) -> dict[str, Any]:
        return slots.setdefault(index, {"live": _zero(), "platform": _zero()})

    with store.db.connect() as conn:
        live_rows = conn.execute(
            sa.select(o.c.status, o.c.sku, o.c.channel, o.c.minute,
                      sa.func.count(), sa.func.sum(o.c.quantity), sa.func.sum(o.c.amount_fen))
            .where(o.c.session_id == info.id)
            .group_by(o.c.status, o.c.sku, o.c.channel, o.c.minute)
        ).all()
        line_rows = conn.execute(
            sa.select(p.c.status, p.c.sku, p.c.platform, p.c.paid_at,
                      sa.func.count(), sa.func.sum(p.c.quantity), sa.func.sum(p.c.amount_fen))
            .where(p.c.session_id == info.id)
            .group_by(p.c.status, p.c.sku, p.c.platform, p.c.paid_at)
        ).all()
        external_ids = set(conn.execute(
            sa.select(o.c.external_id).where(o.c.session_id == info.id, o.c.external_id.is_not(None))
        ).scalars())
        without_id = conn.execute(
            sa.select(sa.func.count()).where(o.c.session_id == info.id, o.c.external_id.is_(None))
        ).scalar_one()
        line_ids = set(conn.execute(sa.select(p.c.line_id).where(p.c.session_id == info.id)).scalars())
        final = final_state(conn, session_id=info.id)

    for status, sku, channel, minute, count, quantity, amount in live_rows:
        count, quantity, amount = int(count), int(quantity), int(amount)
        if status != "paid":
            live["refunded_orders"] += count
            live["refunded_fen"] += amount
            continue
        _add(live, count, quantity, amount)
        _add(by_channel.setdefault(channel or "", _zero()), count, quantity, amount)
        _add(product(sku)["live"], count, quantity, amount)
        _add(slot(int(minute) // SLOT_MINUTES)["live"], count, quantity, amount)
    for status, sku, plat, paid_at, count, quantity, amount in line_rows:
        count, quantity, amount = int(count), int(quantity), int(amount)
        if status != "paid":
            platform["refunded_orders"] += count
            platform["refunded_fen"] += amount
            continue
        _add(platform, count, quantity, amount)
        _add(by_platform.setdefault(plat, _zero()), count, quantity, amount)
        _add(product(sku)["platform"], count, quantity, amount)
        index = int((paid_at - origin).total_seconds() // (SLOT_MINUTES * 60)) if origin is not None else 0
        _add(slot(index)["platform"], count, quantity, amount)

    by_slot = []
    if slots:
        first, last = min(min(slots), 0), max(slots)
        indexes = range(first, last + 1) if last - first < MAX_FILLED_SLOTS else sorted(slots)
        for index in indexes:
            entry = slots.get(index) or {"live": _zero(), "platform": _zero()}
            start = origin + timedelta(minutes=index * SLOT_MINUTES) if origin is not None else None
            by_slot.append({
                "start": _iso(start) if start is not None else None, "offset_min": index * SLOT_MINUTES,
                "live": entry["live"], "platform": entry["platform"],
                "difference": _difference(entry["live"], entry["platform"]),
            })

    only_live = sorted(external_ids - line_ids)
    only_platform = sorted(line_ids - external_ids)
    by_product = sorted(products.values(), key=lambda e: (-max(e["live"]["amount_fen"], e["platform"]["amount_fen"]),
                                                          e["sku"]))
    for entry in by_product:
        entry["difference"] = _difference(entry["live"], entry["platform"])
    return {
        "session_id": info.id,
        "slot_minutes": SLOT_MINUTES,
        "slot_origin": _iso(origin) if origin is not None else None,
        "live": {**live, "by_channel": dict(sorted(by_channel.items()))},
        "platform": {**platform, "by_platform": dict(sorted(by_platform.items()))},
        "difference": _difference(live, platform),
        "by_product": by_product,
        "by_slot": by_slot,
        "only_live": only_live[:MAX_LISTED],
        "only_platform": only_platform[:MAX_LISTED],
        "only_live_total": len(only_live),
        "only_platform_total": len(only_platform),
        "matched": len(external_ids & line_ids),
        "live_without_id": int(without_id),
        "final": final.view(),
    }
