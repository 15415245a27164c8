"""``GET /api/v1/compare``: the figures equal sums computed here, independently, from the orders posted."""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from tests.conftest import APRICOT_SESSION, Api, Users

PRICES = {p["sku"]: p["unit_price_fen"] for p in APRICOT_SESSION["products"]}
REGIONS = ["浙江杭州", "上海", "新疆喀什", "广东深圳"]


def run_session(api: Api, *, seed: int, orders: int, refunds: int, end: bool, **fields: Any) -> tuple[int, list[dict]]:
    """A session with random orders (some refunded, some at a custom price); returns its id and the paid orders."""
    created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, **fields})
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    assert api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    rng = random.Random(seed)
    batch = []
    for i in range(orders):
        order: dict[str, Any] = {"sku": rng.choice(list(PRICES)), "quantity": rng.randint(1, 5),
                                 "buyer_region": rng.choice(REGIONS), "external_id": f"{seed}-{i}"}
        if i % 7 == 3:
            order["unit_price_fen"] = rng.randint(1000, 9000)
        batch.append(order)
    recorded = api.post(f"/api/v1/sessions/{sid}/orders", json={"orders": batch})
    assert recorded.status_code == 201, recorded.json
    placed = recorded.json["orders"]
    for victim in placed[:refunds]:
        assert api.post(f"/api/v1/sessions/{sid}/orders/{victim['id']}/refund").status_code == 200
    if end:
        assert api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    paid = []
    for order, sent in zip(placed[refunds:], batch[refunds:], strict=True):
        price = sent.get("unit_price_fen", PRICES[sent["sku"]])
        paid.append({**sent, "amount_fen": sent["quantity"] * price})
        assert order["amount_fen"] == sent["quantity"] * price
    return sid, paid


def expected_figures(paid: list[dict], goal_fen: int) -> dict[str, Any]:
    amount = sum(o["amount_fen"] for o in paid)
    return {
        "amount_fen": amount,
        "orders": len(paid),
        "items": sum(o["quantity"] for o in paid),
        "avg_order_fen": int((Decimal(amount) / len(paid)).to_integral_value(ROUND_HALF_EVEN)),
        "goal_pct": round(amount * 100 / goal_fen, 1),
    }


@pytest.fixture
def three(host_api: Api) -> list[tuple[int, list[dict]]]:
    """Two ended sessions of one village and a live one of the same village, started last."""
    return [
        run_session(host_api, seed=1, orders=40, refunds=3, end=True, title="去年六月", goal_fen=1_000_000),
        run_session(host_api, seed=2, orders=65, refunds=5, end=True, title="去年七月"),
        run_session(host_api, seed=3, orders=25, refunds=0, end=False, title="今天"),
    ]


def test_compare_figures_equal_independent_sums(users: Users, three: list[tuple[int, list[dict]]]) -> None:
    official = users.api("official")
    ids = [sid for sid, _ in three]
    r = official.get(f"/api/v1/compare?ids={','.join(map(str, ids))}")
    assert r.status_code == 200, r.json
    body = r.json
    assert [s["session"]["id"] for s in body["sessions"]] == ids
    goals = [1_000_000, APRICOT_SESSION["goal_fen"], APRICOT_SESSION["goal_fen"]]
    for (sid, paid), goal, row in zip(three, goals, body["sessions"], strict=True):
        want = expected_figures(paid, goal)
        assert {k: row["figures"][k] for k in want} == want, sid
        # One burst of orders: everything sold in minute 0, which is the peak.
        assert row["figures"]["peak_minute"] == 0 and row["figures"]["peak_minute_fen"] == want["amount_fen"]
    first = body["sessions"][0]["figures"]
    assert body["sessions"][0]["difference"] is None
    for row in body["sessions"][1:]:
        for key in ("amount_fen", "orders", "items", "avg_order_fen"):
            d = row["difference"][key]
            assert d["abs"] == row["figures"][key] - first[key]
            assert d["pct"] == round((row["figures"][key] - first[key]) * 100 / first[key], 1)
    assert [c["amount_fen"][-1] for c in body["cumulative"]] == [sum(o["amount_fen"] for o in p) for _, p in three]

    # Products and regions, session by session, from the orders.
    for entry in body["products"]:
        for (_, paid), fig in zip(three, entry["sessions"], strict=True):
            mine = [o for o in paid if o["sku"] == entry["sku"]]
            assert fig == {"quantity": sum(o["quantity"] for o in mine), "amount_fen": sum(o["amount_fen"] for o in mine)}
    assert {e["sku"] for e in body["products"]} == set(PRICES)
    by_region: dict[str, list[Any]] = defaultdict(lambda: [None, None, None])
    for i, (_, paid) in enumerate(three):
        for o in paid:
            cell = by_region[o["buyer_region"]][i] or {"orders": 0, "amount_fen": 0}
            cell["orders"] += 1
            cell["amount_fen"] += o["amount_fen"]
            by_region[o["buyer_region"]][i] = cell
    assert {e["region"]: e["sessions"] for e in body["regions"]} == dict(by_region)
    totals = [sum(s["amount_fen"] for s in e["sessions"] if s) for e in body["regions"]]
    assert totals == sorted(totals, reverse=True)

    # The live session against the best earlier session of its village, at the same minute.
    (pace,) = body["pace"]
    best_sid, best_paid = max(three[:2], key=lambda s: sum(o["amount_fen"] for o in s[1]))
    assert pace["session_id"] == ids[2] and pace["best_session_id"] == best_sid
    assert pace["minute"] == 0
    assert pace["amount_fen"] == sum(o["amount_fen"] for o in three[2][1])
    assert pace["best_amount_fen"] == sum(o["amount_fen"] for o in best_paid)
    assert pace["difference"]["abs"] == pace["amount_fen"] - pace["best_amount_fen"]


def test_compare_reads_only_what_the_caller_may(users: Users, three: list[tuple[int, list[dict]]]) -> None:
    ids = ",".join(str(sid) for sid, _ in three)
    assert users.api("host").get(f"/api/v1/compare?ids={ids}").status_code == 200  # the owner
    other = users.api("host", "another-host").get(f"/api/v1/compare?ids={ids}")
    assert other.status_code == 403 and other.json["error"]["code"] == "forbidden"
    assert Api(users.app.test_client(), None).get(f"/api/v1/compare?ids={ids}").status_code == 401


@pytest.mark.parametrize(
    "query",
    ["", "ids=", "ids=1", "ids=1,2,3,4,5,6,7", "ids=1,x", "ids=1,-2", "ids=1,2.0", "ids=1,99999999999",
     "ids=1,٣", "ids=1,0", "ids=01,2", "ids=1,2,", "ids=1, 2", "ids=1,2%0A", "ids=1%2C2%2C%EF%BC%93"],
)
def test_compare_refuses_bad_ids(users: Users, query: str) -> None:
    r = users.api("official").get(f"/api/v1/compare?{query}")
    assert r.status_code == 422, (query, r.json)
    assert r.json["error"]["field"] == "ids"


def test_compare_of_an_unknown_session_is_404(users: Users, three: list[tuple[int, list[dict]]]) -> None:
    for unknown in ("999999", "9999999999"):  # the second is beyond any id
        r = users.api("official").get(f"/api/v1/compare?ids={three[0][0]},{unknown}")
        assert r.status_code == 404, r.json


def test_a_session_listed_twice_is_shown_twice(users: Users, three: list[tuple[int, list[dict]]]) -> None:
    sid = three[0][0]
    r = users.api("official").get(f"/api/v1/compare?ids={sid},{sid}")
    assert r.status_code == 200
    assert r.json["sessions"][1]["difference"]["amount_fen"] == {"abs": 0, "pct": 0.0}
