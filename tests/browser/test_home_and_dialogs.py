"""In Chromium: the home page's figures move with an order; ending a session, revoking tokens and
deactivating a user ask first (Cancel and Escape send nothing); copy buttons copy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import APRICOT_SESSION, Users

PASSWORD = "correct horse battery"


@pytest.fixture
def server(server_factory: Any) -> Any:
    return server_factory()


@pytest.fixture
def context(browser: Any, server: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    context.set_default_timeout(15_000)
    yield context
    context.close()


def log_in(page: Any, server: Any, name: str, then: str = "/") -> None:
    page.goto(f"{server.url}/login?next={then}")
    page.fill('input[name="name"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('form button[type="submit"]')
    page.wait_for_url(f"{server.url}{then}")


def api(server: Any, token: str, method: str, path: str, **kw: Any) -> Any:
    response = requests.request(method, f"{server.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"},
                                timeout=10, **kw)
    assert response.status_code < 300, response.text
    return response.json()


def live_session(server: Any, token: str, title: str = "喀什杏子直播") -> int:
    sid = api(server, token, "POST", "/sessions", json={**APRICOT_SESSION, "title": title})["id"]
    api(server, token, "POST", f"/sessions/{sid}/start")
    return int(sid)


def watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_home_figures_move_live_after_an_order(context: Any, server: Any, users: Users) -> None:
    token = users.token("host")
    first, second = live_session(server, token, "六月杏子"), live_session(server, token, "吐鲁番葡萄")
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, server, "host")
    card = page.locator(f'.home-card[data-session="{second}"]')
    assert card.locator('[data-field="amount"]').inner_text() == page.evaluate("Livesale.money(0, 'zh', true)")
    # Both cards joined their rooms (one connection each).
    page.wait_for_function("() => Object.values(window.livesaleHome.sockets).every(s => s.connected)")
    api(server, token, "POST", f"/sessions/{second}/orders", json={"sku": "APRICOT-5KG", "quantity": 3})
    page.wait_for_function(
        f"""() => document.querySelector('.home-card[data-session="{second}"] [data-field="amount"]')
                .getAttribute('data-fen') === '20940'""")
    # The shared formatter's text, the same as the server's for that amount.
    assert card.locator('[data-field="amount"]').inner_text() == page.evaluate("Livesale.money(20940, 'zh', true)")
    assert card.locator('[data-field="orders"]').inner_text() == "1"
    other = page.locator(f'.home-card[data-session="{first}"] [data-field="amount"]')
    assert other.get_attribute("data-fen") == "0"  # the other session did not move
    assert not errors, errors


def test_ending_a_session_asks_first(context: Any, server: Any, users: Users) -> None:
    token = users.token("host")
    sid = live_session(server, token)
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, server, "host", f"/sessions/{sid}")
    dialog = page.locator("#confirm-dialog")
    end = page.locator("#lifecycle button[type=submit]")

    end.click()
    assert dialog.is_visible()
    assert "结束后不能再记录订单" in dialog.inner_text()
    assert page.evaluate("document.activeElement.className") == "confirm-cancel"  # the safe choice has focus
    dialog.get_by_role("button", name="继续直播").click()
    assert not dialog.is_visible()
    assert page.evaluate("document.activeElement === document.querySelector('#lifecycle button')")
    assert api(server, token, "GET", f"/sessions/{sid}")["status"] == "live"

    end.click()
    assert dialog.is_visible()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert api(server, token, "GET", f"/sessions/{sid}")["status"] == "live"

    end.click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="结束直播").click()
    assert api(server, token, "GET", f"/sessions/{sid}")["status"] == "ended"
    assert page.locator("#lifecycle").count() == 0
    assert not errors, errors


def test_revoking_and_deactivating_ask_first_and_a_new_token_copies(context: Any, server: Any, users: Users) -> None:
    users.token("admin")
    target = users.token("host", "aygul")
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, server, "admin", "/admin/users")
    row = page.locator('tr[data-user="aygul"]')
    dialog = page.locator("#confirm-dialog")

    row.locator("form.revoke button").click()
    assert dialog.is_visible() and "aygul" in dialog.inner_text() and "几秒内失效" in dialog.inner_text()
    dialog.get_by_role("button", name="取消").click()
    assert row.locator('[data-field="tokens"]').inner_text() == "1"
    assert requests.get(f"{server.url}/api/v1/sessions", headers={"Authorization": f"Bearer {target}"},
                        timeout=10).status_code == 200

    row.locator("form.revoke button").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="撤销").click()
    assert page.locator('tr[data-user="aygul"] [data-field="tokens"]').inner_text() == "0"
    # A revoked token stops within web.auth.TOKEN_CACHE_S (a per-process cache): wait for it.
    deadline = time.monotonic() + 20
    while requests.get(f"{server.url}/api/v1/sessions", headers={"Authorization": f"Bearer {target}"},
                       timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "the revoked token still works"
        page.wait_for_timeout(200)

    # Deactivating asks too; reactivating does not.
    page.locator('tr[data-user="aygul"] form.active button').click()
    assert dialog.is_visible() and "无法登录" in dialog.inner_text()
    page.keyboard.press("Escape")
    assert page.locator('tr[data-user="aygul"]').get_attribute("class") == ""
    with page.expect_navigation():
        page.locator('tr[data-user="aygul"] form.active button').click()
        dialog.get_by_role("button", name="停用").click()
    assert page.locator('tr[data-user="aygul"]').get_attribute("class") == "inactive"

    # A new token: the copy button puts it on the clipboard and says so.
    page.locator('tr[data-user="aygul"] form.issue input[name="label"]').fill("obs")
    with page.expect_navigation():
        page.locator('tr[data-user="aygul"] form.issue button').click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("ls_")
    page.get_by_role("button", name="复制").click()
    page.wait_for_function("() => document.querySelector('.copy-status').textContent === '已复制'")
    assert page.evaluate("navigator.clipboard.readText()") == token
    assert not errors, errors


def test_the_widget_panel_copies_the_embed_code_and_the_obs_address(context: Any, server: Any, users: Users) -> None:
    token = users.token("host")
    sid = live_session(server, token)
    page = context.new_page()
    log_in(page, server, "host", f"/sessions/{sid}")
    for button, field in (("复制嵌入代码", "#embed-code"), ("复制 OBS 地址", "#overlay-url")):
        page.get_by_role("button", name=button).click()
        page.wait_for_function(f"""() => navigator.clipboard.readText().then(
            t => t === document.querySelector('{field}').value)""")
    assert page.locator(".copy-status").first.inner_text() == "已复制"
