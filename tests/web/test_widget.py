"""The public widget over HTTP: what it shows and hides, its headers, settings, key rotation and budget."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest

from tests.conftest import APRICOT_SESSION, Api, Users

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def widget(host_api: Api) -> dict[str, Any]:
    """A live session with a hostile product name and title, and two orders."""
    body = {**APRICOT_SESSION, "title": f"杏子 {XSS}",
            "products": [*APRICOT_SESSION["products"], {"sku": "EVIL", "name": XSS, "unit_price_fen": 100}]}
    session = host_api.post("/api/v1/sessions", json=body).json
    host_api.post(f"/api/v1/sessions/{session['id']}/start")
    for order in ({"sku": "APRICOT-5KG", "quantity": 2, "buyer_region": "浙江杭州"},
                  {"sku": "EVIL", "quantity": 1, "buyer_region": "上海", "external_id": "ext-123"}):
        assert host_api.post(f"/api/v1/sessions/{session['id']}/orders", json=order).status_code == 201
    return session


def test_page_shows_the_figures_escaped_with_a_strict_csp(client: Any, widget: dict[str, Any]) -> None:
    r = client.get(f"/widget/{widget['widget_key']}?lang=en&show=total,goal,orders,latest,products")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'data-fen="14060"' in html  # 2 × 6980 + 100, server-rendered
    # The hostile title and product name are text: no tag of theirs reaches the page.
    assert "<img" not in html and html.count("<script") == 5  # the data block and four script files
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert "X-Frame-Options" not in r.headers
    assert "Set-Cookie" not in r.headers  # ?lang= picks the language without a cookie
    # No inline script or style: only JSON data and files.
    assert not re.search(r"<script(?![^>]*(type=\"application/json\"|src=))", html)
    assert " style=" not in html


def test_other_pages_refuse_framing(client: Any, widget: dict[str, Any]) -> None:
    for path in ("/", "/login", f"/widget/{widget['widget_key']}.json"):
        r = client.get(path)
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
    assert client.get("/").headers["X-Frame-Options"] == "DENY"


def test_json_is_public_cacheable_and_has_no_buyer_data(client: Any, widget: dict[str, Any]) -> None:
    r = client.get(f"/widget/{widget['widget_key']}.json")
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Cache-Control"] == "public, max-age=1"
    assert "Set-Cookie" not in r.headers
    body = r.json
    assert (body["amount_fen"], body["orders"], body["items"]) == (14060, 2, 3)
    text = r.get_data(as_text=True)
    for secret in ("浙江杭州", "上海", "region", "ext-123", "external_id", "idempotency", '"id"'):
        assert secret not in text, secret
    assert all(set(e) == {"name", "quantity", "at_ms"} for e in body["latest"])


@pytest.mark.parametrize(
    ("query", "html_class", "accent"),
    [
        ("theme=dark&accent=%2300aa88", "theme-dark", "#00aa88"),
        ("theme=transparent&accent=0AF", "theme-transparent", "#0af"),
        ("theme=%3Cscript%3E&accent=red;}body{x", "theme-light", None),
        ("theme=light&accent=%22%3E%3Cscript%3E", "theme-light", None),
    ],
)
def test_options_are_validated(client: Any, widget: dict[str, Any], query: str, html_class: str,
                               accent: str | None) -> None:
    html = client.get(f"/widget/{widget['widget_key']}?{query}&show=bogus,<b>").get_data(as_text=True)
    assert f'class="{html_class}"' in html
    raw = re.search(r'<script type="application/json" id="w-data">(.*?)</script>', html, re.S).group(1)
    data = json.loads(raw)
    assert data["accent"] == accent
    assert data["parts"] == ["total", "goal", "orders"]  # unknown parts: the defaults
    assert "<" not in raw and "<b>" not in html


def test_owner_settings_rotation_and_turning_off(client: Any, users: Users, host_api: Api,
                                                 widget: dict[str, Any]) -> None:
    url = f"/api/v1/sessions/{widget['id']}/widget"
    old = widget["widget_key"]
    r = host_api.patch(url, json={"origins": ["https://news.example.cn", "http://127.0.0.1:8080/"],
                                  "milestone_fen": 1_000_000})
    assert r.status_code == 200, r.json
    assert r.json["widget_origins"] == ["https://news.example.cn", "http://127.0.0.1:8080"]
    assert r.json["widget_milestone_fen"] == 1_000_000
    csp = client.get(f"/widget/{old}").headers["Content-Security-Policy"]
    assert "frame-ancestors https://news.example.cn http://127.0.0.1:8080" in csp
    for bad in ({"origins": ["javascript:alert(1)"]}, {"origins": "https://x.cn"}, {"milestone_fen": -1},
                {"milestone_fen": 1.5}, {"enabled": "yes"}, {"colour": "red"}):
        r = host_api.patch(url, json=bad)
        assert r.status_code == 422, (bad, r.json)
    assert users.api("official").patch(url, json={"enabled": False}).status_code == 403
    assert users.api("host", "other-host").patch(url, json={"enabled": False}).status_code == 403

    rotated = host_api.post(f"{url}/rotate")
    assert rotated.status_code == 200
    new = rotated.json["widget_key"]
    assert new != old
    assert client.get(f"/widget/{old}").status_code == 404
    assert client.get(f"/widget/{old}.json").status_code == 404
    assert client.get(f"/widget/{new}.json").status_code == 200

    assert host_api.patch(url, json={"enabled": False}).json["widget_enabled"] is False
    assert client.get(f"/widget/{new}").status_code == 404
    assert host_api.patch(url, json={"enabled": True}).status_code == 200
    assert client.get(f"/widget/{new}").status_code == 200


def test_widget_transfer_fits_the_budget(client: Any, widget: dict[str, Any]) -> None:
    """The page, its CSS and its JS (the live client included) ≤ 25 KB gzipped; embed.js ≤ 3 KB."""
    page = client.get(f"/widget/{widget['widget_key']}?show=total,goal,orders,latest,products")
    html = page.get_data()
    total = len(gzip.compress(html))
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', html)
    # The CSS, socket.io, live-join.js, money.js (the one money rule, shared with the pages), widget.js.
    assert len(assets) == 5, assets
    for path in assets:
        r = client.get(path.decode())
        total += len(gzip.compress(r.get_data()))
        r.close()
    assert total <= 25 * 1024, f"widget transfer {total} bytes gzipped"
    embed = client.get("/embed.js")
    assert embed.status_code == 200 and embed.headers["Access-Control-Allow-Origin"] == "*"
    assert len(gzip.compress(embed.get_data())) <= 3 * 1024
    embed.close()


def test_owner_manages_the_widget_from_the_session_page(client: Any, users: Users, widget: dict[str, Any]) -> None:
    from tests.web.test_pages import login, page_csrf

    login(client, "host")
    page = client.get(f"/sessions/{widget['id']}?lang=en")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    key = widget["widget_key"]
    assert f'data-widget=&#34;{key}&#34;' in html and "embed.js" in html  # the embed code (escaped), ready to copy
    csrf = page_csrf(html)
    r = client.post(f"/sessions/{widget['id']}/widget", data={
        "csrf_token": csrf, "enabled": "y", "origins": "https://news.example.cn\nhttp://localhost:8000",
        "milestone_yuan": "10000"})
    assert r.status_code == 302
    settings = users.api("host").get(f"/api/v1/sessions/{widget['id']}").json
    assert settings["widget_origins"] == ["https://news.example.cn", "http://localhost:8000"]
    assert settings["widget_milestone_fen"] == 1_000_000 and settings["widget_enabled"] is True
    assert client.post(f"/sessions/{widget['id']}/widget/rotate", data={"csrf_token": csrf}).status_code == 302
    assert client.get(f"/widget/{key}").status_code == 404
    assert client.post(f"/sessions/{widget['id']}/widget/rotate", data={}).status_code == 400  # no CSRF token
    # Officials read the report, without the widget's settings.
    users.token("official")
    login(client, "official")
    assert 'id="widget-form"' not in client.get(f"/sessions/{widget['id']}").get_data(as_text=True)
    assert client.post(f"/sessions/{widget['id']}/widget", data={"csrf_token": csrf}).status_code == 403


def test_pages_and_static_files_go_out_gzipped(client: Any, widget: dict[str, Any]) -> None:
    path = "/static/vendor/socket.io/socket.io.min.js"
    plain = client.get(path)
    body = plain.get_data()
    plain.close()
    zipped = client.get(path, headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.get_data()) == body and len(zipped.get_data()) < len(body) / 2
    again = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304
    again.close()
    page = client.get(f"/widget/{widget['widget_key']}", headers={"Accept-Encoding": "gzip"})
    assert page.headers.get("Content-Encoding") == "gzip"
    assert b"w-total" in gzip.decompress(page.get_data())
    # The API's JSON is not compressed: its CPU goes to recording orders.
    api = client.get(f"/widget/{widget['widget_key']}.json", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in api.headers


def _sell(host_api: Api, session_id: int, sku: str, quantity: int) -> None:
    r = host_api.post(f"/api/v1/sessions/{session_id}/orders", json={"sku": sku, "quantity": quantity})
    assert r.status_code == 201, r.json


def test_goal_beyond_100_percent_shows_the_real_percentage(client: Any, host_api: Api) -> None:
    """¥33.54万 of a ¥30万 goal: "111.8%" and "超额完成", not a bar stuck at 100 %."""
    body = {**APRICOT_SESSION, "goal_fen": 30_000_000,
            "products": [{"sku": "BIG", "name": "礼盒", "unit_price_fen": 33_540_000}]}
    session = host_api.post("/api/v1/sessions", json=body).json
    host_api.post(f"/api/v1/sessions/{session['id']}/start")
    key = session["widget_key"]
    html = client.get(f"/widget/{key}").get_data(as_text=True)
    assert '<span class="w-pct" id="w-pct" data-key-figure="goal">0.0%</span>' in html and 'data-goal="open"' in html
    assert "¥30.00万" in html  # the goal, in the big form
    _sell(host_api, session["id"], "BIG", 1)
    zh = client.get(f"/widget/{key}").get_data(as_text=True)
    assert '<span class="w-pct" id="w-pct" data-key-figure="goal">111.8%</span>' in zh and 'data-goal="exceeded"' in zh
    assert ">¥33.54万</div>" in zh and ">超额完成</span>" in zh
    en = client.get(f"/widget/{key}?lang=en").get_data(as_text=True)
    assert ">¥335.40K</div>" in en and ">Goal exceeded</span>" in en and "111.8%" in en


def test_scheduled_session_shows_when_it_starts(client: Any, host_api: Api) -> None:
    """In the session's own time zone and the widget's language, not ¥0.00."""
    body = {**APRICOT_SESSION, "timezone": "Asia/Urumqi", "scheduled_start": "2026-06-02T12:30:00Z"}
    session = host_api.post("/api/v1/sessions", json=body).json
    assert session["status"] == "scheduled"
    key = session["widget_key"]
    zh = client.get(f"/widget/{key}").get_data(as_text=True)
    assert 'data-status="scheduled"' in zh
    assert '<div class="w-start" id="w-start">6月2日 周二 18:30 开播</div>' in zh  # UTC+6
    en = client.get(f"/widget/{key}?lang=en").get_data(as_text=True)
    assert '<div class="w-start" id="w-start">Starts Tue 2 Jun, 18:30</div>' in en
    unplanned = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    html = client.get(f"/widget/{unplanned['widget_key']}").get_data(as_text=True)
    assert '<div class="w-start" id="w-start">尚未定开播时间</div>' in html
    # Started: the total, no start line.
    host_api.post(f"/api/v1/sessions/{session['id']}/start")
    live = client.get(f"/widget/{key}").get_data(as_text=True)
    assert 'data-status="live"' in live and "w-start" not in live.split("<body>")[1].split("<script")[0]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_turned_off_or_replaced_key_shows_a_quiet_note_still_404(client: Any, host_api: Api,
                                                                   widget: dict[str, Any], lang: str) -> None:
    url = f"/api/v1/sessions/{widget['id']}/widget"
    old = widget["widget_key"]
    new = host_api.post(f"{url}/rotate").json["widget_key"]
    assert host_api.patch(url, json={"enabled": False}).status_code == 200
    note = {"zh": "此挂件暂不可用", "en": "This widget is not available"}[lang]
    for key in (old, new, "x" * 20, "bad"):  # replaced, turned off, never existed, malformed
        r = client.get(f"/widget/{key}?lang={lang}&theme=dark")
        assert r.status_code == 404, key
        html = r.get_data(as_text=True)
        assert f'<p class="w-gone-text">{note}</p>' in html and 'class="theme-dark"' in html
        assert "Not Found" not in html and "<script" not in html and " style=" not in html
        assert "/static/css/widget.css" in html
        csp = r.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp and "frame-ancestors *" in csp
        assert "Set-Cookie" not in r.headers
        # The public JSON stays JSON.
        j = client.get(f"/widget/{key}.json")
        assert j.status_code == 404 and j.headers["Content-Type"] == "application/json"
        assert j.json["error"]["code"] == "not_found"


def test_answers_are_the_same_for_every_reader_and_set_no_cookie(client: Any, app: Any, users: Users,
                                                                  widget: dict[str, Any]) -> None:
    """A shared cache (nginx's microcache) keys the widget on its URL alone: a logged-in reader with a
    language cookie and another Accept-Language must get the very same answer, with no cookie to share."""
    from tests.web.test_pages import login

    key = widget["widget_key"]
    paths = (f"/widget/{key}.json", f"/widget/{key}?lang=ug&show=total,latest", f"/widget/{key}", "/embed.js",
             "/widget/x-wrong-key-000000.json", "/widget/x-wrong-key-000000")
    anonymous = {p: client.get(p, headers={"Accept-Language": "en"}) for p in paths}
    reader = app.test_client()
    login(reader, "host")
    reader.get("/login?lang=en")  # a language cookie too
    assert reader.get_cookie("lang") is not None and reader.get_cookie("session") is not None
    for path in paths:
        a, b = anonymous[path], reader.get(path, headers={"Accept-Language": "ug"})
        assert (b.status_code, b.data) == (a.status_code, a.data), path
        for r in (a, b):
            assert "Set-Cookie" not in r.headers, path
            assert "public" in r.headers["Cache-Control"] and "max-age" in r.headers["Cache-Control"], path
        # (With a login cookie the app says "Vary: Cookie": the rate limiter looks at who is logged in.
        # nginx's microcache does not pass readers' cookies to the widget routes, docs/deploy.md.)
        assert "cookie" not in a.headers.get("Vary", "").lower(), path
        a.close()
        b.close()
    assert anonymous[f"/widget/{key}.json"].headers["Cache-Control"] == "public, max-age=1"
    assert anonymous["/widget/x-wrong-key-000000"].headers["Cache-Control"] == "public, max-age=1"
