"""The 战报 poster's figures: what a session's report says, in the few lines a poster has room for.

Officials post a session's results to WeChat groups as an image. Everything
here is read through the functions the report reads (``session_figures``,
which applies the final figures once the platform's record is confirmed;
``key_figures``; ``cumulative``), so the poster can never say a different
number than the report; the web layer only lays it out (``web.poster``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from livesale.models import utcnow

from .audience import audience_figures, load_audience
from .auth import Actor
from .compare import cumulative, earlier_session, key_figures
from .errors import Conflict
from .final import FinalState
from .sessions import SessionFigures, SessionInfo, Store, session_figures

#: How many products and buyer regions a poster lists.
TOP = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Ranked:
    """A product (``key`` its sku, ``label`` its name) or a buyer region (``key`` = ``label``, "" when not
    given), with its quantity (products) or orders (regions) and amount, as the report's tables list them."""

    key: str
    label: str
    count: int
    amount_fen: int


@dataclasses.dataclass(frozen=True, slots=True)
class Previous:
    """The village's previous session and how this one did against it (this minus that).

    A live session is compared with what the previous one had sold by the same minute
    (``at_minute``): half a stream against a whole one would say "▼" of every stream in progress.
    """

    info: SessionInfo
    #: The previous session's key figures (its whole broadcast).
    figures: dict[str, Any]
    #: The minute both are compared at (a live session's minute so far), or None: the whole sessions.
    at_minute: int | None
    #: What the previous session had sold by then (its totals when ``at_minute`` is None).
    amount_fen: int
    orders: int
    amount_diff_fen: int
    orders_diff: int


@dataclasses.dataclass(frozen=True, slots=True)
class PosterData:
    info: SessionInfo
    #: The report's key figures (``compare.key_figures``): amount, orders, items, average order, duration,
    #: sales per hour, goal attainment, peak minute and its sales.
    figures: dict[str, Any]
    #: Which figures these are: the live count or the platform's record (core.final).
    final: FinalState
    products: list[Ranked]
    regions: list[Ranked]
    #: Sales so far at the end of each minute since the start (index = minute), in fen.
    cumulative: list[int]
    previous: Previous | None
    #: What the host typed in from the platform (``None`` where not given) and the conversion figures.
    audience: dict[str, int | None]
    audience_figures: dict[str, Any]
    #: When these figures were read: a live session's poster says "as of" this time.
    as_of: datetime

    @property
    def so_far(self) -> bool:
        """A live session: the figures are "so far", not final."""
        return self.info.status == "live"

    @property
    def has_audience(self) -> bool:
        return any(value is not None for value in self.audience.values())


def ranked_products(sf: SessionFigures) -> list[Ranked]:
    """Products by amount, largest first, named as the session's catalogue names them (the report's order)."""
    names = {p.sku: p.name for p in sf.info.products}
    return sorted(
        (Ranked(sku, names.get(sku, sku), quantity, amount) for sku, (quantity, amount) in sf.figures.by_product.items()),
        key=lambda r: -r.amount_fen,
    )


def ranked_regions(sf: SessionFigures) -> list[Ranked]:
    """Buyer regions by amount, largest first ("" for orders that named none; the report's order)."""
    return sorted(
        (Ranked(region, region, orders, amount) for region, (orders, amount) in sf.figures.by_region.items()),
        key=lambda r: -r.amount_fen,
    )


def _against(earlier: SessionFigures, ours: dict[str, Any], *, at_minute: int | None) -> Previous:
    theirs = key_figures(earlier)
    amount, orders = theirs["amount_fen"], theirs["orders"]
    if at_minute is not None:
        # Past its last sale a session's curve stays flat: its sales by then are all of them.
        timeline = earlier.figures.timeline()[: at_minute + 1]
        amount = sum(point["amount_fen"] for point in timeline)
        orders = sum(point["orders"] for point in timeline)
    return Previous(info=earlier.info, figures=theirs, at_minute=at_minute, amount_fen=amount, orders=orders,
                    amount_diff_fen=ours["amount_fen"] - amount, orders_diff=ours["orders"] - orders)


def poster_data(store: Store, *, actor: Actor, info: SessionInfo) -> PosterData:
    """A started session's poster figures (``info`` already read with ``actor``'s rights).

    A scheduled session has nothing to show yet: ``Conflict``.
    """
    if info.status == "scheduled" or info.started_at is None:
        raise Conflict("a poster is made once the session has started", code="session_not_started")
    sf = session_figures(store, info=info)
    figures = key_figures(sf)
    previous = None
    earlier = earlier_session(store, actor=actor, info=info, best=False)
    if earlier is not None:
        previous = _against(session_figures(store, info=earlier), figures,
                            at_minute=sf.duration_s // 60 if info.status == "live" else None)
    with store.db.connect() as conn:
        audience = load_audience(conn, session_id=info.id)
    return PosterData(
        info=info,
        figures=figures,
        final=sf.final,
        products=ranked_products(sf)[:TOP],
        regions=ranked_regions(sf)[:TOP],
        cumulative=cumulative(sf),
        previous=previous,
        audience=audience,
        audience_figures=audience_figures(amount_fen=figures["amount_fen"], orders=figures["orders"],
                                          audience=audience),
        as_of=utcnow(),
    )
