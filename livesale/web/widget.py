"""The public widget: ``/widget/<key>`` (an iframe page), ``/widget/<key>.json`` and ``/embed.js``.

Public and read-only: reached by the widget's secret key, no login, no
cookies set, nothing about buyers. Framing follows the session's allowed
origins (``frame-ancestors``); every other page of the app refuses to be
framed. A strict Content-Security-Policy without ``unsafe-inline``: the
page's figures come in a JSON data block, styles and scripts from files.

Cacheable for a second by anyone (``SHARED_CACHE``), so that nginx's
microcache (docs/deploy.md) lets about one request per widget per second
reach the app however many readers there are: the three answers depend on
nothing but the URL and the Host (the language comes from ``?lang=``, never
from a cookie or ``Accept-Language``; the policy has no nonce), and never set
a cookie. A wrong, turned-off or replaced key's 404 is cacheable for the same
second, so that a cache replaces the widget's last figures with it at once.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _

from livesale.core import widget as widget_service
from livesale.core.errors import NotFound
from livesale.core.live import NAMESPACE, REVOKED
from livesale.core.sessions import SessionInfo
from livesale.extensions import backend, socketio
from livesale.web.errors import error_response

bp = Blueprint("widget", __name__)

#: The widget's answers (JSON, page, 404s): any cache may keep them for a second.
SHARED_CACHE = "public, max-age=1"


def _csp(info: SessionInfo | None) -> str:
    """The widget's policy; a page for no session (a wrong or old key) may be framed anywhere."""
    host = request.host
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src 'self' ws://{host} wss://{host}",
        "base-uri 'none'",
        "form-action 'none'",
        f"frame-ancestors {widget_service.frame_ancestors(info) if info else '*'}",
    ])


def _session(key: str) -> SessionInfo | None:
    """The session of an enabled widget with this key; None for a wrong, old (rotated) or disabled key."""
    try:
        return widget_service.widget_session(backend.store, key=key)
    except NotFound:
        return None


def _planned_start(info: SessionInfo, lang: str) -> str:
    """When a scheduled session starts, in its own time zone: "6月3日 周二 20:00" / "Tue 3 Jun, 20:00" /
    "سەيشەنبە، 3-ئىيۇن 20:00" (CLDR ug's day-month order)."""
    if info.scheduled_start is None:
        return _("No start time planned")
    pattern, locale = {"zh": ("M月d日 EEE HH:mm", "zh_CN"), "ug": ("EEEE، d-MMMM HH:mm", "ug")}.get(
        lang, ("EEE d MMM, HH:mm", "en_GB"))
    when = format_datetime(info.scheduled_start, pattern, tzinfo=ZoneInfo(info.timezone), locale=locale)
    return _("Starts %(when)s", when=when)


def _gone(options: widget_service.WidgetOptions) -> Response:
    """A short neutral note in the widget's own look, still a 404: partners' pages never show a raw error."""
    with force_locale(options.lang or "zh"):
        html = render_template("widget/gone.html", options=options, lang=options.lang or "zh")
    response = Response(html, status=404, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _csp(None)
    response.headers["Cache-Control"] = SHARED_CACHE
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _no_cookies() -> None:
    # ?lang= on a widget picks its language; it must not leave a cookie on the partner's page.
    g.pop("lang_choice", None)


@bp.get("/widget/<key>.json")
def widget_json(key: str) -> ResponseReturnValue:
    """The public totals, for pages that cannot run scripts: cacheable for 1 s, any origin."""
    info = _session(key)
    _no_cookies()
    if info is None:
        response = error_response(404, "no widget with this key (it may have been turned off or replaced)")
        response.headers["Cache-Control"] = SHARED_CACHE
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response
    body = widget_service.public_totals(backend.store, info=info)
    body["latest"] = widget_service.public_feed(info, backend.store.totals.read_feed(session_id=info.id))[-10:]
    response = jsonify(body)
    response.headers["Cache-Control"] = SHARED_CACHE
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    return response


@bp.get("/widget/<key>")
def widget_page(key: str) -> ResponseReturnValue:
    """The widget, made to sit in an iframe (``embed.js`` places it)."""
    info = _session(key)
    _no_cookies()
    options = widget_service.parse_options(request.args.to_dict())
    if info is None:
        return _gone(options)
    lang = options.lang or "zh"
    totals = widget_service.public_totals(backend.store, info=info)
    feed = widget_service.public_feed(info, backend.store.totals.read_feed(session_id=info.id))[-5:]
    with force_locale(lang):
        start = _planned_start(info, lang) if info.status == "scheduled" else ""
        html = render_template("widget/widget.html", info=info, key=key, options=options, totals=totals,
                               feed=list(reversed(feed)), lang=lang, start=start)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _csp(info)
    response.headers["Cache-Control"] = SHARED_CACHE
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/embed.js")
def embed_js() -> ResponseReturnValue:
    """One script tag places a widget: ``<script src=".../embed.js" data-widget="KEY" async>``."""
    _no_cookies()
    response = current_app.send_static_file("js/embed.js")
    # Changes only with a release: browsers and caches keep it 5 minutes (ETag and Last-Modified after).
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def revoke_viewers(before: SessionInfo, after: SessionInfo) -> None:
    """Let a widget's viewers go when its key changed or it was turned off: they stop at once."""
    if before.widget_key == after.widget_key and (after.widget_enabled or not before.widget_enabled):
        return
    room = widget_service.room_of_widget(before)
    socketio.emit(REVOKED, {"code": "widget_revoked"}, to=room, namespace=NAMESPACE)
    socketio.close_room(room, namespace=NAMESPACE)
