"""The order API contract: recording, idempotency, refunds, lifecycle."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.web.test_operations import delta, scrape


def orders_url(session: dict[str, Any]) -> str:
    return f"/api/v1/sessions/{session['id']}/orders"


def test_single_order_defaults_price_and_moves_totals(host_api: Api, live_session: dict[str, Any]) -> None:
    r = host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 3, "buyer_region": "浙江杭州"})
    assert r.status_code == 201, r.json
    order, totals = r.json["order"], r.json["totals"]
    assert order["unit_price_fen"] == 6980 and order["amount_fen"] == 3 * 6980
    assert order["status"] == "paid"
    assert totals["amount_fen"] == 20940 and totals["orders"] == 1 and totals["items"] == 3
    assert totals["by_product"]["APRICOT-5KG"] == {"quantity": 3, "amount_fen": 20940}
    assert totals["by_product"]["DRIED-1KG"] == {"quantity": 0, "amount_fen": 0}
    assert totals["by_region"] == {"浙江杭州": {"orders": 1, "amount_fen": 20940}}


def test_idempotency_key_repeat_counts_once_and_conflicts_on_other_payload(host_api: Api, live_session: dict[str, Any]) -> None:
    body = {"sku": "DRIED-1KG", "quantity": 2}
    first = host_api.post(orders_url(live_session), json=body, headers={"Idempotency-Key": "abc-1"})
    again = host_api.post(orders_url(live_session), json=body, headers={"Idempotency-Key": "abc-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["order"]["id"] == first.json["order"]["id"]
    assert again.json["totals"]["amount_fen"] == 11800
    other = host_api.post(orders_url(live_session), json={"sku": "DRIED-1KG", "quantity": 3},
                          headers={"Idempotency-Key": "abc-1"})
    assert other.status_code == 409
    assert other.json["error"]["field"] == "Idempotency-Key"
    totals = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    assert totals["orders"] == 1 and totals["amount_fen"] == 11800


def test_batch_is_all_or_nothing(host_api: Api, live_session: dict[str, Any]) -> None:
    bad = {"orders": [{"sku": "APRICOT-5KG", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]}
    r = host_api.post(orders_url(live_session), json=bad)
    assert r.status_code == 422 and r.json["error"]["field"] == "orders[1].sku"
    listed = host_api.get(orders_url(live_session)).json
    assert listed["orders"] == []
    good = {"orders": [{"sku": "APRICOT-5KG", "quantity": 1, "external_id": "dy-1"},
                       {"sku": "DRIED-1KG", "quantity": 2, "external_id": "dy-2"}]}
    r = host_api.post(orders_url(live_session), json=good)
    assert r.status_code == 201 and len(r.json["orders"]) == 2
    assert r.json["totals"]["amount_fen"] == 6980 + 2 * 5900
    # The same batch again (an import re-run): nothing new, nothing counted twice.
    r = host_api.post(orders_url(live_session), json=good)
    assert r.status_code == 200
    assert r.json["totals"]["amount_fen"] == 6980 + 2 * 5900


def test_refund_is_idempotent_and_keeps_the_row(host_api: Api, live_session: dict[str, Any]) -> None:
    order = host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 2}).json["order"]
    host_api.post(orders_url(live_session), json={"sku": "DRIED-1KG", "quantity": 1})
    url = f"{orders_url(live_session)}/{order['id']}/refund"
    first, second = host_api.post(url), host_api.post(url)
    assert first.status_code == second.status_code == 200
    assert first.json["order"]["status"] == "refunded"
    assert second.json["totals"] == {**first.json["totals"], "version": second.json["totals"]["version"],
                                     "updated_at": second.json["totals"]["updated_at"]}
    assert first.json["totals"]["amount_fen"] == 5900 and first.json["totals"]["orders"] == 1
    rows = host_api.get(orders_url(live_session)).json["orders"]
    assert [r["status"] for r in rows] == ["refunded", "paid"]


def test_end_refuses_orders_and_serves_results(host_api: Api, live_session: dict[str, Any]) -> None:
    host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 1, "buyer_region": "上海"})
    host_api.post(orders_url(live_session), json={"sku": "DRIED-1KG", "quantity": 4, "buyer_region": "上海"})
    live_version = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json["version"]
    ended = host_api.post(f"/api/v1/sessions/{live_session['id']}/end")
    assert ended.status_code == 200 and ended.json["status"] == "ended"
    late = host_api.post(orders_url(live_session), json={"sku": "DRIED-1KG", "quantity": 1})
    assert late.status_code == 409 and late.json["error"]["code"] == "session_ended"
    results = host_api.get(f"/api/v1/sessions/{live_session['id']}/results").json
    assert results["amount_fen"] == 6980 + 4 * 5900 and results["orders"] == 2 and results["items"] == 5
    assert results["by_region"] == {"上海": {"orders": 2, "amount_fen": 6980 + 4 * 5900}}
    assert results["timeline"] == [{"minute": 0, "amount_fen": 6980 + 4 * 5900, "orders": 2}]
    assert results["peak_minute"] == 0 and results["duration_s"] >= 0
    totals = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    assert totals["status"] == "ended" and totals["amount_fen"] == results["amount_fen"]
    assert totals["version"] > live_version


def test_a_retry_after_the_end_gets_its_order_back_and_anything_new_is_refused(
    host_api: Api, live_session: dict[str, Any], users: Any
) -> None:
    """A console whose answer was lost just before the end retries after it: the order was counted
    and is in the results, so the retry gets it back (200), never an error that says it failed."""
    url = orders_url(live_session)
    single = {"sku": "APRICOT-5KG", "quantity": 2, "buyer_region": "喀什"}
    first = host_api.post(url, json=single, headers={"Idempotency-Key": "k-late"})
    batch = {"orders": [{"sku": "DRIED-1KG", "quantity": 1, "external_id": "x-1"},
                        {"sku": "DRIED-1KG", "quantity": 3, "external_id": "x-2"}]}
    first_batch = host_api.post(url, json=batch, headers={"Idempotency-Key": "b-late"})
    assert first.status_code == first_batch.status_code == 201
    assert host_api.post(f"/api/v1/sessions/{live_session['id']}/end").status_code == 200
    results = host_api.get(f"/api/v1/sessions/{live_session['id']}/results").json

    again = host_api.post(url, json=single, headers={"Idempotency-Key": "k-late"})
    assert again.status_code == 200 and again.json["order"] == first.json["order"]
    assert again.json["totals"]["status"] == "ended" and again.json["totals"]["amount_fen"] == results["amount_fen"]
    again_batch = host_api.post(url, json=batch, headers={"Idempotency-Key": "b-late"})
    assert again_batch.status_code == 200 and again_batch.json["orders"] == first_batch.json["orders"]
    by_external_id = host_api.post(url, json=batch["orders"][1])  # on its own, no key
    assert by_external_id.status_code == 200 and by_external_id.json["order"] == first_batch.json["orders"][1]

    # Anything that would be a new order, or the key with another payload, or another host: refused.
    for body, key in [({**single, "quantity": 3}, "k-late"), (single, "k-new"), (single, None),
                      ({"orders": [*batch["orders"], {"sku": "DRIED-1KG", "quantity": 1}]}, "b-late")]:
        late = host_api.post(url, json=body, headers={"Idempotency-Key": key} if key else {})
        assert late.status_code == 409 and late.json["error"]["code"] == "session_ended", (body, key, late.json)
    other = users.api("host", "other_host").post(url, json=single, headers={"Idempotency-Key": "k-late"})
    assert other.status_code == 403
    assert host_api.get(f"/api/v1/sessions/{live_session['id']}/results").json == results
    assert len(host_api.get(url).json["orders"]) == 3


def test_redis_flush_is_rebuilt_from_sql(host_api: Api, live_session: dict[str, Any], redis_client: Any) -> None:
    for quantity in (1, 2, 3):
        host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": quantity})
    before = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    redis_client.flushdb()
    after = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    assert after["amount_fen"] == before["amount_fen"] == 6 * 6980
    assert after["version"] > before["version"]
    redis_client.flushdb()
    r = host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 1})
    assert r.json["totals"]["amount_fen"] == 7 * 6980 and r.json["totals"]["orders"] == 4


def test_order_is_acknowledged_with_sql_totals_while_redis_is_down(
    host_api: Api, live_session: dict[str, Any], store: Any
) -> None:
    import redis

    from tests.conftest import free_port

    host_api.post(orders_url(live_session), json={"sku": "DRIED-1KG", "quantity": 1})
    working = store.totals.redis.connection_pool
    store.totals.redis.connection_pool = redis.ConnectionPool(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5
    )
    try:
        r = host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 2})
        # The order is committed to SQL: it is acknowledged, with totals summed by SQL.
        assert r.status_code == 201, r.json
        assert r.json["totals"]["amount_fen"] == 5900 + 2 * 6980
        assert r.json["totals"]["orders"] == 2
        before = scrape(host_api.client)
        refused = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals")
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
        after = scrape(host_api.client)
        assert delta(before, after, "livesale_redis_unavailable_total{}") == 1  # the 503, not the 201
        assert delta(before, after, "livesale_database_unavailable_total{}") == 0
    finally:
        store.totals.redis.connection_pool.disconnect()
        store.totals.redis.connection_pool = working
    # Redis is back but missed that order: the next use rebuilds from SQL.
    totals = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    assert totals["amount_fen"] == 5900 + 2 * 6980 and totals["orders"] == 2


def test_order_ids_are_time_ordered_uuid7_and_match_the_stored_rows(host_api: Api, live_session: dict[str, Any]) -> None:
    import time
    import uuid

    before_ms = time.time_ns() // 1_000_000
    batch = host_api.post(orders_url(live_session), json={"orders": [{"sku": "DRIED-1KG", "quantity": 1}] * 3})
    single = host_api.post(orders_url(live_session), json={"sku": "APRICOT-5KG", "quantity": 1})
    ids = [uuid.UUID(o["id"]) for o in batch.json["orders"]] + [uuid.UUID(single.json["order"]["id"])]
    assert len(set(ids)) == 4
    for u in ids:
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before_ms <= u.int >> 80 <= time.time_ns() // 1_000_000
    assert ids[-1] > max(ids[:3]) or ids[-1].int >> 80 == ids[0].int >> 80
    listed = host_api.get(f"{orders_url(live_session)}?limit=10").json["orders"]
    assert sorted(o["id"] for o in listed) == sorted(str(u) for u in ids)
    refund = host_api.post(f"{orders_url(live_session)}/{ids[0]}/refund")
    assert refund.status_code == 200 and refund.json["order"]["status"] == "refunded"
