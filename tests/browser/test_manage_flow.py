"""A host runs a whole session from the pages, in a real browser against a real server: she creates it at
/sessions/new (adding product rows with the button), starts it, records orders at the console, watches the
big screen move, ends it after the confirmation and finds it in /sessions (and on the home page); the same
from a duplicated session. An official sees reports but no "new session"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Users

PASSWORD = "correct horse battery"
PRODUCTS = [("APRICOT-5KG", "鲜杏 5斤", "2.5 kg 箱", "６９．８", "200"),
            ("DRIED-1KG", "杏干 1公斤", "1 kg 袋", "¥59", ""),
            ("JAM-500G", "杏酱", "500 g 瓶", "25.50", "50")]


@pytest.fixture
def server(server_factory: Any, users: Users) -> Any:
    users.token("host")
    users.token("official")
    return server_factory(workers=1)


@pytest.fixture
def context(browser: Any, server: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768})
    context.set_default_timeout(15_000)
    yield context
    context.close()


def login(page: Any, server: Any, name: str, next_path: str) -> None:
    page.goto(f"{server.url}/login?next={next_path}")
    page.fill('input[name="name"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{server.url}{next_path}")


def _fen_is(page: Any, element_id: str, fen: int) -> None:
    page.wait_for_function(f"() => document.getElementById('{element_id}').dataset.fen === '{fen}'")


def _session_id(page: Any, server: Any) -> int:
    page.wait_for_url(re.compile(re.escape(server.url) + r"/sessions/[0-9]+$"))
    return int(page.url.rsplit("/", 1)[1])


def _fill_new_session(page: Any, title: str) -> None:
    page.fill("#title", title)
    page.fill("#village", "疏附县")
    page.select_option("#platform", "douyin")
    page.fill("#scheduled_start", "2026-06-01T20:00")
    page.fill("#goal_yuan", "¥1,000")
    assert page.locator("[data-row]").count() == 1
    for i, product in enumerate(PRODUCTS):
        if i:
            page.click("#add-product")
            page.wait_for_function(f"() => document.querySelectorAll('[data-row]').length === {i + 1}")
        for key, value in zip(("sku", "name", "unit", "price_yuan", "stock"), product, strict=True):
            page.fill(f'[name="products-{i}-{key}"]', value)


def _run_session(context: Any, page: Any, server: Any, sid: int) -> None:
    """Start it, record orders at the console, see the big screen move, end it after the confirmation."""
    page.click("#lifecycle button[type=submit]")
    page.wait_for_function("() => !!document.querySelector('a[href$=\"/console/" + str(sid) + "\"]')")
    screen = context.new_page()
    screen.goto(f"{server.url}/live/{sid}")
    _fen_is(screen, "total", 0)
    screen.wait_for_selector('#conn[data-state="ok"]')
    console = context.new_page()
    console.goto(f"{server.url}/console/{sid}")
    assert console.locator(".pbtn").count() == 3
    expected = 0
    for sku, price in (("APRICOT-5KG", 6980), ("JAM-500G", 2550), ("DRIED-1KG", 5900)):
        console.click(f'.pbtn[data-sku="{sku}"]')
        console.click("#submit")
        expected += price
        _fen_is(console, "c-total", expected)
        _fen_is(screen, "total", expected)  # the big screen moves
    console.close()
    screen.close()
    page.reload()
    end = page.locator("#lifecycle button[type=submit]")
    assert page.locator("#lifecycle").count() == 1
    page.on("dialog", lambda dialog: dialog.accept())  # a confirm() if the page asks that way
    end.click()
    # A confirmation in the page (a <dialog>): it says what will happen; confirm it.
    page.wait_for_function("() => !document.getElementById('lifecycle') || !!document.querySelector('dialog[open]')")
    if page.locator("dialog[open]").count():
        page.locator("dialog[open] button.primary, dialog[open] button[value=confirm], dialog[open] button.danger") \
            .first.click()
    page.wait_for_function("() => !document.getElementById('lifecycle')")
    assert page.locator('[data-figure="amount_fen"]').get_attribute("data-value") == str(expected)


def _find_everywhere(page: Any, server: Any, sid: int, title: str) -> None:
    page.goto(f"{server.url}/sessions")
    assert page.locator(f'#sessions tr[data-session="{sid}"]').inner_text().count(title) == 1
    page.goto(f"{server.url}/")
    assert title in page.locator("#home").inner_text(), "the home page lists the session"


@pytest.mark.parametrize("start", ["new", "duplicate"])
def test_a_host_runs_a_session_from_the_pages(context: Any, server: Any, start: str) -> None:
    page = context.new_page()
    login(page, server, "host", "/sessions")
    page.click("#new-session")
    page.wait_for_url(f"{server.url}/sessions/new")
    title = "喀什杏子直播 第一场"
    _fill_new_session(page, title)
    if start == "duplicate":
        # A wrong price first: shown next to its field, nothing saved, what was typed kept.
        page.fill('[name="products-2-price_yuan"]', "25.505")
        page.click("#save-session")
        page.wait_for_selector("#products-2-price_yuan-error")
        assert page.locator("#products-2-price_yuan-error").inner_text().endswith("最多两位小数（到分）")
        assert page.locator("#products-2-price_yuan").get_attribute("aria-describedby").startswith(
            "products-2-price_yuan-error")
        assert page.input_value('[name="products-1-name"]') == "杏干 1公斤"
        page.fill('[name="products-2-price_yuan"]', "25.50")
        page.click("#save-session")
        first = _session_id(page, server)
        # The duplicate starts from the first session's report.
        page.click("#duplicate-session")
        page.wait_for_url(f"{server.url}/sessions/new?from={first}")
        assert page.input_value("#title") == title and page.input_value("#scheduled_start") == ""
        assert page.input_value('[name="products-2-price_yuan"]') == "25.50"
        title = "喀什杏子直播 第二场"
        page.fill("#title", title)
        # Rows can be removed and added again: names stay products-0..2.
        page.locator("[data-row] [data-remove]").nth(1).click()
        page.wait_for_function("() => document.querySelectorAll('[data-row]').length === 2")
        assert page.locator('[name="products-1-sku"]').input_value() == "JAM-500G"
        page.click("#add-product")
        for key, value in zip(("sku", "name", "unit", "price_yuan", "stock"), PRODUCTS[1], strict=True):
            page.fill(f'[name="products-2-{key}"]', value)
    page.click("#save-session")
    sid = _session_id(page, server)
    assert "场次已创建" in page.content()
    _run_session(context, page, server, sid)
    _find_everywhere(page, server, sid, title)


def test_an_official_sees_reports_but_cannot_create(context: Any, server: Any, users: Users) -> None:
    host = context.new_page()
    login(host, server, "host", "/sessions/new")
    _fill_new_session(host, "官员可见的场次")
    host.click("#save-session")
    sid = _session_id(host, server)
    host.close()
    official_context = context.browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    try:
        page = official_context.new_page()
        login(page, server, "official", "/sessions")
        assert page.locator("#new-session").count() == 0
        page.goto(f"{server.url}/")
        assert page.locator('a[href="/sessions/new"]').count() == 0
        page.goto(f"{server.url}/sessions/{sid}")
        assert "官员可见的场次" in page.locator("h1").inner_text()
        assert page.locator("#edit-session, #delete-session, #duplicate-session").count() == 0
        assert page.goto(f"{server.url}/sessions/new").status == 403
    finally:
        official_context.close()
