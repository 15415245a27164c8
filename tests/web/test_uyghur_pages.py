"""Uyghur (``ug``), the third language: chosen by ``?lang=ug``, the browser's Accept-Language or the menu,
remembered in a cookie; every page ``<html lang="ug" dir="rtl">``, the widget and its embed code included;
money by the one formatter (``¥12.35مىڭ``), times by Babel's ``ug`` locale.

Expected words come from the ug catalogue, not copied here: a reviewer may still change the translations.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_pages import login, sell

RTL = '<html lang="ug" dir="rtl">'
ZH = '<html lang="zh-CN" dir="ltr">'
EN = '<html lang="en" dir="ltr">'


@cache
def _catalogue() -> dict[str, str]:
    path = Path(__file__).resolve().parents[2] / "livesale" / "translations" / "ug" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale="ug") if isinstance(m.id, str) and m.id}


def page_data(html: str, block: str) -> Any:
    """The JSON data block ``block`` of a page (what its script reads)."""
    start = html.index(f'id="{block}">') + len(f'id="{block}">')
    return json.loads(html[start:html.index("</script>", start)])


def ug(msgid: str, **values: str) -> str:
    """The Uyghur of ``msgid`` as the page writes it."""
    text = _catalogue()[msgid]
    assert text, f"no Uyghur for {msgid!r} yet"
    return text % values if values else text


def test_uyghur_is_chosen_by_the_query_and_remembered(client: Any, users: Users) -> None:
    users.token("host")
    login(client, "host")
    r = client.get("/?lang=ug")
    assert r.status_code == 200 and RTL in r.text
    assert ug("Log out") in r.text and "退出" not in r.text
    cookie = r.headers.get("Set-Cookie", "")
    assert cookie.startswith("lang=ug;") and "HttpOnly" in cookie
    again = client.get("/")  # no ?lang: the cookie
    assert RTL in again.text and "Set-Cookie" not in again.headers
    assert ZH in client.get("/?lang=zh").text and ZH in client.get("/").text
    assert EN in client.get("/?lang=en").text


def test_uyghur_from_the_browsers_languages(client: Any) -> None:
    for header in ("ug", "ug-CN", "ug-Arab-CN,ug;q=0.9,zh-CN;q=0.5", "en;q=0.3,ug"):
        r = client.get("/login", headers={"Accept-Language": header})
        assert RTL in r.text, header
        assert ug("Log in") in r.text
        assert "Set-Cookie" not in r.headers or "lang=" not in r.headers["Set-Cookie"]  # only a choice is kept
    assert ZH in client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert EN in client.get("/login", headers={"Accept-Language": "en-US"}).text
    assert ZH in client.get("/login", headers={"Accept-Language": "fr"}).text  # else Chinese
    assert ZH in client.get("/login?lang=xx").text  # an unknown choice is no choice


def test_the_language_menu_names_each_language_in_itself(client: Any) -> None:
    en = client.get("/login?lang=en").text
    menu = en[en.index('<span class="langs">'):en.index("</span>", en.index('<span class="langs">'))]
    assert re.findall(r">([^<\s]+)</(?:a|strong)>", menu) == ["中文", "ئۇيغۇرچە", "English"]
    assert '<a href="?lang=ug" hreflang="ug" lang="ug" dir="rtl">ئۇيغۇرچە</a>' in menu  # right to left on any page
    assert '<a href="?lang=zh" hreflang="zh-CN" lang="zh-CN" dir="ltr">中文</a>' in menu
    assert '<strong lang="en" dir="ltr">English</strong>' in menu
    rtl = client.get("/login?lang=ug").text
    assert '<strong lang="ug" dir="rtl">ئۇيغۇرچە</strong>' in rtl and '<a href="?lang=en"' in rtl


def test_error_pages_in_uyghur(client: Any, users: Users) -> None:
    users.token("official")
    login(client, "official")
    for path, status in (("/sessions/424242?lang=ug", 404), ("/admin/users?lang=ug", 403)):
        r = client.get(path, headers={"Referer": "http://localhost/sessions"})
        assert r.status_code == status and RTL in r.text
        # The way back points the way Uyghur reads: to the right.
        assert f'id="error-back">→ {ug("Back to the previous page")}</a>' in r.text
    assert 'id="error-back">← ' in client.get("/sessions/424242?lang=zh", headers={"Referer": "http://localhost/"}).text


def test_the_live_screen_in_uyghur(client: Any, host_api: Api, live_session: dict[str, Any]) -> None:
    for _ in range(3):
        sell(host_api, live_session, 60, "DRIED-1KG")  # 180 × ¥59 = ¥10,620
    login(client, "host")
    html = client.get(f"/live/{live_session['id']}?lang=ug").text
    assert RTL in html
    assert 'data-key-figure="total" data-fen="1062000">\u200e¥10.62مىڭ</div>' in html  # CLDR ug: thousand, ¥
    assert ug("Total sales") in html and ug("Goal %(amount)s", amount="<bdi dir=\"rtl\">\u200e¥60.00مىڭ</bdi>") in html
    data = page_data(html, "live-data")
    assert data["lang"] == "ug" and data["i18n"]["sold_out"] == ug("Sold out")  # pushes are drawn in Uyghur too
    assert page_data(html, "ui-text")["minute"] == ug("minute %(n)s", n="{n}")  # the shared scripts' words
    console = client.get(f"/console/{live_session['id']}?lang=ug").text
    assert RTL in console and ug("Record order") in console and "\u200e¥10,620.00" in console


def test_times_are_written_by_babel_for_uyghur(app: Any) -> None:
    from livesale.web.i18n import local_time

    when = datetime(2031, 6, 18, 12, 5, 9, tzinfo=UTC)
    with app.test_request_context("/?lang=ug"):
        app.preprocess_request()
        # A LRM first, as figures have: after Arabic letters the date would run backwards (06-18-2031).
        assert local_time(when, "Asia/Urumqi") == "\u200e2031-06-18 18:05"
        assert local_time(when, "Asia/Shanghai", with_date=False) == "\u200e20:05:09"
        assert local_time(None, "Asia/Shanghai") == "—"


def test_the_widget_in_uyghur(client: Any, host_api: Api) -> None:
    body = {**APRICOT_SESSION, "timezone": "Asia/Urumqi", "scheduled_start": "2026-06-02T12:30:00Z"}
    session = host_api.post("/api/v1/sessions", json=body).json
    key = session["widget_key"]
    scheduled = client.get(f"/widget/{key}?lang=ug")
    assert scheduled.status_code == 200 and "Set-Cookie" not in scheduled.headers  # no cookie on partners' pages
    assert RTL in scheduled.text.replace(' class="theme-light"', "")
    # The day and month by CLDR ug (سەيشەنبە، 2-ئىيۇن), in the session's own time zone (UTC+6).
    assert ug("Starts %(when)s", when="سەيشەنبە، 2-ئىيۇن 18:30") in scheduled.text
    host_api.post(f"/api/v1/sessions/{session['id']}/start")
    assert host_api.post(f"/api/v1/sessions/{session['id']}/orders",
                         json={"sku": "DRIED-1KG", "quantity": 180}).status_code == 201
    live = client.get(f"/widget/{key}?lang=ug&theme=transparent").text
    assert '<html lang="ug" dir="rtl" class="theme-transparent">' in live
    assert 'data-key-figure="total" data-fen="1062000">\u200e¥10.62مىڭ</div>' in live
    data = page_data(live, "w-data")
    assert data["lang"] == "ug" and data["i18n"]["goal"] == ug("Goal reached!")
    assert '<html lang="zh-CN" dir="ltr"' in client.get(f"/widget/{key}").text  # partners' default: Chinese
    gone = client.get("/widget/no-such-key-0000000000?lang=ug")
    assert gone.status_code == 404 and '<html lang="ug" dir="rtl"' in gone.text


def test_the_embed_code_and_obs_address_carry_the_pages_language(client: Any, users: Users,
                                                                  live_session: dict[str, Any]) -> None:
    login(client, "host")
    html = client.get(f"/sessions/{live_session['id']}?lang=ug").text
    assert "data-lang=&#34;ug&#34;" in html  # the embed code, escaped in its box
    assert "show=total,goal,orders&amp;lang=ug" in html  # the OBS address
    zh = client.get(f"/sessions/{live_session['id']}?lang=zh").text
    assert "data-lang=&#34;zh&#34;" in zh and "&amp;lang=zh" in zh
