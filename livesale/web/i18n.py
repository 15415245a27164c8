"""Languages and formats: Simplified Chinese first, English second (Flask-Babel).

The locale comes from ``?lang=zh|en`` (remembered in a cookie), else the
browser's ``Accept-Language``, else Chinese. Money and percentages are
written by ``formats`` (the same rule as ``static/js/money.js``); times in
the session's time zone.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time
from flask import Flask, Response, g, request
from flask_babel import Babel, get_locale

from . import formats

LANGUAGES = ("zh", "en")
LANG_COOKIE = "lang"

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


def money(fen: int, language: str | None = None, *, short: bool = False) -> str:
    """``¥60,200.00``; with ``short`` the big form, ``¥6.02万`` / ``¥60.20K`` (see ``formats``)."""
    language = language or lang()
    return formats.money_big(fen, language) if short else formats.money_exact(fen, language)


def money_diff(fen: int, language: str | None = None, *, exact: bool = False) -> str:
    """``▲ +¥1.23万`` / ``▼ −¥1.23万`` / ``±¥0`` in the page's language."""
    return formats.money_diff(fen, language or lang(), exact=exact)


def percent(part: int, whole: int) -> str:
    """``111.8%``; ``—`` when there is nothing to divide by."""
    return formats.percent(part, whole)


def local_time(value: datetime | None, tz: str, *, with_date: bool = True) -> str:
    """A UTC datetime in the session's time zone, in the page's language."""
    if value is None:
        return "—"
    locale = "zh_CN" if lang() == "zh" else "en_GB"
    zone = ZoneInfo(tz)
    if with_date:
        return format_datetime(value, "yyyy-MM-dd HH:mm", tzinfo=zone, locale=locale)
    return format_time(value, "HH:mm:ss", tzinfo=zone, locale=locale)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["money_exact"] = lambda fen, language=None: money(fen, language)
    app.jinja_env.filters["money_diff"] = money_diff
    app.jinja_env.filters["percent"] = percent
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.globals["lang"] = lang
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES

    @app.after_request
    def _remember_language(response: Response) -> Response:
        choice = g.get("lang_choice")
        if choice:
            response.set_cookie(LANG_COOKIE, choice, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                                secure=request.is_secure)
        return response
