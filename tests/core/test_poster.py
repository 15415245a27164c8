"""The 战报 poster's figures (issue 15 item 2): the report's figures, for a live session, an ended one and one
whose platform figures an official confirmed; the village's previous session; the audience figures.

Each poster figure is checked twice: against what the report computes (the same session, field by field)
and against what the test sums by hand from the orders it sent.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import poster as poster_service
from livesale.core import tables as t
from livesale.core.auth import Actor
from livesale.core.compare import cumulative, key_figures
from livesale.core.db import write_transaction
from livesale.core.errors import Conflict
from livesale.core.sessions import get_session, rebuild_totals, session_figures
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.core.test_final_figures import platform_expected
from tests.core.test_reconcile import add_lines, started_at
from tests.ledger import PRICES, REGIONS


def actor_of(app: Any, name: str) -> Actor:
    with backend.store_of(app).db.connect() as conn:
        row = conn.execute(sa.select(t.users.c.id, t.users.c.role).where(t.users.c.name == name)).one()
    return Actor(user_id=row.id, name=name, role=row.role)


def sell_over_minutes(app: Any, api: Api, *, seed: int, orders: int, refunds: int = 2, end: bool,
                      **fields: Any) -> dict[str, Any]:
    """A started session with orders spread over its first 40 minutes (moved there in SQL, as if recorded
    then; the live totals rebuilt from SQL), some refunded. Returns its id and the paid orders as sent."""
    created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, **fields})
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    assert api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    rng = random.Random(seed)
    batch = [{"sku": rng.choice(list(PRICES)), "quantity": rng.randint(1, 5), "buyer_region": rng.choice(REGIONS),
              "external_id": f"p{seed}-{i}"} for i in range(orders)]
    recorded = api.post(f"/api/v1/sessions/{sid}/orders", json={"orders": batch})
    assert recorded.status_code == 201, recorded.json
    placed = recorded.json["orders"]
    for victim in placed[:refunds]:
        assert api.post(f"/api/v1/sessions/{sid}/orders/{victim['id']}/refund").status_code == 200
    start = started_at(app, sid)
    minutes = [rng.randint(0, 40) for _ in placed]
    with write_transaction(backend.store_of(app).db) as conn:
        for order, minute in zip(placed, minutes, strict=True):
            conn.execute(sa.update(t.orders).where(t.orders.c.id == uuid.UUID(order["id"])).values(
                minute=minute, created_at=start + timedelta(minutes=minute, seconds=3)))
    rebuild_totals(backend.store_of(app), session_id=sid)
    if end:
        assert api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    paid = [{**sent, "amount_fen": sent["quantity"] * PRICES[sent["sku"]], "minute": minute}
            for sent, minute in list(zip(batch, minutes, strict=True))[refunds:]]
    return {"id": sid, "paid": paid}


def move_start(app: Any, sid: int, earlier_by: timedelta) -> None:
    """Say the session started ``earlier_by`` before it did."""
    when = started_at(app, sid) - earlier_by
    with write_transaction(backend.store_of(app).db) as conn:
        conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == sid).values(started_at=when))


def by_hand(paid: list[dict[str, Any]], goal_fen: int = APRICOT_SESSION["goal_fen"]) -> dict[str, Any]:
    """What the poster must say, summed here from the orders the test sent."""
    amount = sum(o["amount_fen"] for o in paid)
    products: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    regions: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    minutes: dict[int, int] = defaultdict(int)
    for o in paid:
        products[o["sku"]][0] += o["quantity"]
        products[o["sku"]][1] += o["amount_fen"]
        regions[o["buyer_region"]][0] += 1
        regions[o["buyer_region"]][1] += o["amount_fen"]
        minutes[o["minute"]] += o["amount_fen"]
    running, curve = 0, []
    for minute in range(max(minutes) + 1):
        running += minutes.get(minute, 0)
        curve.append(running)
    peak = max(sorted(minutes), key=lambda m: minutes[m])
    return {
        "amount_fen": amount, "orders": len(paid), "items": sum(o["quantity"] for o in paid),
        "avg_order_fen": int((Decimal(amount) / len(paid)).to_integral_value(ROUND_HALF_EVEN)), "goal_pct": round(amount * 100 / goal_fen, 1),
        "peak_minute": peak, "peak_minute_fen": minutes[peak], "cumulative": curve,
        "products": dict(products), "regions": dict(regions),
    }


def ranked(entries: dict[str, list[int]]) -> list[tuple[str, int, int]]:
    return sorted(((k, n, a) for k, (n, a) in entries.items()), key=lambda e: -e[2])[:5]


def assert_poster_is_the_report(app: Any, data: poster_service.PosterData, *, clock_free: bool = False) -> None:
    """Field by field, the poster against what the report page computes for the same session
    (web/review.py: session_figures → key_figures, products and regions by amount, the cumulative curve)."""
    store = backend.store_of(app)
    sf = session_figures(store, info=data.info)
    report = key_figures(sf)
    for key in report:
        if clock_free and key in ("duration_s", "sales_per_hour_fen"):
            continue  # a live session's duration moves with the clock between the two reads
        assert data.figures[key] == report[key], key
    names = {p.sku: p.name for p in data.info.products}
    report_products = sorted(({"label": names.get(sku, sku), "sku": sku, "quantity": q, "amount_fen": a}
                              for sku, (q, a) in sf.figures.by_product.items()), key=lambda e: -e["amount_fen"])
    assert [(p.key, p.label, p.count, p.amount_fen) for p in data.products] == [
        (e["sku"], e["label"], e["quantity"], e["amount_fen"]) for e in report_products[:5]]
    report_regions = sorted(({"region": r, "orders": n, "amount_fen": a} for r, (n, a) in sf.figures.by_region.items()),
                            key=lambda e: -e["amount_fen"])
    assert [(r.key, r.count, r.amount_fen) for r in data.regions] == [
        (e["region"], e["orders"], e["amount_fen"]) for e in report_regions[:5]]
    assert data.cumulative == cumulative(sf)
    assert data.final == sf.final


def assert_poster_is_by_hand(data: poster_service.PosterData, want: dict[str, Any]) -> None:
    for key in ("amount_fen", "orders", "items", "avg_order_fen", "goal_pct", "peak_minute", "peak_minute_fen"):
        assert data.figures[key] == want[key], key
    assert data.cumulative == want["cumulative"]
    assert [(p.key, p.count, p.amount_fen) for p in data.products] == ranked(want["products"])
    assert sorted((r.key, r.count, r.amount_fen) for r in data.regions) == sorted(ranked(want["regions"]))


def poster_of(app: Any, sid: int, who: str = "official") -> poster_service.PosterData:
    store, actor = backend.store_of(app), actor_of(app, who)
    return poster_service.poster_data(store, actor=actor, info=get_session(store, actor=actor, session_id=sid))


@pytest.fixture
def official(users: Users) -> Api:
    return users.api("official")


def test_an_ended_sessions_poster_has_the_reports_figures(app: Any, host_api: Api, official: Api) -> None:
    made = sell_over_minutes(app, host_api, seed=1, orders=60, end=True)
    data = poster_of(app, made["id"])
    assert not data.so_far and data.final.source == "live"
    assert_poster_is_the_report(app, data)
    assert_poster_is_by_hand(data, by_hand(made["paid"]))
    assert data.figures["duration_s"] >= 0 and len(data.products) == 2 and len(data.regions) == 5


def test_a_live_sessions_poster_has_the_figures_so_far(app: Any, host_api: Api, official: Api) -> None:
    made = sell_over_minutes(app, host_api, seed=2, orders=45, end=False)
    data = poster_of(app, made["id"])
    assert data.so_far
    assert_poster_is_the_report(app, data, clock_free=True)
    assert_poster_is_by_hand(data, by_hand(made["paid"]))


def test_confirmed_platform_figures_are_the_posters(app: Any, host_api: Api, official: Api) -> None:
    made = sell_over_minutes(app, host_api, seed=3, orders=20, end=False)
    lines = add_lines(app, made["id"])
    assert host_api.post(f"/api/v1/sessions/{made['id']}/end").status_code == 200
    live = poster_of(app, made["id"])
    assert live.final.source == "live" and live.figures["amount_fen"] == by_hand(made["paid"])["amount_fen"]

    r = official.post(f"/api/v1/sessions/{made['id']}/final", json={"source": "platform", "reason": "次日导出已核对"})
    assert r.status_code == 200, r.json
    data = poster_of(app, made["id"])
    assert data.final.is_platform and data.final.by == "official"
    assert_poster_is_the_report(app, data)
    want = platform_expected(lines, started_at(app, made["id"]))
    assert (data.figures["amount_fen"], data.figures["orders"], data.figures["items"]) == (
        want["amount_fen"], want["orders"], want["items"])
    assert data.figures["peak_minute"] == want["peak_minute"]
    assert [(p.key, p.count, p.amount_fen) for p in data.products] == ranked(want["by_product"])
    assert sorted((r.key, r.count, r.amount_fen) for r in data.regions) == sorted(ranked(want["by_region"]))
    assert data.cumulative[-1] == want["amount_fen"]


def test_the_previous_session_is_the_villages_latest_ended_one_before(app: Any, users: Users, host_api: Api,
                                                                      official: Api) -> None:
    first = sell_over_minutes(app, host_api, seed=4, orders=50, end=True, title="第一场")
    second = sell_over_minutes(app, host_api, seed=5, orders=10, end=True, title="第二场")
    sell_over_minutes(app, host_api, seed=6, orders=30, end=True, title="别村", village="吐鲁番")
    other_host = users.api("host", "host-2")
    theirs = sell_over_minutes(app, other_host, seed=7, orders=5, end=True, title="另一位主播")
    now = sell_over_minutes(app, host_api, seed=8, orders=25, end=True, title="第四场")
    for days, sid in enumerate([first["id"], second["id"], theirs["id"], now["id"]]):
        move_start(app, sid, timedelta(days=10 - days))  # started in this order, a day apart

    # An official reads every session: the latest one before is the other host's (not the best one, the first).
    data = poster_of(app, now["id"])
    assert data.previous is not None and data.previous.info.id == theirs["id"] and data.previous.at_minute is None
    # The host reads only their own sessions: their latest one before is the second.
    mine = poster_of(app, now["id"], who="host")
    assert mine.previous is not None and mine.previous.info.id == second["id"]
    ours, then = by_hand(now["paid"]), by_hand(second["paid"])
    assert mine.previous.amount_fen == then["amount_fen"] and mine.previous.orders == then["orders"]
    assert mine.previous.amount_diff_fen == ours["amount_fen"] - then["amount_fen"]
    assert mine.previous.orders_diff == ours["orders"] - then["orders"]
    assert mine.previous.figures == key_figures(session_figures(backend.store_of(app), info=mine.previous.info))
    # The village's first session has nothing before it.
    assert poster_of(app, first["id"]).previous is None


def test_a_live_session_is_compared_with_the_previous_one_at_the_same_minute(app: Any, host_api: Api,
                                                                              official: Api) -> None:
    before = sell_over_minutes(app, host_api, seed=9, orders=60, end=True, title="上一场")
    live = sell_over_minutes(app, host_api, seed=10, orders=20, end=False, title="这一场")
    move_start(app, before["id"], timedelta(days=1))
    move_start(app, live["id"], timedelta(minutes=12, seconds=30))  # 12.5 minutes on air
    data = poster_of(app, live["id"])
    assert data.previous is not None and data.previous.info.id == before["id"]
    assert data.previous.at_minute == 12
    by_then = [o for o in before["paid"] if o["minute"] <= 12]
    assert data.previous.amount_fen == sum(o["amount_fen"] for o in by_then)
    assert data.previous.orders == len(by_then)
    assert data.previous.amount_diff_fen == by_hand(live["paid"])["amount_fen"] - data.previous.amount_fen


def set_audience(app: Any, sid: int, **figures: int | None) -> None:
    with write_transaction(backend.store_of(app).db) as conn:
        conn.execute(sa.delete(t.session_audience).where(t.session_audience.c.session_id == sid))
        conn.execute(sa.insert(t.session_audience).values(session_id=sid, **figures))


def test_audience_figures_when_known(app: Any, host_api: Api, official: Api) -> None:
    made = sell_over_minutes(app, host_api, seed=11, orders=30, end=True)
    sid, want = made["id"], by_hand(made["paid"])
    data = poster_of(app, sid)
    assert not data.has_audience
    assert data.audience_figures["orders_per_viewer"] is None and data.audience_figures["gpm_fen"] is None

    set_audience(app, sid, viewers=12_345, peak_viewers=678, new_followers=90)
    data = poster_of(app, sid)
    assert data.has_audience and data.audience["viewers"] == 12_345 and data.audience["likes"] is None
    amount = want["amount_fen"]
    assert data.audience_figures["gpm_fen"] == round(amount * 1000 / 12_345)
    assert data.audience_figures["sales_per_viewer_fen"] == round(amount / 12_345)
    assert data.audience_figures["orders_per_viewer"] == round(want["orders"] / 12_345, 4)

    set_audience(app, sid, viewers=0, likes=5)  # zero viewers: nothing per viewer, never a division error
    data = poster_of(app, sid)
    assert data.has_audience and data.audience_figures["gpm_fen"] is None
    assert data.audience_figures["orders_per_viewer"] is None


def test_a_scheduled_session_has_no_poster_yet(app: Any, host_api: Api, official: Api) -> None:
    created = host_api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert created.status_code == 201
    with pytest.raises(Conflict):
        poster_of(app, created.json["id"])
