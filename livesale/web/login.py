"""Page login for people (Flask-Login), with CSRF-protected forms (Flask-WTF).

API clients use bearer tokens (``web.auth``); browsers use this login
cookie. Both resolve to the core's ``Actor``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, Request, flash, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from livesale.core.auth import Actor, actor_by_id, actor_for_login
from livesale.extensions import backend


class _LoginManager(LoginManager):
    def _load_user_from_remember_cookie(self, cookie: str) -> User | None:
        # Flask-Login 0.6.3 compares the cookie's digest with hmac.compare_digest on str, which raises
        # TypeError on non-ASCII: any visitor's forged remember_token cookie was a 500 on every page.
        if not cookie.isascii():
            return None
        return super()._load_user_from_remember_cookie(cookie)  # type: ignore[no-any-return]


login_manager = _LoginManager()
csrf = CSRFProtect()
bp = Blueprint("login", __name__)


class User(UserMixin):
    """A logged-in person: the core's ``Actor`` as Flask-Login wants it."""

    def __init__(self, actor: Actor):
        self.actor = actor
        self.id = str(actor.user_id)


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    with backend.store.db.connect() as conn:
        actor = actor_by_id(conn, user_id=int(user_id))
    return User(actor) if actor else None


class LoginForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would make the login page a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    """Log in with a name and password."""
    form = LoginForm()
    if form.validate_on_submit():
        with backend.store.db.connect() as conn:
            actor = actor_for_login(conn, name=form.name.data or "", password=form.password.data or "")
        if actor is not None:
            login_user(User(actor))
            return redirect(_safe_next(request.args.get("next")))
        flash(_l("Wrong name or password"), "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Log out (a POST, so another site cannot log people out with a link)."""
    logout_user()
    return redirect(url_for("login.login"))


def current_actor() -> Actor | None:
    """The logged-in person, if any."""
    return current_user.actor if current_user.is_authenticated else None


class CookielessFastSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, minus its cost for calls that carry no session cookie.

    API clients send a bearer token and no cookie; building the signing
    serializer for every one of their requests is wasted work.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies and app.secret_key:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        # The public widget is kept by shared caches (web/widget.py): it never sets or refreshes a
        # cookie, and does not vary on one (Flask-Login looks into every request's session).
        if request.blueprint == "widget":
            return
        if not session and not session.modified:
            # What Flask's would do for an empty session (API calls), without working out the
            # cookie's settings first. Flask-Login looks into every request's session: it varies.
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = CookielessFastSessionInterface()
    login_manager.init_app(app)
    login_manager.login_view = "login.login"
    login_manager.login_message = _l("Please log in first")
    csrf.init_app(app)
    # Assigned, not setdefault: Flask's own defaults (SameSite none, not Secure) are already in app.config.
    production = app.config.get("ENV") == "production"
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=production,
        REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax", REMEMBER_COOKIE_SECURE=production,
    )
    app.register_blueprint(bp)
