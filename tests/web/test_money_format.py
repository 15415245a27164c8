"""The money rule in Python (``livesale/web/formats.py``), against the table the browser's copy is tested on too.

``tests/money_cases.json`` is written by hand; ``tests/browser/test_money_format.py`` checks
``static/js/money.js`` against every case of the same file.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from livesale.web import formats

CASES = json.loads((Path(__file__).resolve().parent.parent / "money_cases.json").read_text(encoding="utf-8"))
STYLES = {
    "big": formats.money_big,
    "exact": formats.money_exact,
    "diff": formats.money_diff,
    "diff_exact": lambda fen, lang: formats.money_diff(fen, lang, exact=True),
}


def _id(case: dict[str, Any]) -> str:
    return f"{case['style']}-{case['lang']}-{case['fen']}"


@pytest.mark.parametrize("case", CASES["money"], ids=_id)
def test_money_matches_the_table(case: dict[str, Any]) -> None:
    assert STYLES[case["style"]](case["fen"], case["lang"]) == case["text"]


@pytest.mark.parametrize("case", CASES["percent"], ids=lambda c: f"{c['part']}-of-{c['whole']}-{c.get('lang', 'any')}")
def test_percent_matches_the_table(case: dict[str, Any]) -> None:
    assert formats.percent(case["part"], case["whole"], case.get("lang")) == case["text"]
    if "lang" not in case:  # the same in every language, a Uyghur figure starting with its LRM
        for lang in ("zh", "en"):
            assert formats.percent(case["part"], case["whole"], lang) == case["text"], lang
        uyghur = case["text"] if case["text"] == "—" else "\u200e" + case["text"]
        assert formats.percent(case["part"], case["whole"], "ug") == uyghur


def test_the_table_covers_the_rule() -> None:
    """Every language in every style, both signs, every unit, and the half-even edges."""
    seen = {(c["style"], c["lang"]) for c in CASES["money"]}
    assert seen >= {(s, lang) for s in ("big", "exact", "diff", "diff_exact") for lang in ("zh", "en", "ug")}
    texts = {c["text"] for c in CASES["money"]}
    for must in ("¥70", "¥9,999", "¥1.00万", "¥1.06万", "¥1.00亿", "¥1.00M", "¥1.00B", "±¥0", "−¥4,349.20",
                 "\u200e¥10.00مىڭ", "\u200e¥1.00مىليون", "\u200e¥1.00مىليارد", "\u200e−¥4,349.20",
                 "▲ \u200e+¥12.35مىڭ"):
        assert must in texts, must
    # Uyghur: ¥ (not CLDR's fullwidth ￥); one LRM, starting the figure (after a difference's arrow).
    for c in CASES["money"]:
        if c["lang"] == "ug":
            figure = c["text"][2:] if c["text"][:2] in ("▲ ", "▼ ") else c["text"]
            assert "￥" not in c["text"] and figure.startswith("\u200e") and c["text"].count("\u200e") == 1, c
    assert any(c["fen"] < 0 for c in CASES["money"]) and any(c["fen"] >= 2**53 - 1 for c in CASES["money"])


def _reference_big(fen: int, lang: str) -> str:
    """An independent reading of the "big" rule with Decimal, to check the hand-written table itself.

    Whole yuan below 10,000; else the smallest unit in which the figure, rounded to two decimals,
    stays below where the next unit starts (¥999,994.99 is ¥999.99K, ¥999,999.50 is ¥1.00M).
    """
    units = {"zh": [("万", 10**4, 10**4), ("亿", 10**8, None)],
             "en": [("K", 10**3, 1000), ("M", 10**6, 1000), ("B", 10**9, None)],
             "ug": [("مىڭ", 10**3, 1000), ("مىليون", 10**6, 1000), ("مىليارد", 10**9, None)]}[lang]
    yuan = abs(Decimal(fen) / 100)
    whole = yuan.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    lrm = "\u200e" if lang == "ug" else ""
    if whole == 0:
        return lrm + "¥0"
    text = f"¥{whole:,}"
    if whole >= 10_000:
        for name, size, next_at in units:
            figure = (yuan / size).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
            if next_at is None or figure < next_at:
                text = f"¥{figure:,.2f}{name}"
                break
    return lrm + ("−" if fen < 0 else "") + text


@pytest.mark.parametrize("case", [c for c in CASES["money"] if c["style"] == "big"], ids=_id)
def test_the_table_agrees_with_a_decimal_reading_of_the_rule(case: dict[str, Any]) -> None:
    assert _reference_big(case["fen"], case["lang"]) == case["text"]


def test_the_rule_holds_between_the_cases() -> None:
    """Every amount around each threshold and rounding edge, against the Decimal reading."""
    edges = [10**6, 10**8, 10**10, 10**12, 10**5, 10**11]
    for edge in edges:
        for fen in range(edge - 5_100, edge + 5_100, 7):
            for lang in ("zh", "en", "ug"):
                assert formats.money_big(fen, lang) == _reference_big(fen, lang), (fen, lang)
                assert formats.money_big(-fen, lang) == _reference_big(-fen, lang), (-fen, lang)


def test_jinja_filters_use_the_same_rule(app: Any) -> None:
    with app.test_request_context("/?lang=en"):
        app.preprocess_request()
        env = app.jinja_env
        rendered = env.from_string(
            "{{ 1234567|money(short=True) }} {{ 1234567|money }} {{ 1234567|money('zh', short=True) }} "
            "{{ -434920|money_exact }} {{ -1234567|money_diff }} {{ 33540000|percent(30000000) }} {{ 5|percent(0) }}"
        ).render()
    assert rendered == "¥12.35K ¥12,345.67 ¥1.23万 −¥4,349.20 ▼ −¥12.35K 111.8% —"


def test_jinja_filters_write_uyghur_with_the_same_rule(app: Any) -> None:
    with app.test_request_context("/?lang=ug"):
        app.preprocess_request()
        rendered = app.jinja_env.from_string(
            "{{ 1234567|money(short=True) }} {{ -434920|money_exact }} {{ -1234567|money_diff }} "
            "{{ -1|percent(8) }} {{ 1234567|money('en', short=True) }}"
        ).render()
    assert rendered == "\u200e¥12.35مىڭ \u200e−¥4,349.20 ▼ \u200e−¥12.35مىڭ \u200e−12.5% ¥12.35K"


def test_count_differences_take_the_same_signs() -> None:
    """Differences of counts and percentages in brackets: arrows and a real minus; in Uyghur the LRM first."""
    assert [formats.count_diff(n, "zh") for n in (12, -1234, 0)] == ["▲ +12", "▼ −1,234", "±0"]
    assert [formats.count_diff(n, "ug") for n in (12, -1234, 0)] == ["▲ \u200e+12", "▼ \u200e−1,234", "\u200e±0"]
    assert [formats.signed_number(v, "en") for v in (6.3, -42.1, 0.0, 5)] == ["+6.3", "−42.1", "0.0", "+5"]
    assert [formats.signed_number(v, "ug") for v in (6.3, -42.1, 0.0)] == ["\u200e+6.3", "\u200e−42.1", "\u200e0.0"]
    assert [formats.percent_value(111.8, lang) for lang in ("zh", "en", "ug")] == ["111.8%", "111.8%", "\u200e111.8%"]
