"""Shared helpers for the "nothing lost, nothing counted twice" tests.

Three independent views of a session's figures are compared:

* what the test *sent* (``payload_for`` makes every logical order's payload a
  pure function of its name, so each distinct name is counted once),
* what SQL holds (``sql_figures``: a plain query over ``orders``, not the
  core's ``aggregate_session``), and
* what Redis holds (``store.totals.read`` or the totals API).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from livesale.core import tables as t
from livesale.core.auth import Actor
from livesale.core.figures import Figures
from livesale.core.validation import OrderInput

#: The products of ``tests.conftest.APRICOT_SESSION`` and their prices.
PRICES = {"APRICOT-5KG": 6980, "DRIED-1KG": 5900}
REGIONS = ("浙江杭州", "上海", "北京", "新疆喀什", "")
#: Channels, a platform's code in another case among them (counted as that platform).
CHANNELS = ("douyin", "kuaishou", "Douyin", "村委会微信群", "")


def payload_for(name: str) -> dict[str, Any]:
    """The payload of the logical order ``name``: the same every time it is sent."""
    h = zlib.crc32(name.encode())
    sku = "APRICOT-5KG" if h % 3 else "DRIED-1KG"
    body: dict[str, Any] = {"sku": sku, "quantity": 1 + (h >> 3) % 7, "buyer_region": REGIONS[(h >> 7) % len(REGIONS)]}
    if (h >> 17) % 6:  # and some say no channel at all
        body["channel"] = CHANNELS[(h >> 20) % len(CHANNELS)]
    if (h >> 11) % 4 == 0:  # some orders carry their own (discounted) price
        body["unit_price_fen"] = PRICES[sku] - 100 * ((h >> 13) % 10)
    return body


def amount_of(body: dict[str, Any]) -> int:
    return body["quantity"] * body.get("unit_price_fen", PRICES[body["sku"]])


def order_input(body: dict[str, Any], *, external_id: str | None = None, field: str = "") -> OrderInput:
    return OrderInput(
        sku=body["sku"],
        quantity=body["quantity"],
        unit_price_fen=body.get("unit_price_fen"),
        buyer_region=body.get("buyer_region", ""),
        channel=body.get("channel", ""),
        external_id=external_id,
        field=field,
    )


def expected_figures(bodies: Iterable[dict[str, Any]]) -> Figures:
    """Figures of the given payloads, each counted once (minute 0)."""
    figures = Figures()
    for body in bodies:
        figures.add_order(sku=body["sku"], quantity=body["quantity"], amount_fen=amount_of(body),
                          region=body.get("buyer_region", ""), minute=0, channel=body.get("channel", ""))
    return figures


def headline(figures: Figures) -> dict[str, Any]:
    """What the test can predict from what it sent (the minute depends on the clock)."""
    figures = figures.without_empty()
    return {
        "amount_fen": figures.amount_fen,
        "orders": figures.orders,
        "items": figures.items,
        "by_product": figures.by_product,
        "by_region": figures.by_region,
    }


def sql_figures(engine: sa.Engine, session_id: int) -> Figures:
    """The session's paid orders summed from the ``orders`` table, independently of the core."""
    o = t.orders
    paid = sa.and_(o.c.session_id == session_id, o.c.status == "paid")
    figures = Figures()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.c.sku, o.c.quantity, o.c.amount_fen, o.c.buyer_region, o.c.minute, o.c.channel).where(paid)
        ).all()
        amount, count, items = conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(o.c.amount_fen), 0),
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(o.c.quantity), 0),
            ).where(paid)
        ).one()
    for sku, quantity, amount_fen, region, minute, channel in rows:
        figures.add_order(sku=sku, quantity=quantity, amount_fen=amount_fen, region=region, minute=minute,
                          channel=channel)
    # The database's own SUM agrees with the row-by-row sum.
    assert (figures.amount_fen, figures.orders, figures.items) == (int(amount), int(count), int(items))
    return figures.without_empty()


def api_figures(totals: dict[str, Any]) -> dict[str, Any]:
    """``headline`` of a totals API response."""
    return {
        "amount_fen": totals["amount_fen"],
        "orders": totals["orders"],
        "items": totals["items"],
        "by_product": {k: [v["quantity"], v["amount_fen"]] for k, v in totals["by_product"].items()
                       if v["quantity"] or v["amount_fen"]},
        "by_region": {k: [v["orders"], v["amount_fen"]] for k, v in totals["by_region"].items()},
    }


def duplicate_keys(engine: sa.Engine, session_id: int) -> list[Any]:
    """Idempotency keys or external ids stored more than once (must be none)."""
    o = t.orders
    out = []
    with engine.connect() as conn:
        for column in (o.c.idempotency_key, o.c.external_id):
            out += conn.execute(
                sa.select(column, sa.func.count())
                .where(o.c.session_id == session_id, column.is_not(None))
                .group_by(column)
                .having(sa.func.count() > 1)
            ).all()
    return out


def host_actor(engine: sa.Engine, name: str = "host") -> Actor:
    with engine.connect() as conn:
        user_id = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == name)).scalar_one()
    return Actor(user_id=user_id, name=name, role="host")
