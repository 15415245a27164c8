"""Validation over HTTP: a bad request is a JSON error naming its field, and stores nothing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import APRICOT_SESSION, Api

JSON = "application/json"


def orders_url(session: dict[str, Any]) -> str:
    return f"/api/v1/sessions/{session['id']}/orders"


def send(api: Api, url: str, raw: bytes | str, *, content_type: str | None = JSON,
         headers: dict[str, str] | None = None) -> Any:
    """POST a raw body (so the test controls every byte, including invalid JSON)."""
    kw: dict[str, Any] = {"data": raw, "headers": api._headers(headers)}
    if content_type is not None:
        kw["content_type"] = content_type
    return api.client.post(url, **kw)


def assert_error(response: Any, status: int, field: str | None, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.mimetype == JSON
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    if code is not None:
        assert error["code"] == code, error
    return error


class Ledger:
    """What a session holds (orders via the API, rows via SQL, totals), to compare before/after."""

    def __init__(self, api: Api, store: Any, session: dict[str, Any]):
        self.api, self.store, self.session = api, store, session

    def state(self) -> tuple[Any, ...]:
        listed = self.api.get(orders_url(self.session) + "?limit=1000")
        assert listed.status_code == 200
        totals = self.api.get(f"/api/v1/sessions/{self.session['id']}/totals")
        assert totals.status_code == 200
        t = totals.json
        with self.store.db.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT count(*), coalesce(sum(amount_fen), 0) FROM orders WHERE session_id = :s"),
                {"s": self.session["id"]},
            ).one()
        return (
            [o["id"] for o in listed.json["orders"]],
            (t["orders"], t["items"], t["amount_fen"], t["version"], t["by_product"], t["by_region"]),
            tuple(rows),
        )


@pytest.fixture
def ledger(host_api: Api, store: Any, live_session: dict[str, Any]) -> Ledger:
    """A live session already holding one order, so "nothing stored" is checked against a non-empty state."""
    r = host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 1, "buyer_region": "上海",
                                                      "external_id": "seed-1"})
    assert r.status_code == 201, r.json
    return Ledger(host_api, store, live_session)


def ok(**overrides: Any) -> dict[str, Any]:
    return {"sku": "DRIED-1KG", "quantity": 2, **overrides}


def batch(bad: Any, *, at: int = 3, size: int = 5) -> dict[str, Any]:
    items: list[Any] = [ok(external_id=f"b-{i}") for i in range(size)]
    items[at] = bad
    return {"orders": items}


BAD_ORDERS = [
    pytest.param(ok(quantity=2.0), "quantity", id="float-2.0"),
    pytest.param(ok(quantity=1e3), "quantity", id="float-1e3"),
    pytest.param(ok(quantity="2"), "quantity", id="numeric-string"),
    pytest.param(ok(quantity="２"), "quantity", id="fullwidth-digit"),
    pytest.param(ok(quantity=True), "quantity", id="boolean"),
    pytest.param(ok(quantity=None), "quantity", id="null"),
    pytest.param(ok(quantity=-1), "quantity", id="negative"),
    pytest.param(ok(quantity=0), "quantity", id="zero"),
    pytest.param(ok(quantity=10001), "quantity", id="quantity-10001"),
    pytest.param(ok(quantity=10**30), "quantity", id="huge-int"),
    pytest.param(ok(unit_price_fen=100_000_001), "unit_price_fen", id="price-100000001"),
    pytest.param(ok(unit_price_fen=10**30), "unit_price_fen", id="price-huge"),
    pytest.param(ok(unit_price_fen=59.0), "unit_price_fen", id="price-float"),
    pytest.param(ok(buyer_region="区" * 65), "buyer_region", id="region-65"),
    pytest.param(ok(channel="c" * 33), "channel", id="channel-33"),
    pytest.param(ok(external_id="e" * 129), "external_id", id="external-id-129"),
    pytest.param(ok(buyer_region="杭\x00州"), "buyer_region", id="NUL"),
    pytest.param(ok(buyer_region="a\x1b[31mb"), "buyer_region", id="ESC"),
    pytest.param(ok(channel="a\u2028b"), "channel", id="line-separator"),
    pytest.param(ok(external_id="a\x9fb"), "external_id", id="C1"),
    pytest.param(ok(price=100), "price", id="unknown-field"),
    pytest.param(ok(currency="USD"), "currency", id="currency"),
    pytest.param({"quantity": 1}, "sku", id="missing-sku"),
    pytest.param({"sku": "DRIED-1KG"}, "quantity", id="missing-quantity"),
    pytest.param(ok(sku="NOPE"), "sku", id="sku-not-in-session"),
    pytest.param(ok(sku="DRIED-1KG\n"), "sku", id="sku-trailing-newline"),
    pytest.param({"orders": []}, "orders", id="empty-batch"),
    pytest.param({"orders": {"sku": "DRIED-1KG"}}, "orders", id="orders-not-array"),
    pytest.param({"orders": [ok()], "dry_run": True}, "dry_run", id="batch-unknown-field"),
    pytest.param({"orders": [ok()] * 1001}, "orders", id="batch-1001"),
    pytest.param(batch(ok(quantity=2.0)), "orders[3].quantity", id="batch-float"),
    pytest.param(batch(ok(quantity=0), at=0), "orders[0].quantity", id="batch-zero"),
    pytest.param(batch(ok(unit_price_fen=100_000_001), at=4), "orders[4].unit_price_fen", id="batch-price"),
    pytest.param(batch(ok(buyer_region="x" * 65), at=1), "orders[1].buyer_region", id="batch-region"),
    pytest.param(batch(ok(sku="NOPE"), at=2), "orders[2].sku", id="batch-sku-not-in-session"),
    pytest.param(batch(ok(currency="EUR")), "orders[3].currency", id="batch-currency"),
    pytest.param(batch(ok(note="x"), at=1), "orders[1].note", id="batch-item-unknown-field"),
    pytest.param(batch("DRIED-1KG", at=2), "orders[2]", id="batch-item-not-object"),
    pytest.param(batch(ok(external_id="b-0"), at=3), "orders[3].external_id", id="batch-duplicate-external-id"),
    pytest.param([ok()], "body", id="json-array-body"),
    pytest.param("DRIED-1KG", "body", id="json-string-body"),
    pytest.param(None, "body", id="json-null-body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_ORDERS)
def test_bad_order_is_422_naming_the_field_and_stores_nothing(
    ledger: Ledger, host_api: Api, live_session: dict[str, Any], body: Any, field: str
) -> None:
    before = ledger.state()
    r = send(host_api, orders_url(live_session), json.dumps(body))
    assert_error(r, 422, field, code="invalid")
    assert ledger.state() == before


def test_a_valid_batch_after_the_bad_ones_is_stored(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    """The refusals above are about the input, not a broken session."""
    r = host_api.post(orders_url(live_session), json={"orders": [ok(external_id=f"b-{i}") for i in range(1000)]})
    assert r.status_code == 201, r.json
    assert r.json["totals"]["orders"] == 1001 and r.json["totals"]["amount_fen"] == 6980 + 1000 * 2 * 5900


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"sku": "DRIED-1KG", "quantity": NaN}', id="NaN"),
        pytest.param('{"sku": "DRIED-1KG", "quantity": Infinity}', id="Infinity"),
        pytest.param('{"sku": "DRIED-1KG", "quantity": 1', id="truncated"),
        pytest.param("sku=DRIED-1KG&quantity=1", id="form-encoded"),
        pytest.param("", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep-nesting"),
        pytest.param('{"quantity": ' + "9" * 5000 + "}", id="5000-digit-number"),
    ],
)
def test_non_json_body_is_a_json_error_naming_body(ledger: Ledger, host_api: Api, live_session: dict[str, Any],
                                                    raw: str | bytes) -> None:
    before = ledger.state()
    r = send(host_api, orders_url(live_session), raw)
    assert_error(r, 400, "body", code="bad_request")
    assert ledger.state() == before


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_wrong_content_type_is_a_json_error_naming_body(ledger: Ledger, host_api: Api, live_session: dict[str, Any],
                                                         content_type: str | None) -> None:
    before = ledger.state()
    r = send(host_api, orders_url(live_session), json.dumps(ok()), content_type=content_type)
    assert_error(r, 400, "body", code="bad_request")
    assert ledger.state() == before


def test_json_content_type_with_charset_is_accepted(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    r = send(host_api, orders_url(live_session), json.dumps(ok()), content_type="application/json; charset=utf-8")
    assert r.status_code == 201, r.json


def test_body_over_1mb_is_413_json(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    before = ledger.state()
    # A well-formed batch of ~2 MB: refused for its size, not its content.
    item = json.dumps(ok(buyer_region="x" * 60))
    raw = '{"orders": [' + ",".join([item] * (2 * 1024 * 1024 // len(item))) + "]}"
    assert len(raw) > 2_000_000
    r = send(host_api, orders_url(live_session), raw)
    error = assert_error(r, 413, None, code="too_large")
    assert error.get("field") in (None, "body")
    assert "1048576" in error["message"]
    # 2 MB with the wrong content type: refused (for its type or its size), as JSON.
    r = send(host_api, orders_url(live_session), b"x" * (2 * 1024 * 1024), content_type="text/plain")
    assert r.status_code in (400, 413) and r.mimetype == JSON
    assert r.json["error"]["code"] in ("bad_request", "too_large")
    assert ledger.state() == before


def test_body_just_under_1mb_is_accepted(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    body = json.dumps(ok(buyer_region="上海"))
    raw = body + " " * (1024 * 1024 - 100 - len(body.encode()))  # JSON allows trailing whitespace
    assert 1024 * 1024 - 200 < len(raw.encode()) < 1024 * 1024
    assert send(host_api, orders_url(live_session), raw).status_code == 201


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 129, id="129-chars"),
        pytest.param("k" * 5000, id="5000-chars"),
        pytest.param("clé-1", id="latin-1"),
        pytest.param("键", id="cjk"),
        pytest.param("a\x01b", id="control"),
        pytest.param("   ", id="blank"),
    ],
)
def test_bad_idempotency_key(ledger: Ledger, host_api: Api, live_session: dict[str, Any], key: str) -> None:
    before = ledger.state()
    r = send(host_api, orders_url(live_session), json.dumps(ok()), headers={"Idempotency-Key": key})
    assert_error(r, 422, "Idempotency-Key", code="invalid")
    assert ledger.state() == before


def test_longest_idempotency_key_is_accepted(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    key = "k" * 128
    first = send(host_api, orders_url(live_session), json.dumps({"orders": [ok(), ok()]}), headers={"Idempotency-Key": key})
    again = send(host_api, orders_url(live_session), json.dumps({"orders": [ok(), ok()]}), headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert [o["id"] for o in first.json["orders"]] == [o["id"] for o in again.json["orders"]]


def test_lone_surrogates_are_refused_not_500(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    """JSON can spell a lone surrogate; no database or JSON encoder takes one."""
    before = ledger.state()
    url = orders_url(live_session)
    r = send(host_api, url, '{"sku": "DRIED-1KG", "quantity": 1, "buyer_region": "\\ud800"}')
    assert_error(r, 422, "buyer_region")
    r = send(host_api, url, '{"sku": "DRIED-1KG", "quantity": 1, "\\udc00": 1}')
    assert_error(r, 422, "\\udc00")
    r = send(host_api, url, '{"orders": [{"sku": "DRIED-1KG", "quantity": 1, "external_id": "x\\udfff"}]}')
    assert_error(r, 422, "orders[0].external_id")
    assert ledger.state() == before


def test_text_is_trimmed_and_nfc_normalised_when_stored(ledger: Ledger, host_api: Api, live_session: dict[str, Any]) -> None:
    r = host_api.post(orders_url(live_session), json=ok(buyer_region="  Cafe\u0301 ", external_id=" x-1 "))
    assert r.status_code == 201
    assert r.json["order"]["buyer_region"] == "Café" and r.json["order"]["external_id"] == "x-1"
    assert "Café" in r.json["totals"]["by_region"]


# --- sessions ---------------------------------------------------------------------------------------


def session_body(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(APRICOT_SESSION)
    body.update(overrides)
    return body


def many_products(n: int) -> list[dict[str, Any]]:
    return [{"sku": f"SKU-{i}", "name": f"p{i}", "unit_price_fen": 100} for i in range(n)]


BAD_SESSIONS = [
    pytest.param(session_body(products=APRICOT_SESSION["products"] * 2), "products[2].sku", id="duplicate-sku"),
    pytest.param(session_body(timezone="Mars/Olympus_Mons"), "timezone", id="bad-timezone"),
    pytest.param(session_body(timezone=8), "timezone", id="timezone-number"),
    pytest.param(session_body(scheduled_start="2026-06-01 20:00"), "scheduled_start", id="start-no-offset"),
    pytest.param(session_body(scheduled_start="2026-02-30T20:00:00+08:00"), "scheduled_start", id="start-feb-30"),
    pytest.param(session_body(scheduled_start="0001-01-01T00:00:00+08:00"), "scheduled_start", id="start-year-0"),
    pytest.param(session_body(scheduled_start=1780000000), "scheduled_start", id="start-epoch"),
    pytest.param(session_body(products=many_products(201)), "products", id="201-products"),
    pytest.param(session_body(products=[]), "products", id="no-products"),
    pytest.param(session_body(products=[{"sku": "A", "name": "a", "unit_price_fen": 1.5}]),
                 "products[0].unit_price_fen", id="product-price-float"),
    pytest.param(session_body(products=[{"sku": "A\n", "name": "a", "unit_price_fen": 1}]),
                 "products[0].sku", id="product-sku-newline"),
    pytest.param(session_body(products=[{"sku": "A", "name": "a\ud800", "unit_price_fen": 1}]),
                 "products[0].name", id="product-name-surrogate"),
    pytest.param(session_body(currency="USD"), "currency", id="currency"),
    pytest.param(session_body(title=""), "title", id="empty-title"),
    pytest.param(session_body(goal_fen=10**30), "goal_fen", id="goal-huge"),
    pytest.param(session_body(status="live"), "status", id="unknown-field"),
    pytest.param([APRICOT_SESSION], "body", id="array-body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SESSIONS)
def test_bad_session_is_422_and_creates_nothing(host_api: Api, store: Any, body: Any, field: str) -> None:
    r = send(host_api, "/api/v1/sessions", json.dumps(body))
    assert_error(r, 422, field, code="invalid")
    assert host_api.get("/api/v1/sessions").json["total"] == 0
    with store.db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM live_sessions")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM products")).scalar_one() == 0


def test_session_with_200_products_is_created(host_api: Api) -> None:
    r = host_api.post("/api/v1/sessions", json=session_body(products=many_products(200)))
    assert r.status_code == 201, r.json
    assert len(r.json["products"]) == 200


def test_session_body_too_large_is_413(host_api: Api) -> None:
    r = send(host_api, "/api/v1/sessions", json.dumps(session_body(title="t" * (2 * 1024 * 1024))))
    assert_error(r, 413, None, code="too_large")
    assert host_api.get("/api/v1/sessions").json["total"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("limit=２", "limit"),
     ("offset=-1", "offset"), ("status=open", "status"), ("from=yesterday", "from"),
     ("to=2026-13-01", "to"), ("from=0001-01-01T00:00:00%2B01:00", "from"), ("q=" + "x" * 101, "q")],
)
def test_bad_list_query_is_422(host_api: Api, query: str, field: str) -> None:
    assert_error(host_api.get(f"/api/v1/sessions?{query}"), 422, field)
