"""Property-based tests: arbitrary order payloads against the real API, SQL and Redis.

Invariants, checked after every request:

* the status is never 5xx (in testing an unhandled error propagates, failing the test);
* 201/200: every order of the request was acknowledged and is in SQL, and SQL
  grew by exactly the acknowledged orders that were new (201 iff any was new);
* 4xx: nothing at all was stored (the session's rows and its Redis totals are unchanged);
* always: the Redis totals equal sums computed here, independently, with SQL.

The ``@given`` functions are defined inside the tests, so the function-scoped
fixtures (app, client, token) are built once per test and shared by every
example; what an example changes lives in a session it creates for itself,
so examples cannot see each other's orders.
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections import Counter
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livesale.core import validation
from livesale.core.errors import InvalidInput
from tests.conftest import APRICOT_SESSION, Api

PRICES = {p["sku"]: p["unit_price_fen"] for p in APRICOT_SESSION["products"]}
SKUS = sorted(PRICES)
MAX_BATCH = 1000

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    # Examples build JSON documents and make several HTTP calls each.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies --------------------------------------------------------------------------------

# Text a field accepts: no control characters, separators or surrogates, short
# enough that NFC normalisation (which can lengthen a string) stays in bounds.
_GOOD_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
good_text = st.one_of(
    st.text(_GOOD_CHARS, max_size=10),
    st.sampled_from(["浙江杭州", "上海", "新疆乌鲁木齐", "Café", "Cafe\u0301", " padded ", "🍑", "a:b", "ro:x"]),
)
# Any code point at all, surrogates and controls included.
any_text = st.text(
    st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.characters(codec=None, categories=("Cc", "Cs", "Zl", "Zp", "Cf")),
    ),
    min_size=1,
    max_size=8,
)
nasty_text = st.one_of(
    st.sampled_from(["\ud800", "a\udfffb", "a\x00b", "\x1b[31m", "a\u2028b", "x" * 65, "区" * 129, "a\x9fb", "\ufeff"]),
    any_text,
)
# A text field's value, tagged with whether it is known to be acceptable.
text_field = st.one_of(
    st.none().map(lambda s: (s, True)),
    good_text.map(lambda s: (s, True)),
    any_text.map(lambda s: (s, False)),
    # Good text with one odd code point spliced in (a lone surrogate, a control, a format character).
    st.builds(
        lambda a, c, b: (a + c + b, False),
        good_text, st.characters(codec=None, categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co")), good_text,
    ),
)
big_ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 10_001, 100_000_001, 2**31, 2**63, 2**64, 10**30, -(10**30)]),
)
scalars = st.one_of(
    st.none(), st.booleans(), big_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2.0, 1e3, -0.0, 0.5]),
    st.text(max_size=12), nasty_text, st.sampled_from(["2", "２", "1e3", "APRICOT-5KG", "CNY"]),
)
junk = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
extra_keys = st.one_of(
    st.sampled_from(["price", "Quantity", "sku ", "note", "orders", "\ud800", "", "currency_code"]),
    st.text(max_size=8),
)
EXTERNAL_IDS = ["dy-1", "dy-2", "dy-3", "ks-1"]
ORDER_FIELDS = sorted(validation.ORDER_FIELDS)


@st.composite
def order_items(draw: st.DrawFn) -> tuple[Any, bool]:
    """An order item and whether it was built valid (no mutation applied)."""
    item: dict[str, Any] = {"sku": draw(st.sampled_from(SKUS))}
    item["quantity"] = draw(st.one_of(st.integers(1, 5), st.integers(1, validation.MAX_QUANTITY)))
    if draw(st.booleans()):
        item["unit_price_fen"] = draw(
            st.one_of(st.none(), st.integers(0, 10_000), st.integers(0, validation.MAX_UNIT_PRICE_FEN))
        )
    known_good = True
    if draw(st.booleans()):
        item["buyer_region"], good = draw(text_field)
        known_good &= good
    if draw(st.integers(0, 3)) == 0:
        item["channel"] = draw(st.one_of(st.none(), st.sampled_from(["douyin", "kuaishou", "直播"])))
    if draw(st.booleans()):
        item["external_id"], good = draw(st.one_of(st.sampled_from(EXTERNAL_IDS).map(lambda s: (s, True)), text_field))
        known_good &= good
    if draw(st.integers(0, 4)) == 0:
        item["currency"] = "CNY"
    # About one item in four is spoiled in one or two ways.
    mutations = draw(st.integers(0, 7))
    if mutations > 1:
        return item, known_good
    for _ in range(mutations + 1):
        kind = draw(st.sampled_from(["replace", "replace", "drop", "extra", "nasty", "nasty", "not-object"]))
        if kind == "replace":
            item[draw(st.sampled_from(ORDER_FIELDS))] = draw(junk)
        elif kind == "drop":
            item.pop(draw(st.sampled_from(["sku", "quantity"])), None)
        elif kind == "extra":
            key = draw(extra_keys)
            item[key] = draw(junk)
        elif kind == "nasty":
            item[draw(st.sampled_from(["buyer_region", "channel", "external_id", "sku"]))] = draw(nasty_text)
        else:
            return draw(junk), False
    return item, False


@st.composite
def requests_(draw: st.DrawFn) -> dict[str, Any]:
    """One POST: a single order, a batch, or something that is neither."""
    shape = draw(st.sampled_from(["single", "single", "batch", "batch", "batch", "other"]))
    headers: dict[str, str] = {}
    key_valid = True
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.one_of(st.sampled_from(["k-1", "k-2"]), st.sampled_from(["", "k" * 129, "ключ", "a\x01"])))
        headers["Idempotency-Key"] = key
        key_valid = key in ("k-1", "k-2")
    if shape == "single":
        body, valid = draw(order_items())
    elif shape == "batch":
        drawn = draw(st.lists(order_items(), min_size=0, max_size=6))
        body = {"orders": [item for item, _ in drawn]}
        valid = bool(drawn) and all(ok for _, ok in drawn)
        ext = [i.get("external_id") for i in body["orders"] if isinstance(i, dict)]
        # The API compares external ids as it stores them: NFC-normalised and trimmed.
        ext = [unicodedata.normalize("NFC", e).strip() for e in ext if isinstance(e, str)]
        ext = [e for e in ext if e]
        valid = valid and len(ext) == len(set(ext))
        if draw(st.integers(0, 9)) == 0:
            body[draw(extra_keys)] = draw(junk)
            valid = False
    else:
        body, valid = draw(junk), False
    return {
        "body": body,
        "valid": valid and key_valid,
        "headers": headers,
        "ascii": draw(st.booleans()),
    }


# --- checking ------------------------------------------------------------------------------------


def new_live_session(api: Api) -> int:
    created = api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    assert api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    return sid


def sql_rows(store: Any, sid: int) -> dict[str, tuple[Any, ...]]:
    with store.db.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, sku, quantity, unit_price_fen, amount_fen, buyer_region, status "
                "FROM orders WHERE session_id = :s"
            ),
            {"s": sid},
        ).all()
    # SQLite hands back the UUID as 32 hex digits, PostgreSQL as a UUID.
    return {str(r[0]).replace("-", ""): tuple(r[1:]) for r in rows}


def sql_sums(store: Any, sid: int) -> dict[str, Any]:
    """The session's figures, summed by SQL here rather than by the app's code."""
    with store.db.connect() as conn:
        totals = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(quantity), 0), coalesce(sum(amount_fen), 0) "
                "FROM orders WHERE session_id = :s AND status = 'paid'"
            ),
            {"s": sid},
        ).one()
        by_product = conn.execute(
            sa.text(
                "SELECT sku, sum(quantity), sum(amount_fen) FROM orders "
                "WHERE session_id = :s AND status = 'paid' GROUP BY sku"
            ),
            {"s": sid},
        ).all()
        by_region = conn.execute(
            sa.text(
                "SELECT buyer_region, count(*), sum(amount_fen) FROM orders "
                "WHERE session_id = :s AND status = 'paid' GROUP BY buyer_region"
            ),
            {"s": sid},
        ).all()
    return {
        "orders": int(totals[0]),
        "items": int(totals[1]),
        "amount_fen": int(totals[2]),
        "by_product": {sku: [int(q), int(a)] for sku, q, a in by_product},
        "by_region": {region: [int(c), int(a)] for region, c, a in by_region},
    }


def redis_figures(store: Any, sid: int) -> dict[str, Any]:
    live = store.totals.read(session_id=sid)
    assert live is not None, "a live session's totals vanished from Redis"
    f = live.figures
    return {
        "orders": f.orders, "items": f.items, "amount_fen": f.amount_fen,
        "by_product": dict(f.by_product), "by_region": dict(f.by_region),
    }


def check_totals(api: Api, store: Any, sid: int) -> dict[str, Any]:
    expected = sql_sums(store, sid)
    assert redis_figures(store, sid) == expected
    view = api.get(f"/api/v1/sessions/{sid}/totals").json
    assert (view["orders"], view["items"], view["amount_fen"]) == (
        expected["orders"], expected["items"], expected["amount_fen"],
    )
    for sku in SKUS:
        q, a = expected["by_product"].get(sku, [0, 0])
        assert view["by_product"][sku] == {"quantity": q, "amount_fen": a}
    assert view["by_region"] == {r: {"orders": c, "amount_fen": a} for r, (c, a) in expected["by_region"].items()}
    return expected


def encode(body: Any, ascii_only: bool) -> bytes:
    # "surrogatepass" lets a lone surrogate through as (invalid) UTF-8 bytes.
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def post_and_check(api: Api, store: Any, sid: int, req: dict[str, Any], stats: Counter[str]) -> list[str]:
    before_rows = sql_rows(store, sid)
    before_redis = redis_figures(store, sid)
    r = api.client.post(
        f"/api/v1/sessions/{sid}/orders",
        data=encode(req["body"], req["ascii"]),
        content_type="application/json",
        headers=api._headers(req["headers"]),
    )
    assert r.status_code < 500, (r.status_code, r.data[:500])
    assert r.mimetype == "application/json"
    after_rows = sql_rows(store, sid)
    if r.status_code in (200, 201):
        stats["stored"] += 1
        body = req["body"]
        is_batch = isinstance(body, dict) and "orders" in body
        acked = r.json["orders"] if is_batch else [r.json["order"]]
        assert len(acked) == (len(body["orders"]) if is_batch else 1)
        ids = [o["id"].replace("-", "") for o in acked]
        assert len(set(ids)) == len(ids)
        new = set(ids) - set(before_rows)
        # Every acknowledged order is in SQL; nothing else was added.
        assert set(after_rows) == set(before_rows) | set(ids)
        assert len(after_rows) == len(before_rows) + len(new)
        assert r.status_code == (201 if new else 200)
        for o, oid in zip(acked, ids, strict=True):
            sku, quantity, price, amount, region, _status = after_rows[oid]
            assert (o["sku"], o["quantity"], o["unit_price_fen"], o["amount_fen"], o["buyer_region"]) == (
                sku, quantity, price, amount, region,
            )
            assert amount == quantity * price
            if oid in new:
                assert o["status"] == "paid"
        return ids
    stats["refused"] += 1
    assert 400 <= r.status_code < 500
    error = r.json["error"]
    assert error["code"] and error["message"]
    # A refusal stores nothing: not one row, not one fen in Redis.
    assert after_rows == before_rows
    assert redis_figures(store, sid) == before_redis
    if req["valid"] and not before_rows:
        # A request built valid, sent to a fresh session, may only be refused as a conflict.
        raise AssertionError(f"valid request refused: {r.status_code} {error}")
    return []


# --- properties --------------------------------------------------------------------------------


def test_arbitrary_order_requests_keep_sql_and_redis_consistent(host_api: Api, store: Any) -> None:
    stats: Counter[str] = Counter()

    @PROPERTY_SETTINGS
    @given(
        reqs=st.lists(requests_(), min_size=1, max_size=3),
        refunds=st.lists(st.integers(0, 50), max_size=2),
    )
    def run(reqs: list[dict[str, Any]], refunds: list[int]) -> None:
        sid = new_live_session(host_api)
        check_totals(host_api, store, sid)
        acked: list[str] = []
        for req in reqs:
            acked += post_and_check(host_api, store, sid, req, stats)
            check_totals(host_api, store, sid)
        for pick in refunds:
            if not acked:
                break
            oid = acked[pick % len(acked)]
            r = host_api.post(f"/api/v1/sessions/{sid}/orders/{oid}/refund")
            assert r.status_code == 200, r.json
            stats["refunded"] += 1
            check_totals(host_api, store, sid)

    run()
    # The generator must exercise both sides of the contract.
    assert stats["stored"] >= 20 and stats["refused"] >= 20, stats


def test_valid_batches_are_counted_exactly_once(host_api: Api, store: Any) -> None:
    """Only valid batches, repeated: a repeat is 200, acknowledges the same ids, and counts nothing twice."""

    valid_items = order_items().filter(lambda pair: pair[1]).map(lambda pair: pair[0])

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(items=st.lists(valid_items, min_size=1, max_size=20, unique_by=lambda i: i.get("external_id") or id(i)),
           key=st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=20))
    def run(items: list[dict[str, Any]], key: str) -> None:
        # ``external_id`` values that normalise alike would be duplicates; keep the first of each.
        seen: set[str] = set()
        kept = []
        for item in items:
            ext = item.get("external_id")
            norm = validation.text(ext, "external_id", max_length=128) if isinstance(ext, str) else ""
            if norm and norm in seen:
                continue
            seen.add(norm)
            kept.append(item)
        sid = new_live_session(host_api)
        body = {"orders": kept}
        headers = {"Idempotency-Key": key}
        first = host_api.post(f"/api/v1/sessions/{sid}/orders", json=body, headers=headers)
        assert first.status_code == 201, first.json
        expected = check_totals(host_api, store, sid)
        assert expected["orders"] == len(kept)
        again = host_api.post(f"/api/v1/sessions/{sid}/orders", json=body, headers=headers)
        assert again.status_code == 200, again.json
        assert [o["id"] for o in again.json["orders"]] == [o["id"] for o in first.json["orders"]]
        assert check_totals(host_api, store, sid) == expected
        assert len(sql_rows(store, sid)) == len(kept)

    run()


@settings(max_examples=500, deadline=None)
@given(body=st.one_of(junk, st.dictionaries(st.sampled_from([*ORDER_FIELDS, "orders", "x"]), junk, max_size=8)))
def test_parse_order_request_only_raises_invalid_input(body: Any) -> None:
    """The pure parser: any decoded JSON either parses to in-range orders or is an InvalidInput."""
    try:
        orders, _ = validation.parse_order_request(body, max_batch=MAX_BATCH)
    except InvalidInput as exc:
        assert exc.field
        exc.field.encode("utf-8")  # the field is echoed back in a JSON error
        return
    for o in orders:
        assert validation.SKU_RE.match(o.sku) and "\n" not in o.sku
        assert isinstance(o.quantity, int) and not isinstance(o.quantity, bool)
        assert 1 <= o.quantity <= validation.MAX_QUANTITY
        assert o.unit_price_fen is None or 0 <= o.unit_price_fen <= validation.MAX_UNIT_PRICE_FEN
        for value, limit in ((o.buyer_region, 64), (o.channel, 32), (o.external_id or "", 128)):
            assert len(value) <= limit
            value.encode("utf-8")
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
