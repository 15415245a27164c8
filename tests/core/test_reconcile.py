"""Reconciliation (issue 14 item 2): the live count beside the platform's record.

The test makes live orders (through the API, some refunded, some with a platform line's id as their
external id) and platform lines (rows of ``platform_lines``, as an import stores them: some refunded,
some paid before the start or long after it), then sums both sides itself from what it made and
compares with ``core.reconcile`` figure by figure.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.core.reconcile import SLOT_MINUTES, reconcile
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, Api

#: Live orders: (sku, quantity, channel, external id, refunded, minute since the start).
LIVE = [
    ("APRICOT-5KG", 2, "douyin", "douyin:1001", False, 0),
    ("APRICOT-5KG", 1, "douyin", "douyin:1002", True, 3),  # refunded: out of every figure
    ("DRIED-1KG", 3, "kuaishou", "kuaishou:K-77", False, 14),
    ("DRIED-1KG", 1, "", None, False, 14),  # no external id: cannot be matched
    ("APRICOT-5KG", 4, "", "console-9", False, 31),  # an id no platform line has
]
#: Platform lines: (line id, sku, quantity, amount_fen, minutes from the start to paid_at, status, province, city).
LINES = [
    ("douyin:1001", "APRICOT-5KG", 2, 13_960, 0.5, "paid", "浙江省", "杭州市"),
    ("douyin:1002", "APRICOT-5KG", 1, 6_980, 3.2, "refunded", "浙江省", "杭州市"),
    ("kuaishou:K-77", "DRIED-1KG", 3, 17_700, 14.9, "paid", "上海市", "上海市"),
    ("douyin:1003", "APRICOT-5KG", 5, 32_900, -3, "paid", "新疆", "喀什"),  # paid 3 minutes before the start
    ("douyin:1004", "DRIED-1KG", 2, 11_000, 70, "paid", "北京市", ""),  # an hour after: slot 7
    ("channels:88|A|5斤", "APRICOT-5KG", 1, 6_500, 9.99, "paid", "广东省", "深圳市"),
    ("taobao:T9", "DRIED-1KG", 1, 5_900, 25, "refunded", "", ""),
]


def make_session(api: Api) -> dict[str, Any]:
    created = api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert created.status_code == 201, created.json
    started = api.post(f"/api/v1/sessions/{created.json['id']}/start")
    assert started.status_code == 200, started.json
    return started.json


def started_at(app: Any, sid: int) -> datetime:
    with backend.store_of(app).db.connect() as conn:
        return conn.execute(sa.select(t.live_sessions.c.started_at).where(t.live_sessions.c.id == sid)).scalar_one()


def record_live(app: Any, api: Api, sid: int, live: list[tuple[Any, ...]] = LIVE) -> list[dict[str, Any]]:
    """Record the live orders, refund the refunded ones, and move each to its minute (as if recorded then)."""
    made = []
    start = started_at(app, sid)
    for sku, quantity, channel, ext, refunded, minute in live:
        body: dict[str, Any] = {"sku": sku, "quantity": quantity, "channel": channel}
        if ext is not None:
            body["external_id"] = ext
        r = api.post(f"/api/v1/sessions/{sid}/orders", json=body)
        assert r.status_code == 201, r.json
        order = r.json["order"]
        if refunded:
            assert api.post(f"/api/v1/sessions/{sid}/orders/{order['id']}/refund").status_code == 200
        made.append({**order, "status": "refunded" if refunded else "paid", "minute": minute})
    with write_transaction(backend.store_of(app).db) as conn:
        for order in made:
            conn.execute(sa.update(t.orders).where(t.orders.c.id == uuid.UUID(order["id"])).values(
                minute=order["minute"], created_at=start + timedelta(minutes=order["minute"], seconds=5)))
    return made


def add_lines(app: Any, sid: int, lines: list[tuple[Any, ...]] = LINES) -> list[dict[str, Any]]:
    """Platform lines as the import stores them."""
    start = started_at(app, sid)
    rows = [
        {"session_id": sid, "line_id": line_id, "platform": line_id.split(":")[0], "order_ref": line_id.split(":")[1],
         "sku": sku, "quantity": quantity, "amount_fen": amount, "paid_at": start + timedelta(minutes=minutes),
         "province": province, "city": city, "status": status}
        for line_id, sku, quantity, amount, minutes, status, province, city in lines
    ]
    with write_transaction(backend.store_of(app).db) as conn:
        conn.execute(sa.insert(t.platform_lines), rows)
    return rows


def _sum(items: list[dict[str, Any]]) -> dict[str, int]:
    return {"orders": len(items), "items": sum(i["quantity"] for i in items),
            "amount_fen": sum(i["amount_fen"] for i in items)}


def expected(live: list[dict[str, Any]], lines: list[dict[str, Any]], start: datetime) -> dict[str, Any]:
    """What reconciliation must say, summed here from what the test made."""
    paid_live = [o for o in live if o["status"] == "paid"]
    paid_lines = [x for x in lines if x["status"] == "paid"]
    out: dict[str, Any] = {"live": _sum(paid_live), "platform": _sum(paid_lines)}
    out["difference"] = {k: out["platform"][k] - out["live"][k] for k in ("orders", "items", "amount_fen")}
    channels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in paid_live:
        channels[o["channel"]].append(o)
    out["by_channel"] = {k: _sum(v) for k, v in channels.items()}
    platforms: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for x in paid_lines:
        platforms[x["platform"]].append(x)
    out["by_platform"] = {k: _sum(v) for k, v in platforms.items()}
    products: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"live": [], "platform": []})
    for o in paid_live:
        products[o["sku"]]["live"].append(o)
    for x in paid_lines:
        products[x["sku"]]["platform"].append(x)
    out["by_product"] = {sku: {side: _sum(v) for side, v in sides.items()} for sku, sides in products.items()}
    slots: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"live": [], "platform": []})
    for o in paid_live:
        slots[o["minute"] // SLOT_MINUTES]["live"].append(o)
    for x in paid_lines:
        seconds = (x["paid_at"] - start).total_seconds()
        slots[int(seconds // (SLOT_MINUTES * 60))]["platform"].append(x)
    out["by_slot"] = {index * SLOT_MINUTES: {side: _sum(v) for side, v in sides.items()}
                      for index, sides in slots.items()}
    live_ids = {o["external_id"] for o in live if o.get("external_id")}
    line_ids = {x["line_id"] for x in lines}
    out["only_live"], out["only_platform"] = sorted(live_ids - line_ids), sorted(line_ids - live_ids)
    return out


def test_reconciliation_equals_the_sums_of_what_was_made(app: Any, host_api: Api) -> None:
    sid = make_session(host_api)["id"]
    live = record_live(app, host_api, sid)
    lines = add_lines(app, sid)
    start = started_at(app, sid)
    want = expected(live, lines, start)
    store = backend.store_of(app)
    with store.db.connect() as conn:
        info = session_service.load_session(conn, session_id=sid)
    got = reconcile(store, info=info)

    for side in ("live", "platform"):
        assert {k: got[side][k] for k in ("orders", "items", "amount_fen")} == want[side], side
    assert got["difference"] == want["difference"]
    assert got["difference"]["amount_fen"] == want["platform"]["amount_fen"] - want["live"]["amount_fen"]
    assert got["live"]["refunded_orders"] == 1 and got["live"]["refunded_fen"] == 6980
    assert got["platform"]["refunded_orders"] == 2 and got["platform"]["refunded_fen"] == 6980 + 5900
    assert {k: dict(v) for k, v in got["live"]["by_channel"].items()} == want["by_channel"]
    assert {k: dict(v) for k, v in got["platform"]["by_platform"].items()} == want["by_platform"]
    assert {p["sku"]: {"live": p["live"], "platform": p["platform"]} for p in got["by_product"]} == want["by_product"]
    names = {p["sku"]: p["name"] for p in got["by_product"]}
    assert names == {p["sku"]: p["name"] for p in APRICOT_SESSION["products"]}

    # Slots: every slot with sales as summed here; empty slots between them are zeros; the line paid
    # before the start is in the slot at −10 minutes, which starts 10 minutes before the start.
    slots = {s["offset_min"]: s for s in got["by_slot"]}
    assert list(slots) == list(range(-10, 71, 10))
    for offset, slot in slots.items():
        zero = {"orders": 0, "items": 0, "amount_fen": 0}
        sides = want["by_slot"].get(offset, {"live": zero, "platform": zero})
        assert {"live": slot["live"], "platform": slot["platform"]} == sides, offset
        start_of = datetime.fromisoformat(slot["start"].replace("Z", "+00:00"))
        assert start_of == start + timedelta(minutes=offset)
    assert slots[-10]["platform"]["orders"] == 1 and slots[70]["platform"]["amount_fen"] == 11_000
    assert sum(s["platform"]["amount_fen"] for s in got["by_slot"]) == want["platform"]["amount_fen"]
    assert sum(s["live"]["amount_fen"] for s in got["by_slot"]) == want["live"]["amount_fen"]

    # Matching by the full line id; the refunded live order douyin:1002 still matches its refunded line.
    assert got["only_live"] == want["only_live"] == ["console-9"]
    assert got["only_platform"] == want["only_platform"]
    assert "douyin:1002" not in got["only_platform"] and "douyin:1003" in got["only_platform"]
    assert got["matched"] == 3 and got["live_without_id"] == 1
    assert got["final"]["source"] == "live" and got["final"]["by"] is None


def test_a_bare_platform_id_does_not_match(app: Any, host_api: Api) -> None:
    """Only the full ``<platform>:<id>`` matches: the same digits can be an order on two platforms."""
    sid = make_session(host_api)["id"]
    record_live(app, host_api, sid, [("APRICOT-5KG", 1, "douyin", "1001", False, 0)])
    add_lines(app, sid, [LINES[0]])
    store = backend.store_of(app)
    with store.db.connect() as conn:
        info = session_service.load_session(conn, session_id=sid)
    got = reconcile(store, info=info)
    assert got["only_live"] == ["1001"] and got["only_platform"] == ["douyin:1001"]
    assert got["difference"] == {"orders": 0, "items": 1, "amount_fen": 13_960 - 6_980}


def test_an_empty_session_reconciles_to_nothing(app: Any, host_api: Api) -> None:
    sid = make_session(host_api)["id"]
    store = backend.store_of(app)
    with store.db.connect() as conn:
        info = session_service.load_session(conn, session_id=sid)
    got = reconcile(store, info=info)
    assert got["live"]["orders"] == got["platform"]["orders"] == 0
    assert got["by_slot"] == [] and got["only_live"] == [] and got["only_platform"] == []
    assert {p["sku"] for p in got["by_product"]} == {"APRICOT-5KG", "DRIED-1KG"}
