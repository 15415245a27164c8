"""The review pages draw every chart with the vendored ``echarts.common`` build: no script or console error,
every chart an SVG with its series drawn, the tooltip (with its axis pointer) shown on hover.

The common build holds fewer chart types and components than the full one; a series type or component
``static/js/charts.js`` uses that the build lacks would draw nothing (or throw), which this catches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import Site, build_site, log_in, open_page, watch
from tests.conftest import Users

# Per chart: whether ECharts drew it (an SVG with painted paths) and the series types in it.
DRAWN = """() => Array.from(document.querySelectorAll('[data-chart]')).map(el => {
  const chart = echarts.getInstanceByDom(el);
  const option = chart ? chart.getOption() : {series: []};
  return {chart: el.getAttribute('data-chart') || el.className, paths: el.querySelectorAll('svg path').length,
          types: option.series.map(s => s.type)};
})"""


@pytest.fixture
def site(users: Users) -> Site:
    return build_site(users)


def test_every_review_page_draws_its_charts_with_the_common_build(browser: Any, server_factory: Any,
                                                                   site: Site) -> None:
    server = server_factory()
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        problems = watch(page)
        log_in(page, server.url, "admin")
        ids = ",".join(map(str, site.ended))
        seen: set[str] = set()
        for path in ["/sessions", f"/sessions/{site.big}", f"/sessions/{site.live}", f"/compare?ids={ids}"]:
            try:
                assert open_page(page, server.url + path) == 200, path
            except Exception:  # not drawn in time: say why, if a script said so
                raise AssertionError((path, problems)) from None
            assert page.evaluate("() => echarts.version") == "5.6.0"
            charts = page.evaluate(DRAWN)
            assert charts, path
            for chart in charts:
                assert chart["paths"] > 0, (path, chart)
                seen.update(chart["types"])
            assert problems == [], (path, problems)
        assert {"line", "bar"} <= seen, seen

        # The tooltip (its axis pointer too) on the per-minute bars of a report, with the coloured dot of ours:
        # ECharts' own marker is HTML with a style attribute that the page's policy refuses (a console error).
        open_page(page, f"{server.url}/sessions/{site.big}")
        bars = page.locator('[data-chart="per-minute"]')
        bars.scroll_into_view_if_needed()
        box = bars.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function("() => Array.from(document.querySelectorAll('[data-chart] div'))"
                               ".some(d => d.style.display !== 'none' && d.style.position === 'absolute'"
                               " && d.querySelector('span[aria-hidden=true]') && d.querySelector('b'))",
                               timeout=10_000)
        assert problems == [], problems
        if os.environ.get("LIVESALE_SHOTS"):  # to look at: the report's charts, the tooltip shown
            shots = Path(os.environ["LIVESALE_SHOTS"])
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shots / "charts-report-zh-1366.png")  # the bars in view, tooltip shown
    finally:
        context.close()
