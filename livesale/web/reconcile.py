"""Reconciliation and final figures: the API, the reconciliation page and its CSV, the report's final section.

Two blueprints, guarded differently:

* ``reconcile_api`` — ``/api/v1/sessions/<id>/reconciliation`` and ``…/final``: bearer token (or the
  login cookie with ``X-CSRFToken``), like the rest of the API.
* ``reconcile`` — the page ``/sessions/<id>/reconciliation``, its CSV, and the report's form that
  confirms, proposes or reverts the final figures (CSRF-protected).

The core computes (``core.reconcile``, ``core.final``); this module reads requests and renders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required
from flask_wtf import FlaskForm

from livesale.core import final as final_service
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from livesale.core.reconcile import reconcile
from livesale.core.sessions import SessionInfo
from livesale.core.spreadsheet import BOM, csv_line, yuan
from livesale.extensions import backend

from .api import _session_in_range, json_body
from .auth import api_auth
from .i18n import local_time
from .login import current_actor
from .names import platform_name
from .pages import session_for
from .review import _csv

api_bp = Blueprint("reconcile_api", __name__, url_prefix="/api/v1")
bp = Blueprint("reconcile", __name__)


def _decision_answer(decision: final_service.Decision) -> Response:
    response = jsonify(proposed=decision.proposed, action=decision.action, final=decision.state.view())
    # A host's proposal is taken for an official to decide: accepted, nothing changed yet.
    response.status_code = 202 if decision.proposed else 200
    return response


# --- API ----------------------------------------------------------------------------------------


@api_bp.get("/sessions/<int:session_id>/reconciliation")
@api_auth
@_session_in_range
def reconciliation(session_id: int) -> Response:
    """The live count beside the platform's record: totals, by product, by 10-minute slot, unmatched ids."""
    info = session_service.get_session(backend.store, actor=g.actor, session_id=session_id)
    return jsonify(reconcile(backend.store, info=info))


@api_bp.post("/sessions/<int:session_id>/final")
@api_auth
@_session_in_range
def set_final(session_id: int) -> Response:
    """Officials and admins confirm which figures stand (``source`` null reverts); the host proposes."""
    session_service.get_session(backend.store, actor=g.actor, session_id=session_id)  # 404 / 403 before the body
    source, reason = final_service.parse_decision(json_body())
    return _decision_answer(final_service.decide_final(backend.store, actor=g.actor, session_id=session_id, source=source,
                                         reason=reason))


@api_bp.delete("/sessions/<int:session_id>/final")
@api_auth
@_session_in_range
def revert_final(session_id: int) -> Response:
    """Revert to the default figures (the live count; the platform's record for a session without live orders)."""
    return _decision_answer(final_service.decide_final(backend.store, actor=g.actor, session_id=session_id, source=None,
                                         reason=""))


# --- the report's section -------------------------------------------------------------------------


def final_panel(info: SessionInfo) -> dict[str, Any] | None:
    """What the report's final section shows: both figures, which stands, and the form for the reader's role.

    Reads the persisted live results and sums the platform lines (never a scan of the orders)."""
    actor = current_actor()
    if actor is None or info.status == "scheduled":
        return None
    with backend.store.db.connect() as conn:
        state = final_service.final_state(conn, session_id=info.id)
        platform = final_service.platform_totals(conn, [info.id]).get(info.id, (0, 0, 0))
        lines = conn.execute(sa.select(sa.func.count()).where(t.platform_lines.c.session_id == info.id)).scalar_one()
        history = final_service.decision_history(conn, session_id=info.id)
        r = t.session_results
        row = conn.execute(sa.select(r.c.amount_fen, r.c.orders, r.c["items"]).where(r.c.session_id == info.id)).first()
    if row is not None:
        live = {"amount_fen": row[0], "orders": row[1], "items": row[2]}
    else:  # live: the running totals
        figures = session_service.session_figures(backend.store, info=info).figures
        live = {"amount_fen": figures.amount_fen, "orders": figures.orders, "items": figures.items}
    for entry in history:
        entry["at_local"] = local_time(_parse(entry["at"]), info.timezone)
    return {
        "state": state,
        "at_local": local_time(state.at, info.timezone) if state.at else None,
        "live": live,
        "platform": {"amount_fen": platform[0], "orders": platform[1], "items": platform[2]},
        "has_lines": lines > 0,
        "ended": info.status == "ended",
        "can_confirm": info.status == "ended" and actor.role in ("official", "admin"),
        "can_propose": info.status == "ended" and actor.role == "host" and actor.can_manage(info.owner_id),
        "history": history[-5:][::-1],
    }


def _parse(iso: str | None) -> datetime | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00"))


@bp.post("/sessions/<int:session_id>/final")
@login_required
def final_form(session_id: int) -> ResponseReturnValue:
    """The report's form: an official or admin confirms (or reverts), the session's host proposes."""
    info = session_for(session_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    actor = current_actor()
    assert actor is not None
    raw = request.form.get("source", "")
    source = raw if raw in final_service.SOURCES else None
    if request.form.get("action") != "revert" and source is None:
        flash(_("Choose the figures that stand: the platform's or the live count."), "error")
        return redirect(url_for("review.report", session_id=info.id) + "#final")
    try:
        reason = final_service.parse_decision({"source": source, "reason": request.form.get("reason", "")})[1]
        decision = final_service.decide_final(backend.store, actor=actor, session_id=info.id, source=source, reason=reason)
    except Forbidden:
        abort(403)
    except InvalidInput as exc:
        flash(_("Say why (a reason is kept with the decision).") if exc.field == "reason" else exc.message, "error")
    except (Conflict, NotFound) as exc:
        flash(_("The platform's record of this session is empty: import its export first.")
              if exc.code == "no_platform_lines" else exc.message, "error")
    else:
        if decision.proposed:
            flash(_("Your proposal is recorded; an official decides."), "ok")
        elif decision.action == "revert":
            flash(_("Reverted: the default figures stand again."), "ok")
        else:
            flash(_("Confirmed: these figures are final."), "ok")
    return redirect(url_for("review.report", session_id=info.id) + "#final")


# --- the page and its CSV -------------------------------------------------------------------------


def _slot_label(info: SessionInfo, slot: dict[str, Any]) -> str:
    start = _parse(slot["start"])
    return local_time(start, info.timezone) if start is not None else f"{slot['offset_min']:+d}"


@bp.get("/sessions/<int:session_id>/reconciliation")
@login_required
def reconciliation_page(session_id: int) -> ResponseReturnValue:
    """The live count beside the platform's record, in words and tables."""
    info = session_for(session_id)
    rec = reconcile(backend.store, info=info)
    for slot in rec["by_slot"]:
        slot["label"] = _slot_label(info, slot)
    channels = sorted(set(rec["live"]["by_channel"]) | set(rec["platform"]["by_platform"]))
    return render_template("review/reconcile.html", info=info, rec=rec, channels=channels,
                           final=final_panel(info))


def reconciliation_rows(info: SessionInfo, rec: dict[str, Any]) -> list[list[Any]]:
    """The reconciliation as spreadsheet rows (header first): one row per total, channel, product and slot,
    then the ids found on one side only."""
    header = [_("Part"), _("Key"), _("Name"),
              _("Live orders"), _("Live items"), _("Live amount (yuan)"),
              _("Platform orders"), _("Platform items"), _("Platform amount (yuan)"),
              _("Difference in orders"), _("Difference in items"), _("Difference in amount (yuan)")]
    zero = {"orders": 0, "items": 0, "amount_fen": 0}

    def row(part: str, key: str, name: str, live: dict[str, int] | None, platform: dict[str, int] | None) -> list[Any]:
        a, b = live or zero, platform or zero
        out: list[Any] = [part, key, name]
        for side in (a, b):
            out += [side["orders"], side["items"], yuan(side["amount_fen"])]
        out += [b["orders"] - a["orders"], b["items"] - a["items"], yuan(b["amount_fen"] - a["amount_fen"])]
        return out

    source = rec["final"]["source"]
    rows = [header, row(_("Total"), "", _("Platform figures") if source == "platform" else _("Live count"),
                        rec["live"], rec["platform"])]
    for code in sorted(set(rec["live"]["by_channel"]) | set(rec["platform"]["by_platform"])):
        rows.append(row(_("Channel / platform"), code, platform_name(code) or _("(not given)"),
                        rec["live"]["by_channel"].get(code), rec["platform"]["by_platform"].get(code)))
    for p in rec["by_product"]:
        rows.append(row(_("Product"), p["sku"], p["name"], p["live"], p["platform"]))
    for slot in rec["by_slot"]:
        rows.append(row(_("10 minutes from"), f"{slot['offset_min']:+d}", _slot_label(info, slot), slot["live"],
                        slot["platform"]))
    rows += [[_("Only in the live count"), ext] for ext in rec["only_live"]]
    rows += [[_("Only on the platform"), line] for line in rec["only_platform"]]
    return rows


@bp.get("/sessions/<int:session_id>/reconciliation.csv")
@login_required
def reconciliation_csv(session_id: int) -> ResponseReturnValue:
    """The reconciliation as CSV (UTF-8 with a BOM, formulas neutralised: names and ids are untrusted text)."""
    info = session_for(session_id)
    rows = reconciliation_rows(info, reconcile(backend.store, info=info))
    body = BOM + "".join(csv_line(r) for r in rows)
    return _csv(body, f"livesale-session-{info.id}-reconciliation.csv")


def init_app(app: Flask) -> None:
    """Register both blueprints and the report's ``final_panel`` (the report includes ``_final.html``)."""
    from .login import csrf

    csrf.exempt(api_bp)  # the API checks X-CSRFToken itself for cookie callers (web.auth)
    app.register_blueprint(api_bp)
    app.register_blueprint(bp)
    app.jinja_env.globals["final_panel"] = final_panel
