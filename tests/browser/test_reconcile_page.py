"""The reconciliation page and the report's final figures in Chromium (issue 14 items 2-3).

At 390×844, 1366×768 and 1920×1080, in Chinese and English: no sideways scrolling, no key figure on two
lines, no serious axe violation; ``LIVESALE_SHOTS=<dir>`` saves screenshots. Then an official confirms
the platform's figures through the report's form and its confirmation dialog, and reverts them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import LANGS, SIZES, Site, build_site, log_in, open_page
from tests.browser.test_a11y import AXE, RUN
from tests.browser.test_layout import OVERFLOW, WRAPPED
from tests.conftest import Users


@pytest.fixture
def site(users: Users) -> Site:
    return build_site(users)


def test_reconciliation_and_final_figures_fit_and_read(browser: Any, server_factory: Any, site: Site) -> None:
    server = server_factory()
    shots = Path(os.environ["LIVESALE_SHOTS"]) if os.environ.get("LIVESALE_SHOTS") else None
    pages = [("reconcile", f"/sessions/{site.big}/reconciliation"), ("final-live", f"/sessions/{site.big}#final"),
             ("final-platform", f"/sessions/{site.ended[1]}#final"), ("sessions", "/sessions?sort=total")]
    problems: list[str] = []
    for size in SIZES:
        for lang, locale in LANGS.items():
            context = browser.new_context(locale=locale, viewport={"width": size[0], "height": size[1]})
            context.set_default_timeout(20_000)
            try:
                page = context.new_page()
                log_in(page, server.url, "official")
                for name, path in pages:
                    open_page(page, server.url + path)
                    where = f"{name} {lang} {size[0]}x{size[1]}"
                    if shots is not None:
                        shots.mkdir(parents=True, exist_ok=True)
                        if "#" in path:
                            page.locator("#final").scroll_into_view_if_needed()
                        page.screenshot(path=str(shots / f"{name}-{lang}-{size[0]}.png"))
                    overflow = page.evaluate(OVERFLOW)
                    if overflow:
                        problems.append(f"{where}: {overflow['scrollWidth']} px wide in {overflow['width']}: "
                                        f"{overflow['elements']}")
                    for figure in page.evaluate(WRAPPED):
                        problems.append(f"{where}: key figure {figure['what']!r} on {figure['lines']} lines")
                    if size == (1366, 768):
                        if not page.evaluate("() => typeof axe !== 'undefined'"):
                            page.evaluate(AXE)
                        for v in page.evaluate(RUN):
                            problems.append(f"{where}: {v['id']} ({v['impact']}) {v['help']} {v['targets']}")
            finally:
                context.close()
    assert not problems, "\n".join(problems)


def test_an_official_confirms_through_the_dialog_and_reverts(browser: Any, server_factory: Any, site: Site) -> None:
    server = server_factory()
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        log_in(page, server.url, "official")
        open_page(page, f"{server.url}/sessions/{site.big}?lang=zh")
        assert page.locator("#final").get_attribute("data-final-source") == "live"
        page.check("#final-form input[value=platform]")
        page.fill("#final-form input[name=reason]", "次日抖店导出已核对")
        page.click("#final-form button[type=submit]")
        dialog = page.locator("#confirm-dialog")
        dialog.wait_for(state="visible")
        assert "确认最终数据" in dialog.inner_text()
        page.click("#confirm-dialog .confirm-cancel")  # Cancel: nothing is sent
        dialog.wait_for(state="hidden")
        assert page.locator("#final").get_attribute("data-final-source") == "live"
        page.click("#final-form button[type=submit]")
        page.click("#confirm-dialog .confirm-ok")
        page.wait_for_selector('#final[data-final-source="platform"]')
        assert "次日抖店导出已核对" in page.locator("#final-says").inner_text()
        page.click("#final-revert button[type=submit]")
        page.click("#confirm-dialog .confirm-ok")
        page.wait_for_selector('#final[data-final-source="live"]')
    finally:
        context.close()
