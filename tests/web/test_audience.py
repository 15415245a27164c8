"""Audience figures over HTTP (issue 15 item 3): ``PATCH /api/v1/sessions/<id>/audience``, the ``audience`` and
``audience_figures`` of a session and its results, the report's section and form, and the comparison
(page and CSV). Expected figures are worked out here by hand from the orders the test places."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape
from typing import Any

import pytest

from livesale.core import audience as aud
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_pages import login, page_csrf

NONE = dict.fromkeys(aud.AUDIENCE_FIELDS)
NO_FIGURES = dict.fromkeys(aud.FIGURE_FIELDS)


def make(api: Api, *, start: bool = True, orders: list[tuple[str, int]] = (), refund: int | None = None,
         end: bool = False, title: str = APRICOT_SESSION["title"]) -> int:
    created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": title})
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    if start:
        assert api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    if orders:
        r = api.post(f"/api/v1/sessions/{sid}/orders", json={"orders": [{"sku": s, "quantity": q} for s, q in orders]})
        assert r.status_code == 201, r.json
        if refund is not None:
            oid = r.json["orders"][refund]["id"]
            assert api.post(f"/api/v1/sessions/{sid}/orders/{oid}/refund").status_code == 200
    if end:
        assert api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    return sid


def patch(api: Api, sid: int, body: Any) -> Any:
    # Encoded here (the stdlib's JSON): the test client's encoder refuses integers beyond 64 bits.
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api.token}"} if api.token else {})}
    return api.client.patch(f"/api/v1/sessions/{sid}/audience", data=json.dumps(body), headers=headers)


# Orders: 2 × 鲜杏 (13,960), 3 × 杏干 (17,700), 1 × 鲜杏 (6,980), 1 × 杏干 (5,900); the second refunded.
ORDERS = [("APRICOT-5KG", 2), ("DRIED-1KG", 3), ("APRICOT-5KG", 1), ("DRIED-1KG", 1)]
PAID_FEN, PAID_ORDERS = 13_960 + 6_980 + 5_900, 3  # 26,840 fen in 3 orders


# --- the API -----------------------------------------------------------------------------------------


def test_patch_partial_update_and_null_clears(host_api: Api) -> None:
    sid = make(host_api, orders=ORDERS, refund=1)
    r = patch(host_api, sid, {"viewers": 1_000, "peak_viewers": 120, "likes": 4_321})
    assert r.status_code == 200, r.json
    # GPM 26,840 × 1000 ÷ 1,000 = 26,840; per viewer 26.84 → 27; average 8,946.67 → 8,947; 3 ÷ 1,000 = 0.003.
    figures = {"orders_per_viewer": 0.003, "sales_per_viewer_fen": 27, "gpm_fen": 26_840, "average_order_fen": 8_947}
    assert r.json == {"audience": {**NONE, "viewers": 1_000, "peak_viewers": 120, "likes": 4_321},
                      "audience_figures": figures}
    r = patch(host_api, sid, {"comments": 55, "likes": None})  # the others stay; null clears
    assert r.json["audience"] == {**NONE, "viewers": 1_000, "peak_viewers": 120, "comments": 55}
    assert patch(host_api, sid, {}).json["audience"] == r.json["audience"]
    r = patch(host_api, sid, {"viewers": None})
    assert r.json["audience_figures"] == {**NO_FIGURES, "average_order_fen": 8_947}


def test_get_session_and_results_carry_both(users: Users, host_api: Api) -> None:
    official = users.api("official")
    scheduled = make(host_api, start=False)
    got = official.get(f"/api/v1/sessions/{scheduled}").json
    assert (got["audience"], got["audience_figures"], got["title"]) == (NONE, NO_FIGURES, APRICOT_SESSION["title"])

    sid = make(host_api, orders=ORDERS, refund=1)
    assert patch(host_api, sid, {"viewers": 56_789, "new_followers": 845}).status_code == 200
    # 26,840,000 ÷ 56,789 = 472.6… → 473; 26,840 ÷ 56,789 = 0.47 → 0; 3 ÷ 56,789 = 0.0000528 → 0.0001.
    want = {"orders_per_viewer": 0.0001, "sales_per_viewer_fen": 0, "gpm_fen": 473, "average_order_fen": 8_947}
    live = official.get(f"/api/v1/sessions/{sid}").json
    assert live["audience"] == {**NONE, "viewers": 56_789, "new_followers": 845}
    assert live["audience_figures"] == want
    assert host_api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    results = official.get(f"/api/v1/sessions/{sid}/results").json
    assert (results["amount_fen"], results["orders"]) == (PAID_FEN, PAID_ORDERS)
    assert (results["audience"], results["audience_figures"]) == (live["audience"], want)
    assert official.get(f"/api/v1/sessions/{sid}").json["audience_figures"] == want


def test_results_use_the_figures_that_stand(app: Any, users: Users, host_api: Api) -> None:
    from tests.core.test_reconcile import add_lines

    sid = make(host_api, orders=ORDERS, refund=1, end=True)
    lines = add_lines(app, sid)
    patch(host_api, sid, {"viewers": 400})
    official = users.api("official")
    confirmed = official.post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": "核对"})
    assert confirmed.status_code == 200, confirmed.json
    results = official.get(f"/api/v1/sessions/{sid}/results").json
    paid = [x for x in lines if x["status"] == "paid"]
    amount, orders = sum(x["amount_fen"] for x in paid), len(paid)
    assert (results["amount_fen"], results["orders"]) == (amount, orders) != (PAID_FEN, PAID_ORDERS)
    want = aud.audience_figures(amount_fen=amount, orders=orders, audience={**NONE, "viewers": 400})
    assert results["audience_figures"] == want == official.get(f"/api/v1/sessions/{sid}").json["audience_figures"]
    assert want["gpm_fen"] == amount * 1000 // 400  # 400 divides it: no rounding
    # The report shows the same figures.
    login(official.client, "official")
    page = official.client.get(f"/sessions/{sid}").text
    assert f'data-conversion="gpm_fen" data-value="{want["gpm_fen"]}"' in page


def test_who_may_patch(users: Users, host_api: Api) -> None:
    sid = make(host_api)
    for role, name, status in [("official", "official", 403), ("host", "host-2", 403), ("admin", "admin", 200),
                               ("host", "host", 200)]:
        r = patch(users.api(role, name), sid, {"viewers": 10})
        assert r.status_code == status, (name, r.json)
    assert patch(Api(users.app.test_client(), None), sid, {"viewers": 10}).status_code == 401
    # An official is refused before the body is read: 403, not 422.
    r = patch(users.api("official"), sid, {"viewers": "x"})
    assert (r.status_code, r.json["error"]["code"]) == (403, "forbidden")
    assert patch(host_api, 999_999, {"viewers": 1}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({"viewers": True}, "viewers"), ({"likes": 1.5}, "likes"), ({"comments": "12"}, "comments"),
     ({"peak_viewers": -1}, "peak_viewers"), ({"new_followers": aud.MAX_AUDIENCE + 1}, "new_followers"),
     ({"viewers": 5, "fans": 1}, "fans"), ({"viewers": 10**30}, "viewers"), ([1], "body")],
)
def test_refusals_name_the_field_and_store_nothing(host_api: Api, body: Any, field: str) -> None:
    sid = make(host_api)
    patch(host_api, sid, {"viewers": 1, "likes": 2})
    r = patch(host_api, sid, body)
    assert (r.status_code, r.json["error"]["code"], r.json["error"]["field"]) == (422, "invalid", field)
    assert host_api.get(f"/api/v1/sessions/{sid}").json["audience"] == {**NONE, "viewers": 1, "likes": 2}


def test_not_json_and_not_started(host_api: Api) -> None:
    sid = make(host_api)
    r = host_api.client.patch(f"/api/v1/sessions/{sid}/audience", data="viewers=1",
                              headers={"Authorization": f"Bearer {host_api.token}"})
    assert (r.status_code, r.json["error"]["field"]) == (400, "body")
    scheduled = make(host_api, start=False)
    r = patch(host_api, scheduled, {"viewers": 1})
    assert (r.status_code, r.json["error"]["code"]) == (409, "session_not_live")


def test_cookie_callers_need_the_csrf_header(client: Any, users: Users, host_api: Api) -> None:
    sid = make(host_api)
    login(client, "host")
    csrf = page_csrf(client.get(f"/sessions/{sid}").text)
    r = client.patch(f"/api/v1/sessions/{sid}/audience", json={"viewers": 7})
    assert (r.status_code, r.json["error"]["code"]) == (403, "csrf")
    r = client.patch(f"/api/v1/sessions/{sid}/audience", json={"viewers": 7}, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200 and r.json["audience"]["viewers"] == 7


# --- the report's section and form -------------------------------------------------------------------


def form_token(html: str) -> str:
    section = html[html.index('id="audience-form"'):]
    return re.search(r'name="csrf_token" value="([^"]+)"', section).group(1)


def shown(html: str, attr: str, key: str) -> str:
    """The text of a figure of the audience section (``data-audience`` / ``data-conversion``)."""
    found = re.search(rf'data-{attr}="{key}"[^>]*><dt>[^<]*</dt>\s*<dd>(.*?)</dd>', html, re.S)
    assert found, key
    return unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def test_the_host_gives_them_on_the_report(client: Any, host_api: Api) -> None:
    sid = make(host_api, orders=ORDERS, refund=1)
    login(client, "host")
    page = client.get(f"/sessions/{sid}").text
    assert 'id="audience-form"' in page
    assert shown(page, "audience", "viewers") == "—" and shown(page, "conversion", "gpm_fen") == "—"
    assert shown(page, "conversion", "average_order_fen") == "¥89.47"  # 26,840 ÷ 3 = 8,946.67 → 8,947 fen
    r = client.post(f"/sessions/{sid}/audience", data={
        "csrf_token": form_token(page), "viewers": "1,000", "peak_viewers": "１２０", "new_followers": "",
        "likes": "4321", "comments": " 55 "})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/sessions/{sid}#audience")
    assert host_api.get(f"/api/v1/sessions/{sid}").json["audience"] == {
        "viewers": 1_000, "peak_viewers": 120, "new_followers": None, "likes": 4_321, "comments": 55}
    page = client.get(f"/sessions/{sid}").text
    assert '<p class="flash ok" role="alert">观众数据已保存</p>' in page
    assert [shown(page, "audience", k) for k in aud.AUDIENCE_FIELDS] == ["1,000", "120", "—", "4,321", "55"]
    # 3 ÷ 1,000 = 0.3 %; 26,840 ÷ 1,000 = 26.84 → 27 fen; GPM 26,840 fen; average 8,947 fen.
    assert [shown(page, "conversion", k) for k in aud.FIGURE_FIELDS] == ["0.3%", "¥0.27", "¥268.40", "¥89.47"]
    assert 'value="1000"' in page  # the form shows what is stored


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_refused_boxes_are_shown_next_to_themselves(client: Any, host_api: Api, lang: str) -> None:
    sid = make(host_api, orders=ORDERS)
    patch(host_api, sid, {"viewers": 500, "likes": 9})
    login(client, "host")
    page = client.get(f"/sessions/{sid}?lang={lang}").text
    r = client.post(f"/sessions/{sid}/audience", data={
        "csrf_token": form_token(page), "viewers": "-3", "peak_viewers": "很多", "likes": "1.5", "comments": "7"})
    assert r.status_code == 303
    assert host_api.get(f"/api/v1/sessions/{sid}").json["audience"] == {**NONE, "viewers": 500, "likes": 9}
    page = client.get(r.headers["Location"]).text
    errors = dict(re.findall(r'<p class="field-error" id="audience-(\w+)-error">([^<]+)</p>', page))
    words = {"zh": {"viewers": "不能为负数", "peak_viewers": "请输入整数", "likes": "请输入整数"},
             "en": {"viewers": "Cannot be negative", "peak_viewers": "Enter a whole number",
                    "likes": "Enter a whole number"}}[lang]
    assert errors == words
    assert 'id="audience-viewers" name="viewers" value="-3"' in page  # what was typed, to correct it
    assert 'value="很多"' in page and 'aria-describedby="audience-likes-error"' in page
    # Shown once: the next visit is the stored figures again.
    again = client.get(f"/sessions/{sid}").text
    assert "field-error" not in again and 'name="viewers" value="500"' in again


def test_the_form_needs_its_csrf_token(client: Any, host_api: Api) -> None:
    sid = make(host_api)
    login(client, "host")
    r = client.post(f"/sessions/{sid}/audience", data={"viewers": "10"})
    assert r.status_code == 400
    page = client.get(f"/sessions/{sid}").text
    r = client.post(f"/sessions/{sid}/audience", data={"viewers": "10", "csrf_token": "x" * 40})
    assert r.status_code == 400
    assert host_api.get(f"/api/v1/sessions/{sid}").json["audience"] == NONE
    assert client.post(f"/sessions/{sid}/audience", data={"viewers": "10", "csrf_token": form_token(page)}
                       ).status_code == 303


def test_an_official_sees_the_figures_but_no_form(client: Any, users: Users, host_api: Api) -> None:
    sid = make(host_api, orders=ORDERS, refund=1, end=True)
    patch(host_api, sid, {"viewers": 2_000, "comments": 12})
    users.token("official")
    login(client, "official")
    page = client.get(f"/sessions/{sid}?lang=en").text
    assert 'id="audience-figures"' in page and 'id="audience-form"' not in page
    assert shown(page, "audience", "viewers") == "2,000" and shown(page, "audience", "likes") == "—"
    # 26,840 × 1000 ÷ 2,000 = 13,420 fen; 26,840 ÷ 2,000 = 13.42 → 13; 3 ÷ 2,000 = 0.15 %.
    assert shown(page, "conversion", "gpm_fen") == "¥134.20"
    assert shown(page, "conversion", "sales_per_viewer_fen") == "¥0.13"
    assert shown(page, "conversion", "orders_per_viewer") == "0.2%"  # 0.15 % to one decimal, half-even: 0.2 %
    csrf = page_csrf(page)
    assert client.post(f"/sessions/{sid}/audience", data={"viewers": "1", "csrf_token": csrf}).status_code == 403
    assert host_api.get(f"/api/v1/sessions/{sid}").json["audience"]["viewers"] == 2_000


def test_a_tiny_rate_is_not_a_made_up_zero(client: Any, users: Users, host_api: Api) -> None:
    sid = make(host_api, orders=ORDERS, refund=1)
    login(client, "host")
    for viewers, text in [(6_000, "<0.1%"), (5_999, "0.1%"), (56_789, "<0.1%"), (3, "100.0%")]:
        # 3 orders: 3 × 1000 ÷ 6,000 = 0.5 tenths of a per cent → "0.0%" by the formatter, so "<0.1%";
        # ÷ 5,999 = 0.5001 → 0.1 %.
        patch(host_api, sid, {"viewers": viewers})
        assert shown(client.get(f"/sessions/{sid}").text, "conversion", "orders_per_viewer") == text, viewers


def test_a_scheduled_session_has_no_audience_section(client: Any, host_api: Api) -> None:
    sid = make(host_api, start=False)
    login(client, "host")
    assert 'id="audience"' not in client.get(f"/sessions/{sid}").text


# --- the comparison ------------------------------------------------------------------------------------


def test_compare_has_a_row_each_and_the_csv_too(client: Any, users: Users, host_api: Api) -> None:
    first = make(host_api, orders=ORDERS, refund=1, end=True, title="六月")
    second = make(host_api, orders=[("DRIED-1KG", 2)], end=True, title="七月")  # 11,800 fen in 1
    patch(host_api, first, {"viewers": 1_000, "likes": 300})
    patch(host_api, second, {"viewers": 400})
    official = users.api("official")
    body = official.get(f"/api/v1/compare?ids={first},{second}").json
    one, two = body["sessions"]
    assert one["audience"] == {**NONE, "viewers": 1_000, "likes": 300} and one["audience_difference"] is None
    # Second: GPM 11,800,000 ÷ 400 = 29,500; per viewer 29.5 → 30 (half-even: 29.5 → 30); 1 ÷ 400 = 0.0025.
    assert two["audience_figures"] == {"orders_per_viewer": 0.0025, "sales_per_viewer_fen": 30, "gpm_fen": 29_500,
                                       "average_order_fen": 11_800}
    assert two["audience_difference"]["viewers"] == {"abs": -600, "pct": -60.0}
    assert two["audience_difference"]["gpm_fen"] == {"abs": 29_500 - 26_840, "pct": 9.9}
    assert two["audience_difference"]["likes"] == {"abs": None, "pct": None}
    assert two["audience_difference"]["orders_per_viewer"] == {"abs": None, "pct": None}

    login(client, "official")
    page = client.get(f"/compare?ids={first},{second}&lang=en").text
    for key in ("viewers", "peak_viewers", "new_followers", "likes", "comments", "orders_per_viewer",
                "sales_per_viewer_fen", "gpm_fen"):
        assert f'<tr data-figure="{key}" class="audience-row">' in page, key
    row = page[page.index('<tr data-figure="gpm_fen"'):]
    row = row[:row.index("</tr>")]
    assert "¥268.40" in row and "¥295.00" in row and "▲ +¥26.60" in row
    row = page[page.index('<tr data-figure="likes"'):]
    assert "—" in row[:row.index("</tr>")]

    r = client.get(f"/compare.csv?ids={first},{second}&lang=en")
    rows = {line[0]: line[1:] for line in csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff")))}
    assert rows["Viewers"] == ["1000", "400", "-600", "-60.0"]
    assert rows["GPM (sales per 1,000 viewers)"] == ["268.40", "295.00", "26.60", "9.9"]
    assert rows["Orders per viewer"] == ["0.003", "0.0025", "", ""]
    assert rows["Likes"] == ["300", "", "", ""]
