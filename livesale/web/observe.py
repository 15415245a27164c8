"""Operations: a request id on every request and log line, an access log, ``/metrics``.

The request id comes from the proxy (nginx's ``$request_id`` in
``X-Request-ID``) when it is a plausible id, otherwise it is made here; it
is sent back in ``X-Request-ID`` and in the body of 5xx errors, so a user's
report can be matched with the log lines of that request.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from functools import lru_cache
from typing import Any

from flask import Flask, Response, current_app, g, request

from livesale import logs, metrics
from livesale.web.errors import error_response

access_log = logging.getLogger("livesale.access")

_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Polled by load balancers and Prometheus: logged at DEBUG only.
_QUIET = {"/healthz", "/livez", "/metrics"}
INGEST_ENDPOINT = "api.record_orders"


_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_ORDER_OUTCOMES = {201: "new", 200: "repeat"}


# The metrics' children, looked up once per label set: ``labels()`` takes a lock and builds a key on
# every call. Endpoints are the app's own names (bounded), status classes 1 to 5.
@lru_cache(maxsize=1024)
def _http_requests(endpoint: str, status_class: int) -> Any:
    return metrics.HTTP_REQUESTS.labels(endpoint=endpoint, status=f"{status_class}xx")


@lru_cache(maxsize=16)
def _ingest_seconds(kind: str) -> Any:
    return metrics.INGEST_SECONDS.labels(kind=kind)


@lru_cache(maxsize=16)
def _ingest_requests(kind: str, outcome: str) -> Any:
    return metrics.ORDER_REQUESTS.labels(kind=kind, outcome=outcome)


def init_app(app: Flask) -> None:
    logs.configure(level=app.config["LOG_LEVEL"], fmt=app.config["LOG_FORMAT"])

    @app.before_request
    def _start() -> Response | None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not ten
        given = req.headers.get("X-Request-ID", "")
        rid = given if given and _VALID_ID.fullmatch(given) else os.urandom(8).hex()
        g.request_id = rid
        g.started = time.perf_counter()
        g.token = logs.request_id.set(rid)
        # No database stores a NUL character in text (PostgreSQL refuses it outright): refuse it
        # up front instead of failing deep in a query. No resource has such a name (404); in a
        # query or form field it is a wrong field (422 naming it, like every other wrong field).
        if req.view_args and any("\x00" in str(value) for value in req.view_args.values()):
            return error_response(404, "no such resource")
        fields = [*req.args.items(multi=True)] if req.query_string else []
        if req.environ.get("CONTENT_TYPE") and req.mimetype in _FORM_TYPES:
            fields += req.form.items(multi=True)
        for name, value in fields:
            name = name or ""  # a multipart part whose name werkzeug cannot read comes as None
            if "\x00" in name + value:
                # Named visibly even when the name is empty or is the NUL itself.
                field = name.replace("\x00", "\\u0000") or "(unnamed)"
                return error_response(422, "text must not contain a NUL character", field=field)
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = g.get("request_id")
        if rid is None:  # a request that failed before _start (nothing to add)
            return response
        response.headers["X-Request-ID"] = rid
        elapsed = time.perf_counter() - g.started
        req = request._get_current_object()  # type: ignore[attr-defined]
        endpoint = req.endpoint or "unmatched"
        status = response.status_code
        _http_requests(endpoint, status // 100).inc()
        if endpoint == INGEST_ENDPOINT:
            kind = g.get("order_kind", "single")
            outcome = _ORDER_OUTCOMES.get(status, "refused")
            _ingest_requests(kind, outcome).inc()
            _ingest_seconds(kind).observe(elapsed)
        unavailable = g.get("unavailable")  # set by the error handlers: which backend refused
        if unavailable == "redis":
            metrics.REDIS_UNAVAILABLE.inc()
        elif unavailable == "database":
            metrics.DATABASE_UNAVAILABLE.inc()
        path = req.path
        level = logging.DEBUG if path in _QUIET else logging.INFO
        if current_app.config["ACCESS_LOG"] and access_log.isEnabledFor(level):
            actor = g.get("actor")
            access_log.log(
                level, "%s %s %s", req.method, path, status,
                extra={
                    "method": req.method, "path": path, "status": status,
                    "ms": round(elapsed * 1000, 2), "remote": req.remote_addr,
                    "forwarded_for": req.headers.get("X-Forwarded-For"),
                    "user": getattr(actor, "name", None),
                },
            )
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        token = g.pop("token", None)
        if token is not None:
            logs.request_id.reset(token)

    @app.get("/metrics")
    def metrics_view() -> Response:
        """Prometheus metrics of this process (all its workers). Keep it off the public
        address (nginx denies it); ``LIVESALE_METRICS_TOKEN`` also requires a bearer token."""
        expected = current_app.config["METRICS_TOKEN"]
        if expected:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return error_response(401, "a metrics token is required")
        body, content_type = metrics.render()
        return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
