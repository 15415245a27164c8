"""Languages and formats: Simplified Chinese first, English second (Flask-Babel).

The locale comes from ``?lang=zh|en`` (remembered in a cookie), else the
browser's ``Accept-Language``, else Chinese. Money is shown as ¥ with 万
where it reads better in Chinese; times in the session's time zone.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time
from babel.numbers import format_decimal
from flask import Flask, Response, g, request
from flask_babel import Babel, get_locale

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
    """``¥60,200.00``; with ``short`` in Chinese ``¥6.02万`` from ¥10,000 up."""
    language = language or lang()
    yuan = fen / 100
    if short and language == "zh" and abs(yuan) >= 10_000:
        wan = format_decimal(round(yuan / 10_000, 2), format="#,##0.##", locale="zh_CN")
        return f"¥{wan}万"
    if short and abs(yuan) >= 1_000 and fen % 100 == 0:
        return "¥" + format_decimal(int(yuan), format="#,##0", locale="en_US")
    return "¥" + format_decimal(yuan, format="#,##0.00", locale="en_US")


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
