"""Reconciliation over HTTP (issue 14 item 2): the API, the page and its CSV; the report's final-figures form.

The figures themselves are checked against the test's own sums in tests/core/test_reconcile.py;
here: who may see and do what, what the page says in both languages, and that the CSV is safe to
open in a spreadsheet with hostile product names and ids (it goes red without the formula guard).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import APRICOT_SESSION, Api, Users
from tests.core.test_reconcile import LINES, add_lines, make_session, record_live
from tests.web.test_csv_safety import HOSTILE, dangerous_cells, is_number, rows_of
from tests.web.test_pages import login, page_csrf


@pytest.fixture
def reconciled(app: Any, host_api: Api) -> int:
    sid = make_session(host_api)["id"]
    record_live(app, host_api, sid)
    add_lines(app, sid)
    return sid


def test_the_api_answers_readers_only(users: Users, host_api: Api, reconciled: int) -> None:
    path = f"/api/v1/sessions/{reconciled}/reconciliation"
    body = host_api.get(path).json
    assert set(body) >= {"live", "platform", "difference", "by_product", "by_slot", "only_live", "only_platform",
                         "final"}
    assert body["difference"]["amount_fen"] == body["platform"]["amount_fen"] - body["live"]["amount_fen"]
    assert set(body["platform"]["by_platform"]) == {"douyin", "kuaishou", "channels"}
    assert users.api("official").get(path).status_code == 200
    assert users.api("admin").get(path).status_code == 200
    assert users.api("host", "host-2").get(path).status_code == 403
    assert Api(host_api.client, None).get(path).status_code == 401
    assert host_api.get("/api/v1/sessions/424242/reconciliation").status_code == 404


def test_the_page_says_it_in_words_and_arrows(client: Any, users: Users, reconciled: int, host_api: Api) -> None:
    users.token("official")
    login(client, "official")
    body = host_api.get(f"/api/v1/sessions/{reconciled}/reconciliation").json
    en = client.get(f"/sessions/{reconciled}/reconciliation?lang=en")
    assert en.status_code == 200
    words = re.search(r'id="reconcile-words">(.*?)</p>', en.text, re.S)
    assert words and "The platform's record has" in words.group(1)
    assert "▲" in en.text and "▼" in en.text  # a difference is never colour alone
    for p in body["by_product"]:
        assert f'data-sku="{p["sku"]}"' in en.text
    assert en.text.count('data-offset="') == len(body["by_slot"]) and 'data-offset="-10"' in en.text
    assert "console-9" in en.text and "douyin:1003" in en.text  # one side only
    zh = client.get(f"/sessions/{reconciled}/reconciliation?lang=zh").text
    assert "对账" in zh and "平台数据" in zh and "直播记录" in zh and "开播前" in zh
    assert "douyin</th>" not in zh and "抖音" in zh  # platforms by name, not code


def test_the_csv_has_a_bom_every_part_and_no_formulas(client: Any, app: Any, users: Users) -> None:
    """Product names, SKUs' names, channels and ids from buyers and exports: quoted as text; amounts numbers."""
    api = users.api("host")
    products = [{"sku": f"H{i}", "name": name, "unit_price_fen": 1000 + i} for i, name in enumerate(HOSTILE)]
    created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": HOSTILE[0], "products": products})
    sid = created.json["id"]
    api.post(f"/api/v1/sessions/{sid}/start")
    record_live(app, api, sid, [(f"H{i}", 1 + i, HOSTILE[i][:32], f"{HOSTILE[i]}#{i}", False, 0)
                                for i in range(len(HOSTILE))])
    add_lines(app, sid, [(f"douyin:{HOSTILE[i]}", f"H{i}", 2, 5000 + i, 5, "paid", HOSTILE[i], "")
                         for i in range(len(HOSTILE))])
    login(client, "host")
    r = client.get(f"/sessions/{sid}/reconciliation.csv?lang=en")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = rows_of(r.data)
    assert not dangerous_cells(rows), dangerous_cells(rows)
    cells = {cell for row in rows for cell in row}
    for text in HOSTILE:
        assert "'" + text in cells, text  # product names and channels, kept as text
    assert "'" + f"{HOSTILE[1]}#1" in cells  # a live external id, only on the live side
    parts = {row[0] for row in rows[1:]}
    assert {"Total", "Channel / platform", "Product", "10 minutes from", "Only in the live count",
            "Only on the platform"} <= parts
    total = next(row for row in rows if row[0] == "Total")
    # Platform − live: more sold on the platform here, a positive number; the live amount a number too.
    assert all(is_number(cell) for cell in total[3:])
    want_live = sum((1 + i) * (1000 + i) for i in range(len(HOSTILE)))
    want_platform = sum(5000 + i for i in range(len(HOSTILE)))
    assert total[5] == f"{want_live / 100:.2f}" and total[8] == f"{want_platform / 100:.2f}"
    assert total[11] == f"{(want_platform - want_live) / 100:.2f}"
    products_rows = [row for row in rows if row[0] == "Product"]
    negative = [row[11] for row in products_rows if row[11].startswith("-")]
    assert negative and all(is_number(cell) for cell in negative)  # negative differences stay numbers


def test_the_reports_form_confirms_proposes_and_reverts(
    app: Any, client: Any, users: Users, host_api: Api, reconciled: int
) -> None:
    host_api.post(f"/api/v1/sessions/{reconciled}/end")
    users.token("official")

    def post(form: dict[str, str]) -> Any:
        page = client.get(f"/sessions/{reconciled}?lang=en")
        return client.post(f"/sessions/{reconciled}/final", data={**form, "csrf_token": page_csrf(page.text)})

    login(client, "host")
    page = client.get(f"/sessions/{reconciled}?lang=en").text
    assert 'id="final-form"' in page and "Propose" in page and 'id="final-revert"' not in page
    assert 'data-confirm="' in page[page.index('id="final-form"') - 400:]
    r = post({"source": "platform", "reason": "平台更全"})
    assert r.status_code == 302
    page = client.get(f"/sessions/{reconciled}?lang=en").text
    assert 'data-final-source="live"' in page and 'id="final-proposal"' in page

    client.post("/logout", data={"csrf_token": page_csrf(page)})
    login(client, "official")
    assert post({"source": "platform", "reason": ""}).status_code == 302  # no reason: nothing changes
    assert 'data-final-source="live"' in client.get(f"/sessions/{reconciled}?lang=en").text
    post({"source": "platform", "reason": "次日导出已核对"})
    page = client.get(f"/sessions/{reconciled}?lang=en").text
    assert 'data-final-source="platform"' in page and "次日导出已核对" in page and 'id="final-revert"' in page
    post({"action": "revert"})
    assert 'data-final-source="live"' in client.get(f"/sessions/{reconciled}?lang=en").text
    assert client.post(f"/sessions/{reconciled}/final", data={"source": "live", "reason": "x"}).status_code == 400


def test_lines_sum_as_the_api_says(host_api: Api, reconciled: int) -> None:
    body = host_api.get(f"/api/v1/sessions/{reconciled}/reconciliation").json
    paid = [x for x in LINES if x[5] == "paid"]
    assert body["platform"]["amount_fen"] == sum(x[3] for x in paid)
    assert body["platform"]["orders"] == len(paid)
