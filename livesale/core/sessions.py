"""Session lifecycle: create, start, end; session views, live totals and results."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from livesale.models import utcnow

from . import outbox
from . import tables as t
from .auth import Actor, require_writer
from .db import SessionLock, write_transaction
from .errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from .fastread import OneRow
from .figures import Figures
from .final import LIVE, FinalState, PlatformFigures, final_state, platform_figures
from .groupcommit import GroupCommit
from .results import aggregate_session, channel_figures, load_live_figures, minute_products, refunded_figures
from .totals import LiveTotals, TotalsEngine
from .validation import SESSION_STATUSES, ProductInput, SessionInput, SessionUpdate


class CatalogCache:
    """This process's copies of session descriptions and products.

    Pricing an order needs the session's products; reading them for every
    order would double the statements of the hot path. An entry is valid for
    one ``catalog_version`` of the session, which every change to the
    description or products bumps, so a cached copy is never used stale.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, SessionInfo]] = {}

    def get(self, conn: sa.Connection, lock: SessionLock, session_id: int) -> SessionInfo:
        """The session as of ``lock`` (taken in ``conn``'s transaction)."""
        hit = self._entries.get(session_id)
        if hit is not None and hit[0] == lock.catalog_version:
            info = hit[1]
        else:
            info = load_session(conn, session_id=session_id)
        if info.status != lock.status or info.started_at != lock.started_at:
            info = dataclasses.replace(info, status=lock.status, started_at=lock.started_at)
        if hit is None or hit[1] is not info:
            self._keep(session_id, lock.catalog_version, info)
        return info

    def read(self, db: sa.Engine, row: tuple[Any, ...]) -> SessionInfo:
        """The session of ``row`` (``_SESSION_COLUMNS`` then ``catalog_version``, read outside a transaction),
        with its products from this cache when they are of the row's ``catalog_version``."""
        *columns, version = row
        session_id = columns[0]
        hit = self._entries.get(session_id)
        if hit is not None and hit[0] == version:
            return SessionInfo(*columns, products=hit[1].products)  # type: ignore[call-arg]
        with db.connect() as conn:
            products = tuple(_products_of(conn, [session_id])[session_id])
            # Products read after the row: cached only if no edit committed in between.
            same = conn.execute(_CATALOG_VERSION, {"sid": session_id}).scalar() == version
        info = SessionInfo(*columns, products=products)  # type: ignore[call-arg]
        if same:
            self._keep(session_id, version, info)
        return info

    def _keep(self, session_id: int, version: int, info: SessionInfo) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[session_id] = (version, info)


@dataclasses.dataclass(frozen=True, slots=True)
class Store:
    """The backing services the core works on."""

    db: sa.Engine
    totals: TotalsEngine
    catalog: CatalogCache = dataclasses.field(default_factory=CatalogCache)
    group_commit: GroupCommit[Any] = dataclasses.field(default_factory=GroupCommit)


#: A stored product has exactly the fields of a validated one.
ProductInfo = ProductInput


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    title: str
    village: str
    hosts: list[str]
    platform: str
    status: str
    scheduled_start: datetime | None
    planned_duration_min: int
    started_at: datetime | None
    ended_at: datetime | None
    goal_fen: int
    currency: str
    timezone: str
    widget_key: str
    owner_id: int | None
    widget_enabled: bool
    widget_origins: str
    widget_milestone_fen: int
    products: tuple[ProductInfo, ...]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_ms(ms: int) -> str | None:
    if not ms:
        return None
    return _iso(datetime.fromtimestamp(ms / 1000, UTC))


def session_view(info: SessionInfo) -> dict[str, Any]:
    """The JSON shape of a session (the API contract)."""
    return {
        "id": info.id,
        "title": info.title,
        "village": info.village,
        "hosts": list(info.hosts),
        "platform": info.platform,
        "status": info.status,
        "goal_fen": info.goal_fen,
        "currency": info.currency,
        "timezone": info.timezone,
        "products": [dataclasses.asdict(p) for p in info.products],
        "widget_key": info.widget_key,
        "widget_enabled": info.widget_enabled,
        "widget_origins": info.widget_origins.split(),
        "widget_milestone_fen": info.widget_milestone_fen,
        "scheduled_start": _iso(info.scheduled_start),
        "planned_duration_min": info.planned_duration_min,
        "started_at": _iso(info.started_at),
        "ended_at": _iso(info.ended_at),
    }


_SESSION_COLUMNS = [
    t.live_sessions.c[name]
    for name in (
        "id", "title", "village", "hosts", "platform", "status", "scheduled_start", "planned_duration_min",
        "started_at", "ended_at", "goal_fen", "currency", "timezone", "widget_key", "owner_id",
        "widget_enabled", "widget_origins", "widget_milestone_fen",
    )
]


_p = t.products
_PRODUCTS_OF = (
    sa.select(_p.c.session_id, _p.c.sku, _p.c.name, _p.c.unit, _p.c.unit_price_fen, _p.c.stock)
    .where(_p.c.session_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_p.c.session_id, _p.c.position)
)
_SESSION_BY_ID = sa.select(*_SESSION_COLUMNS).where(t.live_sessions.c.id == sa.bindparam("sid"))
_CATALOG_VERSION = sa.select(t.live_sessions.c.catalog_version).where(t.live_sessions.c.id == sa.bindparam("sid"))
# Reads of one session per request (totals, widgets): one statement outside a transaction (core.fastread).
_READ_BY_ID = OneRow(_SESSION_BY_ID.add_columns(t.live_sessions.c.catalog_version))
_READ_BY_WIDGET_KEY = OneRow(
    sa.select(*_SESSION_COLUMNS, t.live_sessions.c.catalog_version).where(
        t.live_sessions.c.widget_key == sa.bindparam("key"), t.live_sessions.c.widget_enabled.is_(True)
    )
)


def _products_of(conn: sa.Connection, session_ids: list[int]) -> dict[int, list[ProductInfo]]:
    out: dict[int, list[ProductInfo]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return out
    for row in conn.execute(_PRODUCTS_OF, {"ids": session_ids}):
        out[row[0]].append(ProductInfo(*row[1:]))
    return out


def _info(row: sa.Row[Any], products: list[ProductInfo]) -> SessionInfo:
    return SessionInfo(*row, products=tuple(products))  # type: ignore[call-arg]


def load_session(conn: sa.Connection, *, session_id: int) -> SessionInfo:
    row = conn.execute(_SESSION_BY_ID, {"sid": session_id}).first()
    if row is None:
        raise NotFound(f"no session {session_id}")
    return _info(row, _products_of(conn, [session_id])[session_id])


def read_session(store: Store, *, session_id: int) -> SessionInfo:
    """``load_session`` for a request that only reads the session: one statement, its products
    from this process's catalogue when unchanged (``CatalogCache.read``)."""
    row = _READ_BY_ID.first(store.db, {"sid": session_id})
    if row is None:
        raise NotFound(f"no session {session_id}")
    return store.catalog.read(store.db, row)


def read_widget_session(store: Store, *, key: str) -> SessionInfo | None:
    """The session whose enabled widget has ``key``, as ``read_session`` reads it; None if there is none."""
    row = _READ_BY_WIDGET_KEY.first(store.db, {"key": key})
    return None if row is None else store.catalog.read(store.db, row)


def get_session(store: Store, *, actor: Actor, session_id: int) -> SessionInfo:
    """A session the actor may read."""
    info = read_session(store, session_id=session_id)
    if not actor.can_read(info.owner_id):
        raise Forbidden("this session belongs to another host")
    return info


def create_session(store: Store, *, actor: Actor, data: SessionInput) -> SessionInfo:
    require_writer(actor)
    with write_transaction(store.db) as conn:
        session_id = conn.execute(
            sa.insert(t.live_sessions)
            .values(
                title=data.title,
                village=data.village,
                hosts=data.hosts,
                platform=data.platform,
                status="scheduled",
                scheduled_start=data.scheduled_start,
                planned_duration_min=data.planned_duration_min,
                goal_fen=data.goal_fen,
                currency=data.currency,
                timezone=data.timezone,
                widget_key=secrets.token_urlsafe(24),
                owner_id=actor.user_id,
                write_seq=0,
                created_at=utcnow(),
            )
            .returning(t.live_sessions.c.id)
        ).scalar_one()
        _insert_products(conn, session_id, data.products)
        return load_session(conn, session_id=session_id)


def _insert_products(conn: sa.Connection, session_id: int, products: list[ProductInput]) -> None:
    conn.execute(
        sa.insert(t.products),
        [{"session_id": session_id, "position": i, **dataclasses.asdict(p)} for i, p in enumerate(products)],
    )


# An UPDATE takes the session's row lock exclusively: order writers pin the row FOR SHARE
# (core.db.begin_session_write) and wait for this transaction, then see the new catalog_version,
# so the CatalogCache never prices an order with the products as they were before an edit.
# On SQLite the write transaction (BEGIN IMMEDIATE) already excludes every other writer.
_LOCK_FOR_CHANGE = (
    sa.update(t.live_sessions)
    .where(t.live_sessions.c.id == sa.bindparam("sid"))
    .values(catalog_version=t.live_sessions.c.catalog_version + 1)
    .returning(t.live_sessions.c.id)
)


def _lock_for_change(conn: sa.Connection, actor: Actor, session_id: int) -> SessionInfo:
    """The session, locked against orders and other changes for this transaction, if ``actor`` may change it."""
    require_writer(actor)
    if conn.execute(_LOCK_FOR_CHANGE, {"sid": session_id}).first() is None:
        raise NotFound(f"no session {session_id}")
    info = load_session(conn, session_id=session_id)
    if not actor.can_manage(info.owner_id):
        raise Forbidden("this session belongs to another host")
    return info


class EditRefused(Conflict):
    """An edit the session's state does not allow (a live session's sold prices, its start); every problem
    is in ``problems`` so a form can show each next to its field. It reads as the first."""

    code = "session_live"

    def __init__(self, problems: list[Conflict]):
        super().__init__(problems[0].message, field=problems[0].field, code=problems[0].code)
        self.problems = problems


def _sold_skus(conn: sa.Connection, session_id: int) -> set[str]:
    """SKUs with at least one order, paid or refunded: their price is what those orders were priced at."""
    o = t.orders
    return set(conn.execute(sa.select(o.c.sku).where(o.c.session_id == session_id).distinct()).scalars())


def skus_with_orders(store: Store, *, session_id: int) -> set[str]:
    """The session's SKUs that have sold (their price can no longer change)."""
    with store.db.connect() as conn:
        return _sold_skus(conn, session_id)


#: Fields fixed once a session has started: when it was planned to start, and the zone its times are read in.
FIXED_ONCE_STARTED = ("scheduled_start", "timezone")


def _live_edit_problems(conn: sa.Connection, info: SessionInfo, data: SessionUpdate) -> list[Conflict]:
    """What a live session refuses of an edit: removing a product (orders and the screens refer to it),
    repricing a product that has sold, changing its planned start or time zone."""
    problems = []
    for name in FIXED_ONCE_STARTED:
        if name in data.fields and data.fields[name] != getattr(info, name):
            problems.append(Conflict("cannot change once the session has started", field=name, code="session_live"))
    if data.products is not None:
        new = {p.sku: i for i, p in enumerate(data.products)}
        missing = [p.sku for p in info.products if p.sku not in new]
        if missing:
            problems.append(Conflict(f"a live session keeps its products: {', '.join(missing)} cannot be removed",
                                     field="products", code="session_live"))
        sold = _sold_skus(conn, info.id)
        for old in info.products:
            i = new.get(old.sku)
            if i is not None and old.sku in sold and data.products[i].unit_price_fen != old.unit_price_fen:
                problems.append(Conflict(f"has sold at {old.unit_price_fen} fen: the price stays",
                                         field=f"products[{i}].unit_price_fen", code="price_locked"))
    return problems


def update_session(store: Store, *, actor: Actor, session_id: int, data: SessionUpdate) -> SessionInfo:
    """Change a session: anything while scheduled; while live its description, goal and products
    (new ones, stock, names, prices of unsold ones) but not what was sold or its start. Ended: nothing.

    Products are the whole new list, matched by SKU (a new SKU is a new product). The edit bumps
    the session's ``catalog_version`` under the session's write lock, like orders take it.
    """
    with write_transaction(store.db) as conn:
        info = _lock_for_change(conn, actor, session_id)
        if info.status == "ended":
            raise Conflict("the session has ended; it can no longer be changed", code="session_ended")
        if info.status == "live":
            problems = _live_edit_problems(conn, info, data)
            if problems:
                raise EditRefused(problems)
        if data.fields:
            conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == session_id).values(**data.fields))
        if data.products is not None:
            # Orders refer to products by SKU, nothing refers to product rows: the list is rewritten.
            conn.execute(sa.delete(t.products).where(t.products.c.session_id == session_id))
            _insert_products(conn, session_id, data.products)
        after = load_session(conn, session_id=session_id)
    if after.status == "live":
        try:
            store.totals.mark_changed(session_id=session_id)  # screens get the new goal and products
        except Unavailable:
            pass  # they pick them up with the next order
    return after


def delete_session(store: Store, *, actor: Actor, session_id: int) -> None:
    """Delete a scheduled session that has no orders, with its products. Anything else is refused:
    a session that has been on air is a record of what was sold."""
    with write_transaction(store.db) as conn:
        info = _lock_for_change(conn, actor, session_id)
        if info.status != "scheduled":
            raise Conflict("only a scheduled session can be deleted; this one has been on air",
                           code="session_started")
        if _sold_skus(conn, session_id):  # pragma: no cover - orders need a live session
            raise Conflict("the session has orders; it cannot be deleted", code="session_started")
        conn.execute(sa.delete(t.products).where(t.products.c.session_id == session_id))
        conn.execute(sa.delete(t.live_sessions).where(t.live_sessions.c.id == session_id))


def list_sessions(
    store: Store,
    *,
    actor: Actor,
    status: str | None = None,
    village: str | None = None,
    q: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SessionInfo], int]:
    """Sessions the actor may read, newest first, with the total count."""
    s = t.live_sessions
    conds: list[sa.ColumnElement[bool]] = []
    if status is not None:
        if status not in SESSION_STATUSES:
            raise InvalidInput(f"must be one of {', '.join(SESSION_STATUSES)}", field="status")
        conds.append(s.c.status == status)
    if village:
        conds.append(s.c.village == village)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(sa.or_(s.c.title.like(like, escape="\\"), s.c.village.like(like, escape="\\")))
    # A session's date is when it started, or when it was created if it has not.
    when = sa.func.coalesce(s.c.started_at, s.c.scheduled_start, s.c.created_at)
    if start_from is not None:
        conds.append(when >= start_from)
    if start_to is not None:
        conds.append(when < start_to)
    if actor.role == "host":
        conds.append(s.c.owner_id == actor.user_id)
    with store.db.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(s).where(*conds)).scalar_one()
        rows = conn.execute(
            sa.select(*_SESSION_COLUMNS).where(*conds).order_by(s.c.id.desc()).limit(limit).offset(offset)
        ).all()
        products = _products_of(conn, [r[0] for r in rows])
    return [_info(r, products[r[0]]) for r in rows], total


def get_manageable(store: Store, *, actor: Actor, session_id: int) -> SessionInfo:
    """A session the actor may change (its host or an admin): Forbidden before NotFound for a reader."""
    with store.db.connect() as conn:
        return manageable(conn, actor, session_id)


def manageable(conn: sa.Connection, actor: Actor, session_id: int) -> SessionInfo:
    """The session, if ``actor`` may change it (its host or an admin)."""
    require_writer(actor)
    info = load_session(conn, session_id=session_id)
    if not actor.can_manage(info.owner_id):
        raise Forbidden("this session belongs to another host")
    return info


def start_session(store: Store, *, actor: Actor, session_id: int) -> SessionInfo:
    """Open a scheduled session for orders. Starting a live session changes nothing."""
    with write_transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)
        if info.status == "ended":
            raise Conflict("the session has ended", code="session_ended")
        if info.status == "scheduled":
            conn.execute(
                sa.update(t.live_sessions)
                .where(t.live_sessions.c.id == session_id, t.live_sessions.c.status == "scheduled")
                .values(status="live", started_at=utcnow())
            )
            info = load_session(conn, session_id=session_id)
            outbox.record_started(conn, info)  # robots are told: in this transaction
    outbox.wakeup.notify()
    live_totals(store, session_id=session_id)  # have Redis ready before the first order
    return info


def end_session(store: Store, *, actor: Actor, session_id: int) -> SessionInfo:
    """Close a live session and persist its results, computed from SQL.

    The status change and the results are one transaction that order
    writers wait for (see ``core.db.begin_session_write``), so every order
    acknowledged before the end is in the results and none after it.
    Ending an ended session returns it unchanged.
    """
    try:
        previous = store.totals.read(session_id=session_id)
    except Unavailable:  # Redis down: the clock alone keeps the version rising
        previous = None
    with write_transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)
        if info.status == "ended":
            return info
        if info.status != "live":
            raise Conflict("the session has not started", code="session_not_live")
        now = utcnow()
        ended = conn.execute(
            sa.update(t.live_sessions)
            .where(t.live_sessions.c.id == session_id, t.live_sessions.c.status == "live")
            .values(status="ended", ended_at=now)
            .returning(t.live_sessions.c.started_at)
        ).first()
        if ended is None:  # pragma: no cover - only if another end won the race
            raise Conflict("the session is no longer live", code="session_not_live")
        figures = aggregate_session(conn, session_id=session_id)
        refunded_count, refunded_fen = refunded_figures(conn, session_id=session_id)
        peak = figures.peak_minute()
        version = max((previous.version + 1) if previous else 0, store.totals.clock_us())
        conn.execute(
            sa.insert(t.session_results).values(
                session_id=session_id,
                computed_at=now,
                version=version,
                amount_fen=figures.amount_fen,
                orders=figures.orders,
                items=figures.items,
                refunded_orders=refunded_count,
                refunded_fen=refunded_fen,
                by_product=figures.by_product,
                by_region=figures.by_region,
                by_channel=figures.by_channel,
                timeline=figures.timeline(),
                peak_minute=peak,
                peak_products=minute_products(conn, session_id=session_id, minute=peak) if peak is not None else {},
                duration_s=int((now - ended[0]).total_seconds()),
            )
        )
        info = load_session(conn, session_id=session_id)
        outbox.record_ended(conn, info, amount_fen=figures.amount_fen, orders=figures.orders, items=figures.items,
                            duration_s=int((now - ended[0]).total_seconds()))  # robots are told: in this transaction
    outbox.wakeup.notify()
    store.totals.discard(session_id=session_id)
    try:
        store.totals.mark_changed(session_id=session_id)  # viewers get the final figures
    except Unavailable:
        pass  # they see "stale" and take the results on their next join
    return info


# --- totals and results ------------------------------------------------------


def live_totals(store: Store, *, session_id: int) -> LiveTotals:
    """Running totals from Redis, rebuilt from SQL first if Redis lost them.

    They are also rebuilt on this process's first use of the session (see
    ``TotalsEngine.verified``): that is what repairs a change whose writer
    died between its SQL commit and its Redis call.
    """
    return rebuild_totals(store, session_id=session_id, force=False)


def rebuild_totals(store: Store, *, session_id: int, force: bool = True) -> LiveTotals:
    """Recompute a session's Redis totals from SQL."""
    return store.totals.rebuild(
        session_id=session_id, load=lambda: load_live_figures(store.db, session_id=session_id), force=force
    )


def totals_view(info: SessionInfo, figures: Figures, *, version: int, updated_at: str | None) -> dict[str, Any]:
    """The JSON shape of a session's totals (refunded orders excluded)."""
    by_product = {p.sku: {"quantity": 0, "amount_fen": 0} for p in info.products}
    for sku, (quantity, amount) in figures.by_product.items():
        by_product[sku] = {"quantity": quantity, "amount_fen": amount}
    return {
        "session_id": info.id,
        "status": info.status,
        "version": version,
        "amount_fen": figures.amount_fen,
        "orders": figures.orders,
        "items": figures.items,
        "goal_fen": info.goal_fen,
        "currency": info.currency,
        "by_product": by_product,
        "by_region": {
            region: {"orders": count, "amount_fen": amount}
            for region, (count, amount) in sorted(figures.by_region.items(), key=lambda kv: -kv[1][1])
        },
        "by_channel": channel_view(figures.by_channel),
        "updated_at": updated_at,
    }


def channel_view(by_channel: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Sales by channel as the API shows them, largest amount first: ``{channel: {"orders", "amount_fen"}}``."""
    return {
        channel: {"orders": count, "amount_fen": amount}
        for channel, (count, amount) in sorted(by_channel.items(), key=lambda kv: (-kv[1][1], kv[0]))
    }


def _results_row(conn: sa.Connection, session_id: int) -> sa.Row[Any] | None:
    return conn.execute(sa.select(t.session_results).where(t.session_results.c.session_id == session_id)).first()


def _figures_from_results(row: sa.Row[Any], conn: sa.Connection | None = None) -> Figures:
    """The figures persisted at the end. Results from before ``by_channel`` was kept (it is NULL)
    get it summed from the orders with ``conn``: an ended session's orders no longer change."""
    if row.by_channel is not None:
        by_channel = {k: list(v) for k, v in row.by_channel.items()}
    else:
        by_channel = channel_figures(conn, session_id=row.session_id) if conn is not None else {}
    return Figures(
        amount_fen=row.amount_fen,
        orders=row.orders,
        items=row.items,
        by_product={k: list(v) for k, v in row.by_product.items()},
        by_region={k: list(v) for k, v in row.by_region.items()},
        by_minute={m["minute"]: [m["amount_fen"], m["orders"]] for m in row.timeline if m["orders"]},
        by_channel=by_channel,
    )


def session_totals(store: Store, *, info: SessionInfo, timeline: bool = False) -> dict[str, Any]:
    """Current totals: live from Redis, ended from the stored results.

    With ``timeline`` the per-minute figures are added (for live screens).
    """
    if info.status == "scheduled":
        figures, view = Figures(), totals_view(info, Figures(), version=0, updated_at=None)
    elif info.status == "ended":
        with store.db.connect() as conn:
            row = _results_row(conn, info.id)
            if row is None:  # pragma: no cover - results are written with the status
                raise NotFound("results are missing")
            # The figures that stand (core.final): the widget and screens of an ended session show them too.
            figures, _, final, _ = _standing(conn, info, _figures_from_results(row, conn), row.peak_minute)
        view = totals_view(info, figures, version=row.version + final.changes, updated_at=_iso(row.computed_at))
    else:
        live = live_totals(store, session_id=info.id)
        figures = live.figures
        view = totals_view(info, figures, version=live.version, updated_at=iso_ms(live.updated_at_ms))
    if timeline:
        view["timeline"] = figures.timeline()
    return view


@dataclasses.dataclass(frozen=True, slots=True)
class SessionFigures:
    """A session's figures for review: final for an ended session, as of now for a live one."""

    info: SessionInfo
    figures: Figures
    #: Broadcast length so far (live) or in all (ended); 0 before the start.
    duration_s: int
    peak_minute: int | None
    #: Which figures these are (an ended session's may be the platform's record: core.final).
    final: FinalState = LIVE
    #: The platform's figures, when they are the ones that stand.
    platform: PlatformFigures | None = None


def _standing(conn: sa.Connection, info: SessionInfo, figures: Figures,
              peak: int | None) -> tuple[Figures, int | None, FinalState, PlatformFigures | None]:
    """An ended session's figures that stand: the persisted live count, or the platform's record."""
    final = final_state(conn, session_id=info.id)
    if not final.is_platform:
        return figures, peak, final, None
    pf = platform_figures(conn, session_id=info.id, start=info.started_at)
    return pf.figures, pf.figures.peak_minute(), final, pf


def session_figures(store: Store, *, info: SessionInfo) -> SessionFigures:
    """Figures from the results persisted at the end, or the live totals; never a scan of the orders."""
    if info.status == "ended":
        with store.db.connect() as conn:
            row = _results_row(conn, info.id)
            if row is None:  # pragma: no cover - results are written with the status
                raise NotFound("results are missing")
            figures, peak, final, pf = _standing(conn, info, _figures_from_results(row, conn), row.peak_minute)
        return SessionFigures(info=info, figures=figures, duration_s=row.duration_s,
                              peak_minute=peak, final=final, platform=pf)
    if info.status == "scheduled" or info.started_at is None:
        return SessionFigures(info=info, figures=Figures(), duration_s=0, peak_minute=None)
    figures = live_totals(store, session_id=info.id).figures
    duration = max(0, int((utcnow() - info.started_at).total_seconds()))
    return SessionFigures(info=info, figures=figures, duration_s=duration, peak_minute=figures.peak_minute())


def peak_minute_products(store: Store, *, sf: SessionFigures) -> dict[str, list[int]] | None:
    """What sold in the peak minute, ``{sku: [quantity, amount_fen]}``: persisted at the end;
    for a live session summed now over that one minute. None when results predate it."""
    if sf.peak_minute is None:
        return {}
    if sf.platform is not None:
        return sf.platform.peak_products()
    with store.db.connect() as conn:
        if sf.info.status == "ended":
            row = _results_row(conn, sf.info.id)
            return None if row is None or row.peak_products is None else dict(row.peak_products)
        return minute_products(conn, session_id=sf.info.id, minute=sf.peak_minute)


def session_results(store: Store, *, info: SessionInfo) -> dict[str, Any]:
    """The persisted results of an ended session."""
    if info.status != "ended":
        raise Conflict("results exist once the session has ended", code="session_not_ended")
    with store.db.connect() as conn:
        row = _results_row(conn, info.id)
        if row is None:  # pragma: no cover
            raise NotFound("results are missing")
        figures, peak, final, pf = _standing(conn, info, _figures_from_results(row, conn), row.peak_minute)
    # Every confirmation or revert changes the figures: the version rises with each (it is a clock in µs).
    view = totals_view(info, figures, version=row.version + final.changes, updated_at=_iso(row.computed_at))
    view.update(
        timeline=row.timeline if pf is None else figures.timeline(),
        peak_minute=peak,
        duration_s=row.duration_s,
        refunded_orders=row.refunded_orders if pf is None else pf.refunded_orders,
        refunded_fen=row.refunded_fen if pf is None else pf.refunded_fen,
        started_at=_iso(info.started_at),
        ended_at=_iso(info.ended_at),
        final=final.view(),
    )
    return view
