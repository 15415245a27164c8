"""Reviewing past and live sessions: the filtered, sorted list with key figures,
and the exports. Reads the results persisted at each session's end (live
sessions: their running totals), never a scan of the orders, except for the
orders export, which is the orders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from . import tables as t
from .audience import AUDIENCE_FIELDS
from .auth import Actor
from .compare import KEY_FIGURES, key_figures
from .errors import InvalidInput
from .figures import Figures
from .final import LIVE, FinalState, final_states, platform_totals
from .sessions import (
    _SESSION_COLUMNS,
    SessionFigures,
    SessionInfo,
    Store,
    _info,
    _products_of,
    session_figures,
)
from .spreadsheet import BOM, csv_line, yuan, yuan_text
from .validation import SESSION_STATUSES

SORTS = ("date", "total", "orders", "avg_order")
#: The comparison CSV's audience rows (the average order is a key figure already).
AUDIENCE_CSV = (*AUDIENCE_FIELDS, "orders_per_viewer", "sales_per_viewer_fen", "gpm_fen")


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewFilters:
    """What an official narrows the list by; empty fields do not filter."""

    village: str = ""
    host: str = ""
    product: str = ""
    platform: str = ""
    status: str = ""
    start_from: datetime | None = None
    start_to: datetime | None = None

    def __post_init__(self) -> None:
        if self.status and self.status not in SESSION_STATUSES:
            raise InvalidInput(f"must be one of {', '.join(SESSION_STATUSES)}", field="status")


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewRow:
    info: SessionInfo
    figures: dict[str, Any]
    #: Sales per minute since the start, in fen (the row's sparkline).
    sparkline: list[int]
    #: Which figures these are: the live count or the platform's record (core.final).
    final: FinalState = LIVE


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def review_list(
    store: Store,
    *,
    actor: Actor,
    filters: ReviewFilters,
    sort: str = "date",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ReviewRow], int]:
    """Sessions the actor may read, filtered, sorted by date or a figure; one page and the count.

    The figures of ended sessions come from their persisted results (one
    joined query for all candidates); live sessions' from their totals.
    Only the page's rows load their per-minute figures for the sparkline.
    """
    if sort not in SORTS:
        raise InvalidInput(f"must be one of {', '.join(SORTS)}", field="sort")
    s, r, p = t.live_sessions, t.session_results, t.products
    conds: list[sa.ColumnElement[bool]] = []
    if filters.status:
        conds.append(s.c.status == filters.status)
    if filters.village:
        conds.append(s.c.village.like(_like(filters.village), escape="\\"))
    if filters.platform:
        conds.append(s.c.platform == filters.platform)
    if filters.product:
        like = _like(filters.product)
        conds.append(
            sa.exists().where(
                p.c.session_id == s.c.id,
                sa.or_(p.c.sku.like(like, escape="\\"), p.c.name.like(like, escape="\\")),
            )
        )
    when = sa.func.coalesce(s.c.started_at, s.c.scheduled_start, s.c.created_at)
    if filters.start_from is not None:
        conds.append(when >= filters.start_from)
    if filters.start_to is not None:
        conds.append(when < filters.start_to)
    if actor.role == "host":
        conds.append(s.c.owner_id == actor.user_id)
    query = (
        sa.select(*_SESSION_COLUMNS, when, r.c.amount_fen, r.c.orders, r.c["items"], r.c.duration_s)
        .select_from(s.outerjoin(r, r.c.session_id == s.c.id))
        .where(*conds)
    )
    with store.db.connect() as conn:
        candidates = conn.execute(query).all()
    width = len(_SESSION_COLUMNS)
    host = filters.host.casefold()
    rows: list[tuple[Any, ...]] = []
    for row in candidates:
        hosts = row[3] or []
        # The host list is JSON: matched here, the same way on every database.
        if host and not any(host in str(h).casefold() for h in hosts):
            continue
        rows.append(tuple(row))

    # Ended sessions on the platform's record are listed, sorted and paged by its figures.
    with store.db.connect() as conn:
        finals = final_states(conn, [row[0] for row in rows if row[5] == "ended"])
        on_platform = platform_totals(conn, [sid for sid, f in finals.items() if f.is_platform])

    def figures_of(row: tuple[Any, ...]) -> dict[str, Any]:
        amount, orders, items, duration = row[width + 1 : width + 5]
        if row[0] in finals and finals[row[0]].is_platform:
            amount, orders, items = on_platform.get(row[0], (0, 0, 0))
        return {"amount_fen": amount or 0, "orders": orders or 0, "items": items or 0, "duration_s": duration or 0}

    # Live sessions' figures move: read them now (a handful at a time).
    live_figures: dict[int, SessionFigures] = {}
    infos: dict[int, SessionInfo] = {}
    if any(row[5] == "live" for row in rows):
        with store.db.connect() as conn:
            live_ids = [row[0] for row in rows if row[5] == "live"]
            products = _products_of(conn, live_ids)
        for row in rows:
            if row[5] == "live":
                infos[row[0]] = _info(row[:width], products[row[0]])
                live_figures[row[0]] = session_figures(store, info=infos[row[0]])

    def base(row: tuple[Any, ...]) -> dict[str, Any]:
        sf = live_figures.get(row[0])
        if sf is not None:
            f = sf.figures
            return {"amount_fen": f.amount_fen, "orders": f.orders, "items": f.items, "duration_s": sf.duration_s}
        return figures_of(row)

    def sort_key(row: tuple[Any, ...]) -> Any:
        if sort == "date":
            return (row[width], row[0])
        f = base(row)
        if sort == "total":
            return (f["amount_fen"], row[0])
        if sort == "orders":
            return (f["orders"], row[0])
        return (f["amount_fen"] / f["orders"] if f["orders"] else 0, row[0])

    rows.sort(key=sort_key, reverse=descending)
    page = rows[offset : offset + limit]
    ids = [row[0] for row in page]
    with store.db.connect() as conn:
        products = _products_of(conn, ids)
        timelines = dict(
            conn.execute(sa.select(r.c.session_id, r.c.timeline).where(r.c.session_id.in_(ids))).all()
        ) if ids else {}
    out = []
    for row in page:
        info = infos.get(row[0]) or _info(row[:width], products[row[0]])
        sf = live_figures.get(row[0])
        if sf is None and row[0] in finals and finals[row[0]].is_platform:
            sf = session_figures(store, info=info)  # the platform's per-minute figures, for the sparkline
        if sf is None:
            f = base(row)
            figures = Figures(amount_fen=f["amount_fen"], orders=f["orders"], items=f["items"])
            timeline = timelines.get(row[0]) or []
            figures.by_minute = {m["minute"]: [m["amount_fen"], m["orders"]] for m in timeline if m["orders"]}
            sf = SessionFigures(info=info, figures=figures, duration_s=f["duration_s"],
                                peak_minute=figures.peak_minute())
        spark = [point["amount_fen"] for point in sf.figures.timeline()]
        out.append(ReviewRow(info=info, figures=key_figures(sf), sparkline=spark, final=finals.get(row[0], LIVE)))
    return out, len(rows)


# --- exports -----------------------------------------------------------------------

ORDER_COLUMNS = (
    "created_at", "id", "sku", "product", "quantity", "unit_price_yuan", "amount_yuan", "buyer_region",
    "channel", "external_id", "status", "refunded_at",
)


def orders_csv(store: Store, *, info: SessionInfo, headers: dict[str, str]) -> Iterator[str]:
    """Every order of the session, oldest first, as CSV lines (with a BOM), streamed in chunks.

    Times in the session's time zone; money in yuan with two decimals (exact,
    from integer fen). ``headers`` names the columns in the reader's language.
    """
    o = t.orders
    tz = ZoneInfo(info.timezone)
    names = {p.sku: p.name for p in info.products}
    yield BOM + csv_line([headers[c] for c in ORDER_COLUMNS])
    last: tuple[Any, Any] | None = None
    cols = [o.c.created_at, o.c.id, o.c.sku, o.c.quantity, o.c.unit_price_fen, o.c.amount_fen, o.c.buyer_region,
            o.c.channel, o.c.external_id, o.c.status, o.c.refunded_at]
    while True:
        query = sa.select(*cols).where(o.c.session_id == info.id)
        if last is not None:
            query = query.where(sa.tuple_(o.c.created_at, o.c.id) > sa.tuple_(*last))
        with store.db.connect() as conn:
            chunk = conn.execute(query.order_by(o.c.created_at, o.c.id).limit(5000)).all()
        if not chunk:
            return
        lines = []
        for created, oid, sku, qty, price, amount, region, channel, ext, status, refunded in chunk:
            lines.append(csv_line([
                created.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), str(oid), sku, names.get(sku, sku), qty,
                yuan_text(price), yuan_text(amount), region, channel, ext, status,
                refunded.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if refunded else "",
            ]))
        yield "".join(lines)
        last = (chunk[-1][0], chunk[-1][1])


def comparison_csv(comparison: dict[str, Any], *, labels: dict[str, str]) -> str:
    """A comparison's key figures as CSV (with a BOM): one row per figure, a column per session
    and, after the first, its difference and percentage against the first."""
    sessions = comparison["sessions"]
    header = [labels["figure"]]
    for i, row in enumerate(sessions):
        title = f"#{row['session']['id']} {row['session']['title']}"
        header.append(title)
        if i:
            header += [f"{title} {labels['difference']}", f"{title} {labels['percent']}"]
    lines = [BOM + csv_line(header)]
    for key in KEY_FIGURES:
        line: list[Any] = [labels[key]]
        for i, row in enumerate(sessions):
            value = row["figures"][key]
            # Amounts as numbers (Decimal yuan): a negative difference written as text would be
            # quoted by the formula guard and reach the spreadsheet as text, not as a number.
            line.append(yuan(value) if key.endswith("_fen") and value is not None else value)
            if i:
                diff = row["difference"][key]
                line.append(yuan(diff["abs"]) if key.endswith("_fen") and diff["abs"] is not None else diff["abs"])
                line.append(diff["pct"])
        lines.append(csv_line(line))
    # Audience and conversion figures (issue 15 item 3): counts, orders per viewer as a ratio (0.0217), money in yuan.
    for key in AUDIENCE_CSV:
        line = [labels.get(key, key)]
        for i, row in enumerate(sessions):
            value = row["audience_figures"][key] if key in row["audience_figures"] else row["audience"][key]
            line.append(yuan(value) if key.endswith("_fen") and value is not None else value)
            if i:
                diff = row["audience_difference"][key]
                line.append(yuan(diff["abs"]) if key.endswith("_fen") and diff["abs"] is not None else diff["abs"])
                line.append(diff["pct"])
        lines.append(csv_line(line))
    # Which figures each column holds: the live count or the platform's record (core.final).
    source_line: list[Any] = [labels.get("final", "final")]
    for i, row in enumerate(sessions):
        source = row["final"]["source"]
        source_line += [labels.get(f"final_{source}", source)] + (["", ""] if i else [])
    lines.append(csv_line(source_line))
    return "".join(lines)
