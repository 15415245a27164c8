"""The pure validation functions: every refusal is an ``InvalidInput`` naming its field.

No Flask here: these call ``livesale.core.validation`` on decoded JSON values.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from livesale.core import validation as v
from livesale.core.errors import InvalidInput

MAX_BATCH = 1000


def invalid(call: Callable[[], Any], field: str) -> InvalidInput:
    """Assert ``call()`` raises ``InvalidInput`` naming exactly ``field``."""
    with pytest.raises(InvalidInput) as info:
        call()
    assert info.value.field == field, (info.value.field, info.value.message)
    assert info.value.code == "invalid"
    assert info.value.message
    return info.value


def order(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": "APRICOT-5KG", "quantity": 2}
    body.update(overrides)
    return body


def parse(body: Any) -> tuple[list[v.OrderInput], bool]:
    return v.parse_order_request(body, max_batch=MAX_BATCH)


def batch_with(bad: dict[str, Any], *, at: int = 3, size: int = 5) -> dict[str, Any]:
    items: list[Any] = [order(external_id=f"ok-{i}") for i in range(size)]
    items[at] = bad
    return {"orders": items}


# --- a valid order ------------------------------------------------------------------


def test_single_valid_order_is_parsed_and_normalised() -> None:
    orders, is_batch = parse(
        order(quantity=3, unit_price_fen=6980, buyer_region="  浙江杭州 ", channel="douyin",
              external_id="dy-1", currency="CNY")
    )
    assert is_batch is False
    [o] = orders
    assert (o.sku, o.quantity, o.unit_price_fen) == ("APRICOT-5KG", 3, 6980)
    assert (o.buyer_region, o.channel, o.external_id, o.field) == ("浙江杭州", "douyin", "dy-1", "")


def test_optional_fields_default() -> None:
    [o], _ = parse(order(unit_price_fen=None, buyer_region=None, external_id=""))
    assert o.unit_price_fen is None and o.buyer_region == "" and o.channel == "" and o.external_id is None


def test_text_is_nfc_normalised() -> None:
    decomposed = "Cafe\u0301"
    [o], _ = parse(order(buyer_region=decomposed))
    assert o.buyer_region == "Café" and len(o.buyer_region) == 4


def test_batch_keeps_item_paths() -> None:
    orders, is_batch = parse({"orders": [order(), order(sku="DRIED-1KG", quantity=1)]})
    assert is_batch is True
    assert [o.field for o in orders] == ["orders[0]", "orders[1]"]


@pytest.mark.parametrize("quantity", [1, v.MAX_QUANTITY])
def test_quantity_bounds_are_inclusive(quantity: int) -> None:
    [o], _ = parse(order(quantity=quantity))
    assert o.quantity == quantity


@pytest.mark.parametrize("price", [0, v.MAX_UNIT_PRICE_FEN])
def test_price_bounds_are_inclusive(price: int) -> None:
    [o], _ = parse(order(unit_price_fen=price))
    assert o.unit_price_fen == price


def test_text_limits_are_inclusive() -> None:
    [o], _ = parse(order(buyer_region="区" * 64, channel="c" * 32, external_id="e" * 128))
    assert len(o.buyer_region) == 64 and len(o.channel) == 32 and len(o.external_id or "") == 128


# --- numbers ---------------------------------------------------------------------------

NOT_INTEGERS = [
    pytest.param(2.0, id="float-2.0"),
    pytest.param(json.loads("1e3"), id="float-1e3"),
    pytest.param(2.5, id="fraction"),
    pytest.param("2", id="numeric-string"),
    pytest.param("２", id="fullwidth-digit"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="null"),
    pytest.param([2], id="array"),
    pytest.param({"value": 2}, id="object"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
]


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_quantity_must_be_a_json_integer(value: Any) -> None:
    err = invalid(lambda: parse(order(quantity=value)), "quantity")
    assert "integer" in err.message


@pytest.mark.parametrize("value", [v for v in NOT_INTEGERS if v.values[0] is not None])
def test_unit_price_must_be_a_json_integer(value: Any) -> None:
    invalid(lambda: parse(order(unit_price_fen=value)), "unit_price_fen")


@pytest.mark.parametrize("quantity", [0, -1, -(10**30), v.MAX_QUANTITY + 1, 10**30])
def test_quantity_out_of_range(quantity: int) -> None:
    err = invalid(lambda: parse(order(quantity=quantity)), "quantity")
    assert "between 1 and 10000" in err.message


@pytest.mark.parametrize("price", [-1, v.MAX_UNIT_PRICE_FEN + 1, 10**30, -(10**30)])
def test_unit_price_out_of_range(price: int) -> None:
    invalid(lambda: parse(order(unit_price_fen=price)), "unit_price_fen")


def test_nan_cannot_come_from_json_parsing() -> None:
    """The API parses with ``parse_constant`` refusing NaN/Infinity; the same rule here."""

    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    for raw in ('{"quantity": NaN}', '{"quantity": Infinity}', '{"quantity": -Infinity}'):
        with pytest.raises(ValueError):
            json.loads(raw, parse_constant=reject)
    # Even if a float NaN got through, the integer check refuses it.
    invalid(lambda: v.integer(float("nan"), "quantity", minimum=1, maximum=10), "quantity")


def test_integer_type_names_in_message() -> None:
    assert "boolean" in invalid(lambda: v.integer(True, "x", minimum=0, maximum=1), "x").message
    assert "null" in invalid(lambda: v.integer(None, "x", minimum=0, maximum=1), "x").message
    assert "fraction" in invalid(lambda: v.integer(1.0, "x", minimum=0, maximum=1), "x").message
    assert "string" in invalid(lambda: v.integer("1", "x", minimum=0, maximum=1), "x").message


# --- sku, currency, required and unknown fields --------------------------------------------


@pytest.mark.parametrize(
    "sku",
    ["", " APRICOT-5KG", "APRICOT 5KG", "-APRICOT", "APRICOT-5KG\n", "杏子", "A" * 65, 5, None, ["APRICOT-5KG"]],
)
def test_sku_shape(sku: Any) -> None:
    invalid(lambda: parse(order(sku=sku)), "sku")


@pytest.mark.parametrize("missing", ["sku", "quantity"])
def test_required_order_fields(missing: str) -> None:
    body = order()
    del body[missing]
    invalid(lambda: parse(body), missing)
    invalid(lambda: parse(batch_with(body, at=1)), f"orders[1].{missing}")


@pytest.mark.parametrize("currency", ["USD", "cny", "", None, 156, ["CNY"]])
def test_wrong_currency(currency: Any) -> None:
    invalid(lambda: parse(order(currency=currency)), "currency")
    invalid(lambda: parse(batch_with(order(currency=currency), at=0)), "orders[0].currency")


def test_unknown_fields_are_named() -> None:
    invalid(lambda: parse(order(price=100)), "price")
    invalid(lambda: parse(order(Quantity=1)), "Quantity")
    invalid(lambda: parse(batch_with(order(note="hi"), at=2)), "orders[2].note")
    invalid(lambda: parse({"orders": [order()], "dry_run": True}), "dry_run")


def test_unknown_field_with_lone_surrogate_is_named_safely() -> None:
    """JSON may spell a lone surrogate key ("\\ud800"); the error must still be encodable."""
    body = json.loads('{"sku": "APRICOT-5KG", "quantity": 1, "\\ud800x": 1}')
    err = invalid(lambda: parse(body), "\\ud800x")
    assert err.field is not None
    err.field.encode("utf-8")  # would raise on a lone surrogate


@pytest.mark.parametrize("body", [[], [order()], "order", 3, None, True])
def test_body_must_be_an_object(body: Any) -> None:
    invalid(lambda: parse(body), "body")


# --- text fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "limit"), [("buyer_region", 64), ("channel", 32), ("external_id", 128)]
)
def test_over_long_text(name: str, limit: int) -> None:
    err = invalid(lambda: parse(order(**{name: "x" * (limit + 1)})), name)
    assert str(limit) in err.message
    invalid(lambda: parse(batch_with(order(**{name: "区" * (limit + 1)}), at=3)), f"orders[3].{name}")


def test_length_is_counted_after_trimming() -> None:
    [o], _ = parse(order(buyer_region="  " + "x" * 64 + "  "))
    assert o.buyer_region == "x" * 64


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("杭\x00州", id="NUL"),
        pytest.param("a\x07b", id="BEL"),
        pytest.param("a\x1bb", id="ESC"),
        pytest.param("a\nb", id="newline-inside"),
        pytest.param("a\tb", id="tab-inside"),
        pytest.param("a\x7fb", id="DEL"),
        pytest.param("a\x85b", id="C1-NEL"),
        pytest.param("a\x9fb", id="C1-APC"),
        pytest.param("a\u2028b", id="line-separator"),
        pytest.param("a\u2029b", id="paragraph-separator"),
        pytest.param("a\ud800b", id="lone-high-surrogate"),
        pytest.param("\udfff", id="lone-low-surrogate"),
    ],
)
@pytest.mark.parametrize("name", ["buyer_region", "channel", "external_id"])
def test_control_characters_are_refused(value: str, name: str) -> None:
    err = invalid(lambda: parse(order(**{name: value})), name)
    assert "control" in err.message


@pytest.mark.parametrize("value", [5, True, ["a"], {"a": 1}])
def test_text_must_be_a_string(value: Any) -> None:
    invalid(lambda: parse(order(buyer_region=value)), "buyer_region")


def test_required_text() -> None:
    invalid(lambda: v.text(None, "title", max_length=10, required=True), "title")
    invalid(lambda: v.text("   ", "title", max_length=10, required=True), "title")


# --- batches ---------------------------------------------------------------------------------


def test_error_names_the_item_index() -> None:
    invalid(lambda: parse(batch_with(order(quantity=2.0), at=3)), "orders[3].quantity")
    invalid(lambda: parse(batch_with(order(quantity=0), at=0)), "orders[0].quantity")
    invalid(lambda: parse(batch_with(order(unit_price_fen=100_000_001), at=4)), "orders[4].unit_price_fen")
    invalid(lambda: parse(batch_with("APRICOT-5KG", at=2)), "orders[2]")  # type: ignore[arg-type]
    invalid(lambda: parse(batch_with(None, at=1)), "orders[1]")  # type: ignore[arg-type]


def test_first_bad_item_is_reported() -> None:
    body = batch_with(order(quantity=0), at=1)
    body["orders"][3] = order(quantity=-5)
    invalid(lambda: parse(body), "orders[1].quantity")


def test_duplicate_external_id_in_a_batch() -> None:
    items = [order(external_id="dy-1"), order(external_id="dy-2"), order(external_id="dy-1")]
    err = invalid(lambda: parse({"orders": items}), "orders[2].external_id")
    assert "twice" in err.message


def test_duplicate_external_id_after_normalisation() -> None:
    items = [order(external_id="dy-é"), order(external_id=" dy-e\u0301 ")]
    invalid(lambda: parse({"orders": items}), "orders[1].external_id")


def test_orders_without_external_id_are_not_duplicates() -> None:
    orders, _ = parse({"orders": [order(), order(), order(external_id=""), order(external_id=None)]})
    assert len(orders) == 4


def test_batch_size_limits() -> None:
    orders, _ = parse({"orders": [order() for _ in range(MAX_BATCH)]})
    assert len(orders) == MAX_BATCH
    err = invalid(lambda: parse({"orders": [order() for _ in range(MAX_BATCH + 1)]}), "orders")
    assert "1000" in err.message
    invalid(lambda: parse({"orders": []}), "orders")


@pytest.mark.parametrize("items", [None, {}, "x", 3, {"0": {"sku": "A", "quantity": 1}}])
def test_orders_must_be_an_array(items: Any) -> None:
    invalid(lambda: parse({"orders": items}), "orders")


def test_parse_order_alone_uses_prefix() -> None:
    invalid(lambda: v.parse_order(order(quantity=True), prefix="orders[7]"), "orders[7].quantity")


# --- Idempotency-Key ------------------------------------------------------------------------------


def test_idempotency_key_accepts_printable_ascii() -> None:
    assert v.idempotency_key(None) is None
    assert v.idempotency_key(" key-1 ") == "key-1"
    assert v.idempotency_key("k" * 128) == "k" * 128


@pytest.mark.parametrize("key", ["", "   ", "k" * 129, "键", "café", "a\x01b", "a\x7fb"])
def test_idempotency_key_refused(key: str) -> None:
    invalid(lambda: v.idempotency_key(key), "Idempotency-Key")


# --- sessions --------------------------------------------------------------------------------------

SESSION: dict[str, Any] = {
    "title": "喀什杏子直播",
    "village": "疏附县",
    "hosts": ["阿依古丽"],
    "platform": "douyin",
    "goal_fen": 6_000_000,
    "timezone": "Asia/Shanghai",
    "scheduled_start": "2026-06-01T20:00:00+08:00",
    "planned_duration_min": 90,
    "products": [
        {"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit": "2.5 kg box", "unit_price_fen": 6980, "stock": 100},
        {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit_price_fen": 5900},
    ],
}


def session(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(SESSION)
    body.update(overrides)
    return body


def product(i: int, **overrides: Any) -> dict[str, Any]:
    return {"sku": f"SKU-{i}", "name": f"product {i}", "unit_price_fen": 100 + i, **overrides}


def test_valid_session() -> None:
    parsed = v.parse_session(session())
    assert parsed.title == "喀什杏子直播" and parsed.currency == "CNY"
    assert parsed.scheduled_start == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert [p.sku for p in parsed.products] == ["APRICOT-5KG", "DRIED-1KG"]
    assert parsed.products[1].stock is None and parsed.products[1].unit == ""


def test_session_defaults() -> None:
    parsed = v.parse_session({"title": "t", "products": [product(1)]})
    assert (parsed.timezone, parsed.currency, parsed.goal_fen, parsed.planned_duration_min) == (
        "Asia/Shanghai", "CNY", 0, 120,
    )
    assert parsed.scheduled_start is None and parsed.hosts == []


def test_session_zulu_time_is_accepted() -> None:
    parsed = v.parse_session(session(scheduled_start="2026-06-01T12:00:00Z"))
    assert parsed.scheduled_start == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_duplicate_sku() -> None:
    products = [product(1), product(2), product(1, name="again")]
    err = invalid(lambda: v.parse_session(session(products=products)), "products[2].sku")
    assert "twice" in err.message


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "asia/shanghai", "UTC+8", "+08:00", 8, None, ["Asia/Shanghai"]])
def test_bad_timezone(tz: Any) -> None:
    invalid(lambda: v.parse_session(session(timezone=tz)), "timezone")


@pytest.mark.parametrize(
    "start",
    [
        pytest.param("tomorrow", id="words"),
        pytest.param("2026-06-01T20:00:00", id="no-offset"),
        pytest.param("2026-06-01", id="date-only"),
        pytest.param("2026-13-01T20:00:00+08:00", id="month-13"),
        pytest.param("2026-02-30T20:00:00+08:00", id="feb-30"),
        pytest.param("2026-06-01T20:00:00+25:00", id="offset-25h"),
        pytest.param("2026-06-01T20:00:00.000000000000000000000000+08:00", id="over-40-chars"),
        pytest.param("0001-01-01T00:00:00+01:00", id="before-year-1-in-utc"),
        pytest.param("9999-12-31T23:59:59-01:00", id="after-year-9999-in-utc"),
        pytest.param(1_780_000_000, id="epoch-number"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_scheduled_start(start: Any) -> None:
    invalid(lambda: v.parse_session(session(scheduled_start=start)), "scheduled_start")


def test_too_many_products() -> None:
    parsed = v.parse_session(session(products=[product(i) for i in range(v.MAX_PRODUCTS)]))
    assert len(parsed.products) == v.MAX_PRODUCTS
    err = invalid(lambda: v.parse_session(session(products=[product(i) for i in range(v.MAX_PRODUCTS + 1)])),
                  "products")
    assert "200" in err.message


@pytest.mark.parametrize("products", [None, [], {}, "APRICOT-5KG"])
def test_products_required(products: Any) -> None:
    body = session(products=products)
    if products is None:
        del body["products"]
    invalid(lambda: v.parse_session(body), "products")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"sku": "A B"}, "products[1].sku"),
        ({"sku": "SKU-1\n"}, "products[1].sku"),
        ({"sku": None}, "products[1].sku"),
        ({"name": ""}, "products[1].name"),
        ({"name": "n" * 201}, "products[1].name"),
        ({"name": "a\x00b"}, "products[1].name"),
        ({"unit": "u" * 51}, "products[1].unit"),
        ({"unit_price_fen": 69.8}, "products[1].unit_price_fen"),
        ({"unit_price_fen": "6980"}, "products[1].unit_price_fen"),
        ({"unit_price_fen": -1}, "products[1].unit_price_fen"),
        ({"unit_price_fen": v.MAX_UNIT_PRICE_FEN + 1}, "products[1].unit_price_fen"),
        ({"stock": -1}, "products[1].stock"),
        ({"stock": 1.5}, "products[1].stock"),
        ({"stock": v.MAX_STOCK + 1}, "products[1].stock"),
        ({"colour": "orange"}, "products[1].colour"),
    ],
)
def test_bad_product(bad: dict[str, Any], field: str) -> None:
    products = [product(0), {**product(1), **bad}]
    invalid(lambda: v.parse_session(session(products=products)), field)


def test_product_price_is_required() -> None:
    products = [{"sku": "A", "name": "a"}]
    invalid(lambda: v.parse_session(session(products=products)), "products[0].unit_price_fen")
    invalid(lambda: v.parse_session(session(products=["A"])), "products[0]")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": None}, "title"),
        ({"title": "  "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": "a\x1bb"}, "title"),
        ({"village": "v" * 101}, "village"),
        ({"platform": 3}, "platform"),
        ({"hosts": "阿依古丽"}, "hosts"),
        ({"hosts": [f"h{i}" for i in range(v.MAX_HOSTS + 1)]}, "hosts"),
        ({"hosts": ["a", ""]}, "hosts[1]"),
        ({"hosts": ["a", 7]}, "hosts[1]"),
        ({"goal_fen": -1}, "goal_fen"),
        ({"goal_fen": 1.0}, "goal_fen"),
        ({"goal_fen": 10**30}, "goal_fen"),
        ({"currency": "USD"}, "currency"),
        ({"currency": None}, "currency"),
        ({"planned_duration_min": 0}, "planned_duration_min"),
        ({"planned_duration_min": 24 * 60 + 1}, "planned_duration_min"),
        ({"planned_duration_min": True}, "planned_duration_min"),
        ({"status": "live"}, "status"),
        ({"owner_id": 1}, "owner_id"),
    ],
)
def test_bad_session_field(overrides: dict[str, Any], field: str) -> None:
    invalid(lambda: v.parse_session(session(**overrides)), field)


@pytest.mark.parametrize("body", [[], "x", None, 1])
def test_session_body_must_be_an_object(body: Any) -> None:
    invalid(lambda: v.parse_session(body), "body")


def test_parse_datetime_alone() -> None:
    assert v.parse_datetime("2026-06-01T00:00:00-05:00", "from") == datetime(2026, 6, 1, 5, tzinfo=UTC)
    invalid(lambda: v.parse_datetime("2026-06-01T00:00:00", "from"), "from")
    invalid(lambda: v.parse_datetime("0001-01-01T00:00:00+00:01", "to"), "to")


def test_unknown_empty_key_still_names_a_field() -> None:
    invalid(lambda: parse(order(**{"": 1})), '""')
    invalid(lambda: parse(batch_with(order(**{"": 1}), at=1)), 'orders[1].""')
