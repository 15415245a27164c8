"""How money and percentages are written: one rule, the same in Python and in the browser.

Here in ``core`` (no Flask) because pages and the group-chat robots' messages
(``core.robot_messages``) both write money; ``web/formats.py`` re-exports it.

``static/js/money.js`` is the browser's copy of these four functions; both are
tested against the same table of cases, ``tests/money_cases.json``, so a
figure rendered by the server reads exactly the same after the first push.

- ``big`` (big figures, charts, cards): whole yuan below ¥10,000 (``¥9,999``,
  ``¥70`` for ¥69.80); from ¥10,000 ``¥1.23万`` and from ¥100,000,000
  ``¥1.23亿`` in Chinese; ``¥12.35K``, ``¥1.23M`` (from ¥1,000,000) and
  ``¥1.23B`` (from ¥1,000,000,000) in English; ``¥12.35مىڭ``, ``¥1.23مىليون``
  and ``¥1.23مىليارد`` in Uyghur (CLDR ``ug``'s short compact units: thousand,
  million, billion). Always two decimals in a unit, so the figure keeps its
  width as it moves.
- ``exact`` (tables, lists, exports): ``¥83,411.00``.
- ``diff`` (differences): ``▲ +¥1.23万``, ``▼ −¥1.23万``, ``±¥0`` — arrows, so
  colour (red is *up* in China) is never the only sign.

Rounding is half-even on the exact amount (integer fen, never a float), and
a figure that rounds up to the next unit is written in that unit
(¥9,999.50 → ``¥1.00万``, never ``¥10,000``). Negative amounts take the
minus sign U+2212; an amount that rounds to zero has no sign.

Uyghur (``ug``) is written right to left with Western digits. CLDR's ``ug`` data
gives the same pattern as Chinese (``¤#,##0.00``: the sign before the digits, no
space), ``.``/``,`` as separators, ``#,##0%`` for percentages and the short
compact units above. Two deliberate departures:

- The currency sign stays ``¥`` (U+00A5), not CLDR ``ug``'s fullwidth ``￥``
  (U+FFE5): the same renminbi sign on every page, poster, export and widget
  whatever the language, as on the platforms' own receipts; the fullwidth form
  is a CJK typesetting glyph that stands oversized and spaced next to Western
  digits in an Arabic-script line.
- Every figure starts with a LEFT-TO-RIGHT MARK (U+200E), right before its
  sign or its first character (after a difference's arrow). CLDR puts one
  before the sign in the other right-to-left locales with Western digits
  (``he``, ``fa``, ``ur``); ``ug``'s data has none, and Uyghur needs it on the
  whole figure: after Arabic letters the bidi algorithm takes Western digits as
  Arabic numbers, so without the mark the sign lands right of the digits
  (``4,349−``), ``¥`` and ``%`` come loose (``12.3%`` shows as ``%12.3``) and a
  date runs backwards (``06-12-2026``). With it the figure reads as one
  left-to-right unit wherever it is put (text, attributes, charts, pushes) and
  the unit word still follows it (``¥12.35مىڭ``). ``bdi``/CSS isolation on the
  pages keeps figures from their neighbours besides.
"""

from __future__ import annotations

MINUS = "\u2212"
DASH = "—"
LRM = "\u200e"  # starts every Uyghur figure (see the module's docstring)

# (unit name, fen per hundredth of the unit, where the next unit starts in hundredths), smallest first.
# The last unit has no upper end: ``¥12,345.67亿``.
_UNITS = {
    "zh": (("万", 10**4, 10**6), ("亿", 10**8, None)),
    "en": (("K", 10**3, 10**5), ("M", 10**6, 10**5), ("B", 10**9, None)),
    "ug": (("مىڭ", 10**3, 10**5), ("مىليون", 10**6, 10**5), ("مىليارد", 10**9, None)),
}
# Languages written right to left: their figures start with a LRM.
_RTL = frozenset({"ug"})
# Below this many whole yuan a big figure is written in whole yuan.
_WHOLE_BELOW = 10_000


def _divide_half_even(n: int, d: int) -> int:
    """``n / d`` rounded half to even, for ``n >= 0`` and ``d > 0``: exact integer arithmetic."""
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2 == 1):
        q += 1
    return q


def _grouped(n: int) -> str:
    return f"{n:,}"


def _language(lang: str | None) -> str:
    return lang if lang in ("en", "ug") else "zh"


def mark(lang: str | None) -> str:
    """What starts a figure in ``lang``: a LRM in right-to-left languages, else nothing."""
    return LRM if lang in _RTL else ""


def _big_magnitude(fen: int, lang: str) -> str:
    """The big form of ``|fen|`` without a sign, and whether it rounded to zero (as an empty string)."""
    yuan = _divide_half_even(fen, 100)
    if yuan < _WHOLE_BELOW:
        return "" if yuan == 0 else f"¥{_grouped(yuan)}"
    for name, hundredth, next_at in _UNITS[lang]:
        hundredths = _divide_half_even(fen, hundredth)
        if next_at is None or hundredths < next_at:
            whole, cents = divmod(hundredths, 100)
            return f"¥{_grouped(whole)}.{cents:02d}{name}"
    raise AssertionError("unreachable: the last unit has no upper end")


def money_big(fen: int, lang: str | None = "zh") -> str:
    """A big figure: ``¥9,999``, ``¥1.00万`` / ``¥10.00K``, ``−¥1.23万``; ``¥0`` for what rounds to nothing."""
    text = _big_magnitude(abs(fen), _language(lang))
    if not text:
        return mark(lang) + "¥0"
    return mark(lang) + (MINUS if fen < 0 else "") + text


def money_exact(fen: int, lang: str | None = "zh") -> str:
    """The exact amount with fen: ``¥83,411.00``, ``−¥4,349.20`` (the same digits in every language)."""
    yuan, cents = divmod(abs(fen), 100)
    text = f"¥{_grouped(yuan)}.{cents:02d}"
    return mark(lang) + (MINUS if fen < 0 else "") + text


def money_diff(fen: int, lang: str | None = "zh", *, exact: bool = False) -> str:
    """A difference with an arrow: ``▲ +¥1.23万``, ``▼ −¥1.23万``, ``±¥0`` (also when it rounds to nothing).

    With ``exact`` the amount keeps its fen (``▲ +¥12,345.67``), for tables.
    """
    if exact:
        text = money_exact(abs(fen))
        if fen == 0:
            return mark(lang) + "±¥0.00"
    else:
        text = _big_magnitude(abs(fen), _language(lang))
        if not text:
            return mark(lang) + "±¥0"
    return f"▲ {mark(lang)}+{text}" if fen > 0 else f"▼ {mark(lang)}{MINUS}{text}"


def count_diff(n: int, lang: str | None = "zh") -> str:
    """A difference of counts (orders, items, minutes) with an arrow, as ``money_diff`` writes money:
    ``▲ +12``, ``▼ −1,234``, ``±0``."""
    if n == 0:
        return mark(lang) + "±0"
    text = _grouped(abs(n))
    return f"▲ {mark(lang)}+{text}" if n > 0 else f"▼ {mark(lang)}{MINUS}{text}"


def signed_number(value: float, lang: str | None = "zh") -> str:
    """A change with its sign and no arrow, for a percentage in brackets: ``+6.3``, ``−42.1``, ``0``."""
    sign = "+" if value > 0 else MINUS if value < 0 else ""
    return f"{mark(lang)}{sign}{abs(value)}"


def percent_value(value: float, lang: str | None = "zh") -> str:
    """A percentage already worked out (a figure's ``111.8``): ``111.8%``, with the Uyghur LRM."""
    return f"{mark(lang)}{value}%"


def percent(part: int, whole: int, lang: str | None = None) -> str:
    """``part`` of ``whole`` with one decimal, half-even: ``111.8%``; ``—`` when ``whole`` is 0.

    The same in every language but for the LRM that starts a Uyghur figure.
    """
    if not whole:
        return DASH
    negative = (part < 0) != (whole < 0)
    tenths = _divide_half_even(abs(part) * 1000, abs(whole))
    if tenths == 0:
        negative = False
    whole_pct, tenth = divmod(tenths, 10)
    return f"{mark(lang)}{MINUS if negative else ''}{_grouped(whole_pct)}.{tenth}%"
