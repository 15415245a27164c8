"""The money rule in the browser (``static/js/money.js``) in real Chromium, against the table the Python is tested on.

The same file, ``tests/money_cases.json``, drives ``tests/web/test_money_format.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
MONEY_JS = ROOT / "livesale" / "static" / "js" / "money.js"
CASES_FILE = ROOT / "tests" / "money_cases.json"

# Every case is formatted in the page in one go; Python compares, so a failure names the case.
RUN = """cases => {
  const M = window.LivesaleMoney;
  const style = {big: (f, l) => M.big(f, l), exact: (f, l) => M.exact(f, l), diff: (f, l) => M.diff(f, l),
                 diff_exact: (f, l) => M.diff(f, l, true)};
  return {
    money: cases.money.map(c => style[c.style](c.fen, c.lang)),
    percent: cases.percent.map(c => M.percent(c.part, c.whole, c.lang)),
  };
}"""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto("about:blank")
        page.add_script_tag(path=str(MONEY_JS))
        yield page
    finally:
        context.close()


def test_money_js_matches_every_case_of_the_table(page: Any) -> None:
    cases = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    got = page.evaluate(RUN, cases)
    wrong = [(c, text) for c, text in zip(cases["money"], got["money"], strict=True) if text != c["text"]]
    wrong += [(c, text) for c, text in zip(cases["percent"], got["percent"], strict=True) if text != c["text"]]
    assert wrong == []
    assert len(got["money"]) == len(cases["money"]) > 120 and len(got["percent"]) == len(cases["percent"]) > 15


def test_a_computed_figure_that_is_not_whole_fen_is_rounded_first(page: Any) -> None:
    """A projection (amount × minutes / elapsed) may not be whole fen; it must not throw."""
    assert page.evaluate("LivesaleMoney.big(999949.6, 'zh')") == "¥1.00万"
    assert page.evaluate("LivesaleMoney.exact(6979.5, 'en')") == "¥69.80"
