"""Signed pushes in: the push endpoint, the hooks' API and the session page's hook panel.

Three blueprints, because each is guarded differently:

* ``hooks`` — ``POST /hooks/orders/<hook_id>``: no cookie, no token, no CSRF (a server posts it);
  the signature over the raw body is the credential (``core.hooks.verify_push``), then the orders
  go through the same ``core.orders.record_orders`` as the API's, acting as the session's host.
* ``hooks_api`` — ``/api/v1/sessions/<id>/hooks…``: bearer token (or the login cookie with
  ``X-CSRFToken``), like the rest of the API.
* ``hook_pages`` — the session page's forms (CSRF-protected): make, rotate, delete.

A secret is answered once (``Cache-Control: no-store``) and never put in a cookie, a flash
message, a URL or a log line.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required

from livesale import metrics
from livesale.core import hooks as hook_service
from livesale.core import orders as order_service
from livesale.core import validation
from livesale.core.errors import DomainError, NotFound
from livesale.core.sessions import SessionInfo
from livesale.extensions import backend

from .api import json_body
from .auth import api_auth
from .login import current_actor
from .pages import session_form_for

bp = Blueprint("hooks", __name__)
api_bp = Blueprint("hooks_api", __name__, url_prefix="/api/v1")
pages_bp = Blueprint("hook_pages", __name__)

NO_STORE = {"Cache-Control": "no-store"}


def push_url(hook_id: str) -> str:
    return url_for("hooks.receive", hook_id=hook_id, _external=True)


# --- the push endpoint ----------------------------------------------------------------------------


@bp.post("/hooks/orders/<hook_id>")
def receive(hook_id: str) -> Response:
    """Orders pushed by a shop's middleware: one order or ``{"orders": [...]}``, signed; answered as the API does.

    The raw body is read and its signature checked before it is parsed: the signature is over
    the bytes as sent. A refusal (401) stores nothing.
    """
    raw = request.get_data(cache=True)
    push = hook_service.verify_push(
        backend.store, hook_id=hook_id, header=request.headers.get(hook_service.HEADER), body=raw
    )
    g.actor = push.actor
    orders, is_batch = validation.parse_order_request(json_body(), max_batch=current_app.config["MAX_BATCH"])
    hook_service.require_external_ids(orders)
    g.order_kind = "batch" if is_batch else "single"
    recorded = order_service.record_orders(
        backend.store, actor=push.actor, session_id=push.session_id, orders=orders, is_batch=is_batch,
    )
    metrics.ORDERS_RECORDED.inc(recorded.new)
    body = {"orders": recorded.orders} if is_batch else {"order": recorded.orders[0]}
    response = jsonify({**body, "totals": recorded.totals})
    response.status_code = 201 if recorded.created else 200
    return response


@bp.after_request
def _signature_challenge(response: Response) -> Response:
    """A 401 here asks for a signature, not the API's bearer token."""
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = f'{hook_service.HEADER} realm="livesale"'
    return response


# --- the API --------------------------------------------------------------------------------------


def _in_range(session_id: int) -> None:
    """Ids are 32-bit on PostgreSQL: a larger one is no such session (404), not an overflow."""
    if session_id > validation.MAX_ID:
        raise NotFound(f"no session {session_id}")


def _secret_answer(made: hook_service.NewSecret, status: int) -> Response:
    response = jsonify(hook_id=made.hook_id, secret=made.secret, url=push_url(made.hook_id))
    response.status_code = status
    response.headers.update(NO_STORE)
    return response


@api_bp.post("/sessions/<int:session_id>/hooks")
@api_auth
def create_hook(session_id: int) -> Response:
    """A new signed-push hook for the session: 201 with its secret, shown this once."""
    _in_range(session_id)
    made = hook_service.create_hook(backend.store, actor=g.actor, session_id=session_id)
    return _secret_answer(made, 201)


@api_bp.get("/sessions/<int:session_id>/hooks")
@api_auth
def list_hooks(session_id: int) -> Response:
    """The session's hooks (never their secrets)."""
    _in_range(session_id)
    hooks = hook_service.list_hooks(backend.store, actor=g.actor, session_id=session_id)
    return jsonify(hooks=[{**hook_service.hook_view(h), "url": push_url(h.hook_id)} for h in hooks])


@api_bp.post("/sessions/<int:session_id>/hooks/<hook_id>/rotate")
@api_auth
def rotate_hook(session_id: int, hook_id: str) -> Response:
    """A new secret for the hook (same address); the old one is refused at once."""
    _in_range(session_id)
    made = hook_service.rotate_hook(backend.store, actor=g.actor, session_id=session_id, hook_id=hook_id)
    return _secret_answer(made, 200)


@api_bp.delete("/sessions/<int:session_id>/hooks/<hook_id>")
@api_auth
def delete_hook(session_id: int, hook_id: str) -> Response:
    """The hook stops taking pushes at once."""
    _in_range(session_id)
    hook_service.delete_hook(backend.store, actor=g.actor, session_id=session_id, hook_id=hook_id)
    return Response(status=204)


# --- the session page's panel ---------------------------------------------------------------------


@pages_bp.app_template_global("hook_panel")
def hook_panel(info: SessionInfo) -> dict[str, Any] | None:
    """The hooks of the session for its host or an admin (``templates/review/_hooks.html``); None for others."""
    actor = current_actor()
    if actor is None or not actor.can_manage(info.owner_id):
        return None
    hooks = hook_service.list_hooks(backend.store, actor=actor, session_id=info.id)
    return {"hooks": hooks, "urls": {h.hook_id: push_url(h.hook_id) for h in hooks}}


def _secret_page(info: SessionInfo, made: hook_service.NewSecret, *, rotated: bool) -> ResponseReturnValue:
    html = render_template("review/hook_secret.html", info=info, made=made, url=push_url(made.hook_id),
                           rotated=rotated, header=hook_service.HEADER)
    return html, 200, NO_STORE


def _back(info: SessionInfo) -> ResponseReturnValue:
    return redirect(url_for("review.report", session_id=info.id) + "#hooks")


@pages_bp.post("/sessions/<int:session_id>/hooks")
@login_required
def page_create(session_id: int) -> ResponseReturnValue:
    """Make a hook: its secret is shown on the answer's page, once (not a redirect: nothing keeps it)."""
    info = session_form_for(session_id)
    actor = current_actor()
    assert actor is not None
    made = hook_service.create_hook(backend.store, actor=actor, session_id=info.id)
    return _secret_page(info, made, rotated=False)


@pages_bp.post("/sessions/<int:session_id>/hooks/<hook_id>/rotate")
@login_required
def page_rotate(session_id: int, hook_id: str) -> ResponseReturnValue:
    """A new secret for a hook, shown once; the old one stops at once."""
    info = session_form_for(session_id)
    actor = current_actor()
    assert actor is not None
    try:
        made = hook_service.rotate_hook(backend.store, actor=actor, session_id=info.id, hook_id=hook_id)
    except NotFound:
        abort(404)
    return _secret_page(info, made, rotated=True)


@pages_bp.post("/sessions/<int:session_id>/hooks/<hook_id>/delete")
@login_required
def page_delete(session_id: int, hook_id: str) -> ResponseReturnValue:
    """Delete a hook: pushes to it are refused from now on."""
    info = session_form_for(session_id)
    actor = current_actor()
    assert actor is not None
    try:
        hook_service.delete_hook(backend.store, actor=actor, session_id=info.id, hook_id=hook_id)
    except NotFound:
        abort(404)
    except DomainError as exc:  # pragma: no cover - the role was checked by session_form_for
        flash(exc.message, "error")
        return _back(info)
    flash(_("The hook was deleted: pushes to it are refused from now on"), "ok")
    return _back(info)
