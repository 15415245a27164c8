"""A server allowed one widget socket (LIVESALE_WIDGET_SOCKET_LIMIT=1), two widgets on a partner's page.

In real Chromium: one widget holds the socket, the other is told to poll
and reads the public JSON about once a second; after orders both show the
very same exact totals, orders count and latest orders.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_widget import PRICE, order, partner, widget_frames, widget_session  # noqa: F401

__all__ = ["partner", "widget_session"]  # fixtures shared with test_widget.py


@pytest.fixture
def server(server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LIVESALE_WIDGET_SOCKET_LIMIT", "1")
    return server_factory()


def test_the_widget_past_the_limit_polls_and_shows_the_same_exact_totals(
    browser: Any, server: Any, partner: str, widget_session: dict[str, Any]  # noqa: F811
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 900, "height": 900})
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(partner)
        frames = widget_frames(page, 2)

        def modes() -> list[str]:
            return sorted(f.evaluate("() => window.livesaleWidget ? window.livesaleWidget.mode() : ''") for f in frames)

        deadline = 100
        while modes() != ["poll", "socket"] and deadline:
            page.wait_for_timeout(100)
            deadline -= 1
        assert modes() == ["poll", "socket"]
        socket_frame = next(f for f in frames if f.evaluate("() => window.livesaleWidget.mode()") == "socket")
        socket_frame.wait_for_selector('#w[data-joined="1"]')

        order(server, widget_session, "APRICOT-5KG", 2)
        order(server, widget_session, "EVIL", 3)
        total = 2 * PRICE + 300
        for frame in frames:
            # Waited on with a generous deadline (the polling one reads the JSON about once a second).
            frame.wait_for_selector(f'#w-total[data-fen="{total}"]', timeout=15_000)
            frame.wait_for_selector('#w-orders:text-is("2")')
            assert frame.locator("#w").get_attribute("data-state") == "ok"  # not "reconnecting" nor stale
        one, two = frames
        assert one.locator("#w-total").inner_text() == two.locator("#w-total").inner_text()
        for frame in frames:
            if frame.locator("#w-latest").count():
                frame.locator("#w-latest li").nth(1).wait_for()  # both orders listed, newest first
                assert "3 × " in frame.locator("#w-latest li").first.inner_text()
    finally:
        context.close()
