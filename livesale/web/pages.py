"""Pages for people: the host's live screen and the assistant's order console.

Views are thin: they load the session and its current figures from the core
and render them, so the first paint already shows the real numbers; the
page's JS then keeps them live (``/live`` Socket.IO) or records orders
(the JSON API, with the login cookie and ``X-CSRFToken``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf

from livesale.core import sessions as session_service
from livesale.core.errors import Forbidden, NotFound, Unavailable
from livesale.core.live import feed_payload, latest_orders, totals_payload
from livesale.core.sessions import SessionInfo
from livesale.core.validation import MAX_ID
from livesale.extensions import backend

from .login import current_actor

bp = Blueprint("pages", __name__)

#: Role names as pages show them (``_(role)`` in base.html): listed here for extraction.
ROLE_NAMES = {"admin": _l("admin"), "host": _l("host"), "official": _l("official")}

#: Minutes of the per-minute chart on the host screen.
CHART_MINUTES = 30
#: Latest orders listed on the host screen.
FEED_SHOWN = 8


def session_for(session_id: int, *, manage: bool = False) -> SessionInfo:
    """The session if the logged-in person may see it (or manage it): else 404/403 pages."""
    actor = current_actor()
    if actor is None or session_id > MAX_ID:
        abort(404)
    try:
        info = session_service.get_session(backend.store, actor=actor, session_id=session_id)
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    if manage and not actor.can_manage(info.owner_id):
        abort(403)
    return info


def session_form_for(session_id: int) -> SessionInfo:
    """The session, for its host or an admin posting one of its page's forms with a valid CSRF token.

    Checked in each view rather than only by CSRFProtect's app-wide hook (which the API's token
    requests are exempt from), so that a form route cannot lose its check by a change elsewhere."""
    info = session_for(session_id, manage=True)
    if not FlaskForm().validate_on_submit():
        abort(400)
    return info


def _snapshot(info: SessionInfo) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``totals`` payload and the latest orders (oldest first), as the live push would send them;
    an ended session's last orders come from SQL (its live feed is gone)."""
    store = backend.store
    try:
        totals = totals_payload(store, info=info)
        feed = feed_payload(info, latest_orders(store, info=info, count=FEED_SHOWN))
    except Unavailable:
        abort(503)
    return totals, feed


def _elapsed_s(info: SessionInfo) -> int:
    if info.started_at is None:
        return 0
    end = info.ended_at or datetime.now(UTC)
    return max(0, int((end - info.started_at).total_seconds()))


def _projection_fen(amount_fen: int, elapsed_s: int, planned_min: int) -> int | None:
    """The total at the planned end if sales go on at the average pace so far."""
    if elapsed_s < 60 or planned_min <= 0:
        return None
    return max(amount_fen, round(amount_fen * planned_min * 60 / elapsed_s))


def _chart(timeline: list[dict[str, int]], elapsed_s: int, *, ended: bool) -> list[dict[str, int]]:
    """The ``CHART_MINUTES`` minutes up to now (the last bar), gaps and minutes before the start as zeros.

    An ended session's chart is the last ``CHART_MINUTES`` minutes of its run,
    or its whole run when shorter (no empty minutes before its start). The
    screen's script draws by the same rule (``host.js``: ``chartMinutes``).
    """
    by_minute = {m["minute"]: m for m in timeline}
    now = max(elapsed_s // 60, max(by_minute, default=0))
    first = now - CHART_MINUTES + 1
    if ended:
        first = max(0, first)
    return [by_minute.get(m, {"minute": m, "amount_fen": 0, "orders": 0}) for m in range(first, now + 1)]


def _clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@bp.get("/live/<int:session_id>")
@login_required
def host_screen(session_id: int) -> ResponseReturnValue:
    """The big live screen: total, goal, products, pace, latest orders.

    ``?kiosk=1`` is the TV behind the host: no site menu, everything on one
    screen without scrolling (the fullscreen button switches to the same layout).
    """
    info = session_for(session_id)
    totals, feed = _snapshot(info)
    elapsed = _elapsed_s(info)
    chart = _chart(totals.get("timeline", []), elapsed, ended=info.status == "ended")
    amount = totals["amount_fen"]
    return render_template(
        "live/host.html",
        info=info,
        totals=totals,
        feed=list(reversed(feed)),
        chart=chart,
        chart_max=max([m["amount_fen"] for m in chart] + [1]),
        # The ended session's chart is its whole run when that was shorter than the chart.
        chart_whole_run=info.status == "ended" and chart[0]["minute"] == 0 and len(chart) < CHART_MINUTES,
        elapsed=_clock(elapsed),
        elapsed_s=elapsed,
        now_ms=int(time.time() * 1000),
        projection_fen=_projection_fen(amount, elapsed, info.planned_duration_min)
        if info.status == "live" else None,
        # Not capped at 100 %: the moment hosts celebrate is shown (percent filter: "111.8%").
        goal_reached=bool(info.goal_fen) and amount >= info.goal_fen,
        kiosk=request.args.get("kiosk") == "1",
    )


@bp.get("/console/<int:session_id>")
@login_required
def console(session_id: int) -> ResponseReturnValue:
    """The order console for the host or an assistant at the host's side."""
    info = session_for(session_id, manage=True)
    totals, _ = _snapshot(info)
    return render_template("console/console.html", info=info, totals=totals)


#: What the console needs to open offline (kept by its service worker).
CONSOLE_ASSETS = ("css/app.css", "js/money.js", "js/common.js", "js/console.js")


@bp.get("/console/sw.js")
def console_service_worker() -> ResponseReturnValue:
    """The console's service worker: the page opens again without a network."""
    body = render_template("console/sw.js", assets=[url_for("static", filename=f) for f in CONSOLE_ASSETS])
    return body, 200, {
        "Content-Type": "text/javascript; charset=utf-8",
        # Browsers check for a new worker on navigation; never serve a stale one.
        "Cache-Control": "no-cache",
    }


@bp.get("/console/<int:session_id>/csrf")
@login_required
def console_csrf(session_id: int) -> ResponseReturnValue:
    """A fresh CSRF token: a console open for hours outlives the page's token."""
    session_for(session_id, manage=True)
    response = jsonify(csrf_token=generate_csrf())
    response.headers["Cache-Control"] = "no-store"
    return response
