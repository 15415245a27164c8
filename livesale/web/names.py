"""Names people read in place of the codes the API stores (platforms).

The API keeps a session's ``platform`` as free text; the four platforms the
villages sell on have codes (as the platforms' own exports and the import
API name them) and are shown by name in the page's language. Any other text
is shown as it was typed.
"""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

#: Platform codes and their names, in the order forms offer them.
PLATFORMS = {
    "douyin": _l("Douyin"),
    "kuaishou": _l("Kuaishou"),
    "channels": _l("WeChat Channels"),
    "taobao": _l("Taobao"),
}


#: Codes that name where lines came from without being a platform a session sells on (not offered in forms).
_SOURCES = {"generic": _l("Other (imported with livesale's columns)")}


def platform_name(code: str | None) -> str:
    """``douyin`` → 抖音 / Douyin; an unknown value as typed; empty stays empty."""
    if not code:
        return ""
    key = code.strip().lower()
    name = PLATFORMS.get(key) or _SOURCES.get(key)
    return str(name) if name is not None else code


def init_app(app: Flask) -> None:
    app.jinja_env.filters["platform_name"] = platform_name
    app.jinja_env.globals["PLATFORMS"] = PLATFORMS
