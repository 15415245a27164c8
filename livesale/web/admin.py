"""User and token management for admins (the same operations as ``livesale user`` / ``livesale token``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from livesale.core import auth
from livesale.core.db import write_transaction
from livesale.core.errors import Conflict, DomainError
from livesale.extensions import backend

from .login import current_actor

bp = Blueprint("admin", __name__, url_prefix="/admin")


class AddUserForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=64)])
    # Drawn as a <select> by the template (wtforms is phasing out tuple choices).
    role = StringField(_l("Role"), validators=[DataRequired(), AnyOf(auth.ROLES)])
    password = PasswordField(_l("Password (at least 8 characters; empty: API token only)"),
                             validators=[Optional(), Length(min=8, max=200)])


class UserActionForm(FlaskForm):
    """One button on a user's row: the user is named in the URL, CSRF in the form."""

    label = StringField(_l("Label"), validators=[Optional(), Length(max=100)])
    active = HiddenField()


def _admin() -> auth.Actor:
    actor = current_actor()
    if actor is None or actor.role != "admin":
        abort(403)
    return actor


def _page(**extra: Any) -> str:
    with backend.store.db.connect() as conn:
        users = auth.list_users(conn)
    response = render_template("admin/users.html", users=users, form=extra.pop("form", None) or AddUserForm(),
                               action=UserActionForm(), **extra)
    return response


@bp.get("/users")
@login_required
def users() -> ResponseReturnValue:
    """Users, their roles and live tokens; add, deactivate, issue and revoke tokens."""
    _admin()
    return _page()


@bp.post("/users")
@login_required
def add_user() -> ResponseReturnValue:
    _admin()
    form = AddUserForm()
    if not form.validate_on_submit():
        return _page(form=form), 400
    try:
        with write_transaction(backend.store.db) as conn:
            auth.create_user(conn, name=form.name.data or "", role=form.role.data or "",
                             password=form.password.data or None)
    except DomainError as exc:
        flash(exc.message, "error")
        return _page(form=form), 409 if isinstance(exc, Conflict) else 422
    flash(_("User %(name)s added", name=form.name.data), "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>/tokens")
@login_required
def issue_token(name: str) -> ResponseReturnValue:
    """A new token, shown once on this page (never stored in the clear, never in a cookie)."""
    _admin()
    form = UserActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        with write_transaction(backend.store.db) as conn:
            token = auth.issue_token(conn, user_name=name, label=form.label.data or None)
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.users"))
    response = _page(new_token=token, token_user=name)
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/users/<name>/revoke")
@login_required
def revoke_tokens(name: str) -> ResponseReturnValue:
    _admin()
    if not UserActionForm().validate_on_submit():
        abort(400)
    with write_transaction(backend.store.db) as conn:
        count = auth.revoke_tokens(conn, user_name=name)
    flash(_("%(n)s token(s) of %(name)s revoked", n=count, name=name), "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>/active")
@login_required
def set_active(name: str) -> ResponseReturnValue:
    actor = _admin()
    form = UserActionForm()
    if not form.validate_on_submit() or form.active.data not in ("0", "1"):
        abort(400)
    try:
        with write_transaction(backend.store.db) as conn:
            auth.set_active(conn, actor=actor, user_name=name, active=form.active.data == "1")
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("admin.users"))
