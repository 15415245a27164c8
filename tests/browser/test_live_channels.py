"""The live screen's line per platform (issue 14 item 4), in a real browser against a real server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from livesale.web.formats import money_big
from tests.browser.test_live_pages import PRICE, ServerApi, api, context, login, server  # noqa: F401  (fixtures)


def order(to: ServerApi, quantity: int, channel: str | None) -> None:
    body: dict[str, Any] = {"sku": "APRICOT-5KG", "quantity": quantity, "buyer_region": "浙江杭州"}
    if channel is not None:
        body["channel"] = channel
    r = requests.post(f"{to.url}/orders", json=body,
                      headers={**to.headers, "Idempotency-Key": str(uuid.uuid4())}, timeout=5)
    assert r.status_code == 201, r.text


def channel_line(page: Any) -> list[str]:
    return page.locator("#channels li").all_inner_texts()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_channel_line_appears_with_a_second_platform_and_moves_with_the_push(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any], lang: str  # noqa: F811
) -> None:
    order(api, 3, "douyin")
    page = context.new_page()
    login(page, server, f"/live/{live_session['id']}")
    page.goto(f"{server.url}/live/{live_session['id']}?lang={lang}")
    page.wait_for_selector('#conn[data-state="ok"]')
    assert page.locator("#channels").is_hidden(), "one platform selling: no line per platform"

    order(api, 2, "kuaishou")  # a second platform sells: the line shows, pushed, largest first
    page.wait_for_function("() => !document.getElementById('channels').hidden")
    douyin, kuaishou = ("抖音", "快手") if lang == "zh" else ("Douyin", "Kuaishou")

    def line(name: str, quantity: int) -> str:  # the server's formatter: the browser's must agree
        return f"{name} {money_big(quantity * PRICE, lang)}"

    assert channel_line(page) == [line(douyin, 3), line(kuaishou, 2)]

    order(api, 4, "Kuaishou")  # the same platform in capitals: its line moves and overtakes
    page.wait_for_function(f"() => document.getElementById('total').dataset.fen === '{9 * PRICE}'")
    page.wait_for_function(
        "() => document.querySelector('#channels li').dataset.channel === 'kuaishou'")
    assert channel_line(page) == [line(kuaishou, 6), line(douyin, 3)]

    order(api, 1, None)  # an order that says no platform is a line of its own
    page.wait_for_function("() => document.querySelectorAll('#channels li').length === 3")
    assert channel_line(page)[-1] == line("未注明" if lang == "zh" else "Not given", 1)

    # What a reload draws on the server agrees with what the push drew.
    pushed = channel_line(page)
    page.reload()
    page.wait_for_selector('#conn[data-state="ok"]')
    assert channel_line(page) == pushed


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_channel_line_fits_the_kiosk_screen(
    browser: Any, server: Any, api: ServerApi, live_session: dict[str, Any], lang: str  # noqa: F811
) -> None:
    """Four lines (three platforms and "not given") beside realistic figures: all in sight on a TV or laptop."""
    for quantity, channel in ((87, "douyin"), (1500, "kuaishou"), (3, None), (2, "村委会微信群")):
        order(api, quantity, channel)
    for width, height in ((1366, 768), (1280, 720), (1920, 1080)):
        screen = browser.new_context(locale="zh-CN", viewport={"width": width, "height": height})
        screen.set_default_timeout(15_000)
        try:
            page = screen.new_page()
            login(page, server, f"/live/{live_session['id']}")
            page.goto(f"{server.url}/live/{live_session['id']}?kiosk=1&lang={lang}")
            page.wait_for_selector('#conn[data-state="ok"]')
            box = page.evaluate("""() => {
                const panel = document.getElementById('total-panel').getBoundingClientRect();
                const items = Array.from(document.querySelectorAll('#channels li'), li => li.getBoundingClientRect());
                return {panelBottom: panel.bottom, panelRight: panel.right, count: items.length,
                        bottom: Math.max(...items.map(r => r.bottom)), right: Math.max(...items.map(r => r.right)),
                        rows: new Set(items.map(r => Math.round(r.top))).size,
                        scroll: document.documentElement.scrollHeight};
            }""")
            where = f"{lang} {width}×{height}"
            assert box["count"] == 4 and box["rows"] == 1, (where, box)
            assert box["bottom"] <= box["panelBottom"] and box["right"] <= box["panelRight"], (where, box)
            assert box["scroll"] <= height, (where, box)
        finally:
            screen.close()
