"""The home page after login: live sessions with their running totals, the next scheduled and the recent
ended ones, one-tap links by role; anonymous visitors go to the login; the favicon."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import APRICOT_SESSION, Users
from tests.web.test_compare_api import run_session
from tests.web.test_pages import login


def sessions_of(html: str, part: str) -> list[int]:
    """The session ids listed in one part of the home page (``live-now``, ``scheduled``, ``ended``)."""
    section = re.search(rf'<section[^>]*id="{part}".*?</section>', html, re.S)
    assert section, part
    return [int(x) for x in re.findall(r'data-session="(\d+)"', section.group(0))]


def world(users: Users) -> dict[str, Any]:
    host, other = users.api("host"), users.api("host", "host-2")
    users.token("official")
    users.token("admin")
    live, _ = run_session(host, seed=1, orders=12, refunds=1, end=False, title="今天杏子")
    ended, paid = run_session(host, seed=2, orders=8, refunds=0, end=True, title="六月杏子")
    scheduled = host.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "明天杏子",
                                                      "scheduled_start": "2031-06-01T10:00:00+08:00"}).json["id"]
    theirs, _ = run_session(other, seed=3, orders=3, refunds=0, end=False, title="别人的葡萄", platform="kuaishou")
    return {"live": live, "ended": ended, "scheduled": scheduled, "theirs": theirs, "ended_paid": paid}


def test_anonymous_visitors_are_sent_to_the_login(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=%2F")


def test_a_host_sees_her_own_sessions_with_links_and_the_figures(client: Any, users: Users, store: Any) -> None:
    w = world(users)
    login(client, "host")
    html = client.get("/?lang=zh").text
    assert sessions_of(html, "live-now") == [w["live"]]
    assert sessions_of(html, "scheduled") == [w["scheduled"]]
    assert sessions_of(html, "ended") == [w["ended"]]
    assert "别人的葡萄" not in html
    live = w["live"]
    for href in (f"/live/{live}", f"/console/{live}", f"/sessions/{live}"):
        assert f'href="{href}"' in html
    assert f'href="/console/{w["ended"]}"' not in html  # no console for an ended session
    # The running total as the API reads it, formatted by the shared filter.
    totals = users.api("host").get(f"/api/v1/sessions/{live}/totals").json
    assert f'data-field="amount" data-fen="{totals["amount_fen"]}"' in html
    assert "抖音" in html and ">douyin<" not in html  # platform names, not codes
    assert "2031-06-01 10:00" in html  # the planned start in the session's time zone
    assert 'id="home-data"' in html and "js/home.js" in html


def test_an_official_sees_every_session_but_no_console_and_no_new_session(client: Any, users: Users) -> None:
    w = world(users)
    login(client, "official")
    html = client.get("/?lang=en").text
    assert sorted(sessions_of(html, "live-now")) == sorted([w["live"], w["theirs"]])
    assert "Kuaishou" in html
    assert "/console/" not in html
    assert 'id="new-session"' not in html
    assert f'href="/live/{w["theirs"]}"' in html and f'href="/sessions/{w["ended"]}"' in html


def test_an_admin_may_open_every_console(client: Any, users: Users) -> None:
    w = world(users)
    login(client, "admin")
    html = client.get("/?lang=en").text
    assert f'href="/console/{w["live"]}"' in html and f'href="/console/{w["theirs"]}"' in html


def test_the_new_session_button_is_for_hosts_and_admins(client: Any, users: Users) -> None:
    for role in ("host", "admin", "official"):
        users.token(role)
    for role, shown in (("host", True), ("admin", True), ("official", False)):
        browser = client.application.test_client()
        login(browser, role)
        html = browser.get("/?lang=en").text
        assert ('id="new-session" href="/sessions/new"' in html) is shown, role


def test_empty_home_pages_say_what_to_do_next(client: Any, users: Users) -> None:
    users.token("host")
    users.token("official")
    login(client, "host")
    html = client.get("/?lang=en").text
    assert "No session is live right now." in html and "Start a scheduled session" in html
    assert "Nothing is scheduled." in html and "No session has ended yet." in html
    other = client.application.test_client()
    login(other, "official")
    zh = other.get("/?lang=zh").text
    assert "现在没有正在进行的直播。" in zh and "主播一开播" in zh


def test_the_favicon_is_answered(client: Any) -> None:
    with client.get("/favicon.ico") as r:
        assert r.status_code == 200 and r.mimetype == "image/vnd.microsoft.icon"
        assert r.data[:4] == b"\x00\x00\x01\x00"  # an ICO header
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert 'rel="icon"' in client.get("/login").text
