"""Readable by everyone: axe-core (Deque's engine, vendored for the tests under tests/browser/vendor/axe-core)
runs in Chromium on every page, in Chinese, Uyghur and English, and no serious or critical violation is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import LANGS, Site, build_site, every_page
from tests.conftest import Users

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")

# The WCAG 2.1 A/AA rules and axe's best practices; impacts are axe's own.
RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map(n => n.target.join(' ') + (n.failureSummary ? ' — ' +
      n.failureSummary.split('\\n').slice(1).join(' ').slice(0, 160) : '')),
  }));
}"""


@pytest.fixture
def site(users: Users) -> Site:
    return build_site(users)


def test_no_serious_accessibility_violation_on_any_page(browser: Any, server_factory: Any, site: Site) -> None:
    server = server_factory()
    found: list[str] = []
    checked: list[str] = []

    def visit(page: Any, name: str, lang: str, size: tuple[int, int]) -> None:
        # Evaluated through the DevTools protocol: the pages' script policy (CSP) does not apply to it.
        if not page.evaluate("() => typeof axe !== 'undefined'"):
            page.evaluate(AXE)
        checked.append(f"{name} {lang}")
        for v in page.evaluate(RUN):
            found.append(f"{name} {lang}: {v['id']} ({v['impact']}) {v['help']}\n    " + "\n    ".join(v["targets"]))

    every_page(browser, server.url, site, sizes=[(1366, 768)], visit=visit)
    assert len(checked) == len(LANGS) * (len(site.pages()) + 2)
    assert not found, f"{len(found)} serious or critical accessibility problems:\n" + "\n".join(found)
