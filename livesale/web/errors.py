"""Errors as JSON: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, request
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

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
              422: "invalid", 429: "rate_limited", 500: "internal", 503: "unavailable"}


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
    return request.path.startswith("/api/") or request.path == "/healthz" or request.accept_mimetypes.best == "application/json"


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
            return exc
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
        return Response(message, 503, {"Retry-After": RETRY_AFTER_S, "Content-Type": "text/plain; charset=utf-8"})

    for cls in DATABASE_UNAVAILABLE:
        app.register_error_handler(cls, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s %s", request.method, request.path)
        rid = g.get("request_id", "")
        if wants_json():
            return error_response(500, f"internal error; the request was not completed (request id {rid})")
        return "Internal Server Error", 500
