"""Languages and formats: Simplified Chinese first, then Uyghur and English (Flask-Babel).

The locale comes from ``?lang=zh|ug|en`` (remembered in a cookie), else the
browser's ``Accept-Language``, else Chinese. Uyghur is written right to left
in Arabic script: pages say so with ``<html lang dir>`` (``html_lang`` and
``text_dir``), and the CSS mirrors with logical properties. Money and
percentages are written by ``formats`` (the same rule as
``static/js/money.js``); times in the session's time zone.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time
from flask import Flask, Response, g, has_request_context, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from markupsafe import Markup

from . import formats

LANGUAGES = ("zh", "ug", "en")
LANG_COOKIE = "lang"
# The value of <html lang>, and the languages written right to left.
_HTML_LANG = {"zh": "zh-CN", "ug": "ug", "en": "en"}
_RTL = frozenset({"ug"})
# Babel's locale for dates and times in each language.
_DATE_LOCALE = {"zh": "zh_CN", "ug": "ug", "en": "en_GB"}

babel = Babel()


def select_locale() -> str:
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        g.lang_choice = wanted
        return wanted
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES) or "zh"


def lang() -> str:
    return get_locale().language if get_locale() else "zh"


def html_lang(language: str | None = None) -> str:
    """``<html lang>`` for ``language`` (the page's by default): ``zh-CN``, ``ug``, ``en``."""
    return _HTML_LANG.get(language or lang(), "en")


def text_dir(language: str | None = None) -> str:
    """``rtl`` for a language written right to left (Uyghur), else ``ltr``: ``<html dir>``."""
    return "rtl" if (language or lang()) in _RTL else "ltr"


def arrow(way: str) -> str:
    """``→`` (``way="forward"``) or ``←`` (``"back"``) as the page reads: mirrored in right-to-left languages."""
    forward = way == "forward"
    return "→" if forward != (text_dir() == "rtl") else "←"


def bdi(text: object) -> Markup:
    """A figure in running text, isolated so it never reorders with the words around it (Uyghur).

    The direction is the page's, not guessed from the figure (``<bdi>`` alone would take ``¥12.35مىڭ`` as
    right to left on a Chinese page and a signed figure's LRM as left to right on a Uyghur one).
    """
    return Markup('<bdi dir="{}">{}</bdi>').format(text_dir(), text)


def script_text() -> dict[str, str]:
    """Words the shared scripts write themselves (charts, dialogs), in the page's language.

    Rendered once per page as JSON (``#ui-text`` in base.html) so no script carries its own copy
    of a translation.
    """
    return {
        "minutes": _("Minutes since start"),
        "sales": _("Sales"),
        "per_minute": _("Sales per minute"),
        "orders": _("Orders"),
        "minute": _("minute %(n)s", n="{n}"),
        "no_data": _("No data"),
        "ok": _("OK"),
        "cancel": _("Cancel"),
    }


def money(fen: int, language: str | None = None, *, short: bool = False) -> str:
    """``¥60,200.00``; with ``short`` the big form, ``¥6.02万`` / ``¥60.20K`` (see ``formats``)."""
    language = language or lang()
    return formats.money_big(fen, language) if short else formats.money_exact(fen, language)


def money_diff(fen: int, language: str | None = None, *, exact: bool = False) -> str:
    """``▲ +¥1.23万`` / ``▼ −¥1.23万`` / ``±¥0`` in the page's language."""
    return formats.money_diff(fen, language or lang(), exact=exact)


def count_diff(n: int, language: str | None = None) -> str:
    """``▲ +12`` / ``▼ −1,234`` / ``±0``: a difference of counts in the page's language."""
    return formats.count_diff(n, language or lang())


def signed_number(value: float, language: str | None = None) -> str:
    """``+6.3`` / ``−42.1`` / ``0``: a change in brackets, in the page's language."""
    return formats.signed_number(value, language or lang())


def percent_value(value: float, language: str | None = None) -> str:
    """``111.8%`` for a percentage already worked out, in the page's language."""
    return formats.percent_value(value, language or lang())


def percent(part: int, whole: int, language: str | None = None) -> str:
    """``111.8%``; ``—`` when there is nothing to divide by."""
    return formats.percent(part, whole, language or lang())


def local_time(value: datetime | None, tz: str, *, with_date: bool = True) -> str:
    """A UTC datetime in the session's time zone, in the page's language."""
    if value is None:
        return "—"
    language = lang()
    locale = _DATE_LOCALE.get(language, "en_GB")
    zone = ZoneInfo(tz)
    # A Uyghur date starts with a LRM, as figures do (core/formats.py): after Arabic letters
    # 2026-12-06 would otherwise show as 06-12-2026.
    start = formats.mark(language)
    if with_date:
        return start + format_datetime(value, "yyyy-MM-dd HH:mm", tzinfo=zone, locale=locale)
    return start + format_time(value, "HH:mm:ss", tzinfo=zone, locale=locale)


def lang_link(code: str) -> str:
    """This page in language ``code``: its query kept (``/compare?ids=…`` keeps its ids), ``lang`` replaced."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"] if has_request_context() else []
    return "?" + urlencode([*args, ("lang", code)])


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["money_exact"] = lambda fen, language=None: money(fen, language)
    app.jinja_env.filters["money_diff"] = money_diff
    app.jinja_env.filters["percent"] = percent
    app.jinja_env.filters["count_diff"] = count_diff
    app.jinja_env.filters["signed_number"] = signed_number
    app.jinja_env.filters["percent_value"] = percent_value
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["bdi"] = bdi
    app.jinja_env.globals["lang"] = lang
    app.jinja_env.globals["html_lang"] = html_lang
    app.jinja_env.globals["text_dir"] = text_dir
    app.jinja_env.globals["arrow"] = arrow
    app.jinja_env.globals["lang_link"] = lang_link
    app.jinja_env.globals["script_text"] = script_text
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES

    @app.after_request
    def _remember_language(response: Response) -> Response:
        choice = g.get("lang_choice")
        if choice:
            response.set_cookie(LANG_COOKIE, choice, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                                secure=request.is_secure)
        return response
