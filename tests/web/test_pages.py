"""The host screen and the order console as pages: login, roles, server-rendered figures, language, CSRF."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tests.conftest import Api, Users

PASSWORD = "correct horse battery"


def login(client: Any, name: str) -> Any:
    """Log ``client`` in through the form (with its CSRF token); the login's response."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert token, page.text
    r = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code == 302, r.text
    return r


def page_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found
    return found.group(1)


def sell(api: Api, session: dict[str, Any], quantity: int, sku: str = "APRICOT-5KG") -> None:
    r = api.post(f"/api/v1/sessions/{session['id']}/orders", json={"sku": sku, "quantity": quantity})
    assert r.status_code == 201, r.json


@pytest.mark.parametrize("path", ["/live/{id}", "/console/{id}"])
def test_pages_need_a_login(client: Any, live_session: dict[str, Any], path: str) -> None:
    r = client.get(path.format(id=live_session["id"]))
    assert r.status_code == 302
    assert "/login" in r.headers["Location"]


def test_official_may_watch_but_not_record(client: Any, users: Users, live_session: dict[str, Any]) -> None:
    users.token("official")
    login(client, "official")
    assert client.get(f"/live/{live_session['id']}").status_code == 200
    assert client.get(f"/console/{live_session['id']}").status_code == 403


def test_another_host_may_not_see_the_session(client: Any, users: Users, live_session: dict[str, Any]) -> None:
    users.token("host", "other-host")
    login(client, "other-host")
    assert client.get(f"/live/{live_session['id']}").status_code == 403
    assert client.get(f"/console/{live_session['id']}").status_code == 403
    assert client.get("/live/999999").status_code == 404


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", ["总销售额", "售罄", "订单"]),
    ("en", ["Total sales", "Sold out", "Orders"]),
])
def test_host_screen_is_server_rendered_with_the_current_figures(
    client: Any, host_api: Api, live_session: dict[str, Any], lang: str, words: list[str]
) -> None:
    sell(host_api, live_session, 100)  # the whole stock of 100: sold out
    sell(host_api, live_session, 6, "DRIED-1KG")
    login(client, "host")
    r = client.get(f"/live/{live_session['id']}?lang={lang}")
    assert r.status_code == 200
    html = r.text
    assert f'data-fen="{100 * 6980 + 6 * 5900}"' in html
    assert '<div class="total" id="total" data-fen="733400">¥7,334</div>' in html  # never an empty first paint
    assert '<dd id="orders">2</dd>' in html and '<dd id="items">106</dd>' in html
    for word in words:
        assert word in html
    assert 'class="product sold-out" data-sku="APRICOT-5KG"' in html
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "<script>" not in html  # no inline scripts: data in a JSON block only
    assert 'type="application/json" id="live-data"' in html


def test_total_in_wan_when_large(client: Any, users: Users, host_api: Api, live_session: dict[str, Any]) -> None:
    for _ in range(3):
        sell(host_api, live_session, 60, "DRIED-1KG")  # 180 × ¥59 = ¥10,620
    login(client, "host")
    zh = client.get(f"/live/{live_session['id']}?lang=zh").text
    assert "¥1.06万" in zh and 'lang="zh-CN"' in zh
    en = client.get(f"/live/{live_session['id']}?lang=en").text
    assert "¥10,620" in en and 'lang="en"' in en and "Total sales" in en
    # The choice is remembered in a cookie.
    assert "Total sales" in client.get(f"/live/{live_session['id']}").text


def test_console_renders_products_and_total(client: Any, host_api: Api, live_session: dict[str, Any]) -> None:
    sell(host_api, live_session, 2)
    login(client, "host")
    r = client.get(f"/console/{live_session['id']}?lang=zh")
    assert r.status_code == 200
    assert "鲜杏 5斤" in r.text and "¥139.60" in r.text and "记录订单" in r.text
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_console_posts_need_the_csrf_header(client: Any, live_session: dict[str, Any]) -> None:
    login(client, "host")
    html = client.get(f"/console/{live_session['id']}").text
    url = f"/api/v1/sessions/{live_session['id']}/orders"
    body = {"sku": "APRICOT-5KG", "quantity": 1, "channel": "console"}
    key = str(uuid.uuid4())
    refused = client.post(url, json=body, headers={"Idempotency-Key": key})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf"
    headers = {"Idempotency-Key": key, "X-CSRFToken": page_csrf(html)}
    accepted = client.post(url, json=body, headers=headers)
    assert accepted.status_code == 201
    again = client.post(url, json=body, headers=headers)  # the offline queue resending: counted once
    assert again.status_code == 200 and again.json["totals"]["orders"] == 1
    # A fresh token for a console open longer than the token lives.
    fresh = client.get(f"/console/{live_session['id']}/csrf")
    assert fresh.status_code == 200 and fresh.json["csrf_token"]
    order_id = accepted.json["order"]["id"]
    undo = client.post(f"{url}/{order_id}/refund", headers={"X-CSRFToken": fresh.json["csrf_token"]})
    assert undo.status_code == 200 and undo.json["totals"]["orders"] == 0


def test_language_switch_and_roles_in_chinese(client: Any, users: Users, live_session: dict[str, Any]) -> None:
    login(client, "host")
    zh = client.get("/?lang=zh").text
    assert "主播" in zh and "退出" in zh
    en = client.get("/?lang=en").text
    assert "Log out" in en and "host" in en


# --- translations ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "livesale" / "translations" / "zh" / "LC_MESSAGES"


def _catalog() -> Catalog:
    with (CATALOG / "messages.po").open("rb") as f:
        return read_po(f, locale="zh")


def test_the_compiled_catalog_is_up_to_date() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _catalog())
    assert (CATALOG / "messages.mo").read_bytes() == compiled.getvalue(), (
        "messages.mo is stale: pybabel compile -d livesale/translations"
    )


def test_every_message_has_a_chinese_translation() -> None:
    with (ROOT / "livesale" / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    used = {
        message
        for _, _, message, _, _ in extract_from_dir(ROOT, method_map, options_map, keywords=keywords,
                                                    directory_filter=lambda d: not Path(d).name.startswith("."))
    }
    catalog = _catalog()
    missing = sorted(m for m in used if not (catalog.get(m) and catalog.get(m).string))
    assert not missing, f"untranslated (pybabel extract/update, then translate): {missing}"
    assert not [m.id for m in catalog if m.id and m.fuzzy], "fuzzy translations are not used"


def test_console_service_worker_keeps_only_the_console_and_its_assets(client: Any) -> None:
    r = client.get("/console/sw.js")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/javascript")
    assert r.headers["Cache-Control"] == "no-cache"
    body = r.get_data(as_text=True)
    assert 'var ASSETS = ["/static/css/app.css","/static/js/common.js","/static/js/console.js"];' in body
    # Orders and other API calls never go through the worker's cache.
    assert 'request.method !== "GET"' in body and "/^\\/console\\/\\d+$/" in body
    for asset in ("css/app.css", "js/common.js", "js/console.js"):
        static = client.get(f"/static/{asset}")
        assert static.status_code == 200
        static.close()
