"""Many writers on one live session: nothing lost, nothing counted twice.

The core is called directly from real threads against the real database and
Redis. Three figures must agree at the end: Redis totals, an independent SQL
sum over ``orders``, and what the test itself sent (each distinct
idempotency key / external id counted once, refunded orders excluded).
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.core.errors import Conflict
from livesale.core.orders import record_orders, refund_order
from livesale.core.sessions import end_session, session_results, session_totals
from tests.ledger import (
    api_figures,
    duplicate_keys,
    expected_figures,
    headline,
    host_actor,
    order_input,
    payload_for,
    sql_figures,
)

WRITERS = 8
ORDERS_PER_WRITER = 500
REFUNDERS = 2


class Outcome:
    """What the threads were told, merged under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: dict[str, set[str]] = defaultdict(set)  # logical order -> order ids returned
        self.created: dict[str, int] = defaultdict(int)  # logical order -> responses with created=True
        self.bodies: dict[str, dict[str, Any]] = {}
        self.refunded: set[str] = set()
        self.errors: list[str] = []

    def saw(self, name: str, body: dict[str, Any], order_id: str, created: bool | None) -> None:
        with self.lock:
            self.bodies[name] = body
            self.ids[name].add(order_id)
            if created:
                self.created[name] += 1

    def failed(self) -> None:
        with self.lock:
            self.errors.append(traceback.format_exc())


def _writer(store: Any, actor: Any, session_id: int, n: int, out: Outcome, refunds: queue.Queue[str | None]) -> None:
    try:
        for i in range(ORDERS_PER_WRITER):
            if i % 50 == 25:
                # A platform import: three orders whose external ids overlap
                # with the batches of two other threads (same payloads), in
                # another order (importers page through exports differently).
                names = [f"x{i}-{(n + j) % WRITERS}" for j in range(3)]
                if n % 2:
                    names.reverse()
                bodies = [payload_for(name) for name in names]
                rec = record_orders(
                    store, actor=actor, session_id=session_id, is_batch=True, idempotency_key=f"b{n}-{i}",
                    orders=[order_input(b, external_id=x, field=f"orders[{j}]")
                            for j, (x, b) in enumerate(zip(names, bodies, strict=True))],
                )
                for name, body, view in zip(names, bodies, rec.orders, strict=True):
                    assert view["external_id"] == name
                    out.saw(name, body, view["id"], None)
                continue
            if i % 5 == 0:
                name = f"s{i}"  # every writer sends this key, with the same payload
            elif i % 50 == 7:
                name = None  # no idempotency key at all: a new order every time
            else:
                name = f"u{n}-{i}"
            logical = name or f"anon{n}-{i}"
            body = payload_for(logical)
            rec = record_orders(store, actor=actor, session_id=session_id, idempotency_key=name,
                                orders=[order_input(body)])
            out.saw(logical, body, rec.orders[0]["id"], rec.created)
            if rec.created and i % 9 == 3:
                refunds.put(rec.orders[0]["id"])
                if i % 2:
                    refunds.put(rec.orders[0]["id"])  # refunded twice, maybe at once by both refunders
    except Exception:
        out.failed()


def _refunder(store: Any, actor: Any, session_id: int, out: Outcome, refunds: queue.Queue[str | None]) -> None:
    try:
        while (order_id := refunds.get()) is not None:
            view, _totals = refund_order(store, actor=actor, session_id=session_id, order_id=order_id)
            assert view["status"] == "refunded"
            with out.lock:
                out.refunded.add(order_id)
    except Exception:
        out.failed()


def _run(threads: list[threading.Thread], *, start: bool = True) -> None:
    for th in threads:
        if start:
            th.start()
    for th in threads:
        th.join(timeout=120)
        assert not th.is_alive(), "a thread is stuck"


def test_many_writers_with_repeats_overlaps_and_refunds(store: Any, live_session: dict[str, Any]) -> None:
    session_id = live_session["id"]
    actor = host_actor(store.db)
    out = Outcome()
    refunds: queue.Queue[str | None] = queue.Queue()
    writers = [threading.Thread(target=_writer, args=(store, actor, session_id, n, out, refunds))
               for n in range(WRITERS)]
    refunders = [threading.Thread(target=_refunder, args=(store, actor, session_id, out, refunds))
                 for _ in range(REFUNDERS)]
    for th in refunders:
        th.start()
    _run(writers)
    for _ in refunders:
        refunds.put(None)
    _run(refunders, start=False)
    assert not out.errors, out.errors[0]

    # Every logical order has exactly one id, and a repeated key was "created" once.
    assert all(len(ids) == 1 for ids in out.ids.values()), [n for n, ids in out.ids.items() if len(ids) != 1]
    assert all(count == 1 for count in out.created.values())
    shared = [name for name in out.ids if name.startswith("s")]
    assert len(shared) == sum(1 for i in range(ORDERS_PER_WRITER) if i % 5 == 0 and i % 50 != 25)
    assert all(out.created[name] == 1 for name in shared)
    order_of = {name: next(iter(ids)) for name, ids in out.ids.items()}
    assert len(set(order_of.values())) == len(order_of)
    assert len(out.refunded) > 50

    # SQL holds each logical order once, and nothing else.
    o = t.orders
    with store.db.connect() as conn:
        stored = dict(conn.execute(sa.select(o.c.id, o.c.status).where(o.c.session_id == session_id)).all())
    assert {str(k) for k in stored} == set(order_of.values())
    assert {str(k) for k, status in stored.items() if status == "refunded"} == out.refunded
    assert duplicate_keys(store.db, session_id) == []

    expected = expected_figures(body for name, body in out.bodies.items() if order_of[name] not in out.refunded)
    sql = sql_figures(store.db, session_id)
    live = store.totals.read(session_id=session_id)
    assert live is not None
    assert live.figures == sql
    assert headline(sql) == headline(expected)
    assert expected.orders == len(out.bodies) - len(out.refunded)


def test_twenty_threads_same_idempotency_key(store: Any, live_session: dict[str, Any]) -> None:
    session_id = live_session["id"]
    actor = host_actor(store.db)
    body = payload_for("the-one")
    barrier = threading.Barrier(20)
    results: list[Any] = []
    errors: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            barrier.wait(timeout=30)
            rec = record_orders(store, actor=actor, session_id=session_id, idempotency_key="the-one",
                                orders=[order_input(body)])
            with lock:
                results.append(rec)
        except Exception:
            with lock:
                errors.append(traceback.format_exc())

    _run([threading.Thread(target=send) for _ in range(20)])
    assert not errors, errors[0]
    assert len(results) == 20
    assert len({rec.orders[0]["id"] for rec in results}) == 1
    assert sum(rec.created for rec in results) == 1
    # No answer shows it counted twice (a repeat may answer before the
    # first request's totals update lands, so 0 is possible there).
    assert {rec.totals["orders"] for rec in results if rec.created} == {1}
    assert all(rec.totals["orders"] <= 1 for rec in results)

    with store.db.connect() as conn:
        rows = conn.execute(sa.select(t.orders.c.id).where(t.orders.c.session_id == session_id)).all()
    assert [str(r[0]) for r in rows] == [results[0].orders[0]["id"]]
    live = store.totals.read(session_id=session_id)
    assert live is not None
    assert live.figures == sql_figures(store.db, session_id)
    assert headline(live.figures) == headline(expected_figures([body]))


def test_overlapping_batches_in_opposite_orders(store: Any, live_session: dict[str, Any]) -> None:
    """Two importers re-sending an overlapping window, each in its own order, at the same moment.

    On PostgreSQL an insert that meets the other's uncommitted external id
    waits for it; without a canonical insert order the two batches waited
    for each other and one failed with "deadlock detected". The writers are
    held at the session row and released together to make them overlap.
    """
    session_id = live_session["id"]
    actor = host_actor(store.db)
    errors: list[str] = []
    sent: dict[str, dict[str, Any]] = {}
    for round_ in range(10):
        names = [f"w{round_}-{j:03}" for j in range(300)]
        orders = {name: payload_for(name) for name in names}
        sent.update(orders)

        def send(ordered: list[str], key: str, orders: dict[str, dict[str, Any]] = orders) -> None:
            try:
                record_orders(store, actor=actor, session_id=session_id, is_batch=True, idempotency_key=key,
                              orders=[order_input(orders[n], external_id=n, field=f"orders[{j}]")
                                      for j, n in enumerate(ordered)])
            except Exception:
                errors.append(traceback.format_exc())

        threads = [threading.Thread(target=send, args=(names, f"a{round_}")),
                   threading.Thread(target=send, args=(names[::-1], f"b{round_}"))]
        with write_transaction(store.db) as gate:
            # Writers pin the session row first (core.db.begin_session_write):
            # holding it here lines both up, and committing releases them at once.
            gate.execute(sa.select(t.live_sessions.c.id).where(t.live_sessions.c.id == session_id).with_for_update())
            for th in threads:
                th.start()
            time.sleep(0.05)
        _run(threads, start=False)
        assert not errors, errors[0]
    assert duplicate_keys(store.db, session_id) == []
    live = store.totals.read(session_id=session_id)
    assert live is not None
    assert live.figures == sql_figures(store.db, session_id)
    assert headline(live.figures) == headline(expected_figures(sent.values()))


def test_end_while_writers_record(store: Any, live_session: dict[str, Any]) -> None:
    """Every order acknowledged before the end is in the results, and none is refused after being stored."""
    session_id = live_session["id"]
    actor = host_actor(store.db)
    acked: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        try:
            for i in range(100_000):
                key = f"e{n}-{i}"
                body = payload_for(key)
                try:
                    record_orders(store, actor=actor, session_id=session_id, idempotency_key=key,
                                  orders=[order_input(body)])
                except Conflict as exc:
                    assert exc.code == "session_ended"
                    with lock:
                        refused.append(key)
                    return
                with lock:
                    acked[key] = body
        except Exception:
            with lock:
                errors.append(traceback.format_exc())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    time.sleep(1.0)
    info = end_session(store, actor=actor, session_id=session_id)
    _run(threads, start=False)
    assert not errors, errors[0]
    assert info.status == "ended" and len(refused) == 4 and len(acked) > 50

    with store.db.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.select(t.orders.c.idempotency_key).where(t.orders.c.session_id == session_id))}
    assert stored == set(acked)  # refused orders were not stored
    results = session_results(store, info=info)
    assert api_figures(results) == headline(sql_figures(store.db, session_id)) == headline(expected_figures(acked.values()))
    assert session_totals(store, info=info)["amount_fen"] == results["amount_fen"]


def test_a_group_refuses_only_the_order_that_reuses_a_key(store: Any, live_session: dict[str, Any]) -> None:
    """Concurrent single orders share a transaction (group commit): a key reused
    with another payload is refused on its own, and every other order commits."""
    actor = host_actor(store.db)
    sid = live_session["id"]
    outcomes: dict[int, Any] = {}
    barrier = threading.Barrier(24)

    def send(i: int) -> None:
        # Threads 0-3 all use key "shared" with different quantities: one wins.
        key = "shared" if i < 4 else f"own-{i}"
        body = {"sku": "APRICOT-5KG", "quantity": 1 + i % 4}
        barrier.wait()
        try:
            outcomes[i] = record_orders(store, actor=actor, session_id=sid, orders=[order_input(body)],
                                        idempotency_key=key)
        except Conflict as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    shared = [outcomes[i] for i in range(4)]
    winners = [o for o in shared if not isinstance(o, Conflict)]
    assert len(winners) == 1 and winners[0].created
    assert all(o.code == "idempotency_conflict" for o in shared if isinstance(o, Conflict))
    assert all(not isinstance(outcomes[i], Conflict) and outcomes[i].created for i in range(4, 24))
    sql = sql_figures(store.db, sid)
    assert sql.orders == 21
    redis_figures = store.totals.read(session_id=sid).figures
    assert headline(redis_figures) == headline(sql)
