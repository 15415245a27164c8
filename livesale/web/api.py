"""The HTTP API, ``/api/v1``: a thin layer of JSON in, core call, JSON out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request

from livesale import json_codec, metrics
from livesale.core import audience as audience_service
from livesale.core import compare as compare_service
from livesale.core import orders as order_service
from livesale.core import sessions as session_service
from livesale.core import validation
from livesale.core import widget as widget_service
from livesale.core.errors import InvalidInput, NotFound
from livesale.extensions import backend

from .auth import api_auth
from .openapi import MAX_ID, openapi_document
from .widget import revoke_viewers

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _session_in_range(view: Callable[..., Response]) -> Callable[..., Response]:
    """Ids are 32-bit on PostgreSQL: a larger one is no such session (404), not an overflow (500).

    Checked in the view, after ``@api_auth`` (no token is a 401 whatever the id), and
    not with ``int(max=...)``: a converter that refuses a value after the path matched
    makes werkzeug answer 405 when the path has rules for other methods.
    """

    @wraps(view)
    def wrapper(*args: Any, session_id: int, **kwargs: Any) -> Response:
        if session_id > MAX_ID:
            raise NotFound(f"no session {session_id}")
        return view(*args, session_id=session_id, **kwargs)

    return wrapper


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body() -> Any:
    """The request body as JSON; 400 naming ``body`` if it is not JSON."""
    if not request.is_json:
        raise InvalidInput("send a JSON body with Content-Type: application/json", field="body", code="bad_request")
    data = request.get_data(cache=False)
    try:
        return json_codec.loads(data)
    except json_codec.JSONDecodeError:
        pass  # orjson refuses integers beyond 64 bits and lone surrogates: let the stdlib say more
    try:
        # Valid JSON the fast parser refused parses here, so validation can
        # name the field (a 30-digit quantity is a 422 on "quantity").
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", field="body", code="bad_request") from None


def _int_arg(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise InvalidInput("must be a whole number", field=name)
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):  # int() refuses over 4300 digits; none of them is in range
        raise InvalidInput(f"must be between {minimum} and {maximum}", field=name)
    return validation.integer(int(digits), name, minimum=minimum, maximum=maximum)


def _date_arg(name: str, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (a day in China time) or an ISO date-time with offset."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) == 10:
        try:
            if not _DATE_RE.fullmatch(raw):
                raise ValueError(raw)
            day = datetime.strptime(raw, "%Y-%m-%d").date()
        except ValueError:
            raise InvalidInput("must be YYYY-MM-DD or an ISO 8601 date-time", field=name) from None
        try:
            # "to=2026-06-30" includes that whole day.
            if end:
                day += timedelta(days=1)
            # In UTC now: the database layer would convert it, and fail on 0001-01-01.
            return datetime.combine(day, time.min, DEFAULT_TZ).astimezone(UTC)
        except OverflowError:
            raise InvalidInput("is out of range", field=name) from None
    return validation.parse_datetime(raw, name)


def _created(body: dict[str, Any], created: bool = True) -> Response:
    response = jsonify(body)
    response.status_code = 201 if created else 200
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document())


@bp.post("/sessions")
@api_auth
def create_session() -> Response:
    """Create a scheduled session with its products."""
    data = validation.parse_session(json_body())
    info = session_service.create_session(backend.store, actor=g.actor, data=data)
    response = _created(session_service.session_view(info))
    response.headers["Location"] = f"/api/v1/sessions/{info.id}"
    return response


@bp.get("/sessions")
@api_auth
def list_sessions() -> Response:
    """Sessions the caller may see, newest first, filtered and paginated."""
    limit = _int_arg("limit", 50, minimum=1, maximum=200)
    offset = _int_arg("offset", 0, minimum=0, maximum=10**9)
    q = request.args.get("q") or None
    village = request.args.get("village") or None
    if q is not None:
        q = validation.text(q, "q", max_length=100)
    if village is not None:
        village = validation.text(village, "village", max_length=100)
    sessions, total = session_service.list_sessions(
        backend.store,
        actor=g.actor,
        status=request.args.get("status") or None,
        village=village,
        q=q,
        start_from=_date_arg("from"),
        start_to=_date_arg("to", end=True),
        limit=limit,
        offset=offset,
    )
    return jsonify(
        sessions=[session_service.session_view(s) for s in sessions], total=total, limit=limit, offset=offset
    )


@bp.get("/sessions/<int:session_id>")
@api_auth
@_session_in_range
def get_session(session_id: int) -> Response:
    """A session, with its audience figures and the conversion figures on the sales its report shows."""
    info = session_service.get_session(backend.store, actor=g.actor, session_id=session_id)
    return jsonify({**session_service.session_view(info),
                    **audience_service.session_audience(backend.store, info=info)})


@bp.patch("/sessions/<int:session_id>")
@api_auth
@_session_in_range
def update_session(session_id: int) -> Response:
    """Change a session: any field of a new session; ``products`` is the whole new list (by SKU)."""
    # Who and which session first (403, 404), then the body (422): as every other operation.
    session_service.get_manageable(backend.store, actor=g.actor, session_id=session_id)
    data = validation.parse_session_update(json_body())
    info = session_service.update_session(backend.store, actor=g.actor, session_id=session_id, data=data)
    return jsonify(session_service.session_view(info))


@bp.delete("/sessions/<int:session_id>")
@api_auth
@_session_in_range
def delete_session(session_id: int) -> Response:
    """Delete a scheduled session that has no orders."""
    session_service.delete_session(backend.store, actor=g.actor, session_id=session_id)
    return Response(status=204)


@bp.post("/sessions/<int:session_id>/start")
@api_auth
@_session_in_range
def start_session(session_id: int) -> Response:
    """Open the session for orders."""
    info = session_service.start_session(backend.store, actor=g.actor, session_id=session_id)
    return jsonify(session_service.session_view(info))


@bp.post("/sessions/<int:session_id>/end")
@api_auth
@_session_in_range
def end_session(session_id: int) -> Response:
    """Close the session and persist its results."""
    info = session_service.end_session(backend.store, actor=g.actor, session_id=session_id)
    return jsonify(session_service.session_view(info))


@bp.post("/sessions/<int:session_id>/orders")
@api_auth
@_session_in_range
def record_orders(session_id: int) -> Response:
    """Record one order or a batch ``{"orders": [...]}``; 201 if new, 200 for a repeat."""
    key = validation.idempotency_key(request.headers.get("Idempotency-Key"))
    orders, is_batch = validation.parse_order_request(json_body(), max_batch=current_app.config["MAX_BATCH"])
    g.order_kind = "batch" if is_batch else "single"
    recorded = order_service.record_orders(
        backend.store, actor=g.actor, session_id=session_id, orders=orders,
        idempotency_key=key, is_batch=is_batch,
    )
    metrics.ORDERS_RECORDED.inc(recorded.new)
    if is_batch:
        return _created({"orders": recorded.orders, "totals": recorded.totals}, recorded.created)
    return _created({"order": recorded.orders[0], "totals": recorded.totals}, recorded.created)


@bp.post("/sessions/<int:session_id>/orders/<order_id>/refund")
@api_auth
@_session_in_range
def refund_order(session_id: int, order_id: str) -> Response:
    """Refund an order; refunding it again changes nothing."""
    order, totals = order_service.refund_order(backend.store, actor=g.actor, session_id=session_id, order_id=order_id)
    return jsonify(order=order, totals=totals)


@bp.get("/sessions/<int:session_id>/orders")
@api_auth
@_session_in_range
def list_orders(session_id: int) -> Response:
    """Orders oldest first; pass ``next`` back as ``after`` for the next page."""
    session_service.get_session(backend.store, actor=g.actor, session_id=session_id)
    limit = _int_arg("limit", 100, minimum=1, maximum=1000)
    page, cursor = order_service.list_orders(
        backend.store, session_id=session_id, after=request.args.get("after") or None, limit=limit
    )
    return jsonify(orders=page, next=cursor)


@bp.get("/sessions/<int:session_id>/totals")
@api_auth
@_session_in_range
def totals(session_id: int) -> Response:
    """Current totals: live from Redis (rebuilt from SQL if lost), ended from the results."""
    info = session_service.get_session(backend.store, actor=g.actor, session_id=session_id)
    return jsonify(session_service.session_totals(backend.store, info=info))


@bp.get("/sessions/<int:session_id>/results")
@api_auth
@_session_in_range
def results(session_id: int) -> Response:
    """The results persisted when the session ended."""
    info = session_service.get_session(backend.store, actor=g.actor, session_id=session_id)
    view = session_service.session_results(backend.store, info=info)
    # The conversion figures on the very amount and orders these results give (the figures that stand).
    view.update(audience_service.session_audience(backend.store, info=info,
                                                  sales=(view["amount_fen"], view["orders"])))
    return jsonify(view)


@bp.patch("/sessions/<int:session_id>/audience")
@api_auth
@_session_in_range
def update_audience(session_id: int) -> Response:
    """Give, correct or clear (``null``) the session's audience figures; fields not sent stay."""
    # Who and which session first (403, 404), then the body (422): as every other operation.
    session_service.get_manageable(backend.store, actor=g.actor, session_id=session_id)
    stored = audience_service.set_audience(backend.store, actor=g.actor, session_id=session_id, body=json_body())
    info = session_service.get_session(backend.store, actor=g.actor, session_id=session_id)
    amount_fen, orders = audience_service.sales_of(backend.store, info=info)
    return jsonify(audience_service.audience_view(stored, amount_fen=amount_fen, orders=orders))



@bp.get("/compare")
@api_auth
def compare() -> Response:
    """2 to 6 sessions side by side (``?ids=3,5,9``; the first is the reference)."""
    ids = compare_service.parse_ids(request.args.get("ids"))
    return jsonify(compare_service.compare_sessions(backend.store, actor=g.actor, session_ids=ids))


@bp.patch("/sessions/<int:session_id>/widget")
@api_auth
@_session_in_range
def update_widget(session_id: int) -> Response:
    """Turn the widget on or off, set the origins allowed to embed it and its celebration milestone."""
    before, after = widget_service.update_widget(backend.store, actor=g.actor, session_id=session_id,
                                                 data=json_body())
    revoke_viewers(before, after)
    return jsonify(session_service.session_view(after))


@bp.post("/sessions/<int:session_id>/widget/rotate")
@api_auth
@_session_in_range
def rotate_widget_key(session_id: int) -> Response:
    """A new widget key; embeds with the old one stop at once."""
    before, after = widget_service.rotate_key(backend.store, actor=g.actor, session_id=session_id)
    revoke_viewers(before, after)
    return jsonify(session_service.session_view(after))
