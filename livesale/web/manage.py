"""Pages for hosts (and admins) to manage sessions: create, edit, duplicate and delete.

The form is a plain HTML form whose fields are named like the API's
(``products-0-price_yuan``: WTForms FieldList style). A view maps what was
typed to the API's JSON shape and hands it to the same core service the API
uses (``parse_session`` / ``parse_session_update``, then ``create_session`` /
``update_session``); errors come back with the API's field paths
(``products[1].unit_price_fen``), are mapped back to the form's names and
shown next to their fields in the page's language. Nothing is saved unless
every field is right. CSRF is checked for every POST by Flask-WTF's
``CSRFProtect`` (``web.login``).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from livesale.core import sessions as session_service
from livesale.core import validation
from livesale.core.errors import Conflict, DomainError, InvalidInput
from livesale.core.sessions import EditRefused, SessionInfo
from livesale.extensions import backend

from .login import current_actor
from .names import PLATFORMS
from .pages import session_for

bp = Blueprint("manage", __name__)

PRODUCT_FIELDS = ("sku", "name", "unit", "price_yuan", "stock")
_PRODUCT_KEY = re.compile(r"products-([0-9]{1,3})-(sku|name|unit|price_yuan|stock)\Z")
#: Time zones the form offers (a session's other zone is offered too); labels are for people.
TIMEZONES = {"Asia/Shanghai": _l("China (Beijing time)"), "Asia/Urumqi": _l("Xinjiang time (Urumqi)"),
             "UTC": _l("UTC")}
DEFAULT_TZ = "Asia/Shanghai"
OTHER_PLATFORM = "other"
_HOST_SEPARATORS = re.compile(r"[,，、;；\n]+")


@dataclasses.dataclass
class SessionForm:
    """The form as typed (strings), its errors by field name, and which product rows are fixed."""

    values: dict[str, str]
    products: list[dict[str, str]]
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    #: SKUs of a live session's products (their SKU cannot change, they cannot be removed).
    kept: frozenset[str] = frozenset()
    #: SKUs that have sold (their price stays).
    sold: frozenset[str] = frozenset()
    live: bool = False


def _yuan_text(fen: int) -> str:
    """Fen as typed in the form: ``6980`` → ``69.80`` (a value to edit, not a display format)."""
    return f"{fen // 100}.{fen % 100:02d}"


def _platform_values(platform: str) -> dict[str, str]:
    if not platform or platform in PLATFORMS:
        return {"platform": platform, "platform_other": ""}
    return {"platform": OTHER_PLATFORM, "platform_other": platform}


def form_of_session(info: SessionInfo, *, duplicate: bool = False) -> SessionForm:
    """The form filled from a session; a duplicate has no planned start (a new date is for the host to pick)."""
    start = ""
    if info.scheduled_start is not None and not duplicate:
        start = info.scheduled_start.astimezone(ZoneInfo(info.timezone)).strftime("%Y-%m-%dT%H:%M")
    values = {
        "title": info.title, "village": info.village, "hosts": "、".join(info.hosts),
        **_platform_values(info.platform), "scheduled_start": start, "timezone": info.timezone,
        "planned_duration_min": str(info.planned_duration_min),
        "goal_yuan": _yuan_text(info.goal_fen) if info.goal_fen else "",
    }
    products = [{"sku": p.sku, "name": p.name, "unit": p.unit, "price_yuan": _yuan_text(p.unit_price_fen),
                 "stock": "" if p.stock is None else str(p.stock)} for p in info.products]
    return SessionForm(values=values, products=products)


def empty_form(host_name: str) -> SessionForm:
    values = {"title": "", "village": "", "hosts": host_name, "platform": "", "platform_other": "",
              "scheduled_start": "", "timezone": DEFAULT_TZ, "planned_duration_min": "120", "goal_yuan": ""}
    return SessionForm(values=values, products=[dict.fromkeys(PRODUCT_FIELDS, "")])


def read_form(form: MultiDict[str, str]) -> SessionForm:
    """The posted form as typed. Product rows are taken in the order of their index (gaps are fine:
    rows removed in the page); rows left entirely empty are dropped."""
    values = {name: form.get(name, "") for name in (
        "title", "village", "hosts", "platform", "platform_other", "scheduled_start", "timezone",
        "planned_duration_min", "goal_yuan")}
    rows: dict[int, dict[str, str]] = {}
    for key in form:
        match = _PRODUCT_KEY.match(key)
        if match:
            rows.setdefault(int(match.group(1)), dict.fromkeys(PRODUCT_FIELDS, ""))[match.group(2)] = form.get(key, "")
    products = [rows[i] for i in sorted(rows) if any(v.strip() for v in rows[i].values())]
    return SessionForm(values=values, products=products)


def _whole_number(typed: str) -> Any:
    """``"12"`` → 12 (full-width digits too); anything else as typed, for the core to name the error."""
    plain = unicodedata.normalize("NFKC", typed).strip()
    return int(plain) if re.fullmatch(r"-?[0-9]{1,12}", plain) else plain


def _start_instant(typed: str, zone: str) -> str:
    """``2026-06-01T20:00`` in ``zone`` as an ISO date-time with its offset (the API's form)."""
    plain = unicodedata.normalize("NFKC", typed).strip()
    try:
        local = datetime.strptime(plain[:16], "%Y-%m-%dT%H:%M") if len(plain) in (16, 19) else None
    except ValueError:
        local = None
    if local is None or local.year < 2:
        raise InvalidInput("must be a date and time like 2026-06-01T20:00", field="scheduled_start")
    try:
        tz = ZoneInfo(zone if zone in validation._timezones() else DEFAULT_TZ)
    except (ValueError, KeyError):  # pragma: no cover - the zone list comes from zoneinfo
        tz = ZoneInfo(DEFAULT_TZ)
    return local.replace(tzinfo=tz).isoformat()


def api_body(form: SessionForm) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's JSON body for the form, and the errors found while converting (by the form's names).

    A field that could not be converted gets a harmless stand-in so the core still checks the rest.
    """
    v = form.values
    errors: dict[str, str] = {}
    platform = v["platform"].strip()
    body: dict[str, Any] = {
        "title": v["title"], "village": v["village"],
        "hosts": [h for h in (part.strip() for part in _HOST_SEPARATORS.split(v["hosts"])) if h],
        "platform": v["platform_other"] if platform == OTHER_PLATFORM else platform,
    }
    if not form.live:  # a live session's start and zone are shown, not sent
        body["timezone"] = v["timezone"] or DEFAULT_TZ
        body["scheduled_start"] = None
        if v["scheduled_start"].strip():
            try:
                body["scheduled_start"] = _start_instant(v["scheduled_start"], body["timezone"])
            except InvalidInput as exc:
                errors["scheduled_start"] = form_message(exc)
    if v["planned_duration_min"].strip():
        body["planned_duration_min"] = _whole_number(v["planned_duration_min"])
    body["goal_fen"] = 0
    if v["goal_yuan"].strip():
        try:
            body["goal_fen"] = validation.parse_yuan(v["goal_yuan"], "goal_yuan")
        except InvalidInput as exc:
            errors["goal_yuan"] = form_message(exc)
    products = []
    for i, row in enumerate(form.products):
        product: dict[str, Any] = {"sku": row["sku"].strip(), "name": row["name"], "unit": row["unit"],
                                   "unit_price_fen": 0}
        try:
            product["unit_price_fen"] = validation.parse_yuan(row["price_yuan"], f"products-{i}-price_yuan",
                                                              maximum=validation.MAX_UNIT_PRICE_FEN)
        except InvalidInput as exc:
            errors[f"products-{i}-price_yuan"] = form_message(exc)
        if row["stock"].strip():
            product["stock"] = _whole_number(row["stock"])
        products.append(product)
    body["products"] = products
    return body, errors


_PATH = re.compile(r"(?P<list>products|hosts)\[(?P<i>[0-9]+)\](?:\.(?P<field>\w+))?\Z")


def form_field(path: str | None, form: SessionForm) -> str:
    """The form's name for an API field path: ``products[1].unit_price_fen`` → ``products-1-price_yuan``."""
    if not path:
        return "form"
    match = _PATH.match(path)
    if match and match.group("list") == "hosts":
        return "hosts"
    if match:
        field = match.group("field") or "sku"
        return f"products-{match.group('i')}-{'price_yuan' if field == 'unit_price_fen' else field}"
    if path == "goal_fen":
        return "goal_yuan"
    if path == "platform" and form.values.get("platform") == OTHER_PLATFORM:
        return "platform_other"
    return path


# The core's messages are English (the API's); a form shows them in the page's language.
_MESSAGES: list[tuple[re.Pattern[str], Callable[..., str]]] = [(re.compile(p), f) for p, f in [
    (r"must not be empty|is required", lambda: _("Required")),
    (r"must be at most (?P<n>[0-9]+) characters", lambda n: _("At most %(n)s characters", n=n)),
    (r"must be between (?P<low>[0-9]+) and (?P<high>[0-9]+)",
     lambda low, high: _("Enter a whole number from %(low)s to %(high)s", low=low, high=high)),
    (r"must be an integer", lambda: _("Enter a whole number")),
    (r"must be 1-64 letters", lambda: _("1 to 64 letters, digits, “.”, “_” or “-”, starting with a letter or digit")),
    (r"appears twice", lambda: _("Another product has this SKU")),
    (r"must not contain control characters", lambda: _("Contains characters that cannot be saved")),
    (r"must be an amount in yuan", lambda: _("Enter an amount in yuan, such as 69.80")),
    (r"must have at most 2 decimals", lambda: _("At most 2 decimals (fen)")),
    (r"must not be negative", lambda: _("Cannot be negative")),
    (r"must be at most (?P<n>[0-9]+) yuan", lambda n: _("At most ¥%(n)s", n=f"{int(n):,}")),
    (r"time zone", lambda: _("Choose a time zone")),
    (r"date and time|date-time|UTC offset|out of range", lambda: _("Enter a date and time, such as 2026-06-01 20:00")),
    (r"non-empty array of products", lambda: _("Add at least one product")),
    (r"at most (?P<n>[0-9]+) products", lambda n: _("At most %(n)s products", n=n)),
    (r"at most (?P<n>[0-9]+) names", lambda n: _("At most %(n)s hosts", n=n)),
    (r"cannot change once the session has started", lambda: _("Cannot change once the session has started")),
    (r"keeps its products: (?P<skus>.*) cannot be removed",
     lambda skus: _("A live session keeps its products: %(skus)s cannot be removed", skus=skus)),
    (r"has sold at (?P<fen>[0-9]+) fen", lambda fen: _("Already sold at ¥%(price)s: the price stays",
                                                        price=_yuan_text(int(fen)))),
]]


def form_message(exc: DomainError) -> str:
    """The core's message for a form field, in the page's language (as is if unknown)."""
    for pattern, translate in _MESSAGES:
        match = pattern.search(exc.message)
        if match:
            return translate(**match.groupdict())
    return exc.message


def _add_errors(form: SessionForm, errors: list[DomainError]) -> None:
    for exc in errors:
        form.errors.setdefault(form_field(exc.field, form), form_message(exc))


def _core_errors(exc: DomainError) -> list[DomainError]:
    if isinstance(exc, validation.InvalidFields):
        return list(exc.errors)
    if isinstance(exc, EditRefused):
        return list(exc.problems)
    return [exc]


def _render(form: SessionForm, *, info: SessionInfo | None = None, source: SessionInfo | None = None) -> str:
    zones = dict(TIMEZONES)
    if form.values.get("timezone") and form.values["timezone"] not in zones:
        zones[form.values["timezone"]] = form.values["timezone"]
    return render_template("manage/session_form.html", form=form, info=info, source=source, zones=zones,
                           platforms=PLATFORMS, other_platform=OTHER_PLATFORM, fields=PRODUCT_FIELDS)


def _writer() -> Any:
    actor = current_actor()
    if actor is None or not actor.can_write:
        abort(403)
    return actor


@bp.route("/sessions/new", methods=["GET", "POST"])
@login_required
def new_session() -> ResponseReturnValue:
    """A new session (hosts and admins). ``?from=<id>`` starts from a copy of that session."""
    actor = _writer()
    source = None
    if request.method == "GET":
        source_id = request.args.get("from", "")
        if source_id.isdigit():
            source = session_for(int(source_id), manage=True)
        form = form_of_session(source, duplicate=True) if source else empty_form(
            actor.name if actor.role == "host" else "")
        return _render(form, source=source)
    form = read_form(request.form)
    body, errors = api_body(form)
    form.errors.update(errors)
    try:
        data = validation.parse_session(body, all_errors=True)
    except InvalidInput as exc:
        _add_errors(form, _core_errors(exc))
    if form.errors:
        return _render(form)
    info = session_service.create_session(backend.store, actor=actor, data=data)
    flash(_("Session created. Start it from here when you go on air."), "ok")
    return redirect(url_for("review.report", session_id=info.id), code=303)


def _editable(session_id: int) -> SessionInfo | ResponseReturnValue:
    info = session_for(session_id, manage=True)
    if info.status == "ended":
        flash(_("An ended session can no longer be changed. Duplicate it to plan the next one."), "error")
        return redirect(url_for("review.report", session_id=info.id), code=303)
    return info


def _with_state(form: SessionForm, info: SessionInfo) -> SessionForm:
    if info.status == "live":
        form.live = True
        form.kept = frozenset(p.sku for p in info.products)
        form.sold = frozenset(session_service.skus_with_orders(backend.store, session_id=info.id))
        # Shown as they are; not sent (see api_body).
        start = form_of_session(info).values
        form.values.update(scheduled_start=start["scheduled_start"], timezone=start["timezone"])
    return form


@bp.route("/sessions/<int:session_id>/edit", methods=["GET", "POST"])
@login_required
def edit_session(session_id: int) -> ResponseReturnValue:
    """Change a session: everything while scheduled; while live its goal, stock and new products."""
    info = _editable(session_id)
    if not isinstance(info, SessionInfo):
        return info
    if request.method == "GET":
        return _render(_with_state(form_of_session(info), info), info=info)
    form = _with_state(read_form(request.form), info)
    body, errors = api_body(form)
    form.errors.update(errors)
    try:
        data = validation.parse_session_update(body, all_errors=True)
    except InvalidInput as exc:
        _add_errors(form, _core_errors(exc))
    if not form.errors:
        actor = current_actor()
        try:
            session_service.update_session(backend.store, actor=actor, session_id=info.id, data=data)
        except EditRefused as exc:
            _add_errors(form, _core_errors(exc))
        except Conflict as exc:  # it ended meanwhile
            flash(form_message(exc), "error")
            return redirect(url_for("review.report", session_id=info.id), code=303)
    if form.errors:
        return _render(form, info=info)
    flash(_("Changes saved."), "ok")
    return redirect(url_for("review.report", session_id=info.id), code=303)


@bp.route("/sessions/<int:session_id>/delete", methods=["GET", "POST"])
@login_required
def delete_session(session_id: int) -> ResponseReturnValue:
    """Delete a scheduled session: a page that says what will happen, and a box to tick."""
    info = session_for(session_id, manage=True)
    deletable = info.status == "scheduled"
    error = None
    if request.method == "POST":
        if not deletable:
            flash(_("Only a scheduled session can be deleted: this one has been on air and its figures are kept."),
                  "error")
            return redirect(url_for("review.report", session_id=info.id), code=303)
        if request.form.get("confirm") == "yes":
            try:
                session_service.delete_session(backend.store, actor=current_actor(), session_id=info.id)
            except Conflict:
                flash(_("Only a scheduled session can be deleted: this one has been on air and its figures are "
                        "kept."), "error")
                return redirect(url_for("review.report", session_id=info.id), code=303)
            flash(_("Session “%(title)s” deleted.", title=info.title), "ok")
            return redirect(url_for("review.sessions"), code=303)
        error = _("Tick the box to confirm.")
    return render_template("manage/delete.html", info=info, deletable=deletable, error=error)
