"""Errors as JSON for the API and JSON clients (``{"error": {"code", "message", "field"}}``),
as pages in the site's style and the reader's language for people.

Whoever asks for JSON (an ``/api/`` path, ``Accept: application/json``)
gets JSON exactly as before; a browser gets ``templates/errors/error.html``
with the status, what happened, and a way back. The widget's errors are its
own (they show inside partners' pages): its blueprint answers them itself.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from livesale.core import errors as core_errors
from livesale.core.db import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)

#: What a 503 asks a client to wait before retrying (seconds): outages here last seconds, not minutes.
RETRY_AFTER_S = "2"

STATUS = {
    core_errors.InvalidInput: 422,
    core_errors.NotFound: 404,
    core_errors.Conflict: 409,
    core_errors.Unauthorized: 401,
    core_errors.Forbidden: 403,
    core_errors.Unavailable: 503,
}

#: The ``code`` of each status. 414 and 431 (and gunicorn's rarer 417 and 501) are sent by the server
#: before the app sees the request (``gunicorn_conf.LivesaleWorker.handle_error``), in the same shape.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 414: "uri_too_long",
              415: "unsupported_media_type", 417: "expectation_failed", 422: "invalid",
              429: "rate_limited", 431: "headers_too_large", 500: "internal", 501: "not_implemented",
              503: "unavailable"}


def _encodable(value: str) -> str:
    """``value`` with lone surrogates escaped: no JSON encoder takes them, and an error must not fail."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(status: int, message: str, *, code: str | None = None, field: str | None = None) -> Response:
    """A JSON error response built from the status code."""
    body: dict[str, str] = {"code": code or HTTP_CODES.get(status, "error"), "message": _encodable(message)}
    if field is not None:
        body["field"] = _encodable(field)
    response = jsonify(error=body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="livesale"'
    if status == 503:
        response.headers["Retry-After"] = RETRY_AFTER_S
    return response


def wants_json() -> bool:
    return (request.path.startswith(("/api/", "/hooks/")) or request.path == "/healthz"
            or request.accept_mimetypes.best == "application/json")


#: What an error page says: a title and what to do next (other statuses read as 400).
PAGES = {
    400: (_l("This request could not be used"),
          _l("A link or a form sent something this page cannot use. Go back and try again from the page.")),
    403: (_l("You may not open this page"),
          _l("It belongs to another host or needs another role. Ask an admin if you need it.")),
    404: (_l("Page not found"),
          _l("The address may be mistyped, or what it pointed to no longer exists.")),
    405: (_l("This address does not take that request"),
          _l("Open it from the site's own links and buttons.")),
    429: (_l("Too many requests"), _l("Please try again in %(n)s s.")),
    500: (_l("Something went wrong on our side"),
          _l("The request was not completed. Try again; if it keeps happening, tell the admin the request id below.")),
    503: (_l("The service is briefly unavailable"), _l("Please try again in a few seconds.")),
}
CSRF_PAGE = (_l("This form has expired"),
             _l("The page was open too long or the login changed. Reload the page and send the form again."))
DATABASE_PAGE = (_l("The service is briefly unavailable"),
                 _l("The database cannot be reached; your last action may not have been saved. "
                    "Check it before doing it again."))


def _back_link() -> str | None:
    """The page the reader came from, if it is one of ours (never a link off-site)."""
    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if not referrer or parts.netloc != request.host or parts.path == request.path:
        return None
    return referrer


def error_page(status: int, *, texts: tuple[str, str] | None = None, retry_after: int | None = None) -> Response:
    """The error as a page in the site's style and the reader's language, with a way back.

    5xx pages render without the login menu: the database may be what failed,
    and the menu would read the user from it.
    """
    title, advice = texts or PAGES.get(status) or PAGES[400]
    context = {
        "status": status, "title": str(title),
        "advice": str(advice) % {"n": retry_after} if retry_after is not None else str(advice),
        "back": _back_link(), "request_id": g.get("request_id", "") if status >= 500 else "", "minimal": status >= 500,
    }
    try:
        if status >= 500:
            # Straight from the environment: render_template's context processors would load the
            # logged-in user from the database, which may be what failed.
            html = current_app.jinja_env.get_template("errors/error.html").render(**context)
        else:
            html = render_template("errors/error.html", **context)
    except Exception:  # the page itself failed (a broken template, a missing backend): plain words, same status
        log.exception("the error page for %s failed", status)
        html = f"{status} {title}"
        response = Response(html, status, {"Content-Type": "text/plain; charset=utf-8"})
    else:
        response = Response(html, status, mimetype="text/html")
    if status == 503:
        response.headers["Retry-After"] = RETRY_AFTER_S
    response.headers["Cache-Control"] = "no-store"
    return response


def _widget() -> bool:
    return request.blueprint == "widget"


def init_app(app: Flask) -> None:
    @app.errorhandler(core_errors.DomainError)
    def _domain(exc: core_errors.DomainError) -> Response:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
        if exc.code == "bad_request":  # the body is not JSON at all: 400, not 422
            status = 400
        if isinstance(exc, core_errors.Unavailable):
            g.unavailable = "redis"  # counted by web.observe
        return error_response(status, exc.message, code=exc.code, field=exc.field)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # type: ignore[no-untyped-def]
        if not wants_json():
            if _widget() or (exc.code or 500) < 400:
                return exc
            response = error_page(exc.code or 500, texts=CSRF_PAGE if isinstance(exc, CSRFError) else None)
            if exc.code == 405 and exc.get_response().headers.get("Allow"):
                response.headers["Allow"] = exc.get_response().headers["Allow"]
            return response
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        response = error_response(status, message)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    def _database_unavailable(exc: Exception):  # type: ignore[no-untyped-def]
        g.unavailable = "database"  # counted by web.observe
        log.error("database unavailable on %s %s: %s", request.method, request.path,
                  str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        rid = g.get("request_id", "")
        message = (f"the database is unavailable; the request may not have completed: retry it, with the same "
                   f"Idempotency-Key for an order (request id {rid})")
        if wants_json():
            return error_response(503, message, code="unavailable")
        return error_page(503, texts=DATABASE_PAGE)

    for cls in DATABASE_UNAVAILABLE:
        app.register_error_handler(cls, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s %s", request.method, request.path)
        rid = g.get("request_id", "")
        if wants_json():
            return error_response(500, f"internal error; the request was not completed (request id {rid})")
        return error_page(500)
