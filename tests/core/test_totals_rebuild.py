"""The hard races of the totals engine, against the real database and Redis.

Redis holds a projection of SQL that may vanish (FLUSHDB) or be rebuilt
(forced) at any moment while orders and refunds keep arriving. Whatever the
interleaving, once the writers stop the Redis figures must equal an
independent SQL sum and the test's own count of what it sent, and the
``version`` a reader sees must never go down.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.core.orders import record_orders, refund_order
from livesale.core.results import load_live_figures
from livesale.core.sessions import Store, create_session, live_totals, rebuild_totals, start_session
from livesale.core.totals import TotalsEngine, _keys
from livesale.core.validation import parse_session
from livesale.models import utcnow
from tests.conftest import free_port
from tests.ledger import expected_figures, headline, host_actor, order_input, payload_for, sql_figures

RACE_SECONDS = 2.5


class Load:
    """Writer threads recording orders (singles, repeats, batches) and refunder threads.

    Every logical order's payload is ``payload_for(name)``; the test predicts
    the figures from ``bodies`` minus ``refunded``.
    """

    def __init__(self, store: Store, session_id: int, *, writers: int = 4, refunders: int = 0, tag: str = "o"):
        self.store = store
        self.session_id = session_id
        self.actor = host_actor(store.db)
        self.tag = tag
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.order_ids: dict[str, str] = {}
        self.refunded: set[str] = set()
        self.errors: list[str] = []
        #: per writer, the totals versions its answers showed, in order
        self.versions: list[list[int]] = [[] for _ in range(writers)]
        self.refunds: queue.Queue[str | None] = queue.Queue()
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(writers)]
        self.refunders = [threading.Thread(target=self._refund) for _ in range(refunders)]
        self.calls = 0

    def __enter__(self) -> Load:
        for th in self.threads + self.refunders:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(timeout=60)
        for _ in self.refunders:
            self.refunds.put(None)
        for th in self.refunders:
            th.join(timeout=60)
        assert not any(th.is_alive() for th in self.threads + self.refunders), "a thread is stuck"

    def _saw(self, name: str, body: dict[str, Any], view: dict[str, Any]) -> None:
        with self.lock:
            self.bodies[name] = body
            known = self.order_ids.setdefault(name, view["id"])
            assert known == view["id"], f"{name} has two orders"
            self.calls += 1

    def _write(self, n: int) -> None:
        store, sid, actor = self.store, self.session_id, self.actor
        try:
            i = 0
            while not self.stop.is_set():
                i += 1
                if i % 10 == 0:
                    names = [f"{self.tag}x{n}-{i}-{j}" for j in range(3)]
                    bodies = [payload_for(x) for x in names]
                    rec = record_orders(
                        store, actor=actor, session_id=sid, is_batch=True, idempotency_key=f"{self.tag}b{n}-{i}",
                        orders=[order_input(b, external_id=x, field=f"orders[{j}]")
                                for j, (x, b) in enumerate(zip(names, bodies, strict=True))],
                    )
                    for x, b, view in zip(names, bodies, rec.orders, strict=True):
                        self._saw(x, b, view)
                else:
                    # Every 7th call repeats an earlier key of this writer (a client retry).
                    name = f"{self.tag}{n}-{i - 3 if i % 7 == 0 and i > 3 else i}"
                    body = payload_for(name)
                    rec = record_orders(store, actor=actor, session_id=sid, idempotency_key=name,
                                        orders=[order_input(body)])
                    self._saw(name, body, rec.orders[0])
                    if self.refunders and rec.created and i % 6 == 1:
                        self.refunds.put(rec.orders[0]["id"])
                self.versions[n].append(rec.totals["version"])
        except Exception:
            with self.lock:
                self.errors.append(traceback.format_exc())

    def _refund(self) -> None:
        try:
            while (order_id := self.refunds.get()) is not None:
                view, _ = refund_order(self.store, actor=self.actor, session_id=self.session_id, order_id=order_id)
                assert view["status"] == "refunded"
                with self.lock:
                    self.refunded.add(order_id)
        except Exception:
            with self.lock:
                self.errors.append(traceback.format_exc())

    def expected(self) -> dict[str, Any]:
        return headline(expected_figures(
            body for name, body in self.bodies.items() if self.order_ids[name] not in self.refunded
        ))


class Background:
    """Run ``step`` in a loop on a thread until the block ends; exceptions are kept."""

    def __init__(self, step: Callable[[], None], pause_s: float = 0.0):
        self.step = step
        self.pause_s = pause_s
        self.stop = threading.Event()
        self.runs = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
                self.runs += 1
                self.stop.wait(self.pause_s)
        except Exception:
            self.errors.append(traceback.format_exc())

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


class HookedEngine(TotalsEngine):
    """A real totals engine with a hook around ``apply`` (to order events precisely)."""

    def __init__(self, client: redis.Redis, *, before: Callable[[], None] | None = None,
                 after: Callable[[Any], None] | None = None):
        super().__init__(client)
        self.before = before
        self.after = after

    def apply(self, **kwargs: Any) -> Any:
        if self.before:
            self.before()
        result = super().apply(**kwargs)
        if self.after:
            self.after(result)
        return result


def assert_settled(store: Store, session_id: int, load: Load, redis_client: redis.Redis) -> None:
    """After the writers stopped: Redis == SQL == what was sent, and nothing left behind."""
    assert not load.errors, load.errors[0]
    live = live_totals(store, session_id=session_id)  # rebuilds if the last flush left nothing
    sql = sql_figures(store.db, session_id)
    assert live.figures == sql
    assert headline(sql) == load.expected()
    reread = store.totals.read(session_id=session_id)
    assert reread is not None and reread.figures == sql
    _, pending_key, lock_key = _keys(session_id)
    assert redis_client.llen(pending_key) == 0
    assert not redis_client.exists(lock_key)
    # Each logical order is one row.
    with store.db.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).where(t.orders.c.session_id == session_id)).scalar_one()
    assert rows == len(load.bodies)


def assert_never_down(versions: list[int]) -> None:
    drops = [(a, b) for a, b in zip(versions, versions[1:], strict=False) if b < a]
    assert not drops, f"version went down {len(drops)} times, e.g. {drops[:3]}"


# --- (a) (b) (c): races ---------------------------------------------------------


def test_flushdb_while_writers_record(store: Store, live_session: dict[str, Any], redis_client: redis.Redis) -> None:
    sid = live_session["id"]
    parked: list[bool] = []
    writers = Store(db=store.db, totals=HookedEngine(redis_client, after=lambda result: parked.append(result is None)))
    with Load(writers, sid, writers=4) as load, Background(redis_client.flushdb, pause_s=0.12) as flusher:
        time.sleep(RACE_SECONDS)
    assert not flusher.errors, flusher.errors[0]
    assert flusher.runs >= 10 and load.calls >= 200
    assert sum(parked) >= 3, "no change ever found the figures missing: the race did not happen"
    assert_settled(store, sid, load, redis_client)


def test_forced_rebuilds_while_writers_record_and_refund(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis
) -> None:
    sid = live_session["id"]
    lock_key = _keys(sid)[2]
    under_lock: list[bool] = []
    writers = Store(db=store.db, totals=HookedEngine(
        redis_client, after=lambda _result: under_lock.append(bool(redis_client.exists(lock_key)))
    ))
    with (
        Load(writers, sid, writers=3, refunders=1) as load,
        Background(lambda: rebuild_totals(store, session_id=sid, force=True)) as rebuilder,
    ):
        time.sleep(RACE_SECONDS)
    assert not rebuilder.errors, rebuilder.errors[0]
    assert rebuilder.runs >= 20 and load.calls >= 200 and len(load.refunded) >= 10
    assert sum(under_lock) >= 3, "no change arrived during a rebuild: the race did not happen"
    assert_settled(store, sid, load, redis_client)


def test_versions_never_go_down(store: Store, live_session: dict[str, Any], redis_client: redis.Redis) -> None:
    """A reader (and every writer) sees ``version`` rise across flushes and rebuilds."""
    sid = live_session["id"]
    seen: list[int] = []

    def read() -> None:
        current = store.totals.read(session_id=sid)
        if current is not None:
            seen.append(current.version)
        seen.append(live_totals(store, session_id=sid).version)

    with (
        Load(store, sid, writers=3, refunders=1) as load,
        Background(read) as reader,
        Background(redis_client.flushdb, pause_s=0.25) as flusher,
        Background(lambda: rebuild_totals(store, session_id=sid, force=True), pause_s=0.05) as rebuilder,
    ):
        time.sleep(RACE_SECONDS)
    for background in (reader, flusher, rebuilder):
        assert not background.errors, background.errors[0]
    assert flusher.runs >= 5 and reader.runs >= 100
    assert_never_down(seen)
    for versions in load.versions:
        assert_never_down(versions)
    assert_settled(store, sid, load, redis_client)
    assert live_totals(store, session_id=sid).version >= seen[-1]


# --- (d): a parked change is counted exactly once --------------------------------


def _record(store: Store, sid: int, name: str) -> Any:
    return record_orders(store, actor=host_actor(store.db), session_id=sid, idempotency_key=name,
                         orders=[order_input(payload_for(name))])


def test_apply_while_figures_missing_is_parked_then_counted_once(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis
) -> None:
    sid = live_session["id"]
    names = [f"before-{i}" for i in range(3)]
    for name in names:
        _record(store, sid, name)
    seen: dict[str, Any] = {}
    totals_key, pending_key, lock_key = _keys(sid)

    def after(result: Any) -> None:
        seen.update(result=result, pending=redis_client.llen(pending_key), totals=redis_client.exists(totals_key))

    hooked = Store(db=store.db, totals=HookedEngine(redis_client, after=after))
    live_totals(hooked, session_id=sid)
    redis_client.flushdb()
    rec = _record(hooked, sid, "while-missing")
    # The change found no figures: it was parked, not applied anywhere.
    assert seen == {"result": None, "pending": 1, "totals": 0}
    # ... and the rebuild that followed counted it once.
    expected = headline(expected_figures(payload_for(n) for n in [*names, "while-missing"]))
    assert rec.totals["orders"] == 4 == expected["orders"]
    assert rec.totals["amount_fen"] == expected["amount_fen"]
    live = store.totals.read(session_id=sid)
    assert live is not None and live.figures == sql_figures(store.db, sid) and headline(live.figures) == expected
    assert redis_client.llen(pending_key) == 0 and not redis_client.exists(lock_key)


def test_a_change_after_redis_forgot_its_scripts_is_applied_once_and_fed_once(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis
) -> None:
    """The script goes to Redis as EVALSHA inside the order's pipeline. A Redis that restarted with
    its data (AOF) but without its scripts answers NOSCRIPT to that one command while the rest of
    the pipeline (changed-set, feed) went through: the script alone is sent again."""
    sid = live_session["id"]
    _record(store, sid, "before")
    live_totals(store, session_id=sid)  # the figures are in Redis and trusted
    redis_client.script_flush()
    store.totals.take_changed()
    rec = _record(store, sid, "after-flush")
    expected = headline(expected_figures(payload_for(n) for n in ["before", "after-flush"]))
    assert headline(store.totals.read(session_id=sid).figures) == expected  # type: ignore[union-attr]
    assert rec.totals["orders"] == 2 and rec.totals["amount_fen"] == expected["amount_fen"]
    assert store.totals.take_changed() == [sid]
    feed = store.totals.read_feed(session_id=sid)
    assert [e.sku for e in feed] == [payload_for("before")["sku"], payload_for("after-flush")["sku"]]
    assert redis_client.script_exists(store.totals._apply.sha) == [True]


@pytest.mark.parametrize("figures_present", [True, False], ids=["figures-present", "figures-missing"])
@pytest.mark.parametrize("commit", ["before-snapshot", "after-snapshot"])
def test_change_arriving_during_a_rebuild_is_counted_once(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis, figures_present: bool, commit: str
) -> None:
    """A change reaches Redis while a rebuild holds the lock and is parked.

    If its transaction committed before the rebuild's snapshot, the snapshot
    already counts it and the replay must skip it; if it committed after,
    only the replay counts it.
    """
    sid = live_session["id"]
    names = [f"before-{i}" for i in range(3)]
    for name in names:
        _record(store, sid, name)
    _, pending_key, lock_key = _keys(sid)
    release, applied = threading.Event(), threading.Event()
    hooked = Store(db=store.db, totals=HookedEngine(
        redis_client,
        before=(lambda: release.wait(30)) if commit == "before-snapshot" else None,
        after=lambda _result: applied.set(),
    ))
    live_totals(hooked, session_id=sid)  # this "process" has seen the session before
    if not figures_present:
        redis_client.flushdb()
    writer_result: list[Any] = []
    writer_errors: list[str] = []

    def writer() -> None:
        try:
            writer_result.append(_record(hooked, sid, "racer"))
        except Exception:
            writer_errors.append(traceback.format_exc())

    thread = threading.Thread(target=writer)
    committed = threading.Event()

    def racer_committed() -> bool:
        with store.db.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(t.orders.c.session_id == sid, t.orders.c.idempotency_key == "racer")
            ).scalar_one() == 1

    if commit == "before-snapshot":
        thread.start()  # commits, then waits before its Redis call
        _wait_for(racer_committed)
        committed.set()

    def load() -> Any:
        snapshot_and_figures = load_live_figures(store.db, session_id=sid)
        if commit == "after-snapshot":
            thread.start()  # commits after our snapshot was taken
        else:
            release.set()
        assert applied.wait(30), "the racer's change never reached Redis"
        assert redis_client.llen(pending_key) == 1  # parked behind our lock
        return snapshot_and_figures

    rebuilt = store.totals.rebuild(session_id=sid, load=load, force=True)
    thread.join(timeout=30)
    assert not writer_errors, writer_errors[0]
    expected = headline(expected_figures(payload_for(n) for n in [*names, "racer"]))
    assert headline(rebuilt.figures) == expected
    live = store.totals.read(session_id=sid)
    assert live is not None and live.figures == sql_figures(store.db, sid) and headline(live.figures) == expected
    assert writer_result[0].totals["orders"] <= 4
    assert redis_client.llen(pending_key) == 0 and not redis_client.exists(lock_key)


def test_flush_during_a_rebuild_starts_it_over(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis
) -> None:
    """Redis is flushed while a rebuild holds the lock, taking with it a change parked behind it.

    The rebuild's snapshot does not see that change, and the parked copy is
    gone: writing the rebuild's figures would lose it. The rebuild must
    notice its lock vanished and start over from a new snapshot.
    """
    sid = live_session["id"]
    names = [f"before-{i}" for i in range(3)]
    for name in names:
        _record(store, sid, name)
    loads: list[Any] = []

    def load() -> Any:
        snapshot_and_figures = load_live_figures(store.db, session_id=sid)
        loads.append(snapshot_and_figures)
        if len(loads) == 1:
            _record(store, sid, "racer")  # commits after our snapshot; parked behind our lock
            assert redis_client.llen(_keys(sid)[1]) == 1
            redis_client.flushdb()
        return snapshot_and_figures

    rebuilt = store.totals.rebuild(session_id=sid, load=load, force=True)
    assert len(loads) == 2
    expected = headline(expected_figures(payload_for(n) for n in [*names, "racer"]))
    assert headline(rebuilt.figures) == expected
    live = store.totals.read(session_id=sid)
    assert live is not None and live.figures == sql_figures(store.db, sid) and headline(live.figures) == expected


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- (e): a big session ------------------------------------------------------------


def test_rebuild_of_a_session_with_many_orders(store: Store, users: Any, redis_client: redis.Redis) -> None:
    """50,000 orders over 150 products, 400 regions and 720 minutes; one in 17 refunded."""
    users.token("host")
    actor = host_actor(store.db)
    skus = [f"SKU-{i:03}" for i in range(150)]
    info = create_session(store, actor=actor, data=parse_session({
        "title": "大场次", "products": [{"sku": s, "name": s, "unit_price_fen": 100 + i} for i, s in enumerate(skus)],
    }))
    start_session(store, actor=actor, session_id=info.id)
    now = utcnow()
    rows = []
    for i in range(50_000):
        sku_index = (i * 7) % 150
        quantity = 1 + i % 5
        rows.append({
            "id": uuid.uuid4(), "session_id": info.id, "sku": skus[sku_index], "quantity": quantity,
            "unit_price_fen": 100 + sku_index, "amount_fen": quantity * (100 + sku_index),
            "buyer_region": f"region-{(i * 13) % 400}", "channel": "", "external_id": f"bulk-{i}",
            "idempotency_key": None, "payload_hash": "0" * 32, "status": "refunded" if i % 17 == 0 else "paid",
            "created_at": now, "minute": (i * 31) % 720, "txid": 0, "refunded_at": None, "refund_txid": None,
        })
    with write_transaction(store.db) as conn:
        conn.execute(sa.insert(t.orders), rows)
    def core_order(key: str) -> None:
        record_orders(store, actor=actor, session_id=info.id, idempotency_key=key,
                      orders=[order_input({"sku": "SKU-042", "quantity": 2})])

    # Orders through the core as well, before and after the rebuild.
    core_order("core-1")
    sql = sql_figures(store.db, info.id)
    assert sql.orders == 47_059 and len(sql.by_region) == 400 + 1 and len(sql.by_minute) == 720

    redis_client.flushdb()
    rebuilt = live_totals(store, session_id=info.id)  # its speed is measured by bench/, not asserted here
    assert rebuilt.figures == sql
    forced = rebuild_totals(store, session_id=info.id, force=True)
    assert forced.figures == sql and forced.version > rebuilt.version
    core_order("core-2")
    live = store.totals.read(session_id=info.id)
    assert live is not None and live.figures == sql_figures(store.db, info.id)
    assert live.figures.orders == 47_060


# --- a writer that dies between its SQL commit and its Redis call ---------------------


class ProcessDied(BaseException):
    """Stands for a SIGKILL between the commit and the Redis script call (nothing of the
    process runs after it: not an ``Exception``, which the core answers by rebuilding)."""


def test_writer_dying_between_commit_and_redis_is_caught_up_by_the_next_process(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis, redis_url: str
) -> None:
    sid = live_session["id"]
    for i in range(3):
        _record(store, sid, f"before-{i}")

    def die() -> None:
        raise ProcessDied

    doomed = Store(db=store.db, totals=HookedEngine(redis_client, before=die))
    live_totals(doomed, session_id=sid)
    with pytest.raises(ProcessDied):
        _record(doomed, sid, "lost-in-the-crash")
    # SQL has the order; the figures in Redis (still there) do not.
    assert sql_figures(store.db, sid).orders == 4
    stale = store.totals.read(session_id=sid)
    assert stale is not None and stale.figures.orders == 3

    # A new process (a restarted worker) starts with its own engine: its first
    # use of the session brings Redis up to SQL, for every process.
    restarted = Store(db=store.db, totals=TotalsEngine(redis.Redis.from_url(redis_url)))
    try:
        assert live_totals(restarted, session_id=sid).figures == sql_figures(store.db, sid)
        again = store.totals.read(session_id=sid)
        assert again is not None and again.figures.orders == 4
        rec = _record(restarted, sid, "after-restart")
        assert rec.totals["orders"] == 5
    finally:
        restarted.totals.redis.close()


def test_redis_outage_during_apply_is_caught_up_on_next_use(
    store: Store, live_session: dict[str, Any], redis_client: redis.Redis
) -> None:
    """The order committed but its script call failed: it is still acknowledged (with totals
    summed by SQL), and the same process rebuilds Redis on its next use."""
    sid = live_session["id"]
    for i in range(3):
        _record(store, sid, f"before-{i}")
    client = store.totals.redis
    working_pool = client.connection_pool
    client.connection_pool = redis.ConnectionPool(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    try:
        during = _record(store, sid, "during-outage")
        assert during.created and during.totals["orders"] == 4
    finally:
        client.connection_pool.disconnect()
        client.connection_pool = working_pool
    assert sql_figures(store.db, sid).orders == 4  # SQL first: the order is stored
    # Redis came back with its data intact, without the order; the next use repairs it.
    assert live_totals(store, session_id=sid).figures == sql_figures(store.db, sid)
    rec = _record(store, sid, "after-outage")
    assert rec.totals["orders"] == 5


def test_a_change_that_failed_midway_is_withdrawn_for_every_process_once_redis_answers(
    store: Store, live_session: dict[str, Any], redis_url: str
) -> None:
    """Process A's script call fails (Redis unreachable for A) while process B vouches for the
    figures: as soon as A reaches Redis again (its next tick), the figures are withdrawn, so B
    rebuilds them with A's order instead of serving them without it."""
    sid = live_session["id"]
    for i in range(3):
        _record(store, sid, f"before-{i}")
    other = Store(db=store.db, totals=TotalsEngine(redis.Redis.from_url(redis_url)))
    try:
        assert live_totals(other, session_id=sid).figures.orders == 3  # B verified these figures
        client = store.totals.redis
        working_pool = client.connection_pool
        client.connection_pool = redis.ConnectionPool(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
        try:
            assert _record(store, sid, "during-outage").totals["orders"] == 4  # summed by SQL
        finally:
            client.connection_pool.disconnect()
            client.connection_pool = working_pool
        assert live_totals(other, session_id=sid).figures.orders == 3  # A has not reached Redis yet
        store.totals.hold_ticker(token="process-a", ttl_ms=1000)  # A's next tick reaches Redis
        assert live_totals(other, session_id=sid).figures == sql_figures(store.db, sid)
        assert live_totals(other, session_id=sid).figures.orders == 4
    finally:
        other.totals.redis.close()
