"""A live session as a state machine, driven through the HTTP API (hypothesis stateful testing).

Rules: record a single order or a small batch (with or without an
``Idempotency-Key``, with or without ``external_id``s), send a request again
unchanged (a retry), send an order again under its external id with another
key or none, reuse a key or external id with a different payload, refund an
order (again and again), flush Redis, end the session (and end it again).

The model is what the test sent and was told. After every step three views
must agree with it: SQL (every order's row, as the model has it, and so
their sums; at the end also ``tests.ledger.sql_figures`` and the database's
own SUM), the totals the API serves and what Redis itself holds (rebuilt
from SQL when lost) for a live session, and the persisted results for an
ended one. A refused request (409) must store nothing.

Each example builds its own session, so examples share the app and the
database but never each other's orders.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import redis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from livesale.core import tables as t
from livesale.core.figures import Figures
from tests.conftest import APRICOT_SESSION, Api
from tests.ledger import PRICES, REGIONS, api_figures, headline, sql_figures

SKUS = sorted(PRICES)
MACHINE_SETTINGS = settings(
    max_examples=16,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
_run = itertools.count()


@dataclasses.dataclass
class ModelOrder:
    sku: str
    quantity: int
    amount_fen: int
    region: str
    external_id: str | None
    status: str = "paid"


@dataclasses.dataclass
class Sent:
    """A request that was accepted: what was sent and the order ids it was answered with."""

    body: dict[str, Any]
    key: str | None
    ids: list[str]

    @property
    def is_batch(self) -> bool:
        return "orders" in self.body

    def items(self) -> list[dict[str, Any]]:
        return self.body["orders"] if self.is_batch else [self.body]

    def identified(self, index: int) -> bool:
        """Whether a repeat of order ``index`` is recognised (a key or an external id)."""
        return self.key is not None or "external_id" in self.items()[index]


order_bodies = st.fixed_dictionaries(
    {"sku": st.sampled_from(SKUS), "quantity": st.integers(1, 12)},
    optional={
        "buyer_region": st.sampled_from(REGIONS),
        "unit_price_fen": st.sampled_from([1, 4990, 6980, 100_000_000]),
        "channel": st.sampled_from(["console", "douyin", ""]),
    },
)


class LiveSessionMachine(RuleBasedStateMachine):
    def __init__(self, api: Api, engine: sa.Engine, redis_client: redis.Redis, store: Any):
        super().__init__()
        self.api, self.engine, self.redis, self.store = api, engine, redis_client, store
        created = api.post("/api/v1/sessions", json=APRICOT_SESSION)
        assert created.status_code == 201, created.json
        self.sid = created.json["id"]
        assert api.post(f"/api/v1/sessions/{self.sid}/start").status_code == 200
        self.url = f"/api/v1/sessions/{self.sid}/orders"
        self.prefix = f"r{next(_run)}-s{self.sid}"
        self.fresh = itertools.count()
        self.orders: dict[str, ModelOrder] = {}
        self.sent: list[Sent] = []
        self.ended = False
        self.results: dict[str, Any] | None = None
        self.last_version = 0

    # --- helpers -----------------------------------------------------------------------------

    def new_name(self, kind: str) -> str:
        return f"{self.prefix}-{kind}{next(self.fresh)}"

    def post(self, body: dict[str, Any], key: str | None) -> Any:
        return self.api.post(self.url, json=body, headers={"Idempotency-Key": key} if key else {})

    def refused_when_ended(self, response: Any) -> None:
        assert response.status_code == 409, (response.status_code, response.json)
        assert response.json["error"]["code"] == "session_ended"

    def remember(self, body: dict[str, Any], key: str | None, response: Any) -> list[dict[str, Any]]:
        returned = response.json["orders"] if "orders" in body else [response.json["order"]]
        items = body.get("orders", [body])
        assert len(returned) == len(items)
        for item, order in zip(items, returned, strict=True):
            assert order["sku"] == item["sku"] and order["quantity"] == item["quantity"]
            price = item.get("unit_price_fen", PRICES[item["sku"]])
            assert order["unit_price_fen"] == price and order["amount_fen"] == price * item["quantity"]
            assert order["external_id"] == item.get("external_id")
            if order["id"] not in self.orders:
                self.orders[order["id"]] = ModelOrder(
                    sku=item["sku"], quantity=item["quantity"], amount_fen=price * item["quantity"],
                    region=item.get("buyer_region", ""), external_id=item.get("external_id"),
                )
            assert order["status"] == self.orders[order["id"]].status
        self.sent.append(Sent(body=body, key=key, ids=[o["id"] for o in returned]))
        return returned

    def record_new(self, body: dict[str, Any], key: str | None) -> None:
        before = set(self.orders)
        response = self.post(body, key)
        if self.ended:
            self.refused_when_ended(response)
            return
        assert response.status_code == 201, (response.status_code, response.json)
        returned = self.remember(body, key, response)
        assert not {o["id"] for o in returned} & before, "a new order came back with a known id"

    # --- rules: new orders ---------------------------------------------------------------------

    @rule(body=order_bodies, with_key=st.booleans(), with_external_id=st.booleans())
    def record_single(self, body: dict[str, Any], with_key: bool, with_external_id: bool) -> None:
        body = dict(body)
        if with_external_id:
            body["external_id"] = self.new_name("x")
        self.record_new(body, self.new_name("k") if with_key else None)

    @rule(items=st.lists(order_bodies, min_size=1, max_size=4), with_key=st.booleans(),
          external_ids=st.lists(st.booleans(), min_size=4, max_size=4))
    def record_batch(self, items: list[dict[str, Any]], with_key: bool, external_ids: list[bool]) -> None:
        items = [dict(item) for item in items]
        for item, with_external_id in zip(items, external_ids, strict=False):
            if with_external_id:
                item["external_id"] = self.new_name("x")
        self.record_new({"orders": items}, self.new_name("b") if with_key else None)

    # --- rules: repeats ------------------------------------------------------------------------

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def retry_unchanged(self, data: st.DataObject) -> None:
        """The same request again (a client that lost the answer): identified orders count once."""
        sent = data.draw(st.sampled_from(self.sent))
        known = set(self.orders)
        response = self.post(sent.body, sent.key)
        fresh = [i for i in range(len(sent.ids)) if not sent.identified(i)]
        if self.ended and fresh:  # something in it would be a new order: refused
            self.refused_when_ended(response)
            return
        assert response.status_code == (201 if fresh else 200), (response.status_code, response.json)
        returned = self.remember(sent.body, sent.key, response)
        for i, order in enumerate(returned):
            if i in fresh:  # nothing tells the server it is a repeat: a new order
                assert order["id"] not in known
            else:
                assert order["id"] == sent.ids[i]

    @precondition(lambda self: any(o.external_id for o in self.orders.values()))
    @rule(data=st.data(), key=st.sampled_from(["fresh", "none"]))
    def resend_by_external_id(self, data: st.DataObject, key: str) -> None:
        """An order sent again on its own under its external id, with another key or none: the same order."""
        order_id = data.draw(st.sampled_from(sorted(i for i, o in self.orders.items() if o.external_id)))
        sent = next(s for s in self.sent if order_id in s.ids)
        item = sent.items()[sent.ids.index(order_id)]
        response = self.post(item, self.new_name("k") if key == "fresh" else None)
        # Even after the end: a console that lost its answer gets its order back, not an error.
        assert response.status_code == 200, (response.status_code, response.json)
        assert response.json["order"]["id"] == order_id
        assert response.json["order"]["status"] == self.orders[order_id].status

    @precondition(lambda self: any(any(s.identified(i) for i in range(len(s.ids))) for s in self.sent))
    @rule(data=st.data(), change=st.sampled_from(["quantity", "region", "price", "drop_external_id"]))
    def reuse_with_another_payload(self, data: st.DataObject, change: str) -> None:
        """The same key or external id with a different order: 409 naming what was reused, nothing stored."""
        sent = data.draw(st.sampled_from([s for s in self.sent if any(s.identified(i) for i in range(len(s.ids)))]))
        index = data.draw(st.sampled_from([i for i in range(len(sent.ids)) if sent.identified(i)]))
        item = dict(sent.items()[index])
        if change == "drop_external_id" and (sent.key is None or "external_id" not in item):
            change = "quantity"  # only the key would identify it: keep something that does
        if change == "quantity":
            item["quantity"] = item["quantity"] % 12 + 1
        elif change == "region":
            item["buyer_region"] = "新疆阿克苏" if item.get("buyer_region") != "新疆阿克苏" else "上海"
        elif change == "price":
            price = item.get("unit_price_fen", PRICES[item["sku"]])
            item["unit_price_fen"] = price + 1 if price < 100_000_000 else price - 1
        else:
            del item["external_id"]
        if sent.is_batch:
            items = list(sent.items())
            items[index] = item
            body: dict[str, Any] = {"orders": items}
        else:
            body = item
        response = self.post(body, sent.key)
        if self.ended:
            self.refused_when_ended(response)
            return
        assert response.status_code == 409, (response.status_code, response.json)
        error = response.json["error"]
        assert error["code"] == "idempotency_conflict", error
        if "external_id" in item:
            assert error["field"] == (f"orders[{index}].external_id" if sent.is_batch else "external_id"), error
        else:
            assert error["field"] == "Idempotency-Key", error

    @precondition(lambda self: self.sent and any(s.key for s in self.sent))
    @rule(data=st.data())
    def same_key_with_a_new_external_id(self, data: st.DataObject) -> None:
        """A key sent again with an external id never used: the key is what collides, and the error says so."""
        sent = data.draw(st.sampled_from([s for s in self.sent if s.key]))
        items = [{**item, "external_id": self.new_name("x")} for item in sent.items()]
        response = self.post({"orders": items} if sent.is_batch else items[0], sent.key)
        if self.ended:
            self.refused_when_ended(response)
            return
        assert response.status_code == 409, (response.status_code, response.json)
        assert response.json["error"]["code"] == "idempotency_conflict"
        assert response.json["error"]["field"] == "Idempotency-Key", response.json

    # --- rules: refunds, Redis, the end ---------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        response = self.api.post(f"{self.url}/{order_id}/refund")
        if self.ended:
            self.refused_when_ended(response)
            return
        assert response.status_code == 200, (response.status_code, response.json)
        assert response.json["order"]["id"] == order_id and response.json["order"]["status"] == "refunded"
        self.orders[order_id].status = "refunded"  # refunding again changes nothing
        assert api_figures(response.json["totals"]) == self.expected()

    @rule()
    def flush_redis(self) -> None:
        self.redis.flushdb()

    @precondition(lambda self: len(self.orders) >= 3)  # mostly live steps: every step after the end is a 409
    @rule()
    def end(self) -> None:
        response = self.api.post(f"/api/v1/sessions/{self.sid}/end")
        assert response.status_code == 200, (response.status_code, response.json)
        assert response.json["status"] == "ended"
        self.ended = True
        # The ledger's independent sums (and the database's own SUM) agree with the model at the end.
        assert headline(sql_figures(self.engine, self.sid)) == self.expected()

    # --- invariants -------------------------------------------------------------------------------

    def expected(self) -> dict[str, Any]:
        figures = Figures()
        for o in self.orders.values():
            if o.status == "paid":
                figures.add_order(sku=o.sku, quantity=o.quantity, amount_fen=o.amount_fen, region=o.region, minute=0)
        return headline(figures)

    @invariant()
    def sql_holds_exactly_the_model(self) -> None:
        """Every row is an order the model knows, as the model knows it (a repeat stored twice would be a
        row it does not know); so the SQL sums are the model's."""
        o = t.orders
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(o.c.id, o.c.status, o.c.sku, o.c.quantity, o.c.amount_fen, o.c.buyer_region, o.c.external_id)
                .where(o.c.session_id == self.sid)
            ).all()
        stored = {str(r[0]): tuple(r[1:]) for r in rows}
        assert stored == {k: (m.status, m.sku, m.quantity, m.amount_fen, m.region, m.external_id)
                          for k, m in self.orders.items()}
        figures = Figures()
        for status, sku, quantity, amount_fen, region, _ in stored.values():
            if status == "paid":
                figures.add_order(sku=sku, quantity=quantity, amount_fen=amount_fen, region=region, minute=0)
        assert headline(figures) == self.expected()

    @invariant()
    def served_totals_match(self) -> None:
        totals = self.api.get(f"/api/v1/sessions/{self.sid}/totals")
        assert totals.status_code == 200
        assert api_figures(totals.json) == self.expected()
        assert totals.json["version"] >= self.last_version, "the version went down"
        self.last_version = totals.json["version"]
        if not self.ended:
            assert totals.json["status"] == "live"
            live = self.store.totals.read(session_id=self.sid)  # what Redis itself holds now
            assert live is not None and headline(live.figures) == self.expected()
            return
        assert totals.json["status"] == "ended"
        results = self.api.get(f"/api/v1/sessions/{self.sid}/results")
        assert results.status_code == 200
        assert api_figures(results.json) == self.expected()
        final = {k: v for k, v in results.json.items() if k != "updated_at"}
        if self.results is None:
            self.results = final
        assert final == self.results, "the results of an ended session changed"


def test_live_session_state_machine(users: Any, store: Any, redis_client: redis.Redis) -> None:
    api = users.api("host")
    run_state_machine_as_test(
        lambda: LiveSessionMachine(api, store.db, redis_client, store), settings=MACHINE_SETTINGS
    )
