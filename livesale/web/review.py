"""Pages for officials reviewing sessions: the list, a session's report, a comparison, and CSV exports.

Thin: filters are read from the query string, the core computes (from the
persisted results and the live totals), templates render and the vendored
ECharts draws (``static/js/charts.js``).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask import session as cookie_session  # the Flask cookie session (not a sale session)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, TextAreaField
from wtforms.validators import Length, NumberRange, Optional

from livesale.core import audience as audience_service
from livesale.core import compare as compare_service
from livesale.core import orders as order_service
from livesale.core import review as review_service
from livesale.core import sessions as session_service
from livesale.core import widget as widget_service
from livesale.core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from livesale.core.sessions import SessionInfo, peak_minute_products, session_figures
from livesale.core.validation import SESSION_STATUSES, InvalidFields
from livesale.extensions import backend

from .i18n import lang, local_time
from .login import current_actor
from .pages import session_for
from .widget import revoke_viewers

bp = Blueprint("review", __name__)

PAGE_SIZE = 25
ORDERS_PAGE = 100
REVIEW_TZ = ZoneInfo("Asia/Shanghai")


def _text_arg(name: str, limit: int = 100) -> str:
    return (request.args.get(name) or "").strip()[:limit]


def _day_arg(name: str, *, end: bool = False) -> tuple[datetime | None, str]:
    """A ``YYYY-MM-DD`` filter as a UTC bound (a day in China time); bad input is ignored."""
    raw = _text_arg(name, 10)
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        return None, ""
    start = datetime.combine(day, time(0), tzinfo=REVIEW_TZ)
    return (start + timedelta(days=1) if end else start), raw


def _figure_labels() -> dict[str, str]:
    return {
        "amount_fen": _("Total sales"), "orders": _("Orders"), "items": _("Items"),
        "avg_order_fen": _("Average order"), "duration_s": _("Duration"),
        "sales_per_hour_fen": _("Sales per hour"), "goal_pct": _("Goal attained"),
        "peak_minute": _("Peak minute"), "peak_minute_fen": _("Sales in the peak minute"),
    }


@bp.get("/sessions")
@login_required
def sessions() -> ResponseReturnValue:
    """All sessions the person may read, filtered and sorted, with their key figures."""
    actor = current_actor()
    assert actor is not None
    start_from, from_raw = _day_arg("from")
    start_to, to_raw = _day_arg("to", end=True)
    status = _text_arg("status", 16)
    filters = review_service.ReviewFilters(
        village=_text_arg("village"), host=_text_arg("host"), product=_text_arg("product"),
        platform=_text_arg("platform", 50), status=status if status in SESSION_STATUSES else "",
        start_from=start_from, start_to=start_to,
    )
    sort = request.args.get("sort", "date")
    if sort not in review_service.SORTS:
        sort = "date"
    descending = request.args.get("dir", "desc") != "asc"
    try:
        page = max(1, min(10_000, int(request.args.get("page", "1"))))
    except ValueError:
        page = 1
    rows, total = review_service.review_list(
        backend.store, actor=actor, filters=filters, sort=sort, descending=descending,
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
    )
    args = {k: v for k, v in request.args.items() if k not in ("page",) and v}
    return render_template(
        "review/list.html", rows=rows, total=total, page=page, pages=max(1, -(-total // PAGE_SIZE)),
        filters=filters, from_raw=from_raw, to_raw=to_raw, sort=sort, descending=descending, args=args,
        statuses=SESSION_STATUSES,
    )


@bp.get("/sessions/<int:session_id>")
@login_required
def report(session_id: int) -> ResponseReturnValue:
    """One session's report: figures, charts, products, regions and its orders (final, or as of now)."""
    info = session_for(session_id)
    sf = session_figures(backend.store, info=info)
    figures = compare_service.key_figures(sf)
    if info.status == "scheduled":
        # Nothing has happened yet: "—", not "¥0.00" and "0.0%" as if the session had sold nothing.
        figures = dict.fromkeys(figures)
    after = request.args.get("after") or None
    try:
        orders, next_cursor = order_service.list_orders(
            backend.store, session_id=info.id, after=after, limit=ORDERS_PAGE
        )
    except InvalidInput:
        after = None
        orders, next_cursor = order_service.list_orders(backend.store, session_id=info.id, limit=ORDERS_PAGE)
    # Which orders this page lists, out of how many: "orders 101–200 of 2,325".
    first = order_service.count_orders(backend.store, session_id=info.id, through=after) + 1 if after else 1
    orders_span = {"first": first, "last": first + len(orders) - 1,
                   "total": order_service.count_orders(backend.store, session_id=info.id)}
    for order in orders:
        created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
        order["local_time"] = local_time(created, info.timezone)
    names = {p.sku: p.name for p in info.products}
    products = sorted(
        ({"label": names.get(sku, sku), "sku": sku, "quantity": q, "amount_fen": a}
         for sku, (q, a) in sf.figures.by_product.items()),
        key=lambda e: -e["amount_fen"],
    )
    regions = sorted(
        ({"label": region or _("(not given)"), "orders": n, "amount_fen": a}
         for region, (n, a) in sf.figures.by_region.items()),
        key=lambda e: -e["amount_fen"],
    )
    peak = peak_minute_products(backend.store, sf=sf)
    peak_sold = None if peak is None else sorted(
        ({"label": names.get(sku, sku), "quantity": q, "amount_fen": a} for sku, (q, a) in peak.items()),
        key=lambda e: -e["amount_fen"],
    )
    return render_template(
        "review/report.html", info=info, figures=figures, labels=_figure_labels(), peak_sold=peak_sold,
        widget=_widget_panel(info), can_manage=_can_manage(info),
        timeline=sf.figures.timeline(), cumulative=compare_service.cumulative(sf),
        products=products, regions=regions, orders=orders, next_cursor=next_cursor, names=names,
        orders_span=orders_span, channels=session_service.channel_view(sf.figures.by_channel),
    )


class WidgetForm(FlaskForm):
    enabled = BooleanField(_l("Widget on"))
    origins = TextAreaField(_l("Sites allowed to embed it (one origin per line, e.g. https://news.example.cn; empty: any)"),
                            validators=[Optional(), Length(max=1000)])
    milestone_yuan = IntegerField(_l("Celebrate every (yuan; 0: only the goal)"),
                                  validators=[Optional(), NumberRange(min=0, max=10_000_000_000)])


def _can_manage(info: SessionInfo) -> bool:
    actor = current_actor()
    return actor is not None and actor.can_manage(info.owner_id)


def _widget_panel(info: SessionInfo) -> dict[str, Any] | None:
    """The owner's widget settings and ready-made embed code, for the report page."""
    actor = current_actor()
    if actor is None or not actor.can_manage(info.owner_id):
        return None
    form = WidgetForm(data={"enabled": info.widget_enabled, "origins": "\n".join(info.widget_origins.split()),
                            "milestone_yuan": info.widget_milestone_fen // 100})
    base = request.host_url.rstrip("/")
    language = lang()  # the code a host copies gives a widget in the language they read the page in
    return {
        "form": form,
        "embed": f'<script src="{base}/embed.js" data-widget="{info.widget_key}" data-theme="light" '
                 f'data-lang="{language}" async></script>',
        "overlay": f"{base}/widget/{info.widget_key}?theme=transparent&show=total,goal,orders&lang={language}",
        "preview": url_for("widget.widget_page", key=info.widget_key),
    }


def _owner_post(session_id: int, form: FlaskForm | None = None) -> tuple[SessionInfo, Any]:
    """A form posted by the session's host (or an admin), with a valid CSRF token: the session and actor."""
    info = session_for(session_id, manage=True)
    if not (form or FlaskForm()).validate_on_submit():
        abort(400)
    actor = current_actor()
    assert actor is not None
    return info, actor


def _back_to_report(info: SessionInfo, anchor: str = "") -> ResponseReturnValue:
    return redirect(url_for("review.report", session_id=info.id) + anchor)


@bp.post("/sessions/<int:session_id>/widget")
@login_required
def widget_settings(session_id: int) -> ResponseReturnValue:
    """The owner turns the widget on or off and sets its origins and milestone."""
    form = WidgetForm()
    info, actor = _owner_post(session_id, form)
    data = {
        "enabled": bool(form.enabled.data),
        "origins": (form.origins.data or "").split(),
        "milestone_fen": (form.milestone_yuan.data or 0) * 100,
    }
    try:
        before, after = widget_service.update_widget(backend.store, actor=actor, session_id=info.id, data=data)
    except InvalidInput as exc:
        flash(f"{exc.field}: {exc.message}", "error")
        return _back_to_report(info, "#widget")
    revoke_viewers(before, after)
    flash(_("Widget settings saved"), "ok")
    return _back_to_report(info, "#widget")


@bp.post("/sessions/<int:session_id>/widget/rotate")
@login_required
def widget_rotate(session_id: int) -> ResponseReturnValue:
    """A new widget key: embeds with the old one stop at once."""
    info, actor = _owner_post(session_id)
    before, after = widget_service.rotate_key(backend.store, actor=actor, session_id=info.id)
    revoke_viewers(before, after)
    flash(_("The widget has a new key: update the embed code on your pages"), "ok")
    return _back_to_report(info, "#widget")


@bp.post("/sessions/<int:session_id>/<any(start, end):step>")
@login_required
def lifecycle(session_id: int, step: str) -> ResponseReturnValue:
    """The host opens the session for orders, or closes it (its results are computed and kept)."""
    info, actor = _owner_post(session_id)
    change = session_service.start_session if step == "start" else session_service.end_session
    try:
        change(backend.store, actor=actor, session_id=info.id)
    except DomainError as exc:
        flash(exc.message, "error")
    return _back_to_report(info)


# --- audience figures (issue 15 item 3): the report's section and its form --------------------------

#: Where a refused audience form keeps its boxes and their errors across the 303 back to the report.
_AUDIENCE_FORM = "audience_form"


@bp.app_template_global("audience_labels")
def _audience_labels() -> dict[str, str]:
    return {
        "viewers": _("Viewers"), "peak_viewers": _("Peak viewers"), "new_followers": _("New followers"),
        "likes": _("Likes"), "comments": _("Comments"), "orders_per_viewer": _("Orders per viewer"),
        "sales_per_viewer_fen": _("Sales per viewer"), "gpm_fen": _("GPM (sales per 1,000 viewers)"),
        "average_order_fen": _("Average order"),
    }


def _audience_message(message: str) -> str:
    """The core's (English) refusal of a box, in the page's language."""
    if message.startswith("must not be negative"):
        return _("Cannot be negative")
    if message.startswith("must be at most"):
        return _("At most %(n)s", n=f"{audience_service.MAX_AUDIENCE:,}")
    return _("Enter a whole number")


@bp.app_template_global()
def audience_panel(info: SessionInfo, figures: dict[str, Any]) -> dict[str, Any] | None:
    """The report's audience section (``review/_audience.html``): the audience and conversion figures on the
    report's own sales (``figures``, its key figures), and the form for the session's host or an admin.
    Nothing before the session has started: it has had no audience yet."""
    if info.status == "scheduled":
        return None
    actor = current_actor()
    with backend.store.db.connect() as conn:
        audience = audience_service.load_audience(conn, session_id=info.id)
    amount_fen, orders = figures["amount_fen"] or 0, figures["orders"] or 0
    can_edit = actor is not None and actor.can_manage(info.owner_id)
    values = {name: "" if value is None else str(value) for name, value in audience.items()}
    errors: dict[str, str] = {}
    kept = cookie_session.get(_AUDIENCE_FORM)
    if can_edit and isinstance(kept, dict) and kept.get("session") == info.id:
        cookie_session.pop(_AUDIENCE_FORM)
        values.update(kept.get("values", {}))
        errors = {field: _audience_message(message) for field, message in kept.get("errors", {}).items()}
    return {
        "audience": audience, "orders": orders, "can_edit": can_edit, "typed": values, "errors": errors,
        "figures": audience_service.audience_figures(amount_fen=amount_fen, orders=orders, audience=audience),
        "labels": _audience_labels(), "fields": audience_service.AUDIENCE_FIELDS,
    }


@bp.post("/sessions/<int:session_id>/audience")
@login_required
def audience_form(session_id: int) -> ResponseReturnValue:
    """The host (or an admin) types in the platform's audience figures: the same parse and service as
    ``PATCH /api/v1/sessions/<id>/audience``; an empty box clears its figure; a refused box is shown
    next to itself (nothing is stored then)."""
    info, actor = _owner_post(session_id)
    raw = {name: request.form[name][:100] for name in audience_service.AUDIENCE_FIELDS if name in request.form}
    body = audience_service.from_form(raw)
    try:
        audience_service.parse_audience(body, all_errors=True)  # every wrong box at once, for the form
        audience_service.set_audience(backend.store, actor=actor, session_id=info.id, body=body)
    except InvalidInput as exc:
        refused = exc.errors if isinstance(exc, InvalidFields) else [exc]
        cookie_session[_AUDIENCE_FORM] = {"session": info.id, "values": raw,
                                          "errors": {e.field: e.message for e in refused if e.field}}
    except Conflict:
        flash(_("Audience figures can be given once the session has started."), "error")
    else:
        flash(_("Audience figures saved"), "ok")
    return redirect(url_for("review.report", session_id=info.id) + "#audience", code=303)


@bp.get("/sessions/<int:session_id>/orders.csv")
@login_required
def orders_csv(session_id: int) -> ResponseReturnValue:
    """All of a session's orders as CSV (UTF-8 with a BOM, for Excel on Chinese Windows)."""
    info = session_for(session_id)
    headers = {
        "created_at": _("Time"), "id": _("Order id"), "sku": _("SKU"), "product": _("Product"),
        "quantity": _("Quantity"), "unit_price_yuan": _("Unit price (yuan)"), "amount_yuan": _("Amount (yuan)"),
        "buyer_region": _("Buyer region"), "channel": _("Channel"), "external_id": _("External id"),
        "status": _("Status"), "refunded_at": _("Refunded at"),
    }
    body = review_service.orders_csv(backend.store, info=info, headers=headers)
    return _csv(stream_with_context(body), f"livesale-session-{info.id}-orders.csv")


def _csv(body: Any, filename: str) -> Response:
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _comparison() -> tuple[list[int], dict[str, Any]]:
    actor = current_actor()
    assert actor is not None
    try:
        ids = compare_service.parse_ids(request.args.get("ids"))
        return ids, compare_service.compare_sessions(backend.store, actor=actor, session_ids=ids)
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except DomainError:
        abort(400)


@bp.get("/compare")
@login_required
def compare() -> ResponseReturnValue:
    """2 to 6 sessions side by side (``?ids=3,5,9``); the first is the reference."""
    if not request.args.get("ids"):
        return render_template("review/compare.html", comparison=None, labels=_figure_labels(), ids="")
    try:
        compare_service.parse_ids(request.args.get("ids"))
    except DomainError:  # the page again, saying what to type: not a dead-end error page
        return render_template("review/compare.html", comparison=None, labels=_figure_labels(),
                               ids=request.args.get("ids", "")[:100], wrong_ids=True), 400
    ids, comparison = _comparison()
    titles = {row["session"]["id"]: row["session"]["title"] for row in comparison["sessions"]}
    names = [f"{row['session']['title']} (#{row['session']['id']})" for row in comparison["sessions"]]

    def grouped(entries: list[dict[str, Any]], label: str) -> dict[str, Any]:
        top = entries[:10]
        return {
            "categories": [e[label] or _("(not given)") for e in top],
            "series": [
                {"name": name, "values": [(e["sessions"][i] or {}).get("amount_fen", 0) for e in top]}
                for i, name in enumerate(names)
            ],
        }

    return render_template(
        "review/compare.html", comparison=comparison, labels=_figure_labels(), titles=titles,
        curves=[{"name": name, "values": c["amount_fen"]} for name, c in zip(names, comparison["cumulative"],
                                                                              strict=True)],
        product_chart=grouped(comparison["products"], "name"), region_chart=grouped(comparison["regions"], "region"),
        ids=",".join(map(str, ids)), csv_url=url_for("review.compare_csv", ids=",".join(map(str, ids))),
    )


@bp.get("/compare.csv")
@login_required
def compare_csv() -> ResponseReturnValue:
    ids, comparison = _comparison()
    labels = {**_figure_labels(), **_audience_labels(),
              "figure": _("Figure"), "difference": _("difference"), "percent": _("%"),
              "final": _("Figures"), "final_live": _("Live count"), "final_platform": _("Platform figures")}
    body = review_service.comparison_csv(comparison, labels=labels)
    return _csv(body, f"livesale-compare-{'-'.join(map(str, ids))}.csv")
