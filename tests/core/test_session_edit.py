"""Editing and deleting sessions (core.sessions.update_session / delete_session) and typing money in yuan
(core.validation.parse_yuan), on the real database and Redis of the run."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import orders as order_service
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core import validation as v
from livesale.core.auth import Actor
from livesale.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import host_actor, order_input

# --- yuan ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("69.8", 6980), ("69.80", 6980), ("¥69.80", 6980), ("￥69.80", 6980), ("６９．８", 6980),
        ("1,234.50", 123450), ("１，２３４．５０", 123450), ("0", 0), ("0.29", 29), ("0.01", 1), ("12", 1200),
        (" 12.5 ", 1250), ("12.", 1200), ("12元", 1200), (69, 6900), ("1,000,000", 100_000_000),
    ],
)
def test_yuan_typed_every_way_is_exact_fen(typed: Any, fen: int) -> None:
    assert v.parse_yuan(typed, "goal_yuan") == fen


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("69.805", "at most 2 decimals"), ("-5", "negative"), ("−5", "negative"), ("－5", "negative"),
        ("abc", "amount in yuan"), ("12a", "amount in yuan"), ("1e3", "amount in yuan"), ("", "required"),
        ("   ", "required"), ("1,23.4", "amount in yuan"), ("12,34", "amount in yuan"), ("NaN", "amount in yuan"),
        ("1.2.3", "amount in yuan"), ("10000000000.01", "at most"), ("9" * 40, "at most"), (None, "amount in yuan"),
        (True, "amount in yuan"), (6.98, "amount in yuan"), ("¥", "required"),
    ],
)
def test_bad_yuan_is_refused_naming_the_field(typed: Any, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        v.parse_yuan(typed, "products-1-price_yuan")
    assert caught.value.field == "products-1-price_yuan"
    assert says in caught.value.message


def test_yuan_maximum_is_per_field() -> None:
    assert v.parse_yuan("1,000,000", "p", maximum=v.MAX_UNIT_PRICE_FEN) == v.MAX_UNIT_PRICE_FEN
    with pytest.raises(InvalidInput, match="at most 1000000 yuan"):
        v.parse_yuan("1000000.01", "p", maximum=v.MAX_UNIT_PRICE_FEN)


def test_all_errors_lists_every_wrong_field_in_order() -> None:
    body = {**APRICOT_SESSION, "title": " ", "goal_fen": -1,
            "products": [{"sku": "A", "name": "", "unit_price_fen": 1}, {"sku": "b c", "name": "x", "unit_price_fen": -2}]}
    with pytest.raises(v.InvalidFields) as caught:
        v.parse_session(body, all_errors=True)
    fields = [e.field for e in caught.value.errors]
    assert fields == ["products[0].name", "products[1].sku", "products[1].unit_price_fen", "title", "goal_fen"]
    with pytest.raises(InvalidInput) as first:  # the API still names the first only
        v.parse_session(body)
    assert first.value.field == "products[0].name" and not isinstance(first.value, v.InvalidFields)


# --- edits ---------------------------------------------------------------------------------------


@pytest.fixture
def host(store: Any, users: Users) -> Actor:
    users.token("host")
    return host_actor(store.db)


def _create(store: Any, host: Actor) -> session_service.SessionInfo:
    return session_service.create_session(store, actor=host, data=v.parse_session(APRICOT_SESSION))


def _products(info: session_service.SessionInfo) -> list[dict[str, Any]]:
    return [{"sku": p.sku, "name": p.name, "unit": p.unit, "unit_price_fen": p.unit_price_fen, "stock": p.stock}
            for p in info.products]


def _edit(store: Any, actor: Actor, sid: int, body: dict[str, Any]) -> session_service.SessionInfo:
    return session_service.update_session(store, actor=actor, session_id=sid, data=v.parse_session_update(body))


def _catalog_version(store: Any, sid: int) -> int:
    with store.db.connect() as conn:
        return conn.execute(sa.select(t.live_sessions.c.catalog_version).where(t.live_sessions.c.id == sid)).scalar_one()


def test_a_scheduled_session_changes_entirely(store: Any, host: Actor) -> None:
    info = _create(store, host)
    after = _edit(store, host, info.id, {
        "title": "杏子 2", "village": "", "hosts": ["A", "B"], "platform": "kuaishou", "goal_fen": 1,
        "timezone": "Asia/Urumqi", "scheduled_start": "2026-07-01T20:00:00+06:00", "planned_duration_min": 90,
        "products": [{"sku": "NEW-1", "name": "新品", "unit_price_fen": 100, "stock": 5},
                     {"sku": "DRIED-1KG", "name": "杏干", "unit_price_fen": 1}],
    })
    assert (after.title, after.hosts, after.platform, after.goal_fen, after.timezone) == (
        "杏子 2", ["A", "B"], "kuaishou", 1, "Asia/Urumqi")
    assert after.scheduled_start is not None and after.scheduled_start.isoformat() == "2026-07-01T14:00:00+00:00"
    assert [(p.sku, p.unit_price_fen, p.stock) for p in after.products] == [("NEW-1", 100, 5), ("DRIED-1KG", 1, None)]
    assert _edit(store, host, info.id, {}).products == after.products  # absent fields stay


def test_an_edit_is_validated_like_a_new_session(store: Any, host: Actor) -> None:
    info = _create(store, host)
    for body, field in [({"title": ""}, "title"), ({"products": []}, "products"), ({"goal_fen": 1.5}, "goal_fen"),
                        ({"status": "ended"}, "status"), ({"products": [{"sku": "A", "name": "a", "unit_price_fen": 1},
                                                                        {"sku": "A", "name": "b", "unit_price_fen": 1}]},
                                                          "products[1].sku")]:
        with pytest.raises(InvalidInput) as caught:
            _edit(store, host, info.id, body)
        assert caught.value.field == field
    assert session_service.get_session(store, actor=host, session_id=info.id) == info


def _live_with_order(store: Any, host: Actor) -> session_service.SessionInfo:
    info = _create(store, host)
    session_service.start_session(store, actor=host, session_id=info.id)
    order_service.record_orders(store, actor=host, session_id=info.id,
                                orders=[order_input({"sku": "APRICOT-5KG", "quantity": 2})])
    return session_service.get_session(store, actor=host, session_id=info.id)


def test_a_live_session_takes_new_products_stock_and_goal(store: Any, host: Actor) -> None:
    info = _live_with_order(store, host)
    products = _products(info)
    products[0]["stock"] = 500  # sold: its stock may change
    products[1]["unit_price_fen"] = 4900  # not sold yet: its price may change
    products.append({"sku": "JAM-500G", "name": "杏酱", "unit": "500 g", "unit_price_fen": 2500, "stock": 30})
    after = _edit(store, host, info.id, {"goal_fen": 9_000_000, "title": "杏子直播（加场）", "products": products})
    assert after.goal_fen == 9_000_000 and after.title == "杏子直播（加场）"
    assert [(p.sku, p.unit_price_fen, p.stock) for p in after.products] == [
        ("APRICOT-5KG", 6980, 500), ("DRIED-1KG", 4900, None), ("JAM-500G", 2500, 30)]
    totals = session_service.session_totals(store, info=after)
    assert totals["goal_fen"] == 9_000_000
    assert totals["by_product"]["JAM-500G"] == {"quantity": 0, "amount_fen": 0}


def test_a_live_session_keeps_sold_prices_its_products_and_its_start(store: Any, host: Actor) -> None:
    info = _live_with_order(store, host)
    version = _catalog_version(store, info.id)
    products = _products(info)
    products[0]["unit_price_fen"] = 1  # sold at 6980
    with pytest.raises(session_service.EditRefused) as caught:
        _edit(store, host, info.id, {"products": products[:1], "timezone": "Asia/Urumqi",
                                     "scheduled_start": "2026-07-01T20:00:00+08:00"})
    assert [(p.field, p.code) for p in caught.value.problems] == [
        ("scheduled_start", "session_live"), ("timezone", "session_live"), ("products", "session_live"),
        ("products[0].unit_price_fen", "price_locked")]
    assert "DRIED-1KG" in caught.value.problems[2].message
    assert isinstance(caught.value, Conflict)
    assert session_service.get_session(store, actor=host, session_id=info.id) == info  # nothing saved
    assert _catalog_version(store, info.id) == version
    # The same values as stored are no change: allowed.
    _edit(store, host, info.id, {"timezone": info.timezone, "products": _products(info)})


def test_a_refunded_sale_still_locks_the_price(store: Any, host: Actor) -> None:
    info = _create(store, host)
    session_service.start_session(store, actor=host, session_id=info.id)
    recorded = order_service.record_orders(store, actor=host, session_id=info.id,
                                           orders=[order_input({"sku": "DRIED-1KG", "quantity": 1})])
    order_service.refund_order(store, actor=host, session_id=info.id, order_id=recorded.orders[0]["id"])
    products = _products(info)
    products[1]["unit_price_fen"] = 1
    with pytest.raises(session_service.EditRefused) as caught:
        _edit(store, host, info.id, {"products": products})
    assert caught.value.field == "products[1].unit_price_fen"


def test_an_order_after_an_edit_is_priced_from_the_new_catalogue(store: Any, host: Actor) -> None:
    """The CatalogCache held the old products: the edit's catalog_version bump makes it reload."""
    info = _live_with_order(store, host)  # the order filled this process's cache
    version = _catalog_version(store, info.id)
    products = _products(info)
    products[1]["unit_price_fen"] = 4321
    products.append({"sku": "JAM-500G", "name": "杏酱", "unit_price_fen": 2500})
    _edit(store, host, info.id, {"products": products})
    assert _catalog_version(store, info.id) == version + 1
    recorded = order_service.record_orders(store, actor=host, session_id=info.id, orders=[
        order_input({"sku": "JAM-500G", "quantity": 2}), order_input({"sku": "DRIED-1KG", "quantity": 1})],
        is_batch=True)
    assert [o["amount_fen"] for o in recorded.orders] == [5000, 4321]
    assert recorded.totals["amount_fen"] == 2 * 6980 + 5000 + 4321
    assert recorded.totals["by_product"]["JAM-500G"] == {"quantity": 2, "amount_fen": 5000}


def test_an_ended_session_cannot_change(store: Any, host: Actor) -> None:
    info = _live_with_order(store, host)
    session_service.end_session(store, actor=host, session_id=info.id)
    with pytest.raises(Conflict) as caught:
        _edit(store, host, info.id, {"goal_fen": 1})
    assert caught.value.code == "session_ended"


def test_only_the_owner_or_an_admin_edits(store: Any, host: Actor, users: Users) -> None:
    info = _create(store, host)
    users.token("host", "host-2")
    users.token("official")
    users.token("admin")
    with pytest.raises(Forbidden):
        _edit(store, host_actor(store.db, "host-2"), info.id, {"goal_fen": 1})
    with pytest.raises(Forbidden):
        _edit(store, Actor(user_id=host_actor(store.db, "official").user_id, name="official", role="official"),
              info.id, {"goal_fen": 1})
    admin = Actor(user_id=host_actor(store.db, "admin").user_id, name="admin", role="admin")
    assert _edit(store, admin, info.id, {"goal_fen": 1}).goal_fen == 1
    with pytest.raises(NotFound):
        _edit(store, host, 424242, {"goal_fen": 1})


# --- deleting ------------------------------------------------------------------------------------


def test_a_scheduled_session_is_deleted_with_its_products(store: Any, host: Actor) -> None:
    info = _create(store, host)
    keep = _create(store, host)
    session_service.delete_session(store, actor=host, session_id=info.id)
    with pytest.raises(NotFound):
        session_service.get_session(store, actor=host, session_id=info.id)
    with store.db.connect() as conn:
        skus = conn.execute(sa.select(t.products.c.session_id).distinct()).scalars().all()
    assert skus == [keep.id]


def test_a_session_that_went_on_air_is_never_deleted(store: Any, host: Actor, users: Users) -> None:
    live = _live_with_order(store, host)
    ended = _live_with_order(store, host)
    session_service.end_session(store, actor=host, session_id=ended.id)
    started_empty = _create(store, host)
    session_service.start_session(store, actor=host, session_id=started_empty.id)
    for sid in (live.id, ended.id, started_empty.id):
        with pytest.raises(Conflict) as caught:
            session_service.delete_session(store, actor=host, session_id=sid)
        assert caught.value.code == "session_started"
        assert session_service.get_session(store, actor=host, session_id=sid).id == sid
    scheduled = _create(store, host)
    users.token("host", "host-2")
    with pytest.raises(Forbidden):
        session_service.delete_session(store, actor=host_actor(store.db, "host-2"), session_id=scheduled.id)
    with pytest.raises(NotFound):
        session_service.delete_session(store, actor=host, session_id=424242)
