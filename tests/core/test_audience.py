"""Audience figures (issue 15 item 3): the conversion math against figures worked out by hand here, the
parse of what a host sends (every refusal names its field and stores nothing), and the service on the
run's real database and Redis: who may, when, partial updates, and which sales the figures are made of
(paid orders only; the platform's record once it is final)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import audience as aud
from livesale.core import final as final_service
from livesale.core import orders as order_service
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core import validation as v
from livesale.core.auth import Actor
from livesale.core.db import write_transaction
from livesale.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import host_actor, order_input

NONE = dict.fromkeys(aud.AUDIENCE_FIELDS)


def figures(amount_fen: int, orders: int, viewers: int | None) -> dict[str, object]:
    return aud.audience_figures(amount_fen=amount_fen, orders=orders, audience={**NONE, "viewers": viewers})


# --- the math, against numbers worked out by hand --------------------------------------------------


def test_a_county_session_worked_by_hand() -> None:
    # ¥60,000.00 in 1,234 orders before 56,789 viewers.
    # GPM: 6,000,000 × 1000 = 6,000,000,000; 56,789 × 105,654 = 5,999,985,006, remainder 14,994 < 28,394.5 → 105,654.
    # Per viewer: 56,789 × 105 = 5,962,845, remainder 37,155 > 28,394.5 → 106 fen.
    # Average order: 1,234 × 4,862 = 5,999,708, remainder 292 < 617 → 4,862 fen.
    # Orders per viewer: 1,234 ÷ 56,789 = 0.02172… → 0.0217.
    assert figures(6_000_000, 1_234, 56_789) == {
        "orders_per_viewer": 0.0217, "sales_per_viewer_fen": 106, "gpm_fen": 105_654, "average_order_fen": 4_862,
    }


def test_a_small_village_session_by_hand() -> None:
    # ¥1,234.56 in 17 orders, 389 viewers: GPM 123,456,000 ÷ 389 = 317,367.6… → 317,368;
    # per viewer 123,456 ÷ 389 = 317.37… → 317; average 123,456 ÷ 17 = 7,262.1… → 7,262; 17 ÷ 389 = 0.04370… → 0.0437.
    assert figures(123_456, 17, 389) == {
        "orders_per_viewer": 0.0437, "sales_per_viewer_fen": 317, "gpm_fen": 317_368, "average_order_fen": 7_262,
    }


def test_missing_viewers_leave_the_per_viewer_figures_unknown() -> None:
    assert figures(6_000_000, 1_234, None) == {
        "orders_per_viewer": None, "sales_per_viewer_fen": None, "gpm_fen": None, "average_order_fen": 4_862,
    }
    # Only other audience figures given: still no viewers.
    other = aud.audience_figures(amount_fen=500, orders=1, audience={**NONE, "peak_viewers": 40, "likes": 9})
    assert (other["gpm_fen"], other["orders_per_viewer"], other["average_order_fen"]) == (None, None, 500)


def test_zero_viewers_is_no_base_not_a_division_error() -> None:
    assert figures(6_000_000, 1_234, 0) == {
        "orders_per_viewer": None, "sales_per_viewer_fen": None, "gpm_fen": None, "average_order_fen": 4_862,
    }


def test_zero_orders() -> None:
    # Viewers but no sales: a real 0 per viewer; the average order has no base.
    assert figures(0, 0, 800) == {
        "orders_per_viewer": 0.0, "sales_per_viewer_fen": 0, "gpm_fen": 0, "average_order_fen": None,
    }
    assert figures(0, 0, None) == dict.fromkeys(aud.FIGURE_FIELDS)


@pytest.mark.parametrize(
    ("amount", "orders", "viewers", "key", "want"),
    [
        # Exactly half a fen: to the even neighbour, never always up.
        (1_001, 2, None, "average_order_fen", 500),        # 500.5 → 500 (half-up would say 501)
        (1_003, 2, None, "average_order_fen", 502),        # 501.5 → 502
        (5, 1, 2, "sales_per_viewer_fen", 2),              # 2.5 → 2
        (7, 1, 2, "sales_per_viewer_fen", 4),              # 3.5 → 4
        (1, 1, 2_000, "gpm_fen", 0),                       # 1,000 ÷ 2,000 = 0.5 → 0
        (3, 1, 2_000, "gpm_fen", 2),                       # 3,000 ÷ 2,000 = 1.5 → 2
        (5_000_005, 1, 10_000, "gpm_fen", 500_000),        # 5,000,005,000 ÷ 10,000 = 500,000.5 → 500,000
        (0, 1, 20_000, "orders_per_viewer", 0.0),          # 0.00005 → 0.0000
        (0, 3, 20_000, "orders_per_viewer", 0.0002),       # 0.00015 → 0.0002
        (0, 5, 20_000, "orders_per_viewer", 0.0002),       # 0.00025 → 0.0002
    ],
)
def test_ties_round_half_even(amount: int, orders: int, viewers: int | None, key: str, want: object) -> None:
    assert figures(amount, orders, viewers)[key] == want


def test_divide_half_even_exactly() -> None:
    assert [aud.divide_half_even(n, 4) for n in (2, 6, 10, 5, 7, -2, -6, -5)] == [0, 2, 2, 1, 2, 0, -2, -1]
    big = 10**30 + 1
    assert aud.divide_half_even(big * 2 + 1, 2) == big + 1  # integers, never floats: exact at any size


# --- what a host sends -------------------------------------------------------------------------------


def test_each_field_is_optional_and_null_clears() -> None:
    assert aud.parse_audience({}) == {}
    assert aud.parse_audience({"viewers": 56_789, "likes": None}) == {"viewers": 56_789, "likes": None}
    full = {"viewers": 0, "peak_viewers": 1, "new_followers": 2, "likes": aud.MAX_AUDIENCE, "comments": 4}
    assert aud.parse_audience(full) == full


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"viewers": True}, "viewers", "integer (got boolean)"),
        ({"peak_viewers": 1.5}, "peak_viewers", "integer (got number with a fraction)"),
        ({"new_followers": 2.0}, "new_followers", "integer (got number with a fraction)"),
        ({"likes": "100"}, "likes", "integer (got string)"),
        ({"comments": -1}, "comments", "not be negative"),
        ({"viewers": aud.MAX_AUDIENCE + 1}, "viewers", f"at most {aud.MAX_AUDIENCE}"),
        ({"viewers": 2**63}, "viewers", "at most"),
        ({"viewers": [1]}, "viewers", "integer (got array)"),
        ({"viewers": {"n": 1}}, "viewers", "integer (got object)"),
        ({"views": 10}, "views", "unknown field"),
        ({"viewers": 1, "": 2}, '""', "unknown field"),
        ([], "body", "JSON object"),
        (None, "body", "JSON object"),
    ],
)
def test_refusals_name_their_field(body: Any, field: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        aud.parse_audience(body)
    assert caught.value.field == field
    assert says in caught.value.message


def test_a_form_hears_of_every_wrong_field_at_once() -> None:
    body = {"viewers": -5, "peak_viewers": 10, "likes": "many", "nope": 1}
    with pytest.raises(v.InvalidFields) as caught:
        aud.parse_audience(body, all_errors=True)
    assert [e.field for e in caught.value.errors] == ["nope", "viewers", "likes"]
    with pytest.raises(InvalidInput) as first:  # the API names the first only
        aud.parse_audience(body)
    assert first.value.field == "nope" and not isinstance(first.value, v.InvalidFields)


@pytest.mark.parametrize(
    ("typed", "body"),
    [
        ("56789", 56_789), ("56,789", 56_789), (" 56 789 ", 56_789), ("５６，７８９", 56_789), ("56，789", 56_789),
        ("", None), ("   ", None), ("0", 0), ("12.0", 12), ("-3", -3), ("1.5", 1.5), ("many", "many"),
        ("1e5", "1e5"), ("9" * 41, "9" * 41),
    ],
)
def test_form_boxes_become_the_api_body(typed: str, body: Any) -> None:
    assert aud.from_form({"viewers": typed}) == {"viewers": body}


def test_form_refusals_are_the_apis() -> None:
    assert aud.from_form({"likes": "x", "other": "1"}) == {"likes": "x"}  # only the form's own boxes
    for typed, says in [("-3", "not be negative"), ("1.5", "fraction"), ("many", "got string"), ("9" * 20, "at most")]:
        with pytest.raises(InvalidInput, match=says) as caught:
            aud.parse_audience(aud.from_form({"comments": typed}))
        assert caught.value.field == "comments"


# --- the service ---------------------------------------------------------------------------------------


@pytest.fixture
def host(store: Any, users: Users) -> Actor:
    users.token("host")
    return host_actor(store.db)


def _session(store: Any, host: Actor, *, start: bool = True) -> int:
    info = session_service.create_session(store, actor=host, data=v.parse_session(APRICOT_SESSION))
    if start:
        session_service.start_session(store, actor=host, session_id=info.id)
    return info.id


def _rows(store: Any) -> list[tuple[Any, ...]]:
    a = t.session_audience
    with store.db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(a.c.session_id, *(a.c[n] for n in aud.AUDIENCE_FIELDS),
                                                         a.c.updated_by).order_by(a.c.session_id))]


def test_partial_updates_keep_the_rest_and_null_clears(store: Any, host: Actor) -> None:
    sid = _session(store, host)
    assert aud.set_audience(store, actor=host, session_id=sid, body={}) == NONE
    assert _rows(store) == []  # nothing given, nothing stored
    got = aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 56_789, "likes": 120_345})
    assert got == {**NONE, "viewers": 56_789, "likes": 120_345}
    got = aud.set_audience(store, actor=host, session_id=sid, body={"peak_viewers": 3_120, "likes": None})
    assert got == {**NONE, "viewers": 56_789, "peak_viewers": 3_120}
    with store.db.connect() as conn:
        assert aud.load_audience(conn, session_id=sid) == got
    assert _rows(store) == [(sid, 56_789, 3_120, None, None, None, host.user_id)]


def test_a_refused_body_stores_nothing(store: Any, host: Actor) -> None:
    sid = _session(store, host)
    aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 100, "comments": 7})
    before = _rows(store)
    for body, field in [({"viewers": 200, "likes": -1}, "likes"), ({"viewers": 200, "peak_viewers": True},
                        "peak_viewers"), ({"viewers": 200, "extra": 1}, "extra"), ({"comments": None, "likes": 0.5},
                        "likes"), ({"viewers": "200"}, "viewers")]:
        with pytest.raises(InvalidInput) as caught:
            aud.set_audience(store, actor=host, session_id=sid, body=body)
        assert caught.value.field == field
        assert _rows(store) == before, body


def test_who_may_give_them(store: Any, users: Users, host: Actor) -> None:
    sid = _session(store, host)
    official = users.actor("official", "official")
    other = users.actor("host", "host-2")
    admin = users.actor("admin", "admin")
    for actor in (official, other):
        with pytest.raises(Forbidden):
            aud.set_audience(store, actor=actor, session_id=sid, body={"viewers": 1})
    with pytest.raises(Forbidden):  # before the body is looked at
        aud.set_audience(store, actor=official, session_id=sid, body={"viewers": "x"})
    assert _rows(store) == []
    assert aud.set_audience(store, actor=admin, session_id=sid, body={"viewers": 9})["viewers"] == 9
    assert _rows(store)[0][-1] == admin.user_id  # who changed them last
    with pytest.raises(NotFound):
        aud.set_audience(store, actor=admin, session_id=sid + 1000, body={"viewers": 1})


def test_during_and_after_the_stream_not_before(store: Any, host: Actor) -> None:
    scheduled = _session(store, host, start=False)
    with pytest.raises(Conflict) as caught:
        aud.set_audience(store, actor=host, session_id=scheduled, body={"viewers": 10})
    assert caught.value.code == "session_not_live"
    assert _rows(store) == []
    sid = _session(store, host)
    assert aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 10})["viewers"] == 10
    session_service.end_session(store, actor=host, session_id=sid)
    assert aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 12})["viewers"] == 12


def _sell(store: Any, host: Actor, sid: int, *orders: tuple[str, int]) -> list[str]:
    recorded = order_service.record_orders(store, actor=host, session_id=sid,
                                           orders=[order_input({"sku": s, "quantity": q}) for s, q in orders],
                                           is_batch=True)
    return [o["id"] for o in recorded.orders]


def test_the_figures_are_on_paid_orders_live_and_ended(store: Any, host: Actor) -> None:
    sid = _session(store, host)
    ids = _sell(store, host, sid, ("APRICOT-5KG", 2), ("DRIED-1KG", 3), ("APRICOT-5KG", 1), ("DRIED-1KG", 1))
    # 13,960 + 17,700 + 6,980 + 5,900 = 44,540 fen in 4 orders; refund the ¥177.00 one: 26,840 fen in 3.
    order_service.refund_order(store, actor=host, session_id=sid, order_id=ids[1])
    aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 1_000, "likes": 5})
    info = session_service.get_session(store, actor=host, session_id=sid)
    # GPM 26,840,000 ÷ 1,000 = 26,840; per viewer 26.84 → 27; average 8,946.67 → 8,947; 3 ÷ 1,000 = 0.003.
    want = {"orders_per_viewer": 0.003, "sales_per_viewer_fen": 27, "gpm_fen": 26_840, "average_order_fen": 8_947}
    live = aud.session_audience(store, info=info)
    assert live == {"audience": {**NONE, "viewers": 1_000, "likes": 5}, "audience_figures": want}
    session_service.end_session(store, actor=host, session_id=sid)
    info = session_service.get_session(store, actor=host, session_id=sid)
    assert aud.session_audience(store, info=info) == live


def test_a_live_session_without_redis_is_summed_from_sql(store: Any, host: Actor) -> None:
    import redis

    from tests.conftest import free_port

    sid = _session(store, host)
    _sell(store, host, sid, ("DRIED-1KG", 2))  # 11,800 fen
    aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 100})
    info = session_service.get_session(store, actor=host, session_id=sid)
    working = store.totals.redis.connection_pool
    # A real refusal: nothing listens on that port.
    store.totals.redis.connection_pool = redis.ConnectionPool(host="127.0.0.1", port=free_port(),
                                                              socket_connect_timeout=0.5)
    try:
        with pytest.raises(Unavailable):
            session_service.session_figures(store, info=info)
        assert aud.sales_of(store, info=info) == (11_800, 1)
        assert aud.session_audience(store, info=info)["audience_figures"]["gpm_fen"] == 118_000
    finally:
        store.totals.redis.connection_pool.disconnect()
        store.totals.redis.connection_pool = working


def test_the_platforms_record_once_final(store: Any, users: Users, host: Actor) -> None:
    sid = _session(store, host)
    _sell(store, host, sid, ("APRICOT-5KG", 1))  # the live count: 6,980 fen in 1 order
    session_service.end_session(store, actor=host, session_id=sid)
    with write_transaction(store.db) as conn:
        start = conn.execute(sa.select(t.live_sessions.c.started_at).where(t.live_sessions.c.id == sid)).scalar_one()
        conn.execute(sa.insert(t.platform_lines), [
            {"session_id": sid, "line_id": f"douyin:{n}", "platform": "douyin", "order_ref": str(n), "sku": sku,
             "quantity": 1, "amount_fen": fen, "paid_at": start + timedelta(minutes=n), "province": "浙江省",
             "city": "杭州市", "status": status}
            for n, sku, fen, status in [(1, "APRICOT-5KG", 6_980, "paid"), (2, "DRIED-1KG", 5_900, "paid"),
                                        (3, "DRIED-1KG", 5_900, "refunded"), (4, "APRICOT-5KG", 6_500, "paid")]
        ])
    aud.set_audience(store, actor=host, session_id=sid, body={"viewers": 400})
    info = session_service.get_session(store, actor=host, session_id=sid)
    assert aud.session_audience(store, info=info)["audience_figures"]["gpm_fen"] == 17_450  # 6,980,000 ÷ 400
    official = users.actor("official", "official")
    final_service.decide_final(store, actor=official, session_id=sid, source="platform", reason="次日导出已核对")
    # The platform's paid lines: 6,980 + 5,900 + 6,500 = 19,380 fen in 3 (the refunded line is out).
    # GPM 19,380,000 ÷ 400 = 48,450; per viewer 48.45 → 48; average 6,460; 3 ÷ 400 = 0.0075.
    assert aud.session_audience(store, info=info)["audience_figures"] == {
        "orders_per_viewer": 0.0075, "sales_per_viewer_fen": 48, "gpm_fen": 48_450, "average_order_fen": 6_460}
