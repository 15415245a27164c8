"""Sales by channel (issue 14 item 4): the running totals, the results and the pages break sales down
by the orders' ``channel``, and every figure equals sums this test computes itself.

A platform's code in any case is that platform (``Douyin`` and ``douyin`` are one line); other
channels count as typed; an order without a channel counts under ``""`` ("not given").
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import tables as t
from livesale.core.sessions import rebuild_totals
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_pages import login

PRICES = {p["sku"]: p["unit_price_fen"] for p in APRICOT_SESSION["products"]}
PLATFORM_CODES = ("douyin", "kuaishou", "channels", "taobao")

#: (sku, quantity, channel) of the orders sent one by one, then as one batch.
SINGLES = [
    ("APRICOT-5KG", 2, "douyin"), ("DRIED-1KG", 1, "kuaishou"), ("APRICOT-5KG", 1, "Douyin"),
    ("DRIED-1KG", 3, ""), ("APRICOT-5KG", 4, "村委会微信群"), ("DRIED-1KG", 2, "KUAISHOU"),
]
BATCH = [
    ("APRICOT-5KG", 1, "taobao"), ("DRIED-1KG", 5, "douyin"), ("APRICOT-5KG", 3, "console"),
    ("DRIED-1KG", 1, None), ("APRICOT-5KG", 2, "kuaishou"),
]


def key_of(channel: str | None) -> str:
    """The line an order's channel counts on, as this test reads the rule."""
    channel = channel or ""
    return channel.lower() if channel.lower() in PLATFORM_CODES else channel


def expected(paid: list[tuple[str, int, str | None]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for sku, quantity, channel in paid:
        line = out.setdefault(key_of(channel), {"orders": 0, "amount_fen": 0})
        line["orders"] += 1
        line["amount_fen"] += quantity * PRICES[sku]
    return out


def sql_by_channel(engine: sa.Engine, session_id: int) -> dict[str, dict[str, int]]:
    """The paid orders' sums per channel, straight from the ``orders`` table."""
    o = t.orders
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for channel, amount in conn.execute(
            sa.select(o.c.channel, o.c.amount_fen).where(o.c.session_id == session_id, o.c.status == "paid")
        ):
            line = out.setdefault(key_of(channel), {"orders": 0, "amount_fen": 0})
            line["orders"] += 1
            line["amount_fen"] += amount
    return out


def body(sku: str, quantity: int, channel: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"sku": sku, "quantity": quantity, "buyer_region": "浙江杭州"}
    if channel is not None:
        out["channel"] = channel
    return out


@pytest.fixture
def sold(host_api: Api, live_session: dict[str, Any]) -> dict[str, Any]:
    """The apricot session with SINGLES and BATCH recorded and two of them refunded."""
    url = f"/api/v1/sessions/{live_session['id']}/orders"
    placed = []
    for sku, quantity, channel in SINGLES:
        r = host_api.post(url, json=body(sku, quantity, channel))
        assert r.status_code == 201, r.json
        placed.append(r.json["order"])
    r = host_api.post(url, json={"orders": [body(*o) for o in BATCH]})
    assert r.status_code == 201, r.json
    placed += r.json["orders"]
    sent = SINGLES + BATCH
    # Refund the first Douyin order and the Kuaishou one in capitals: their lines go down, not away.
    refunded = {0, 5}
    for i in refunded:
        assert host_api.post(f"{url}/{placed[i]['id']}/refund").status_code == 200
    return {"id": live_session["id"], "paid": [o for i, o in enumerate(sent) if i not in refunded]}


def test_running_totals_by_channel_equal_sql_through_orders_refunds_a_flush_and_a_rebuild(
    host_api: Api, sold: dict[str, Any], store: Any, redis_client: Any
) -> None:
    sid = sold["id"]
    want = expected(sold["paid"])
    assert set(want) == {"douyin", "kuaishou", "taobao", "", "村委会微信群", "console"}
    totals = host_api.get(f"/api/v1/sessions/{sid}/totals").json
    assert totals["by_channel"] == want == sql_by_channel(store.db, sid)
    amounts = [line["amount_fen"] for line in totals["by_channel"].values()]
    assert amounts == sorted(amounts, reverse=True), "largest first"
    assert sum(amounts) == totals["amount_fen"] and sum(v["orders"] for v in want.values()) == totals["orders"]
    # Redis holds them in the session's hash (its hash tag), beside the other breakdowns.
    fields = {k.decode() for k in redis_client.hkeys(f"ls:{{s:{sid}}}:totals")}
    assert {"co:douyin", "ca:douyin", "co:", "ca:"} <= fields

    redis_client.flushdb()  # Redis lost everything: the next read rebuilds from SQL
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["by_channel"] == want
    # An order after the flush moves the rebuilt figures; a forced rebuild agrees with them.
    r = host_api.post(f"/api/v1/sessions/{sid}/orders", json=body("DRIED-1KG", 2, "channels"))
    want = expected([*sold["paid"], ("DRIED-1KG", 2, "channels")])
    assert r.json["totals"]["by_channel"] == want
    rebuilt = rebuild_totals(store, session_id=sid)
    assert {k: {"orders": v[0], "amount_fen": v[1]} for k, v in rebuilt.figures.by_channel.items()} == want
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["by_channel"] == want == sql_by_channel(store.db, sid)


def test_results_keep_by_channel_at_the_end(host_api: Api, sold: dict[str, Any], store: Any) -> None:
    sid = sold["id"]
    want = expected(sold["paid"])
    assert host_api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    with store.db.connect() as conn:
        stored = conn.execute(
            sa.select(t.session_results.c.by_channel).where(t.session_results.c.session_id == sid)
        ).scalar_one()
    assert stored == {k: [v["orders"], v["amount_fen"]] for k, v in want.items()}
    results = host_api.get(f"/api/v1/sessions/{sid}/results").json
    assert results["by_channel"] == want
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["by_channel"] == want


def test_results_from_before_by_channel_was_kept_are_summed_from_the_orders(
    host_api: Api, users: Users, client: Any, sold: dict[str, Any], store: Any
) -> None:
    sid = sold["id"]
    want = expected(sold["paid"])
    host_api.post(f"/api/v1/sessions/{sid}/end")
    with store.db.begin() as conn:  # as results written before migration 0004 are
        conn.execute(sa.update(t.session_results).where(t.session_results.c.session_id == sid).values(by_channel=None))
    assert host_api.get(f"/api/v1/sessions/{sid}/results").json["by_channel"] == want
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["by_channel"] == want
    users.token("official")
    login(client, "official")
    page = client.get(f"/sessions/{sid}?lang=zh").text
    assert 'id="channels-section"' in page
    for code, name in (("douyin", "抖音"), ("kuaishou", "快手"), ("taobao", "淘宝"), ("", "未注明")):
        row = page.split(f'<tr data-channel="{code}">', 1)[1].split("</tr>", 1)[0]
        assert f"<td>{name}</td>" in row and f'data-fen="{want[code]["amount_fen"]}"' in row, (code, row)


def test_report_and_compare_show_channels_by_name_in_both_languages(
    host_api: Api, users: Users, client: Any, sold: dict[str, Any]
) -> None:
    sid = sold["id"]
    other = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json["id"]
    host_api.post(f"/api/v1/sessions/{other}/start")
    host_api.post(f"/api/v1/sessions/{other}/orders", json=body("DRIED-1KG", 1, "douyin"))
    users.token("official")
    login(client, "official")
    report = client.get(f"/sessions/{sid}?lang=en").text
    section = report.split('id="channels-section"', 1)[1].split("</section>", 1)[0]
    for name in ("Douyin", "Kuaishou", "Taobao", "Not given", "村委会微信群", "console"):
        assert f"<td>{name}</td>" in section, name
    assert ">douyin<" not in report and ">kuaishou<" not in report, "a raw code where a name belongs"

    api = users.api("official")
    comparison = api.get(f"/api/v1/compare?ids={sid},{other}").json
    lines = {c["channel"]: c["sessions"] for c in comparison["channels"]}
    want = expected(sold["paid"])
    assert lines["douyin"] == [want["douyin"], {"orders": 1, "amount_fen": PRICES["DRIED-1KG"]}]
    assert lines["taobao"] == [want["taobao"], None]
    assert set(lines) == set(want)
    totals = [sum(s["amount_fen"] for s in cells if s) for cells in lines.values()]
    assert totals == sorted(totals, reverse=True)
    page = client.get(f"/compare?ids={sid},{other}&lang=zh").text
    table = page.split('id="compare-channels"', 1)[1].split("</table>", 1)[0]
    assert "<td>抖音</td>" in table and "<td>未注明</td>" in table and "douyin" not in table.replace(
        'data-channel="douyin"', "")
