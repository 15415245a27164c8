"""The session pages for hosts: /sessions/new, /sessions/<id>/edit, duplicating and deleting, through the
real login form and CSRF tokens; what is stored is read back through the core."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from livesale.core import orders as order_service
from livesale.core import sessions as session_service
from livesale.core import validation
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import host_actor, order_input
from tests.web.test_outsider_fuzz import fingerprint
from tests.web.test_pages import login, page_csrf

GOOD = {
    "title": "喀什杏子直播", "village": "疏附县", "hosts": "阿依古丽、买买提", "platform": "douyin",
    "scheduled_start": "2026-06-01T20:00", "timezone": "Asia/Shanghai", "planned_duration_min": "90",
    "goal_yuan": "¥60,000",
    "products-0-sku": "APRICOT-5KG", "products-0-name": "鲜杏 5斤", "products-0-unit": "2.5 kg box",
    "products-0-price_yuan": "６９．８", "products-0-stock": "100",
    "products-1-sku": "DRIED-1KG", "products-1-name": "杏干 1公斤", "products-1-unit": "",
    "products-1-price_yuan": "59", "products-1-stock": "",
}


def _client(app: Any, users: Users, name: str = "host", role: str = "host", lang: str = "zh") -> Any:
    users.token(role, name)
    client = app.test_client()
    login(client, name)
    client.get(f"/sessions?lang={lang}")
    return client


def _post(client: Any, url: str, data: dict[str, str]) -> Any:
    token = page_csrf(client.get(url).text)
    return client.post(url, data={**data, "csrf_token": token})


def _errors(html: str) -> dict[str, str]:
    """Field name -> the error shown next to it (and the field points at it with aria-describedby)."""
    found = {}
    for name, message in re.findall(r'<p class="field-error" id="([^"]+)-error">([^<]*)</p>', html):
        field = re.search(rf'<(input|select|fieldset)[^>]*id="{re.escape(name)}"[^>]*>', html)
        assert field is not None, name
        assert f'{name}-error' in field.group(0), field.group(0)
        assert field.group(1) == "fieldset" or 'aria-invalid="true"' in field.group(0), field.group(0)
        found[name] = unescape(message)
    return found


def _value(html: str, name: str) -> str:
    field = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', html)
    assert field is not None, name
    return unescape(field.group(1))


def test_a_host_creates_a_session_and_is_sent_to_it(app: Any, users: Users) -> None:
    client = _client(app, users)
    page = client.get("/sessions/new")
    assert page.status_code == 200
    assert _value(page.text, "hosts") == "host" and _value(page.text, "products-0-sku") == ""
    assert ">抖音<" in page.text and ">快手<" in page.text  # platform names, not codes
    r = _post(client, "/sessions/new", GOOD)
    assert r.status_code == 303
    sid = int(re.fullmatch(r"/sessions/([0-9]+)", r.headers["Location"]).group(1))
    info = session_service.get_session(backend.store_of(app), actor=host_actor(backend.store_of(app).db), session_id=sid)
    assert (info.title, info.hosts, info.platform, info.goal_fen, info.planned_duration_min) == (
        "喀什杏子直播", ["阿依古丽", "买买提"], "douyin", 6_000_000, 90)
    assert info.scheduled_start is not None and info.scheduled_start.isoformat() == "2026-06-01T12:00:00+00:00"
    assert [(p.sku, p.unit_price_fen, p.stock) for p in info.products] == [
        ("APRICOT-5KG", 6980, 100), ("DRIED-1KG", 5900, None)]
    assert "场次已创建" in client.get(r.headers["Location"]).text


def test_every_wrong_field_is_shown_next_to_it_and_nothing_is_stored(app: Any, users: Users) -> None:
    client = _client(app, users)
    store = backend.store_of(app)
    before = fingerprint(store)
    bad = {**GOOD, "title": "  ", "goal_yuan": "12.345", "scheduled_start": "明天", "planned_duration_min": "abc",
           "products-0-price_yuan": "-5", "products-1-sku": "杏 干", "products-1-stock": "-1",
           "products-2-sku": "APRICOT-5KG", "products-2-name": "重复", "products-2-price_yuan": "1e3",
           "platform": "other", "platform_other": "x" * 60}
    r = _post(client, "/sessions/new", bad)
    assert r.status_code == 200
    assert fingerprint(store) == before
    assert _errors(r.text) == {
        "title": "必填",
        "goal_yuan": "最多两位小数（到分）",
        "scheduled_start": "请输入日期和时间，例如 2026-06-01 20:00",
        "planned_duration_min": "请输入整数",
        "products-0-price_yuan": "不能为负数",
        "products-1-sku": "1–64 个字母、数字、“.”、“_”或“-”，以字母或数字开头",
        "products-1-stock": "请输入 0 到 1000000000 之间的整数",
        "products-2-sku": "另一个商品已使用这个商品编码",
        "products-2-price_yuan": "请输入以元为单位的金额，例如 69.80",
        "platform_other": "最多 50 个字",
    }
    # The form keeps what was typed.
    assert _value(r.text, "goal_yuan") == "12.345" and _value(r.text, "products-1-sku") == "杏 干"
    assert _value(r.text, "products-0-price_yuan") == "-5" and 'id="form-errors"' in r.text


def test_errors_in_english_and_no_products(app: Any, users: Users) -> None:
    client = _client(app, users, lang="en")
    data = {k: v for k, v in GOOD.items() if not k.startswith("products-")}
    r = _post(client, "/sessions/new", {**data, "products-0-sku": " ", "goal_yuan": "100000000000"})
    assert _errors(r.text) == {"products": "Add at least one product", "goal_yuan": "At most ¥10,000,000,000"}
    assert 'id="products-error"' in r.text


def test_officials_and_strangers_cannot_manage(app: Any, users: Users) -> None:
    official = _client(app, users, "official", "official")
    assert official.get("/sessions/new").status_code == 403
    token = page_csrf(official.get("/sessions").text)
    before = fingerprint(backend.store_of(app))
    assert official.post("/sessions/new", data={**GOOD, "csrf_token": token}).status_code == 403
    assert fingerprint(backend.store_of(app)) == before
    assert 'id="new-session"' not in official.get("/sessions").text
    host = _client(app, users)
    assert 'id="new-session"' in host.get("/sessions").text
    sid = int(_post(host, "/sessions/new", GOOD).headers["Location"].rsplit("/", 1)[1])
    other = _client(app, users, "host-2")
    for url in (f"/sessions/{sid}/edit", f"/sessions/{sid}/delete", f"/sessions/new?from={sid}"):
        assert other.get(url).status_code == 403, url
        assert official.get(url).status_code == 403, url
    report = official.get(f"/sessions/{sid}").text
    assert 'id="edit-session"' not in report and 'id="delete-session"' not in report


def test_the_form_needs_its_csrf_token(app: Any, users: Users) -> None:
    client = _client(app, users)
    before = fingerprint(backend.store_of(app))
    assert client.post("/sessions/new", data=GOOD).status_code == 400
    assert client.post("/sessions/new", data={**GOOD, "csrf_token": "x" * 40}).status_code == 400
    assert fingerprint(backend.store_of(app)) == before


def test_edit_a_scheduled_session(app: Any, users: Users) -> None:
    client = _client(app, users)
    sid = int(_post(client, "/sessions/new", GOOD).headers["Location"].rsplit("/", 1)[1])
    report = client.get(f"/sessions/{sid}").text
    assert 'id="edit-session"' in report and 'id="delete-session"' in report and 'id="duplicate-session"' in report
    page = client.get(f"/sessions/{sid}/edit").text
    assert _value(page, "products-0-price_yuan") == "69.80" and _value(page, "goal_yuan") == "60000.00"
    assert _value(page, "scheduled_start") == "2026-06-01T20:00"
    changed = {**GOOD, "products-0-sku": "APRICOT-10KG", "products-0-price_yuan": "129.9",
               "products-1-sku": "", "products-1-name": "", "products-1-price_yuan": "", "products-1-unit": "",
               "timezone": "Asia/Urumqi"}
    r = _post(client, f"/sessions/{sid}/edit", changed)
    assert r.status_code == 303 and r.headers["Location"] == f"/sessions/{sid}"
    info = session_service.get_session(backend.store_of(app), actor=host_actor(backend.store_of(app).db), session_id=sid)
    assert [(p.sku, p.unit_price_fen) for p in info.products] == [("APRICOT-10KG", 12990)]
    assert info.timezone == "Asia/Urumqi" and info.scheduled_start.isoformat() == "2026-06-01T14:00:00+00:00"


def _live(app: Any) -> int:
    store = backend.store_of(app)
    actor = host_actor(store.db)
    info = session_service.create_session(store, actor=actor, data=validation.parse_session(APRICOT_SESSION))
    session_service.start_session(store, actor=actor, session_id=info.id)
    order_service.record_orders(store, actor=actor, session_id=info.id,
                                orders=[order_input({"sku": "APRICOT-5KG", "quantity": 1})])
    return info.id


def test_edit_a_live_session(app: Any, users: Users) -> None:
    client = _client(app, users)
    sid = _live(app)
    page = client.get(f"/sessions/{sid}/edit").text
    assert 'id="live-notice"' in page
    assert re.search(r'<input[^>]*id="products-0-sku"[^>]*readonly', page)
    assert re.search(r'<input[^>]*id="products-0-price_yuan"[^>]*readonly', page)  # sold
    assert not re.search(r'<input[^>]*id="products-1-price_yuan"[^>]*readonly', page)  # not sold
    assert re.search(r'<input type="datetime-local"[^>]*disabled', page)
    form = {name: _value(page, name) for name in re.findall(r'<input[^>]*name="(products-[0-9]-[a-z_]+)"', page)}
    form.update(title="杏子直播", hosts="阿依古丽", goal_yuan="90000", planned_duration_min="120")
    store = backend.store_of(app)
    before = fingerprint(store)
    tampered = {**form, "products-0-price_yuan": "1", "products-1-sku": ""}
    r = _post(client, f"/sessions/{sid}/edit", {**tampered, "products-1-name": "", "products-1-price_yuan": "",
                                                 "products-1-unit": "", "products-1-stock": ""})
    assert r.status_code == 200 and fingerprint(store) == before
    assert _errors(r.text) == {"products-0-price_yuan": "已按 ¥69.80 售出，价格不能再改",
                               "products": "直播中的场次不能删除商品：DRIED-1KG 不能移除"}
    added = {**form, "products-0-stock": "300", "products-2-sku": "JAM-500G", "products-2-name": "杏酱",
             "products-2-price_yuan": "25", "products-2-unit": "500 g"}
    r = _post(client, f"/sessions/{sid}/edit", added)
    assert r.status_code == 303
    info = session_service.get_session(store, actor=host_actor(store.db), session_id=sid)
    assert info.goal_fen == 9_000_000
    assert [(p.sku, p.unit_price_fen, p.stock) for p in info.products] == [
        ("APRICOT-5KG", 6980, 300), ("DRIED-1KG", 5900, None), ("JAM-500G", 2500, None)]
    assert info.scheduled_start is None and info.timezone == "Asia/Shanghai"  # not sent, not changed


def test_an_ended_session_is_not_edited_but_duplicated(app: Any, users: Users) -> None:
    client = _client(app, users)
    sid = _live(app)
    session_service.end_session(backend.store_of(app), actor=host_actor(backend.store_of(app).db), session_id=sid)
    r = client.get(f"/sessions/{sid}/edit")
    assert r.status_code == 303 and r.headers["Location"] == f"/sessions/{sid}"
    report = client.get(f"/sessions/{sid}").text
    assert 'id="edit-session"' not in report and 'id="delete-session"' not in report
    page = client.get(f"/sessions/new?from={sid}").text
    assert _value(page, "title") == "喀什杏子直播" and _value(page, "products-1-sku") == "DRIED-1KG"
    assert _value(page, "products-0-price_yuan") == "69.80" and _value(page, "goal_yuan") == "60000.00"
    assert _value(page, "scheduled_start") == ""
    assert 'action="/sessions/new"' in page


def test_delete_asks_first_and_only_scheduled_sessions_go(app: Any, users: Users) -> None:
    client = _client(app, users)
    sid = int(_post(client, "/sessions/new", GOOD).headers["Location"].rsplit("/", 1)[1])
    store = backend.store_of(app)
    before = fingerprint(store)
    r = _post(client, f"/sessions/{sid}/delete", {})
    assert r.status_code == 200 and "请勾选以确认" in r.text and fingerprint(store) == before
    r = _post(client, f"/sessions/{sid}/delete", {"confirm": "yes"})
    assert r.status_code == 303 and r.headers["Location"] == "/sessions"
    assert client.get(f"/sessions/{sid}").status_code == 404
    live = _live(app)
    assert "只能删除未开播的场次" in client.get(f"/sessions/{live}/delete").text
    before = fingerprint(store)
    r = _post(client, f"/sessions/{live}/delete", {"confirm": "yes"})
    assert r.status_code == 303 and fingerprint(store) == before


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_the_api_shares_the_service(app: Any, users: Users, method: str) -> None:
    api = users.api("host")
    sid = _live(app)
    if method == "PATCH":
        r = api.patch(f"/api/v1/sessions/{sid}", json={"products": [APRICOT_SESSION["products"][0]]})
        assert (r.status_code, r.json["error"]["code"], r.json["error"]["field"]) == (409, "session_live", "products")
        r = api.patch(f"/api/v1/sessions/{sid}", json={"goal_fen": 1})
        assert r.status_code == 200 and r.json["goal_fen"] == 1
    else:
        r = api.client.delete(f"/api/v1/sessions/{sid}", headers=api._headers(None))
        assert (r.status_code, r.json["error"]["code"]) == (409, "session_started")
        created = api.post("/api/v1/sessions", json=APRICOT_SESSION).json["id"]
        r = api.client.delete(f"/api/v1/sessions/{created}", headers=api._headers(None))
        assert r.status_code == 204 and api.get(f"/api/v1/sessions/{created}").status_code == 404
