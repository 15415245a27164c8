"""The officials' pages: the sessions list, a report, a comparison, and the CSV exports."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from tests.conftest import APRICOT_SESSION, Users
from tests.web.test_compare_api import run_session
from tests.web.test_pages import login


@pytest.fixture
def sessions(users: Users) -> list[tuple[int, list[dict]]]:
    host = users.api("host")
    users.token("official")
    return [
        run_session(host, seed=11, orders=30, refunds=2, end=True, title="六月杏子", village="疏附县",
                    platform="douyin", hosts=["阿依古丽"]),
        run_session(host, seed=12, orders=50, refunds=0, end=True, title="七月葡萄", village="吐鲁番",
                    platform="kuaishou", hosts=["小王"],
                    products=[*APRICOT_SESSION["products"],
                              {"sku": "GRAPE-5KG", "name": "无核白葡萄 5斤", "unit_price_fen": 5800}]),
        run_session(host, seed=13, orders=20, refunds=1, end=False, title="今天杏子", village="疏附县",
                    platform="douyin", hosts=["阿依古丽", "小王"]),
    ]


def total(paid: list[dict]) -> int:
    return sum(o["amount_fen"] for o in paid)


def listed(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-session="(\d+)">', html)]


def test_review_pages_need_a_login(client: Any, sessions: list[Any]) -> None:
    for path in ("/sessions", f"/sessions/{sessions[0][0]}", f"/compare?ids={sessions[0][0]},{sessions[1][0]}",
                 f"/sessions/{sessions[0][0]}/orders.csv"):
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path


def test_list_filters_and_sorts(client: Any, sessions: list[tuple[int, list[dict]]]) -> None:
    login(client, "official")
    ids = [sid for sid, _ in sessions]
    page = client.get("/sessions")
    assert page.status_code == 200
    assert listed(page.text) == ids[::-1]  # newest first
    assert "会话" in page.text or "场次" in page.text or "直播" in page.text  # Chinese by default
    assert listed(client.get("/sessions?village=疏附").text) == [ids[2], ids[0]]
    assert listed(client.get("/sessions?product=葡萄").text) == [ids[1]]
    assert listed(client.get("/sessions?host=小王").text) == [ids[2], ids[1]]
    assert listed(client.get("/sessions?platform=kuaishou").text) == [ids[1]]
    assert listed(client.get("/sessions?status=live").text) == [ids[2]]
    by_total = sorted(sessions, key=lambda s: total(s[1]), reverse=True)
    assert listed(client.get("/sessions?sort=total").text) == [sid for sid, _ in by_total]
    assert listed(client.get("/sessions?sort=orders&dir=asc").text) == [ids[2], ids[0], ids[1]]
    assert listed(client.get("/sessions?from=2000-01-01&to=2000-01-02").text) == []
    # The figures shown are the sums of the orders.
    for sid, paid in sessions:
        assert f'data-fen="{total(paid)}"' in page.text, sid
    # Bad filters are ignored, never a 500.
    assert client.get("/sessions?sort=nope&dir=x&page=-3&from=yesterday&status=gone").status_code == 200


def test_a_host_lists_only_own_sessions(client: Any, users: Users, sessions: list[Any]) -> None:
    users.token("host", "another-host")
    login(client, "another-host")
    assert listed(client.get("/sessions").text) == []
    assert client.get(f"/sessions/{sessions[0][0]}").status_code == 403
    assert client.get(f"/sessions/{sessions[0][0]}/orders.csv").status_code == 403
    assert client.get(f"/compare?ids={sessions[0][0]},{sessions[1][0]}").status_code == 403


def test_report_shows_the_figures_and_marks_refunds(client: Any, sessions: list[tuple[int, list[dict]]]) -> None:
    login(client, "official")
    sid, paid = sessions[0]
    page = client.get(f"/sessions/{sid}?lang=en")
    assert page.status_code == 200
    assert f'data-figure="amount_fen" data-value="{total(paid)}"' in page.text
    assert f'data-figure="orders" data-value="{len(paid)}"' in page.text
    assert page.text.count('class="refunded"') == 2 and "Refunded" in page.text
    assert 'data-chart="cumulative"' in page.text and 'data-chart="per-minute"' in page.text
    live = client.get(f"/sessions/{sessions[2][0]}?lang=en")
    assert live.status_code == 200 and "Figures as of now" in live.text
    assert client.get("/sessions/999999").status_code == 404


def test_orders_csv_has_a_bom_and_every_order(client: Any, sessions: list[tuple[int, list[dict]]]) -> None:
    login(client, "official")
    sid, paid = sessions[0]
    r = client.get(f"/sessions/{sid}/orders.csv?lang=zh")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in r.headers["Content-Disposition"]
    body = r.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    header, data = rows[0], rows[1:]
    assert "金额（元）" in header or any("元" in h for h in header), header
    assert len(data) == 30
    amount = header.index(next(h for h in header if "元" in h and "单价" not in h))
    status = len(header) - 2
    paid_rows = [row for row in data if row[status] == "paid"]
    assert sum(round(float(row[amount]) * 100) for row in paid_rows) == total(paid)
    assert len(paid_rows) == len(paid)


def test_compare_page_and_csv(client: Any, sessions: list[tuple[int, list[dict]]]) -> None:
    login(client, "official")
    ids = ",".join(str(sid) for sid, _ in sessions)
    page = client.get(f"/compare?ids={ids}&lang=en")
    assert page.status_code == 200
    for _sid, paid in sessions:
        assert f'data-value="{total(paid)}"' in page.text
    assert 'class="pace"' in page.text  # the live session against the best earlier one of its village
    r = client.get(f"/compare.csv?ids={ids}&lang=en")
    assert r.status_code == 200 and r.get_data().startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig"))))
    amounts = next(row for row in rows if row[0] == "Total sales")
    assert amounts[1] == f"{total(sessions[0][1]) / 100:.2f}"
    assert amounts[2] == f"{total(sessions[1][1]) / 100:.2f}"
    assert amounts[3] == f"{(total(sessions[1][1]) - total(sessions[0][1])) / 100:.2f}"
    assert client.get("/compare").status_code == 200  # the empty form
    assert client.get("/compare?ids=1").status_code == 400


def test_report_says_what_sold_in_the_peak_minute(client: Any, sessions: list[tuple[int, list[dict]]]) -> None:
    """Persisted when the session ended; for a live session summed over that minute now."""
    login(client, "official")
    for sid, paid in (sessions[0], sessions[2]):
        page = client.get(f"/sessions/{sid}?lang=en").text
        sold = re.search(r'<ul class="peak-sold" id="peak-sold">(.*?)</ul>', page, re.S)
        assert sold, sid
        # All orders of the test fall in minute 0, the peak: every product sold appears with its quantity.
        for sku in {o["sku"] for o in paid}:
            name = next(p["name"] for p in APRICOT_SESSION["products"] if p["sku"] == sku)
            quantity = sum(o["quantity"] for o in paid if o["sku"] == sku)
            assert f"{name} × {quantity} ·" in sold.group(1), (sid, sku)


def test_the_host_starts_and_ends_a_session_from_its_page(client: Any, users: Users) -> None:
    from tests.web.test_pages import page_csrf

    host = users.api("host")
    sid = host.post("/api/v1/sessions", json=APRICOT_SESSION).json["id"]
    login(client, "host")
    page = client.get(f"/sessions/{sid}?lang=en")
    assert "Start the session" in page.text
    csrf = page_csrf(page.text)
    assert client.post(f"/sessions/{sid}/start", data={}).status_code == 400  # no CSRF token
    assert client.post(f"/sessions/{sid}/start", data={"csrf_token": csrf}).status_code == 302
    assert host.get(f"/api/v1/sessions/{sid}").json["status"] == "live"
    assert host.post(f"/api/v1/sessions/{sid}/orders", json={"sku": "APRICOT-5KG", "quantity": 2}).status_code == 201
    assert "End the session" in client.get(f"/sessions/{sid}?lang=en").text
    assert client.post(f"/sessions/{sid}/end", data={"csrf_token": csrf}).status_code == 302
    results = host.get(f"/api/v1/sessions/{sid}/results").json
    assert results["orders"] == 1 and results["amount_fen"] == 2 * APRICOT_SESSION["products"][0]["unit_price_fen"]
    # Officials only read.
    users.token("official")
    login(client, "official")
    assert 'id="lifecycle"' not in client.get(f"/sessions/{sid}").text
    assert client.post(f"/sessions/{sid}/end", data={"csrf_token": csrf}).status_code == 403
