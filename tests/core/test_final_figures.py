"""Final figures (issue 14 item 3): which figures of an ended session stand, and everything that follows them.

An ended session's results, the list, the comparison (page, API, CSV) and the report follow an
official's confirmation of the platform's record and its revert; a host's proposal changes nothing;
a session without live orders is on the platform's record by itself. Expected platform figures are
summed here from the lines the test made (tests.core.test_reconcile).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import Api, Users
from tests.core.test_reconcile import add_lines, make_session, record_live, started_at
from tests.web.test_pages import login


def platform_expected(lines: list[dict[str, Any]], start: datetime) -> dict[str, Any]:
    paid = [x for x in lines if x["status"] == "paid"]
    by_product: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_region: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_minute: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for x in paid:
        by_product[x["sku"]][0] += x["quantity"]
        by_product[x["sku"]][1] += x["amount_fen"]
        # One label like the live regions; a city that repeats its province once.
        province, city = x["province"], x["city"]
        label = city if province == city or not province else province + city
        by_region[label][0] += 1
        by_region[label][1] += x["amount_fen"]
        minute = max(0, int((x["paid_at"] - start).total_seconds() // 60))  # before the start: minute 0
        by_minute[minute][0] += x["amount_fen"]
        by_minute[minute][1] += 1
    peak = max(sorted(by_minute), key=lambda m: by_minute[m][0])
    return {
        "amount_fen": sum(x["amount_fen"] for x in paid), "orders": len(paid), "items": sum(x["quantity"] for x in paid),
        "by_product": dict(by_product), "by_region": dict(by_region), "by_minute": dict(by_minute), "peak_minute": peak,
        "refunded_orders": len(lines) - len(paid),
        "refunded_fen": sum(x["amount_fen"] for x in lines if x["status"] != "paid"),
    }


def figures_of(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "amount_fen": results["amount_fen"], "orders": results["orders"], "items": results["items"],
        "by_product": {k: [v["quantity"], v["amount_fen"]] for k, v in results["by_product"].items() if v["quantity"]},
        "by_region": {k: [v["orders"], v["amount_fen"]] for k, v in results["by_region"].items()},
        "by_minute": {m["minute"]: [m["amount_fen"], m["orders"]] for m in results["timeline"] if m["orders"]},
        "peak_minute": results["peak_minute"],
        "refunded_orders": results["refunded_orders"], "refunded_fen": results["refunded_fen"],
    }


@pytest.fixture
def ended(app: Any, host_api: Api) -> dict[str, Any]:
    """An ended session with live orders (some refunded) and the platform's lines."""
    sid = make_session(host_api)["id"]
    record_live(app, host_api, sid)
    lines = add_lines(app, sid)
    assert host_api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    return {"id": sid, "lines": lines, "start": started_at(app, sid)}


def test_results_follow_a_confirmation_of_the_platform_figures_and_its_revert(
    users: Users, host_api: Api, ended: dict[str, Any]
) -> None:
    sid = ended["id"]
    official = users.api("official")
    live = host_api.get(f"/api/v1/sessions/{sid}/results").json
    assert live["final"] == {"source": "live", "by": None, "at": None, "reason": None, "proposal": None}

    r = official.post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": "次日导出已核对"})
    assert r.status_code == 200, r.json
    assert r.json["proposed"] is False and r.json["final"]["source"] == "platform"

    results = host_api.get(f"/api/v1/sessions/{sid}/results").json
    want = platform_expected(ended["lines"], ended["start"])
    assert figures_of(results) == want
    assert results["final"]["source"] == "platform" and results["final"]["by"] == "official"
    assert results["final"]["reason"] == "次日导出已核对" and results["final"]["at"]
    assert results["version"] > live["version"]  # the figures changed: so does the version
    assert results["by_channel"] == {"channels": {"orders": 1, "amount_fen": 6_500},
                                     "douyin": {"orders": 3, "amount_fen": 13_960 + 32_900 + 11_000},
                                     "kuaishou": {"orders": 1, "amount_fen": 17_700}}

    reverted = official.client.delete(f"/api/v1/sessions/{sid}/final",
                                      headers={"Authorization": f"Bearer {official.token}"})
    assert reverted.status_code == 200 and reverted.json["final"]["source"] == "live"
    back = host_api.get(f"/api/v1/sessions/{sid}/results").json
    assert figures_of(back) == figures_of(live)
    assert back["final"]["source"] == "live" and back["final"]["by"] is None
    assert back["version"] > results["version"]

    # Confirming the live count explicitly is recorded with who and why; {"source": null} reverts too.
    r = official.post(f"/api/v1/sessions/{sid}/final", json={"source": "live", "reason": "以直播记录为准"})
    assert r.status_code == 200 and r.json["final"]["by"] == "official"
    r = official.post(f"/api/v1/sessions/{sid}/final", json={"source": None})
    assert r.status_code == 200 and r.json["action"] == "revert" and r.json["final"]["by"] is None


def test_a_hosts_proposal_changes_nothing(users: Users, host_api: Api, ended: dict[str, Any]) -> None:
    sid = ended["id"]
    before = host_api.get(f"/api/v1/sessions/{sid}/results").json
    r = host_api.post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": "平台数据更全"})
    assert r.status_code == 202 and r.json["proposed"] is True
    after = host_api.get(f"/api/v1/sessions/{sid}/results").json
    assert figures_of(after) == figures_of(before) and after["version"] == before["version"]
    assert after["final"]["source"] == "live"
    assert after["final"]["proposal"]["source"] == "platform" and after["final"]["proposal"]["by"] == "host"
    # The official's decision answers the proposal (it is no longer pending).
    users.api("official").post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": "同意"})
    assert host_api.get(f"/api/v1/sessions/{sid}/results").json["final"]["proposal"] is None
    # A host may not revert.
    assert host_api.client.delete(f"/api/v1/sessions/{sid}/final",
                                  headers={"Authorization": f"Bearer {host_api.token}"}).status_code == 403


def test_a_session_without_live_orders_is_on_the_platforms_record(app: Any, host_api: Api) -> None:
    sid = make_session(host_api)["id"]
    assert host_api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    assert host_api.get(f"/api/v1/sessions/{sid}/results").json["final"]["source"] == "live"  # nothing at all
    lines = add_lines(app, sid)
    results = host_api.get(f"/api/v1/sessions/{sid}/results").json
    assert results["final"] == {"source": "platform", "by": None, "at": None, "reason": "automatic", "proposal": None}
    assert figures_of(results) == platform_expected(lines, started_at(app, sid))


def test_who_decides(users: Users, host_api: Api, ended: dict[str, Any], live_session: dict[str, Any]) -> None:
    sid = ended["id"]
    body = {"source": "platform", "reason": "核对"}
    assert users.api("official").post(f"/api/v1/sessions/{sid}/final", json=body).status_code == 200
    assert users.api("admin").post(f"/api/v1/sessions/{sid}/final", json=body).status_code == 200
    assert host_api.post(f"/api/v1/sessions/{sid}/final", json=body).status_code == 202
    assert users.api("host", "host-2").post(f"/api/v1/sessions/{sid}/final", json=body).status_code == 403
    assert Api(host_api.client, None).post(f"/api/v1/sessions/{sid}/final", json=body).status_code == 401
    # A live session has no final figures yet; a reason is required; a source must be one of the two.
    r = users.api("official").post(f"/api/v1/sessions/{live_session['id']}/final", json=body)
    assert r.status_code == 409 and r.json["error"]["code"] == "session_not_ended"
    r = users.api("official").post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": " "})
    assert r.status_code == 422 and r.json["error"]["field"] == "reason"
    r = users.api("official").post(f"/api/v1/sessions/{sid}/final", json={"source": "both", "reason": "x"})
    assert r.status_code == 422 and r.json["error"]["field"] == "source"


def test_the_platform_cannot_stand_without_lines(users: Users, host_api: Api) -> None:
    sid = make_session(host_api)["id"]
    host_api.post(f"/api/v1/sessions/{sid}/orders", json={"sku": "APRICOT-5KG", "quantity": 1})
    host_api.post(f"/api/v1/sessions/{sid}/end")
    r = users.api("official").post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": "x"})
    assert r.status_code == 409 and r.json["error"]["code"] == "no_platform_lines"


def test_lists_compare_and_csv_follow_and_say_which(
    app: Any, client: Any, users: Users, host_api: Api, ended: dict[str, Any]
) -> None:
    sid = ended["id"]
    other = make_session(host_api)["id"]
    host_api.post(f"/api/v1/sessions/{other}/orders", json={"sku": "DRIED-1KG", "quantity": 2})
    host_api.post(f"/api/v1/sessions/{other}/end")
    official = users.api("official")
    live_amount = host_api.get(f"/api/v1/sessions/{sid}/results").json["amount_fen"]
    platform_amount = platform_expected(ended["lines"], ended["start"])["amount_fen"]
    assert live_amount != platform_amount

    def compare() -> dict[str, Any]:
        return official.get(f"/api/v1/compare?ids={sid},{other}").json

    assert compare()["sessions"][0]["figures"]["amount_fen"] == live_amount
    assert official.post(f"/api/v1/sessions/{sid}/final",
                         json={"source": "platform", "reason": "核对"}).status_code == 200
    comparison = compare()
    assert comparison["sessions"][0]["figures"]["amount_fen"] == platform_amount
    assert comparison["sessions"][0]["final"]["source"] == "platform"
    assert comparison["sessions"][1]["final"]["source"] == "live"
    assert comparison["sessions"][1]["difference"]["amount_fen"]["abs"] == 2 * 5900 - platform_amount

    login(client, "official")
    listing = client.get("/sessions?lang=en&sort=total").text
    row = listing[listing.index(f'data-session="{sid}"'):]
    row = row[: row.index("</tr>")]
    assert f'data-fen="{platform_amount}"' in row and "Platform figures" in row
    other_row = listing[listing.index(f'data-session="{other}"'):]
    assert "Live count" in other_row[: other_row.index("</tr>")]

    page = client.get(f"/compare?ids={sid},{other}&lang=en").text
    assert f'data-value="{platform_amount}"' in page and "Platform figures" in page
    rows = list(csv.reader(io.StringIO(client.get(f"/compare.csv?ids={sid},{other}&lang=en").get_data()
                                       .decode("utf-8-sig"))))
    amounts = next(r for r in rows if r[0] == "Total sales")
    assert amounts[1] == f"{platform_amount / 100:.2f}"
    assert rows[-1][:3] == ["Figures", "Platform figures", "Live count"]

    report = client.get(f"/sessions/{sid}?lang=en").text
    assert 'data-final-source="platform"' in report
    figures = report[report.index('id="figures"'):]
    assert f'data-value="{platform_amount}"' in figures[: figures.index("</dl>")]
    final = report[report.index('id="final"'):]
    assert f'data-fen="{live_amount}"' in final and f'data-fen="{platform_amount}"' in final  # both figures

    zh = client.get(f"/sessions/{sid}?lang=zh").text
    assert "平台数据" in zh and "直播记录" in zh


def test_the_totals_widget_and_screens_of_an_ended_session_follow_too(
    app: Any, users: Users, host_api: Api, ended: dict[str, Any]
) -> None:
    from livesale.extensions import socketio

    sid = ended["id"]
    want = platform_expected(ended["lines"], ended["start"])
    live_totals = host_api.get(f"/api/v1/sessions/{sid}/totals").json
    key = host_api.get(f"/api/v1/sessions/{sid}").json["widget_key"]
    widget = app.test_client()
    assert widget.get(f"/widget/{key}.json").json["amount_fen"] == live_totals["amount_fen"]
    viewer = socketio.test_client(app, namespace="/live", auth={"token": users.token("official")})
    viewer.emit("join", {"session": sid}, namespace="/live")
    app.extensions["livesale.ticker"].tick()  # whatever a first tick sends goes before the decision
    viewer.get_received("/live")

    official = users.api("official")
    assert official.post(f"/api/v1/sessions/{sid}/final",
                         json={"source": "platform", "reason": "次日导出已核对"}).status_code == 200
    totals = host_api.get(f"/api/v1/sessions/{sid}/totals").json
    assert (totals["amount_fen"], totals["orders"], totals["items"]) == (
        want["amount_fen"], want["orders"], want["items"])
    assert totals["version"] > live_totals["version"]
    assert widget.get(f"/widget/{key}.json").json["amount_fen"] == want["amount_fen"]
    # A screen watching the ended session is told at once (the ticker's next tick).
    app.extensions["livesale.ticker"].tick()
    pushed = [e["args"][0] for e in viewer.get_received("/live") if e["name"] == "totals"]
    assert pushed and pushed[-1]["amount_fen"] == want["amount_fen"]

    official.client.delete(f"/api/v1/sessions/{sid}/final", headers={"Authorization": f"Bearer {official.token}"})
    assert host_api.get(f"/api/v1/sessions/{sid}/totals").json["amount_fen"] == live_totals["amount_fen"]
    viewer.disconnect(namespace="/live")
