"""The lean read path (issue 16): a totals or widget read is one statement for the session's row, its
products from the process's catalogue (``CatalogCache.read``, core.fastread). What it must keep doing."""

from __future__ import annotations

from typing import Any

from tests.conftest import APRICOT_SESSION, Api
from tests.web.test_database_outage import database_down


def test_an_edit_of_the_products_shows_at_once_in_totals_and_widget(
    host_api: Api, client: Any, live_session: dict[str, Any]
) -> None:
    sid, key = live_session["id"], live_session["widget_key"]
    totals_url, widget_url = f"/api/v1/sessions/{sid}/totals", f"/widget/{key}.json"
    # Both reads keep the catalogue of this catalog_version in the process.
    assert set(host_api.get(totals_url).json["by_product"]) == {"APRICOT-5KG", "DRIED-1KG"}
    assert client.get(widget_url).status_code == 200
    products = [*APRICOT_SESSION["products"], {"sku": "HONEY-1KG", "name": "蜂蜜 1公斤", "unit_price_fen": 3000}]
    edited = host_api.patch(f"/api/v1/sessions/{sid}", json={"title": "新标题", "products": products})
    assert edited.status_code == 200, edited.json
    # The edit bumped the catalog_version: the next reads take the new products, not the kept ones.
    assert set(host_api.get(totals_url).json["by_product"]) == {"APRICOT-5KG", "DRIED-1KG", "HONEY-1KG"}
    widget = client.get(widget_url).json
    assert widget["title"] == "新标题"
    assert [p["name"] for p in widget["products"]] == ["鲜杏 5斤", "杏干 1公斤", "蜂蜜 1公斤"]
    # Orders price the new product too (the write path's copy of the catalogue).
    order = host_api.post(f"/api/v1/sessions/{sid}/orders", json={"sku": "HONEY-1KG", "quantity": 2})
    assert order.status_code == 201 and order.json["totals"]["by_product"]["HONEY-1KG"]["amount_fen"] == 6000


def test_status_widget_switch_and_key_are_read_fresh(host_api: Api, client: Any,
                                                    live_session: dict[str, Any]) -> None:
    sid, key = live_session["id"], live_session["widget_key"]
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["status"] == "live"
    assert client.get(f"/widget/{key}.json").json["status"] == "live"
    assert host_api.patch(f"/api/v1/sessions/{sid}/widget", json={"enabled": False}).status_code == 200
    assert client.get(f"/widget/{key}.json").status_code == 404
    assert host_api.patch(f"/api/v1/sessions/{sid}/widget", json={"enabled": True}).status_code == 200
    assert host_api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["status"] == "ended"
    assert client.get(f"/widget/{key}.json").json["status"] == "ended"


def test_totals_and_widget_reads_answer_503_while_the_database_is_down(
    host_api: Api, client: Any, live_session: dict[str, Any], store: Any
) -> None:
    sid, key = live_session["id"], live_session["widget_key"]
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").status_code == 200  # the token is cached
    with database_down(store):
        totals = host_api.get(f"/api/v1/sessions/{sid}/totals")
        assert totals.status_code == 503, totals.data[:300]
        assert totals.json["error"]["code"] == "unavailable" and totals.headers["Retry-After"] == "2"
        widget = client.get(f"/widget/{key}.json")
        assert widget.status_code == 503, widget.data[:300]
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").status_code == 200
