"""Recording and refunding orders: SQL first, then one Redis script call.

The order of operations is the durability contract: the orders are committed
to SQL (the system of record) before anything else happens, then the
session's running totals move by one atomic script call for the whole
request. If the process dies between the two, SQL has the order and the
totals are rebuilt from SQL (see ``core.totals``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import operator
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from livesale.models import utcnow

from . import outbox
from . import tables as t
from .auth import Actor, require_writer
from .db import begin_session_write, is_sqlite, write_transaction
from .errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unavailable
from .figures import Figures
from .results import load_live_figures
from .sessions import SessionInfo, Store, iso_ms, live_totals, load_session, session_totals, totals_view
from .totals import FEED_PER_CHANGE, FeedEntry
from .validation import OrderInput

_ORDER_COLUMNS = (
    "id", "session_id", "sku", "quantity", "unit_price_fen", "amount_fen", "buyer_region", "channel",
    "external_id", "status", "created_at", "refunded_at", "payload_hash",
)


def order_view(row: Any, *, created_at: str | None = None) -> dict[str, Any]:
    """The JSON shape of an order; ``created_at`` is the row's time already formatted."""
    refunded = row["refunded_at"]
    return {
        "id": str(row["id"]),
        "session_id": row["session_id"],
        "sku": row["sku"],
        "quantity": row["quantity"],
        "unit_price_fen": row["unit_price_fen"],
        "amount_fen": row["amount_fen"],
        "buyer_region": row["buyer_region"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "status": row["status"],
        "created_at": created_at or _iso(row["created_at"]),
        "refunded_at": _iso(refunded) if refunded else None,
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    orders: list[dict[str, Any]]
    #: True when at least one order is new; False when the request only repeated known orders.
    created: bool
    totals: dict[str, Any]
    #: How many of ``orders`` this request inserted (the rest were repeats).
    new: int = 0


def _delta(rows: list[dict[str, Any]], *, sign: int) -> Figures:
    delta = Figures()
    for r in rows:
        delta.add_order(
            sku=r["sku"], quantity=r["quantity"], amount_fen=r["amount_fen"],
            region=r["buyer_region"], minute=r["minute"], channel=r["channel"], sign=sign,
        )
    return delta


def _stored_matches(
    conn: sa.Connection, session_id: int, rows: list[dict[str, Any]]
) -> dict[uuid.UUID, dict[str, Any] | None]:
    """For each of ``rows`` (by its id): the stored order with its external id or key, if any."""
    o = t.orders
    cols = [o.c[name] for name in _ORDER_COLUMNS] + [o.c.idempotency_key]
    ext_ids = [r["external_id"] for r in rows if r["external_id"] is not None]
    keys = [r["idempotency_key"] for r in rows if r["idempotency_key"] is not None]
    by_ext: dict[str, dict[str, Any]] = {}
    by_key: dict[str, dict[str, Any]] = {}
    if ext_ids:
        for row in conn.execute(sa.select(*cols).where(o.c.session_id == session_id, o.c.external_id.in_(ext_ids))):
            by_ext[row.external_id] = dict(row._mapping)
    if keys:
        for row in conn.execute(sa.select(*cols).where(o.c.session_id == session_id, o.c.idempotency_key.in_(keys))):
            by_key[row.idempotency_key] = dict(row._mapping)
    found: dict[uuid.UUID, dict[str, Any] | None] = {}
    for r in rows:
        match = by_ext.get(r["external_id"]) if r["external_id"] is not None else None
        if match is None and r["idempotency_key"] is not None:
            match = by_key.get(r["idempotency_key"])
        found[r["id"]] = match
    return found


def _existing_for(conn: sa.Connection, session_id: int, rows: list[dict[str, Any]]) -> dict[uuid.UUID, dict[str, Any]]:
    """The stored orders that ``rows`` (not inserted) collided with, by the row's id."""
    found = {}
    for row_id, match in _stored_matches(conn, session_id, rows).items():
        if match is None:  # pragma: no cover - a conflict is always on one of the two keys
            raise Conflict("the order collided with another order; retry", code="retry")
        found[row_id] = match
    return found


def new_order_ids(count: int) -> list[uuid.UUID]:
    """``count`` fresh order ids: UUIDv7 (RFC 9562), ordered by creation time.

    Random (v4) ids land on random pages of the primary-key index, so every
    batch dirties a page per order and each commit writes them all (to the
    WAL on both databases). Time-ordered ids append to the index's right edge.
    The 74 bits after the millisecond are random.
    """
    prefix = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76
    noise = os.urandom(10 * count)
    ids = []
    for i in range(0, 10 * count, 10):
        r = int.from_bytes(noise[i : i + 10])
        ids.append(uuid.UUID(int=prefix | (r >> 68) << 64 | 0x8000000000000000 | (r & 0x3FFFFFFFFFFFFFFF)))
    return ids


@dataclasses.dataclass(frozen=True, slots=True)
class _OrderRequest:
    """One call of ``record_orders``: what a group commit carries."""

    actor: Actor
    orders: list[OrderInput]
    idempotency_key: str | None
    is_batch: bool


def record_orders(
    store: Store,
    *,
    actor: Actor,
    session_id: int,
    orders: list[OrderInput],
    idempotency_key: str | None = None,
    is_batch: bool = False,
) -> Recorded:
    """Record one order or a batch, all or nothing, each counted exactly once.

    A repeat of a known order (same ``external_id`` or idempotency key, same
    payload) returns the stored order and changes no total; the same key
    with another payload is a ``Conflict`` and nothing is stored.

    Single orders arriving together for one session are committed together
    (``core.groupcommit``); a batch is its own transaction, so that a
    conflict anywhere in it rolls back all of it.
    """
    require_writer(actor)
    request = _OrderRequest(actor=actor, orders=orders, idempotency_key=idempotency_key, is_batch=is_batch)

    def commit(group: Sequence[_OrderRequest]) -> list[Recorded | DomainError]:
        with _unknown_outcome_rebuilds(store, session_id):
            return _commit_group(store, session_id, group)

    if is_batch:
        outcome: object = commit([request])[0]
    else:
        outcome = store.group_commit.run(session_id, request, commit)
    if isinstance(outcome, BaseException):
        raise outcome
    assert isinstance(outcome, Recorded)
    return outcome


@contextlib.contextmanager
def _unknown_outcome_rebuilds(store: Store, session_id: int) -> Iterator[None]:
    """A write that fails other than by a domain error may have committed all the same (the
    connection died during COMMIT): then SQL holds rows whose change never reached Redis, and
    the retry finds them stored and moves nothing. The totals are rebuilt from SQL instead."""
    try:
        yield
    except DomainError:
        raise
    except Exception:
        store.totals.invalidate(session_id=session_id)
        raise


def _rows_for(
    request: _OrderRequest, *, session_id: int, prices: dict[str, int], txid: int, now: datetime, minute: int
) -> list[dict[str, Any]]:
    rows = []
    ids = new_order_ids(len(request.orders))
    for i, order in enumerate(request.orders):
        if order.sku not in prices:
            raise InvalidInput("is not a product of this session", field=_field(order, "sku"))
        price = prices[order.sku] if order.unit_price_fen is None else order.unit_price_fen
        key = request.idempotency_key
        if key is not None and request.is_batch:
            key = f"{key}#{i}"
        rows.append(
            {
                "id": ids[i],
                "session_id": session_id,
                "sku": order.sku,
                "quantity": order.quantity,
                "unit_price_fen": price,
                "amount_fen": order.quantity * price,
                "buyer_region": order.buyer_region,
                "channel": order.channel,
                "external_id": order.external_id,
                "idempotency_key": key,
                "payload_hash": order.payload_hash(price),
                "status": "paid",
                "created_at": now,
                "minute": minute,
                "txid": txid,
                "refunded_at": None,
                "refund_txid": None,
                "_order": order,
            }
        )
    return rows


def _answer_after_end(
    store: Store, conn: sa.Connection, lock: Any, session_id: int, group: Sequence[_OrderRequest], refusal: Conflict
) -> list[Recorded | DomainError]:
    """Orders for an ended session: an exact repeat of stored orders gets them back, anything else the refusal.

    A console whose answer was lost just before the end retries after it; the order was counted
    and the final results include it, so the retry must not look like a failure. Nothing is written.
    """
    info = store.catalog.get(conn, lock, session_id)
    prices = {p.sku: p.unit_price_fen for p in info.products}
    outcomes: list[Recorded | DomainError] = []
    final: dict[str, Any] | None = None
    for request in group:
        if not request.actor.can_manage(lock.owner_id):
            outcomes.append(Forbidden("this session belongs to another host"))
            continue
        try:
            rows = _rows_for(request, session_id=session_id, prices=prices, txid=lock.txid, now=utcnow(), minute=0)
        except InvalidInput:
            outcomes.append(refusal)
            continue
        matches = _stored_matches(conn, session_id, rows)
        stored = [matches[r["id"]] for r in rows]
        if not all(m is not None and m["payload_hash"] == r["payload_hash"] for m, r in zip(stored, rows, strict=True)):
            outcomes.append(refusal)
            continue
        if final is None:
            final = session_totals(store, info=load_session(conn, session_id=session_id))
        outcomes.append(Recorded(orders=[order_view(m) for m in stored], created=False, totals=final))
    return outcomes


def _commit_group(store: Store, session_id: int, group: Sequence[_OrderRequest]) -> list[Recorded | DomainError]:
    """Write the orders of ``group`` in one transaction; one outcome per request.

    Errors that concern the session (missing, not live) fail the whole group
    by raising; errors of one request (another host's session, an unknown
    sku, a key reused with another payload) fail only that request.
    """
    now = utcnow()
    outcomes: list[Recorded | DomainError | None] = [None] * len(group)
    rows_of: dict[int, list[dict[str, Any]]] = {}
    with write_transaction(store.db) as conn:
        lock = begin_session_write(conn, session_id)
        if lock is None:
            raise NotFound(f"no session {session_id}")
        if lock.status != "live":
            code = "session_ended" if lock.status == "ended" else "session_not_live"
            refusal = Conflict(f"the session is {lock.status}; it does not accept orders", code=code)
            if lock.status != "ended":
                raise refusal
            return _answer_after_end(store, conn, lock, session_id, group, refusal)
        assert lock.started_at is not None
        info = store.catalog.get(conn, lock, session_id)
        prices = {p.sku: p.unit_price_fen for p in info.products}
        minute = max(0, int((now - lock.started_at).total_seconds() // 60))
        for index, request in enumerate(group):
            if not request.actor.can_manage(lock.owner_id):
                outcomes[index] = Forbidden("this session belongs to another host")
                continue
            try:
                rows_of[index] = _rows_for(
                    request, session_id=session_id, prices=prices, txid=lock.txid, now=now, minute=minute
                )
            except InvalidInput as exc:
                if request.is_batch:
                    raise
                outcomes[index] = exc
        rows = [row for index in rows_of for row in rows_of[index]]
        if is_sqlite(conn):
            in_key_order = rows  # writers take the database lock in turn: nobody waits on a row
        else:
            # Insert in one canonical order. On PostgreSQL an insert that meets an
            # uncommitted row with the same external id or key waits for that
            # transaction; two batches overlapping in opposite orders would wait
            # for each other (a deadlock, one of them failing). Taking the keys
            # in sorted order makes every transaction wait in the same direction.
            in_key_order = sorted(
                rows, key=lambda r: (r["external_id"] is None, r["external_id"] or "", r["idempotency_key"] or "")
            )
        inserted_ids = _insert(conn, in_key_order)
        if len(inserted_ids) == len(rows):
            inserted, existing = rows, {}
        else:
            inserted = [r for r in rows if r["id"] in inserted_ids]
            existing = _existing_for(conn, session_id, [r for r in rows if r["id"] not in inserted_ids])
        for index, request_rows in rows_of.items() if existing else ():
            for r in request_rows:
                if r["id"] in existing and existing[r["id"]]["payload_hash"] != r["payload_hash"]:
                    # Name what collided: the external id if the stored order has it, else the key.
                    same_external = r["external_id"] is not None and existing[r["id"]]["external_id"] == r["external_id"]
                    which = "external_id" if same_external else "Idempotency-Key"
                    field = _field(r["_order"], "external_id") if which == "external_id" else which
                    conflict = Conflict(
                        f"this {which} was already used for a different order", field=field,
                        code="idempotency_conflict",
                    )
                    # A batch is all or nothing: undo the whole transaction
                    # (it is alone in it). A single order's row was not
                    # inserted, so refusing it leaves nothing behind.
                    if group[index].is_batch:
                        raise conflict
                    outcomes[index] = conflict
                    break
        # Leaving the block commits: the orders are durable from here on.
    totals = _totals_after(store, info, lock.txid, inserted, 1)
    if inserted:  # a goal or milestone crossed by these orders: robots are told (core.outbox)
        after = totals["amount_fen"]
        outbox.note_amount(store.db, info, before_fen=after - sum(r["amount_fen"] for r in inserted),
                           after_fen=after, orders=totals["orders"], items=totals["items"])
    created_at = _iso(now)  # of every new row
    for index, request_rows in rows_of.items():
        if outcomes[index] is None:
            outcomes[index] = Recorded(
                orders=[
                    order_view(existing[r["id"]]) if r["id"] in existing else order_view(r, created_at=created_at)
                    for r in request_rows
                ],
                created=any(r["id"] in inserted_ids for r in request_rows),
                totals=totals,
                new=sum(r["id"] in inserted_ids for r in request_rows),
            )
    return outcomes  # type: ignore[return-value]


def _insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert ``rows`` skipping conflicts; the ids of the rows inserted.

    Parameters are converted once per request rather than per row by
    SQLAlchemy: the rows of one request share their time and transaction,
    so only the id needs its column type's conversion. The statement's
    rowcount counts the rows inserted (a skipped row adds 0).

    SQLite runs a one-row ``INSERT … ON CONFLICT DO NOTHING`` as the
    driver's executemany (in process, no round trips). PostgreSQL gets one
    statement for the whole request: each varying column as one array
    parameter, ``unnest``-ed into rows, the shared values as scalars; one
    round trip and one plan instead of one execution per row.
    """
    if not rows:
        return set()
    dialect = conn.dialect
    first = rows[0]
    to_id, *shared = _binds(dialect)
    constant = tuple(convert(first[name]) for convert, name in zip(shared, _SHARED_COLUMNS, strict=True))
    if dialect.name == "postgresql":
        columns = [[to_id(r["id"]) for r in rows], *([r[name] for r in rows] for name in _ROW_COLUMNS)]
        inserted = conn.exec_driver_sql(_postgres_insert(dialect), (*constant, *columns)).rowcount
    else:
        per_row = _PER_ROW
        params = [(to_id(r["id"]), *per_row(r), *constant) for r in rows]
        inserted = conn.exec_driver_sql(_SQLITE_INSERT, params).rowcount
    if inserted == len(rows):
        return {r["id"] for r in rows}
    # Something conflicted (a retry): find out which rows are ours.
    o = t.orders
    ids = [r["id"] for r in rows]
    return set(conn.execute(sa.select(o.c.id).where(o.c.id.in_(ids))).scalars())


#: Columns that differ from row to row (after ``id``), and those that all rows of a request share.
_ROW_COLUMNS = (
    "sku", "quantity", "unit_price_fen", "amount_fen", "buyer_region", "channel", "external_id",
    "idempotency_key", "payload_hash",
)
_SHARED_COLUMNS = ("session_id", "status", "created_at", "minute", "txid", "refunded_at", "refund_txid")
_INSERT_COLUMNS = ("id", *_ROW_COLUMNS, *_SHARED_COLUMNS)
assert sorted(_INSERT_COLUMNS) == sorted(c.name for c in t.orders.columns), "a column of orders is not inserted"
_PER_ROW = operator.itemgetter(*_ROW_COLUMNS)
_SQLITE_INSERT = (
    f"INSERT INTO orders ({', '.join(_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(['?'] * len(_INSERT_COLUMNS))}) ON CONFLICT DO NOTHING"
)


def _bind(dialect: sa.Dialect, name: str) -> Callable[[Any], Any]:
    """The conversion of column ``name``'s type for the driver (ids, times), or none."""
    return t.orders.c[name].type._cached_bind_processor(dialect) or _same


@functools.cache
def _binds(dialect: sa.Dialect) -> tuple[Callable[[Any], Any], ...]:
    """The conversions of ``id`` and of ``_SHARED_COLUMNS``, looked up once per dialect (engine)."""
    return tuple(_bind(dialect, name) for name in ("id", *_SHARED_COLUMNS))


def _same(value: Any) -> Any:
    return value


@functools.cache
def _postgres_insert(dialect: sa.Dialect) -> str:
    def sql_type(name: str) -> str:
        return t.orders.c[name].type.compile(dialect=dialect)

    shared = ", ".join(f"%s::{sql_type(name)}" for name in _SHARED_COLUMNS)
    arrays = ", ".join(f"%s::{sql_type(name)}[]" for name in ("id", *_ROW_COLUMNS))
    return (
        f"INSERT INTO orders ({', '.join(_INSERT_COLUMNS)}) "
        f"SELECT u.*, {shared} FROM unnest({arrays}) AS u ON CONFLICT DO NOTHING"
    )


def _totals_after(store: Store, info: SessionInfo, txid: int, rows: list[dict[str, Any]], sign: int) -> dict[str, Any]:
    """Move the running totals by ``rows`` (already committed) and return them.

    The rows are durable whatever happens here, so this never fails the
    request: if Redis cannot be reached, the totals are summed from SQL
    (exact, only slower) and Redis is repaired on a later call.
    """
    try:
        if not rows:  # a repeat: nothing moves, and Redis being down must not fail it either
            return session_totals(store, info=info)
        feed = [
            FeedEntry(sku=r["sku"], quantity=r["quantity"], region=r["buyer_region"],
                      at_ms=int(r["created_at"].timestamp() * 1000))
            for r in rows[-FEED_PER_CHANGE:]
        ] if sign > 0 else []
        live = store.totals.apply(session_id=info.id, txid=txid, delta=_delta(rows, sign=sign), feed=feed)
        if live is None or not store.totals.verified(info.id):
            # Redis lost the figures (the change was parked), or this process has
            # not checked them yet: the rebuild counts the change exactly once.
            with store.db.connect() as conn:
                current = load_session(conn, session_id=info.id)
            if current.status == "ended":
                # The session ended between our commit and now: its results
                # (which include our rows) are final, and Redis is not needed.
                store.totals.discard(session_id=info.id)
                return session_totals(store, info=current)
            live = live_totals(store, session_id=info.id)
    except Unavailable:
        # Versioned as of before the read: a change the read misses is newer, and so is its Redis version.
        version = time.time_ns() // 1000
        _snapshot, figures = load_live_figures(store.db, session_id=info.id)
        return totals_view(info, figures, version=version, updated_at=iso_ms(version // 1000))
    return totals_view(info, live.figures, version=live.version, updated_at=iso_ms(live.updated_at_ms))


def _field(order: OrderInput, name: str) -> str:
    return f"{order.field}.{name}" if order.field else name


def refund_order(store: Store, *, actor: Actor, session_id: int, order_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refund an order: it leaves every total and keeps its row. Refunding twice changes nothing."""
    with _unknown_outcome_rebuilds(store, session_id):
        return _refund_order(store, actor=actor, session_id=session_id, order_id=order_id)


def _refund_order(store: Store, *, actor: Actor, session_id: int, order_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    require_writer(actor)
    try:
        oid = uuid.UUID(order_id)
    except ValueError:
        raise NotFound(f"no order {order_id}") from None
    o = t.orders
    with write_transaction(store.db) as conn:
        lock = begin_session_write(conn, session_id)
        if lock is None:
            raise NotFound(f"no session {session_id}")
        if not actor.can_manage(lock.owner_id):
            raise Forbidden("this session belongs to another host")
        if lock.status == "ended":
            raise Conflict("the session has ended; its results are final", code="session_ended")
        changed = conn.execute(
            sa.update(o)
            .where(o.c.id == oid, o.c.session_id == session_id, o.c.status == "paid")
            .values(status="refunded", refunded_at=utcnow(), refund_txid=lock.txid)
            .returning(*(o.c[name] for name in _ORDER_COLUMNS), o.c.minute)
        ).first()
        if changed is None:
            row = conn.execute(
                sa.select(*(o.c[name] for name in _ORDER_COLUMNS)).where(o.c.id == oid, o.c.session_id == session_id)
            ).first()
            if row is None:
                raise NotFound(f"no order {order_id} in session {session_id}")
        else:
            row = changed
        info = store.catalog.get(conn, lock, session_id)
    refunded = [dict(changed._mapping)] if changed is not None else []
    return order_view(row._mapping), _totals_after(store, info, lock.txid, refunded, -1)


def list_orders(
    store: Store, *, session_id: int, after: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """Orders oldest first after the order ``after`` (a cursor), and the next cursor."""
    o = t.orders
    cols = [o.c[name] for name in _ORDER_COLUMNS]
    query = sa.select(*cols).where(o.c.session_id == session_id)
    with store.db.connect() as conn:
        if after:
            try:
                after_id = uuid.UUID(after)
            except ValueError:
                raise InvalidInput("must be an order id from a previous page", field="after") from None
            anchor = conn.execute(
                sa.select(o.c.created_at, o.c.id).where(o.c.id == after_id, o.c.session_id == session_id)
            ).first()
            if anchor is None:
                raise InvalidInput("must be an order id from a previous page", field="after")
            query = query.where(sa.tuple_(o.c.created_at, o.c.id) > sa.tuple_(anchor[0], anchor[1]))
        rows = conn.execute(query.order_by(o.c.created_at, o.c.id).limit(limit + 1)).all()
    page = [order_view(r._mapping) for r in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)


def count_orders(store: Store, *, session_id: int, through: str | None = None) -> int:
    """How many orders a session holds, refunded ones too; with ``through`` (an order id, a page's cursor),
    how many come up to and including that order in the listing's order (for "orders 101–200 of N")."""
    o = t.orders
    query = sa.select(sa.func.count()).select_from(o).where(o.c.session_id == session_id)
    with store.db.connect() as conn:
        if through:
            try:
                anchor_id = uuid.UUID(through)
            except ValueError:
                return 0
            anchor = conn.execute(
                sa.select(o.c.created_at, o.c.id).where(o.c.id == anchor_id, o.c.session_id == session_id)
            ).first()
            if anchor is None:
                return 0
            query = query.where(sa.tuple_(o.c.created_at, o.c.id) <= sa.tuple_(anchor[0], anchor[1]))
        return int(conn.execute(query).scalar_one())
