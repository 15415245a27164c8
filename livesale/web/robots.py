"""Group-chat robots told about a session (issue 15 item 4): their API and the report page's section.

Two blueprints, guarded differently, over the same ``core.robots`` service:

* ``robots_api`` — ``/api/v1/sessions/<id>/notifications…``: a bearer token (or the login cookie with
  ``X-CSRFToken``), like the rest of the API; English messages, each naming its field.
* ``robots`` — the report page's forms (CSRF-protected). A refused form shows the report again with
  the problem beside its field, in the page's language (status 422): a redirect would need the typed
  address kept somewhere until the next page, and a robot's address is a secret that never goes into
  a cookie, a flash message or a URL. The typed address and secret are not written back either.

Whether an ``http://`` or private robot address is allowed is the app's setting
(``LIVESALE_WEBHOOK_ALLOW_HTTP``, ``LIVESALE_WEBHOOK_ALLOW_PRIVATE``), read per request.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, flash, g, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from markupsafe import Markup

from livesale.core import robots as robot_service
from livesale.core.errors import DomainError, NotFound
from livesale.core.sessions import SessionInfo, get_manageable
from livesale.extensions import backend

from .api import _int_arg, _session_in_range, json_body
from .auth import api_auth
from .i18n import bdi, lang, money
from .login import current_actor
from .pages import session_form_for
from .review import report

api_bp = Blueprint("robots_api", __name__, url_prefix="/api/v1")
bp = Blueprint("robots", __name__)

#: How many deliveries the report page shows (the API gives up to ``core.robots.MAX_LOG``).
PAGE_LOG = 50
#: How much of a receiver's answer the page shows (the API gives what was kept: 500 characters).
ANSWER_SHOWN = 120

KIND_NAMES = {"wecom": _l("WeCom"), "dingtalk": _l("DingTalk"), "feishu": _l("Feishu / Lark")}
#: Each language named in itself, as the language menu names them.
LANG_NAMES = {"zh": "中文", "ug": "ئۇيغۇرچە", "en": "English"}
STATUS_NAMES = {"pending": _l("Waiting to be sent"), "retrying": _l("Will retry"), "sent": _l("Delivered"),
                "failed": _l("Failed")}


def _url_policy() -> dict[str, bool]:
    return {"allow_http": bool(current_app.config.get("WEBHOOK_ALLOW_HTTP")),
            "allow_private": bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE"))}


# --- the API --------------------------------------------------------------------------------------


@api_bp.post("/sessions/<int:session_id>/notifications")
@api_auth
@_session_in_range
def add_robot(session_id: int) -> Response:
    """Add a group-chat robot to the session, or (admins) to its village's defaults: 201, the robot as listed."""
    # Who and which session first (403, 404), then the body (422): as every other operation.
    get_manageable(backend.store, actor=g.actor, session_id=session_id)
    data = robot_service.parse_robot(json_body())
    robot = robot_service.add_robot(backend.store, actor=g.actor, session_id=session_id, data=data, **_url_policy())
    response = jsonify(robot_service.robot_view(robot))
    response.status_code = 201
    return response


@api_bp.get("/sessions/<int:session_id>/notifications")
@api_auth
@_session_in_range
def list_robots(session_id: int) -> Response:
    """The robots told about the session (its own, then its village's defaults), masked, never a secret."""
    robots = robot_service.list_robots(backend.store, actor=g.actor, session_id=session_id)
    return jsonify(robots=[robot_service.robot_view(r) for r in robots])


@api_bp.delete("/sessions/<int:session_id>/notifications/<int:robot_id>")
@api_auth
@_session_in_range
def delete_robot(session_id: int, robot_id: int) -> Response:
    """Stop telling a robot; what it was not yet sent is not sent."""
    robot_service.delete_robot(backend.store, actor=g.actor, session_id=session_id, robot_id=robot_id)
    return Response(status=204)


@api_bp.get("/sessions/<int:session_id>/notifications/deliveries")
@api_auth
@_session_in_range
def delivery_log(session_id: int) -> Response:
    """What each robot was told and how it answered, newest event first (``?limit=`` 1-500, default 100)."""
    limit = _int_arg("limit", 100, minimum=1, maximum=robot_service.MAX_LOG)
    log = robot_service.delivery_log(backend.store, actor=g.actor, session_id=session_id, limit=limit)
    return jsonify(deliveries=[robot_service.delivery_view(d) for d in log])


# --- the report page's section --------------------------------------------------------------------


def refusal_in_words(exc: DomainError, data: dict[str, Any]) -> str:
    """A refusal of the add form in the page's language (the API's messages are English)."""
    kind = data.get("kind") if data.get("kind") in KIND_NAMES else None
    example = robot_service.EXAMPLES.get(kind or "", "")
    other = robot_service.kind_of_url(data.get("url") or "")
    words = {
        "kind_missing": lambda: _("Choose the robot's app: WeCom, DingTalk or Feishu."),
        "kind_unknown": lambda: _("Choose the robot's app: WeCom, DingTalk or Feishu."),
        "url_missing": lambda: _("Paste the robot's webhook address."),
        "url_too_long": lambda: _("The address is longer than 2,000 characters."),
        "url_invalid": lambda: _("This is not a web address: paste the robot's webhook address as its app shows it."),
        "url_not_https": lambda: _("The address must start with https://"),
        "url_credentials": lambda: _("The address must not contain a user name or password."),
        "url_private": lambda: _("This address is inside a private network: robots must be reachable on the "
                                 "internet."),
        "url_unresolvable": lambda: _("The address's server cannot be found: check the address."),
        "url_shape": lambda: _("A %(kind)s robot's address looks like %(example)s",
                               kind=KIND_NAMES[kind] if kind else "", example=example),
        "url_other_kind": lambda: _("This is a %(other)s robot's address: choose %(other)s above.",
                                    other=KIND_NAMES[other] if other else ""),
        "url_signed": lambda: _("Paste the address without timestamp and sign (livesale adds them to each "
                                "message), and give the secret below."),
        "secret_not_for_wecom": lambda: _("WeCom robots have no secret: leave it empty."),
        "secret_invalid": lambda: _("The secret is letters, digits and symbols without spaces (at most 200)."),
        "scope_missing": lambda: _("Choose whom the robot is for: this session or the village."),
        "scope_unknown": lambda: _("Choose whom the robot is for: this session or the village."),
        "lang_missing": lambda: _("Choose the language of its messages."),
        "lang_unknown": lambda: _("Choose the language of its messages."),
        "no_village": lambda: _("This session has no village: add the robot to the session itself."),
        "village_admin_only": lambda: _("Only an admin sets a village's default robots: they are told about every "
                                        "host's sessions there."),
        "robot_exists": lambda: _("A robot with this address is already told about this session."),
        "too_many_robots": lambda: _("At most %(n)s robots: delete one first.", n=robot_service.MAX_ROBOTS),
    }
    say = words.get(exc.code)
    return say() if say is not None else _("This robot could not be added.")


def event_in_words(key: str) -> str | Markup:
    """``started`` → 开播; ``milestone:1000000`` → 突破 ¥10,000.00 (the amount isolated: Uyghur pages);
    an unknown key as it is."""
    if key == "started":
        return _("Session started")
    if key == "goal":
        return _("Goal reached")
    if key == "ended":
        return _("Session ended")
    name, _sep, fen = key.partition(":")
    if name == "milestone" and fen.isdigit():
        # The catalogue's words are trusted markup; the amount is isolated so it never reorders in them.
        return Markup(_("Passed %(amount)s")) % {"amount": bdi(money(int(fen)))}
    return key


def error_in_words(error: str) -> str:
    """Why a delivery was not delivered, in the page's language where livesale wrote it (core.robot_sender's
    words); the technical detail after the colon (an address, a TLS reason) stays as it was recorded."""
    if error == robot_service.DELETED_ERROR:
        return _("The robot was deleted before this was sent.")
    if error == "connection refused":
        return _("The receiver refused the connection.")
    if error == "timed out":
        return _("The receiver did not answer in time.")
    for prefix, words in (("timed out: ", _l("The receiver did not answer in time: %(detail)s")),
                          ("not sent: ", _l("Not sent: %(detail)s")),
                          ("TLS failed: ", _l("The secure connection failed: %(detail)s")),
                          ("bad HTTP answer: ", _l("The receiver's answer was not HTTP: %(detail)s"))):
        if error.startswith(prefix):
            return str(words) % {"detail": error[len(prefix):]}
    return error


def key_of(masked_url: str) -> str:
    """The masked key at the end of a robot's masked address (``…access_token=5f…6f`` → ``5f…6f``): enough to
    tell a session's robots apart in the delivery log, where the whole address would fill a phone's row."""
    return masked_url.rsplit("=", 1)[-1].rsplit("/", 1)[-1] or masked_url


def robots_panel(info: SessionInfo) -> dict[str, Any] | None:
    """The report's robots section (``templates/review/_robots.html``): the list and the delivery log for
    whoever reads the session; the add form and delete buttons for its host and admins (village defaults:
    admins). ``g.robot_form`` holds a refused form's problem, set by ``page_add``."""
    actor = current_actor()
    if actor is None or not actor.can_read(info.owner_id):
        return None
    can_manage = actor.can_manage(info.owner_id)
    form = g.get("robot_form") or {}
    return {
        "robots": robot_service.list_robots(backend.store, actor=actor, session_id=info.id),
        "deliveries": robot_service.delivery_log(backend.store, actor=actor, session_id=info.id, limit=PAGE_LOG),
        "can_manage": can_manage,
        "can_village": can_manage and actor.role == "admin" and bool(info.village),
        "is_admin": actor.role == "admin",
        "kinds": KIND_NAMES, "langs": LANG_NAMES, "statuses": STATUS_NAMES, "examples": robot_service.EXAMPLES,
        "form": {"kind": form.get("kind", ""), "lang": form.get("lang") or lang(), "scope": form.get("scope", "session"),
                 "error": form.get("error"), "field": form.get("field")},
        "answer_shown": ANSWER_SHOWN,
        "event_in_words": event_in_words,
        "error_in_words": error_in_words,
        "key_of": key_of,
    }


def _back(info: SessionInfo) -> ResponseReturnValue:
    return redirect(url_for("review.report", session_id=info.id) + "#robots")


@bp.post("/sessions/<int:session_id>/notifications")
@login_required
def page_add(session_id: int) -> ResponseReturnValue:
    """Add a robot from the report page; a refusal shows the report again with the problem by its field."""
    info = session_form_for(session_id)
    actor = current_actor()
    assert actor is not None
    form = request.form
    # Pasted values: spaces or a line break around them are no part of them.
    data: dict[str, Any] = {key: form.get(key, "").strip() for key in ("kind", "url", "secret", "lang", "scope")}
    body = {key: value for key, value in data.items() if value != "" or key in ("kind", "url")}
    try:
        parsed = robot_service.parse_robot(body, default_lang=lang())
        robot_service.add_robot(backend.store, actor=actor, session_id=info.id, data=parsed, **_url_policy())
    except DomainError as exc:
        g.robot_form = {"kind": data["kind"], "lang": data["lang"], "scope": data["scope"],
                        "error": refusal_in_words(exc, data), "field": exc.field}
        return report(session_id=info.id), 422  # the report page, drawn again with the form's problem
    flash(_("The robot was added: its group is told when the session starts, passes its goal and milestones, "
            "and ends."), "ok")
    return _back(info)


@bp.post("/sessions/<int:session_id>/notifications/<int:robot_id>/delete")
@login_required
def page_delete(session_id: int, robot_id: int) -> ResponseReturnValue:
    """Delete a robot from the report page: its group is told nothing more."""
    info = session_form_for(session_id)
    actor = current_actor()
    assert actor is not None
    try:
        robot_service.delete_robot(backend.store, actor=actor, session_id=info.id, robot_id=robot_id)
    except NotFound:
        abort(404)
    except DomainError:  # a village default, asked by a host: only admins remove those
        abort(403)
    flash(_("The robot was deleted: its group is told nothing more."), "ok")
    return _back(info)


def init_app(app: Flask) -> None:
    """Register both blueprints and the report's ``robots_panel``. The API one is exempt from form CSRF
    (web.auth checks X-CSRFToken for cookie callers); the page one checks the form's token (``_owner_form``)."""
    from .login import csrf

    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(bp)
    app.jinja_env.globals["robots_panel"] = robots_panel
