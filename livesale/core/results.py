"""Figures computed from SQL: for rebuilding Redis and for a session's results."""

from __future__ import annotations

import sqlalchemy as sa

from . import tables as t
from .db import Snapshot, read_snapshot, read_transaction
from .figures import Figures


def aggregate_session(conn: sa.Connection, *, session_id: int) -> Figures:
    """The figures of a session's paid orders, summed by SQL.

    Three grouped scans (product, region, minute); the totals are the sums
    of the per-product rows.
    """
    o = t.orders
    paid = sa.and_(o.c.session_id == session_id, o.c.status == "paid")
    figures = Figures()
    for sku, quantity, amount, count in conn.execute(
        sa.select(o.c.sku, sa.func.sum(o.c.quantity), sa.func.sum(o.c.amount_fen), sa.func.count())
        .where(paid)
        .group_by(o.c.sku)
    ):
        figures.by_product[sku] = [int(quantity), int(amount)]
        figures.amount_fen += int(amount)
        figures.items += int(quantity)
        figures.orders += int(count)
    for region, count, amount in conn.execute(
        sa.select(o.c.buyer_region, sa.func.count(), sa.func.sum(o.c.amount_fen))
        .where(paid)
        .group_by(o.c.buyer_region)
    ):
        figures.by_region[region] = [int(count), int(amount)]
    for minute, amount, count in conn.execute(
        sa.select(o.c.minute, sa.func.sum(o.c.amount_fen), sa.func.count()).where(paid).group_by(o.c.minute)
    ):
        figures.by_minute[int(minute)] = [int(amount), int(count)]
    return figures


def refunded_figures(conn: sa.Connection, *, session_id: int) -> tuple[int, int]:
    """(refunded orders, refunded amount in fen)."""
    o = t.orders
    count, amount = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(o.c.amount_fen), 0)).where(
            o.c.session_id == session_id, o.c.status == "refunded"
        )
    ).one()
    return int(count), int(amount)


def load_live_figures(engine: sa.Engine, *, session_id: int) -> tuple[Snapshot, Figures]:
    """A consistent (snapshot, figures) pair for rebuilding Redis totals."""
    with read_transaction(engine) as conn:
        # The snapshot must be read first: it fixes what the sums below see.
        snapshot = read_snapshot(conn, session_id)
        return snapshot, aggregate_session(conn, session_id=session_id)
