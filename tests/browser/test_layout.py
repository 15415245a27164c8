"""Every page on the screens people have: a phone (390×844), an office laptop (1366×768) and a TV (1920×1080),
in Chinese, Uyghur (right to left) and English, with realistic data (long titles, hundreds of orders, six sessions compared).

Fails on a page that scrolls sideways, a kiosk screen taller than its viewport, and a key figure
(``[data-key-figure]``) broken onto two lines. ``LIVESALE_SHOTS=<dir>`` also saves a screenshot of each page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import LANGS, SIZES, Site, build_site, every_page, log_in, open_page
from tests.conftest import Users

# Wider than the viewport: the page itself scrolls sideways. Names the elements sticking out, deepest first.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return null;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1 && !el.querySelector('*:not(svg *)') ) {
      out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
               (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
               ' right=' + Math.round(r.right) + ' "' + (el.textContent || '').trim().slice(0, 30) + '"');
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width: width, elements: out.slice(0, 6)};
}"""

# Key figures that take more than one line: line boxes are the text's rectangles that do not overlap vertically.
WRAPPED = """() => Array.from(document.querySelectorAll('[data-key-figure]')).map(el => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const rects = Array.from(range.getClientRects()).filter(r => r.width > 0 && r.height > 0)
    .sort((a, b) => a.top - b.top);
  let lines = 0, bottom = -Infinity;
  for (const r of rects) {
    if (r.top >= bottom - 2) { lines += 1; bottom = r.bottom; } else { bottom = Math.max(bottom, r.bottom); }
  }
  return {lines: lines, text: el.textContent.trim().replace(/\\s+/g, ' '), what: el.getAttribute('data-key-figure')};
}).filter(f => f.lines > 1)"""

TALLER = "() => document.documentElement.scrollHeight > window.innerHeight ? document.documentElement.scrollHeight : 0"


@pytest.fixture
def site(users: Users) -> Site:
    return build_site(users)


def test_every_page_fits_the_screens_people_have(browser: Any, server_factory: Any, site: Site) -> None:
    server = server_factory()
    shots = Path(os.environ["LIVESALE_SHOTS"]) if os.environ.get("LIVESALE_SHOTS") else None
    problems: list[str] = []
    seen: list[str] = []

    def visit(page: Any, name: str, lang: str, size: tuple[int, int]) -> None:
        where = f"{name} {lang} {size[0]}x{size[1]}"
        seen.append(where)
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            height = page.evaluate("() => document.documentElement.scrollHeight")
            for i in range(min(3, -(-height // size[1]))):  # the first three screens, as people scroll
                page.evaluate(f"() => window.scrollTo(0, {i * size[1]})")
                page.screenshot(path=str(shots / f"{name}-{lang}-{size[0]}-{i}.png"))
            page.evaluate("() => window.scrollTo(0, 0)")
        overflow = page.evaluate(OVERFLOW)
        if overflow:
            problems.append(f"{where}: the page is {overflow['scrollWidth']} px wide in {overflow['width']} px: "
                            f"{overflow['elements']}")
        for figure in page.evaluate(WRAPPED):
            problems.append(f"{where}: key figure {figure['what']!r} on {figure['lines']} lines: {figure['text']!r}")
        if name == "kiosk" and size[0] > size[1]:
            taller = page.evaluate(TALLER)
            if taller:
                problems.append(f"{where}: the kiosk screen is {taller} px tall in a {size[1]} px screen")

    every_page(browser, server.url, site, sizes=SIZES, visit=visit)
    assert len(seen) == len(SIZES) * len(LANGS) * (len(site.pages()) + 2)
    assert not problems, "\n".join(problems)


def test_the_report_says_which_orders_it_lists(browser: Any, server_factory: Any, site: Site) -> None:
    """A report holds the first 100 orders and says so, on the screen and on paper; the next page goes on."""
    server = server_factory()
    context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        log_in(page, server.url, "official")
        open_page(page, f"{server.url}/sessions/{site.big}")
        span = page.locator("#orders-span")
        assert span.inner_text() == f"Orders 1–100 of {site.big_orders}"
        assert page.locator("#orders tbody tr[data-order]").count() == 100
        page.emulate_media(media="print")
        assert span.is_visible()
        if os.environ.get("LIVESALE_SHOTS"):
            page.pdf(path=str(Path(os.environ["LIVESALE_SHOTS"]) / "report-print.pdf"), format="A4",
                     print_background=True)
        page.emulate_media(media="screen")
        page.click("a[rel=next]")
        page.wait_for_function("() => document.querySelector('#orders-span').textContent.includes('101')")
        assert span.inner_text() == f"Orders 101–200 of {site.big_orders}"
    finally:
        context.close()
