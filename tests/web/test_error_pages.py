"""Error pages for people in the site's style and language with a way back; JSON for the API and for
clients that ask for JSON, exactly as before."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import abort

from livesale.core.db import DATABASE_UNAVAILABLE
from tests.conftest import Users
from tests.web.test_pages import login

TITLES = {
    400: ("无法处理这个请求", "This request could not be used"),
    403: ("你没有权限打开这个页面", "You may not open this page"),
    404: ("找不到这个页面", "Page not found"),
    405: ("这个地址不接受这种请求", "This address does not take that request"),
    500: ("服务器出了问题", "Something went wrong on our side"),
    503: ("服务暂时不可用", "The service is briefly unavailable"),
}
HTML = {"zh": '<html lang="zh-CN" dir="ltr">', "ug": '<html lang="ug" dir="rtl">', "en": '<html lang="en" dir="ltr">'}


@cache
def _uyghur() -> dict[str, str]:
    path = Path(__file__).resolve().parents[2] / "livesale" / "translations" / "ug" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale="ug") if m.id}


def _in(lang: str, english: str, chinese: str) -> str:
    """The words a page in ``lang`` shows for ``english`` (Uyghur from its catalogue)."""
    return {"zh": chinese, "en": english}.get(lang) or _uyghur()[english]


@pytest.fixture
def failing(app: Any) -> Any:
    """Routes that fail on purpose: abort(status), an unexpected error, and an unreachable database."""
    @app.get("/_test/abort/<int:status>")
    def _abort(status: int) -> Any:
        abort(status)

    @app.get("/_test/crash")
    def _crash() -> Any:
        raise RuntimeError("boom")

    @app.get("/_test/db-down")
    def _db_down() -> Any:
        raise DATABASE_UNAVAILABLE[0]("SELECT 1", {}, Exception("connection refused"))

    return app


def assert_page(r: Any, status: int, lang: str) -> None:
    assert r.status_code == status
    assert r.mimetype == "text/html", r.get_data()[:300]
    title = _in(lang, TITLES[status][1], TITLES[status][0])
    assert title in r.text
    assert 'href="/" id="error-home"' in r.text  # a way back
    assert 'href="/static/css/app.css' in r.text  # the site's style
    assert HTML[lang] in r.text  # Uyghur: right to left, the 5xx pages' bare frame too


@pytest.mark.parametrize("lang", ["zh", "ug", "en"])
def test_pages_for_people(client: Any, users: Users, failing: Any, lang: str) -> None:
    users.token("official")
    login(client, "official")
    assert_page(client.get(f"/compare.csv?ids=1&lang={lang}"), 400, lang)  # was the server's "Bad Request"
    # The comparison page itself answers a wrong list with its form and what to type.
    wrong = client.get(f"/compare?ids=1&lang={lang}")
    assert wrong.status_code == 400 and 'id="compare-problem"' in wrong.text and 'name="ids" value="1"' in wrong.text
    assert ("请输入 2 到 6 个不同的场次编号" in wrong.text) is (lang == "zh")
    assert_page(client.get("/no/such/page"), 404, lang)
    assert_page(client.get("/sessions/424242"), 404, lang)
    assert_page(client.get("/admin/users"), 403, lang)
    assert_page(client.get("/_test/crash"), 500, lang)
    crashed = client.get("/_test/crash")
    assert _in(lang, "Request id", "请求编号") in crashed.text
    down = client.get("/_test/db-down")
    assert_page(down, 503, lang)
    assert down.headers["Retry-After"] == "2"
    not_allowed = client.post("/sessions", data={})
    assert not_allowed.status_code in (400, 405)  # CSRF may refuse it first
    assert_page(client.put("/login"), 405, lang)
    assert "GET" in client.put("/login").headers["Allow"]


def test_a_way_back_to_the_previous_page_only_on_this_site(client: Any, users: Users) -> None:
    users.token("host")
    login(client, "host")
    inside = client.get("/sessions/424242?lang=en", headers={"Referer": "http://localhost/sessions"})
    assert 'href="http://localhost/sessions" id="error-back"' in inside.text
    outside = client.get("/sessions/424242", headers={"Referer": "https://evil.example/x"})
    assert "error-back" not in outside.text and "evil.example" not in outside.text


def test_an_expired_form_says_so(client: Any, users: Users) -> None:
    users.token("host")
    login(client, "host")
    r = client.post("/sessions/1/end?lang=en", data={"csrf_token": "stale"})
    assert r.status_code == 400 and "This form has expired" in r.text


def test_anonymous_visitors_get_pages_too(client: Any) -> None:
    r = client.get("/nothing-here?lang=en")
    assert_page(r, 404, "en")
    assert "Log in" in r.text


@pytest.mark.parametrize("path, status", [("/api/v1/nothing", 404), ("/api/v1/sessions/424242", 401)])
def test_the_api_keeps_answering_json(client: Any, path: str, status: int) -> None:
    r = client.get(path, headers={"Accept": "text/html"})
    assert r.status_code == status and r.mimetype == "application/json"
    assert set(r.get_json()["error"]) >= {"code", "message"}


def test_json_clients_get_json_on_pages(client: Any, failing: Any) -> None:
    json = {"Accept": "application/json"}
    r = client.get("/no/such/page", headers=json)
    assert r.status_code == 404 and r.get_json() == {"error": {"code": "not_found", "message": r.get_json()["error"]["message"]}}
    crashed = client.get("/_test/crash", headers=json)
    assert crashed.status_code == 500 and crashed.get_json()["error"]["code"] == "internal"
    down = client.get("/_test/db-down", headers=json)
    assert down.status_code == 503 and down.get_json()["error"]["code"] == "unavailable"
    not_allowed = client.put("/login", headers=json)
    assert not_allowed.status_code == 405 and not_allowed.get_json()["error"]["code"] == "method_not_allowed"
