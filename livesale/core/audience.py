"""A sale session's audience figures (typed in from the platform) and what they make of its sales.

The platforms show a host 场观 (viewers: how many watched), 峰值在线 (peak
concurrent viewers), new followers, likes and comments; with the session's
sales they give the conversion figures officials report: orders per viewer
(看播转化率), sales per viewer (UV价值), GPM (sales per thousand viewers) and
the average order (客单价). A figure that cannot be known (no viewers given,
or zero of them; no orders) is ``None``: never a division error, never a
made-up 0 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa

from . import tables as t

#: The figures a host may give, in the order pages show them.
AUDIENCE_FIELDS = ("viewers", "peak_viewers", "new_followers", "likes", "comments")


def divide_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even, exactly (integers only, no floats)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def audience_figures(*, amount_fen: int, orders: int, audience: Mapping[str, int | None]) -> dict[str, object]:
    """The conversion figures of a session that sold ``amount_fen`` in ``orders`` orders.

    ``orders_per_viewer`` is a ratio rounded half-even to 4 decimals (a float
    in JSON); the money figures are integer fen rounded half-even.
    """
    viewers = audience.get("viewers")
    per_viewer = viewers is not None and viewers > 0
    return {
        "orders_per_viewer": (
            float((Decimal(orders) / Decimal(viewers)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN))
            if per_viewer else None
        ),
        "sales_per_viewer_fen": divide_half_even(amount_fen, viewers) if per_viewer else None,
        "gpm_fen": divide_half_even(amount_fen * 1000, viewers) if per_viewer else None,
        "average_order_fen": divide_half_even(amount_fen, orders) if orders > 0 else None,
    }


def load_audience(conn: sa.Connection, *, session_id: int) -> dict[str, int | None]:
    """The audience figures given for a session: every field, ``None`` where not given."""
    row = conn.execute(
        sa.select(*(t.session_audience.c[name] for name in AUDIENCE_FIELDS))
        .where(t.session_audience.c.session_id == session_id)
    ).first()
    return {name: (None if row is None else row._mapping[name]) for name in AUDIENCE_FIELDS}
