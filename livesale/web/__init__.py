"""The web layer: blueprints, JSON errors, health check, security headers."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from flask.json.provider import JSONProvider

from livesale import json_codec
from livesale.extensions import backend

from . import (
    admin,
    api,
    errors,
    home,
    hooks,
    i18n,
    imports,
    limits,
    login,
    manage,
    names,
    observe,
    pages,
    poster,
    reconcile,
    review,
    robots,
    static,
    widget,
)


class OrjsonProvider(JSONProvider):
    """orjson for responses (fast, UTF-8 as is), or the same bytes from the stdlib without it (json_codec)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return json_codec.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json_codec.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(
            json_codec.dumps(obj), mimetype="application/json"
        )


#: JSON is data, never a document that runs or loads anything.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}")


def page_csp() -> str:
    """Pages: scripts, styles, images and fonts from the app only (no inline code, no eval),
    Socket.IO to the same host, forms to the app, never framed."""
    host = request.host
    return _page_csp_for(host if _HOST.fullmatch(host) else "")


@lru_cache(maxsize=64)  # a site answers under a few names: the policy is joined once per name
def _page_csp_for(host: str) -> str:
    sockets = f" ws://{host} wss://{host}" if host else ""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: the 战报 poster's PNG, drawn in the page and shown for a long press (static/js/poster.js).
        "img-src 'self' data: blob:",
        "font-src 'self'",
        f"connect-src 'self'{sockets}",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def security_headers(response: Response) -> Response:
    """The headers every answer carries unless its view set its own (the widget sets its policy:
    it is framed by the session's origins; nothing else may be framed)."""
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    if "x-content-type-options" not in present:
        headers.add("X-Content-Type-Options", "nosniff")
    if "referrer-policy" not in present:
        headers.add("Referrer-Policy", "same-origin")
    if "content-security-policy" in present:
        csp = headers["Content-Security-Policy"]
    else:
        csp = JSON_CSP if response.mimetype == "application/json" else page_csp()
        headers.add("Content-Security-Policy", csp)
    if "x-frame-options" not in present and "frame-ancestors 'none'" in csp:
        headers.add("X-Frame-Options", "DENY")
    return response


def remember_sync_functions(app: Flask) -> None:
    """Flask asks, for every hook and the view of every request, whether it is a coroutine function
    (``ensure_sync``, which Flask's documentation says to override; ``inspect`` takes about a
    microsecond a call, 14 calls per request here); the answer for a function never changes."""
    plain: set[Any] = set()
    check = app.ensure_sync

    def ensure_sync(func: Any) -> Any:
        if func in plain:
            return func
        made = check(func)
        if made is func and len(plain) < 4096:  # bounded: after_this_request adds a new function each time
            plain.add(func)
        return made

    app.ensure_sync = ensure_sync  # type: ignore[method-assign]


def init_app(app: Flask) -> None:
    app.json = OrjsonProvider(app)
    remember_sync_functions(app)
    observe.init_app(app)
    static.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    names.init_app(app)
    login.init_app(app)
    # The API authenticates with bearer tokens, or with the login cookie plus
    # an X-CSRFToken header (checked in web.auth); form-style CSRF is for pages.
    login.csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(poster.bp)
    app.register_blueprint(manage.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(widget.bp)
    # Signed pushes: the signature is the credential (no cookie, no CSRF); the hooks' API is the API's kind.
    login.csrf.exempt(hooks.bp)
    login.csrf.exempt(hooks.api_bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(hooks.api_bp)
    app.register_blueprint(hooks.pages_bp)
    reconcile.init_app(app)
    imports.init_app(app)
    robots.init_app(app)
    home.init_app(app)

    @app.get("/livez")
    def livez() -> Response:
        """Liveness: the process answers (no database or Redis round trip)."""
        return jsonify(status="ok")

    @app.get("/healthz")
    def healthz() -> Response:
        """Whether the database and Redis answer; 503 if one does not."""
        store = backend.store
        status = {"db": "ok", "redis": "ok"}
        try:
            with store.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            status["db"] = "down"
        try:
            store.totals.redis.ping()
        except redis.RedisError:
            status["redis"] = "down"
        response = jsonify(status)
        response.status_code = 200 if set(status.values()) == {"ok"} else 503
        return response

    app.after_request(security_headers)

    # Last: it exempts the probes above and limits the blueprints registered before it.
    limits.init_app(app)
