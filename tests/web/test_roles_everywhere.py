"""Who may do what, on every route: a matrix over ``app.url_map`` × roles, checked with real requests.

Roles: anonymous, the session's host (owner), another host, an official, an
admin. Pages are visited with the login cookie from the real ``/login`` form
(and the page's CSRF token on forms, so a refusal is about the role, never
the token); the API with bearer tokens, and again with the login cookie plus
``X-CSRFToken`` (what the console does). Expected outcomes: ``ok`` (2xx, or a
redirect that is not to the login page), ``login`` (a redirect to the login
page), 401, 403, 404. A refused request must leave the database as it was.

Every rule of the URL map must be in ``MATRIX``: a new route fails
``test_every_route_is_classified`` until someone decides who may use it.
Missing things (a session id that does not exist, an unknown widget key or
static file) are 404 for whoever may ask at all.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from livesale.core import auth, validation
from livesale.core import hooks as hook_service
from livesale.core import orders as order_service
from livesale.core import robots as robot_service
from livesale.core import sessions as session_service
from livesale.core.db import write_transaction
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import host_actor, order_input
from tests.web.test_outsider_fuzz import fingerprint
from tests.web.test_pages import login, page_csrf

ROLES = ("anonymous", "host", "other host", "official", "admin")
USER_OF = {"host": ("host", "host"), "other host": ("host-2", "host"), "official": ("official", "official"),
           "admin": ("admin", "admin")}
MISSING = 424242


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    form: dict[str, str] | None = None  # a page form: the CSRF token is added


# --- who may: patterns ------------------------------------------------------------------------------
# "A" is what an anonymous caller gets: 401 on the API, a redirect to the login page on pages.

PUBLIC = dict.fromkeys(ROLES, "ok")
LOGGED_IN = {"anonymous": "A", "host": "ok", "other host": "ok", "official": "ok", "admin": "ok"}
READ = {"anonymous": "A", "host": "ok", "other host": 403, "official": "ok", "admin": "ok"}
MANAGE = {"anonymous": "A", "host": "ok", "other host": 403, "official": 403, "admin": "ok"}
CREATE = {"anonymous": "A", "host": "ok", "other host": "ok", "official": 403, "admin": "ok"}
ADMIN = {"anonymous": "A", "host": 403, "other host": 403, "official": 403, "admin": "ok"}
#: Reverting a decision on final figures: officials and admins (a host only proposes).
REVERT = {"anonymous": "A", "host": 403, "other host": 403, "official": "ok", "admin": "ok"}


class World:
    """Users, their logins and tokens, and sessions of ``host``: shared ones to read, fresh ones to change."""

    def __init__(self, app: Any, users: Users):
        self.app = app
        self.tokens = {role: users.token(r, name) for role, (name, r) in USER_OF.items()}
        self.cookies: dict[str, str] = {}
        self.csrf: dict[str, str] = {}
        for role in ROLES:
            client = app.test_client()
            if role == "anonymous":
                page = client.get("/login")  # a CSRF token in an anonymous session
            else:
                login(client, USER_OF[role][0])
                page = client.get("/")
            self.csrf[role] = page_csrf(page.text)
            cookie = client.get_cookie("session")
            assert cookie is not None
            self.cookies[role] = cookie.value
        self.names = itertools.count()
        self.shared = {status: self.new_session(status) for status in ("scheduled", "live", "ended")}
        self.live, self.ended = self.shared["live"], self.shared["ended"]
        self.shared_user = self.new_user()

    def session(self, status: str, fresh: bool) -> dict[str, Any]:
        """A new session for a request expected to change it; else a shared one (a refusal changes nothing)."""
        return self.new_session(status) if fresh else self.shared[status]

    def user(self, fresh: bool) -> str:
        return self.new_user() if fresh else self.shared_user

    def new_session(self, status: str) -> dict[str, Any]:
        """A session of ``host``: scheduled, live (with one order) or ended (with one order).

        Made through the core (not under test here, and many are needed)."""
        store, actor = backend.store_of(self.app), host_actor(backend.store_of(self.app).db)
        info = session_service.create_session(store, actor=actor, data=validation.parse_session(APRICOT_SESSION))
        session = {"id": info.id, "widget_key": info.widget_key}
        if status != "scheduled":
            session_service.start_session(store, actor=actor, session_id=info.id)
            recorded = order_service.record_orders(store, actor=actor, session_id=info.id,
                                                   orders=[order_input({"sku": "APRICOT-5KG", "quantity": 1})])
            session["order_id"] = recorded.orders[0]["id"]
        if status == "ended":
            session_service.end_session(store, actor=actor, session_id=info.id)
        return session

    def new_user(self) -> str:
        """A user for the admin forms to act on (API-only: no password to hash)."""
        name = f"target-{next(self.names)}"
        with write_transaction(backend.store_of(self.app).db) as conn:
            auth.create_user(conn, name=name, role="host")
            auth.issue_token(conn, user_name=name)
        return name


#: Builds a cell's request; the flag says whether the request is expected to change something
#: (then it gets things of its own: a new session, a new user).
Build = Callable[[World, bool], Request]


def change(status: str, tail: str, method: str = "POST", **kw: Any) -> Build:
    """An API request that changes a session of the host (in the given status)."""
    def build(w: World, fresh: bool) -> Request:
        s = w.session(status, fresh)
        return Request(method, f"/api/v1/sessions/{s['id']}{tail}".replace("{order}", s.get("order_id", "")), **kw)
    return build


def page_change(status: str, tail: str) -> Build:
    """A page form that changes a session of the host."""
    def build(w: World, fresh: bool) -> Request:
        s = w.session(status, fresh)
        return Request("POST", f"/sessions/{s['id']}{tail}", form={"enabled": "y", "milestone_yuan": "100"})
    return build


NEW_SESSION_FORM = {"title": "新场次", "products-0-sku": "A-1", "products-0-name": "杏", "products-0-price_yuan": "¥69.80"}
LIVE_PRODUCTS = {f"products-{i}-{k}": str(v if k != "unit_price_fen" else f"{v / 100:.2f}")
                 for i, p in enumerate(APRICOT_SESSION["products"]) for k, v in p.items()}
LIVE_PRODUCTS = {k.replace("unit_price_fen", "price_yuan"): v for k, v in LIVE_PRODUCTS.items()}


def page_form(status: str, tail: str, form: dict[str, str]) -> Build:
    """A page form of the session pages (edit, delete) on a session of the host."""
    def build(w: World, fresh: bool) -> Request:
        return Request("POST", f"/sessions/{w.session(status, fresh)['id']}{tail}", form=dict(form))
    return build


def on(which: str, template: str) -> Build:
    """A GET on one of the shared sessions (``{id}``, ``{key}``; ``{other}`` is the ended one)."""
    def build(w: World, fresh: bool) -> Request:
        s = w.shared[which]
        return Request("GET", template.format(id=s["id"], key=s["widget_key"], other=w.ended["id"]))
    return build


def static(path: str) -> Build:
    return lambda w, fresh: Request("GET", path)


def admin_form(tail: str, **form: str) -> Build:
    return lambda w, fresh: Request("POST", f"/admin/users/{w.user(fresh)}{tail}", form=dict(form))


#: The signed-push endpoint: a signature is the only credential, so without one it is 401 for everyone.
UNSIGNED = dict.fromkeys(ROLES, 401)


def hook_of(w: World, session: dict[str, Any]) -> str:
    """A hook of the session (made once through the core)."""
    if "hook_id" not in session:
        store = backend.store_of(w.app)
        session["hook_id"] = hook_service.create_hook(store, actor=host_actor(store.db), session_id=session["id"]).hook_id
    return session["hook_id"]


def hook_change(prefix: str, tail: str, method: str = "POST", form: dict[str, str] | None = None) -> Build:
    """A request on a hook of a live session of the host (``prefix`` "/api/v1" for the API, "" for pages)."""
    def build(w: World, fresh: bool) -> Request:
        s = w.session("live", fresh)
        return Request(method, f"{prefix}/sessions/{s['id']}/hooks/{hook_of(w, s)}{tail}", form=form)
    return build


def export_upload(prefix: str, status: str, tail: str = "/imports") -> Build:
    """An order export (generic CSV, one line paid now) uploaded to a session of the host
    (``prefix`` "/api/v1" for the API, "" for the session page's form)."""
    def build(w: World, fresh: bool) -> Request:
        s = w.session(status, fresh)
        now = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        csv = ("external_id,sku,name,quantity,amount_yuan,paid_at,province,city,status\r\n"
               f"r-1,DRIED-1KG,杏干,1,59.00,{now},浙江省,杭州市,paid\r\n").encode()
        form: Any = {"platform": "generic", "file": (io.BytesIO(csv), "orders.csv")}
        return Request("POST", f"{prefix}/sessions/{s['id']}{tail}", form=form)
    return build


#: A real WeCom robot's address (never called: adding one only checks it; private addresses allowed, so no DNS).
ROBOT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0b0b0b0b-1c1c-4d4d-8e8e-9f9f9f9f9f9f"


def robot_of(w: World, session: dict[str, Any]) -> int:
    """A robot of the session (added once through the core)."""
    if "robot_id" not in session:
        store = backend.store_of(w.app)
        session["robot_id"] = robot_service.add_robot(
            store, actor=host_actor(store.db), session_id=session["id"], allow_http=False, allow_private=True,
            data=robot_service.parse_robot({"kind": "wecom", "url": ROBOT_URL})).id
    return session["robot_id"]


def robot_change(prefix: str, tail: str, method: str = "POST", form: dict[str, str] | None = None) -> Build:
    """A request on a robot of a live session of the host (``prefix`` "/api/v1" for the API, "" for pages)."""
    def build(w: World, fresh: bool) -> Request:
        s = w.session("live", fresh)
        return Request(method, f"{prefix}/sessions/{s['id']}/notifications/{robot_of(w, s)}{tail}", form=form)
    return build


#: (rule, method) -> [(how to build a request, who may)]: every rule of the app, every method but HEAD/OPTIONS.
MATRIX: dict[tuple[str, str], list[tuple[Build, dict[str, Any]]]] = {
    # --- API (bearer tokens) ---
    ("/api/v1/openapi.json", "GET"): [(static("/api/v1/openapi.json"), PUBLIC)],
    ("/api/v1/compare", "GET"): [(on("live", "/api/v1/compare?ids={id},{other}"), READ)],
    ("/api/v1/sessions", "POST"): [(lambda w, fresh: Request("POST", "/api/v1/sessions", json=APRICOT_SESSION), CREATE)],
    ("/api/v1/sessions", "GET"): [(static("/api/v1/sessions"), LOGGED_IN)],
    ("/api/v1/sessions/<int:session_id>", "GET"): [(on("live", "/api/v1/sessions/{id}"), READ)],
    ("/api/v1/sessions/<int:session_id>/start", "POST"): [(change("scheduled", "/start"), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/end", "POST"): [(change("live", "/end"), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/orders", "POST"): [
        (change("live", "/orders", json={"sku": "DRIED-1KG", "quantity": 2}), MANAGE),
        (change("live", "/orders", json={"orders": [{"sku": "DRIED-1KG", "quantity": 2}]}), MANAGE),
    ],
    ("/api/v1/sessions/<int:session_id>/orders", "GET"): [(on("live", "/api/v1/sessions/{id}/orders"), READ)],
    ("/api/v1/sessions/<int:session_id>/orders/<order_id>/refund", "POST"): [
        (change("live", "/orders/{order}/refund"), MANAGE),
    ],
    ("/api/v1/sessions/<int:session_id>/totals", "GET"): [
        (on("live", "/api/v1/sessions/{id}/totals"), READ), (on("ended", "/api/v1/sessions/{id}/totals"), READ),
    ],
    ("/api/v1/sessions/<int:session_id>/results", "GET"): [(on("ended", "/api/v1/sessions/{id}/results"), READ)],
    ("/api/v1/sessions/<int:session_id>/widget", "PATCH"): [
        (change("live", "/widget", method="PATCH", json={"enabled": False}), MANAGE),
    ],
    ("/api/v1/sessions/<int:session_id>/widget/rotate", "POST"): [(change("live", "/widget/rotate"), MANAGE)],
    # Audience figures (issue 15 item 3): the host's and admins'; officials read them in the session and results.
    ("/api/v1/sessions/<int:session_id>/audience", "PATCH"): [
        (change("live", "/audience", method="PATCH", json={"viewers": 56789, "likes": None}), MANAGE),
        (change("ended", "/audience", method="PATCH", json={"peak_viewers": 3120}), MANAGE),
    ],
    # --- operations ---
    ("/healthz", "GET"): [(static("/healthz"), PUBLIC)],
    ("/livez", "GET"): [(static("/livez"), PUBLIC)],
    # No LIVESALE_METRICS_TOKEN in tests: open (nginx keeps it off the public address; see test_operations).
    ("/metrics", "GET"): [(static("/metrics"), PUBLIC)],
    # --- public pages and files ---
    ("/favicon.ico", "GET"): [(static("/favicon.ico"), PUBLIC)],
    ("/login", "GET"): [(static("/login"), PUBLIC)],
    # A wrong password: the form answers anyone (with its error). A new name each time: failed logins
    # are rate-limited per name.
    ("/login", "POST"): [(lambda w, fresh: Request("POST", "/login", form={"name": f"nobody-{next(w.names)}",
                                                                   "password": "wrong-wrong"}), PUBLIC)],
    ("/static/<path:filename>", "GET"): [(static("/static/css/app.css"), PUBLIC),
                                         (static("/static/vendor/socket.io/socket.io.min.js"), PUBLIC)],
    ("/console/sw.js", "GET"): [(static("/console/sw.js"), PUBLIC)],
    ("/embed.js", "GET"): [(static("/embed.js"), PUBLIC)],
    ("/widget/<key>", "GET"): [(on("live", "/widget/{key}"), PUBLIC), (on("ended", "/widget/{key}?lang=en"), PUBLIC)],
    ("/widget/<key>.json", "GET"): [(on("live", "/widget/{key}.json"), PUBLIC)],
    # --- pages behind the login ---
    ("/", "GET"): [(static("/"), LOGGED_IN)],
    ("/logout", "POST"): [(lambda w, fresh: Request("POST", "/logout", form={}), LOGGED_IN)],
    ("/sessions", "GET"): [(static("/sessions"), LOGGED_IN)],
    ("/compare", "GET"): [(static("/compare"), LOGGED_IN), (on("live", "/compare?ids={id},{other}"), READ)],
    ("/compare.csv", "GET"): [(on("live", "/compare.csv?ids={id},{other}"), READ)],
    ("/sessions/<int:session_id>", "GET"): [(on("live", "/sessions/{id}"), READ), (on("ended", "/sessions/{id}"), READ)],
    ("/sessions/<int:session_id>/orders.csv", "GET"): [(on("ended", "/sessions/{id}/orders.csv"), READ)],
    # The 战报 poster: whoever may read the report (a live session's says "so far").
    ("/sessions/<int:session_id>/poster", "GET"): [(on("ended", "/sessions/{id}/poster"), READ),
                                                   (on("live", "/sessions/{id}/poster"), READ)],
    ("/sessions/<int:session_id>/poster.svg", "GET"): [(on("ended", "/sessions/{id}/poster.svg"), READ),
                                                       (on("live", "/sessions/{id}/poster.svg"), READ)],
    ("/live/<int:session_id>", "GET"): [(on("live", "/live/{id}"), READ)],
    ("/console/<int:session_id>", "GET"): [(on("live", "/console/{id}"), MANAGE)],
    ("/console/<int:session_id>/csrf", "GET"): [(on("live", "/console/{id}/csrf"), MANAGE)],
    ("/sessions/<int:session_id>/<any(start, end):step>", "POST"): [
        (page_change("scheduled", "/start"), MANAGE), (page_change("live", "/end"), MANAGE),
    ],
    ("/sessions/<int:session_id>/widget", "POST"): [(page_change("live", "/widget"), MANAGE)],
    ("/sessions/<int:session_id>/widget/rotate", "POST"): [(page_change("live", "/widget/rotate"), MANAGE)],
    ("/sessions/<int:session_id>/audience", "POST"): [(page_form("ended", "/audience", {"viewers": "56,789"}), MANAGE)],
    # --- managing sessions (H3) ---
    ("/sessions/new", "GET"): [(static("/sessions/new"), CREATE), (on("ended", "/sessions/new?from={id}"), MANAGE)],
    ("/sessions/new", "POST"): [(lambda w, fresh: Request("POST", "/sessions/new", form=NEW_SESSION_FORM), CREATE)],
    ("/sessions/<int:session_id>/edit", "GET"): [(on("scheduled", "/sessions/{id}/edit"), MANAGE),
                                                 (on("live", "/sessions/{id}/edit"), MANAGE)],
    ("/sessions/<int:session_id>/edit", "POST"): [(page_form("scheduled", "/edit", NEW_SESSION_FORM), MANAGE),
                                                  (page_form("live", "/edit", {"title": "改名", "goal_yuan": "1",
                                                                               **LIVE_PRODUCTS}), MANAGE)],
    ("/sessions/<int:session_id>/delete", "GET"): [(on("scheduled", "/sessions/{id}/delete"), MANAGE)],
    ("/sessions/<int:session_id>/delete", "POST"): [(page_form("scheduled", "/delete", {"confirm": "yes"}), MANAGE)],
    ("/api/v1/sessions/<int:session_id>", "PATCH"): [
        (change("live", "", method="PATCH", json={"goal_fen": 1}), MANAGE),
        (change("scheduled", "", method="PATCH", json={"title": "改名", "products": APRICOT_SESSION["products"]}),
         MANAGE),
    ],
    ("/api/v1/sessions/<int:session_id>", "DELETE"): [(change("scheduled", "", method="DELETE"), MANAGE)],
    # --- reconciliation and final figures (H12, issue 14 items 2-3) ---
    # Anyone who reads the session decides or proposes: officials and admins confirm, its host proposes.
    ("/api/v1/sessions/<int:session_id>/reconciliation", "GET"): [
        (on("ended", "/api/v1/sessions/{id}/reconciliation"), READ)],
    ("/api/v1/sessions/<int:session_id>/final", "POST"): [
        (change("ended", "/final", json={"source": "live", "reason": "核对"}), READ)],
    ("/api/v1/sessions/<int:session_id>/final", "DELETE"): [(change("ended", "/final", method="DELETE"), REVERT)],
    ("/sessions/<int:session_id>/reconciliation", "GET"): [(on("ended", "/sessions/{id}/reconciliation"), READ),
                                                           (on("live", "/sessions/{id}/reconciliation"), READ)],
    ("/sessions/<int:session_id>/reconciliation.csv", "GET"): [
        (on("ended", "/sessions/{id}/reconciliation.csv"), READ)],
    ("/sessions/<int:session_id>/final", "POST"): [
        (page_form("ended", "/final", {"source": "live", "reason": "核对"}), READ)],
    ("/admin/users", "GET"): [(static("/admin/users"), ADMIN)],
    ("/admin/users", "POST"): [(lambda w, fresh: Request("POST", "/admin/users", form={
        "name": f"new-{next(w.names)}", "role": "official", "password": "a long password"}), ADMIN)],
    ("/admin/users/<name>/tokens", "POST"): [(admin_form("/tokens", label="手机"), ADMIN)],
    ("/admin/users/<name>/revoke", "POST"): [(admin_form("/revoke"), ADMIN)],
    ("/admin/users/<name>/active", "POST"): [(admin_form("/active", active="0"), ADMIN)],
    # --- signed pushes (issue 14 item 5): hooks are the host's and admins' (officials may not even list them) ---
    ("/api/v1/sessions/<int:session_id>/hooks", "POST"): [(change("live", "/hooks"), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/hooks", "GET"): [(on("live", "/api/v1/sessions/{id}/hooks"), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/hooks/<hook_id>/rotate", "POST"): [
        (hook_change("/api/v1", "/rotate"), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/hooks/<hook_id>", "DELETE"): [
        (hook_change("/api/v1", "", method="DELETE"), MANAGE)],
    ("/sessions/<int:session_id>/hooks", "POST"): [(page_form("live", "/hooks", {}), MANAGE)],
    ("/sessions/<int:session_id>/hooks/<hook_id>/rotate", "POST"): [(hook_change("", "/rotate", form={}), MANAGE)],
    ("/sessions/<int:session_id>/hooks/<hook_id>/delete", "POST"): [(hook_change("", "/delete", form={}), MANAGE)],
    ("/hooks/orders/<hook_id>", "POST"): [
        (lambda w, fresh: Request("POST", f"/hooks/orders/{hook_of(w, w.live)}",
                                  json={"sku": "DRIED-1KG", "quantity": 1, "external_id": "unsigned"}), UNSIGNED)],
    # --- imports of the platforms' exports (issue 14 item 1): the host's and admins'; officials read the list ---
    ("/api/v1/sessions/<int:session_id>/imports", "POST"): [(export_upload("/api/v1", "ended"), MANAGE),
                                                             (export_upload("/api/v1", "live"), MANAGE)],
    ("/sessions/<int:session_id>/imports", "POST"): [(export_upload("", "ended"), MANAGE)],
    ("/sessions/<int:session_id>/imports/confirm", "POST"): [(page_form("ended", "/imports/confirm",
                                                                        {"sha256": "0" * 64}), MANAGE)],
    ("/sessions/<int:session_id>/imports/mappings", "POST"): [
        (page_form("ended", "/imports/mappings", {"platform": "douyin", "platform_name": "杏干 礼盒", "spec": "",
                                                  "sku": "DRIED-1KG"}), MANAGE)],
    # --- group-chat robots (issue 15 item 4): added and deleted by the host and admins; whoever reads the
    # session reads them (masked) and their delivery log, officials included (village defaults: core tests) ---
    ("/api/v1/sessions/<int:session_id>/notifications", "POST"): [
        (change("live", "/notifications", json={"kind": "wecom", "url": ROBOT_URL}), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/notifications", "GET"): [
        (on("live", "/api/v1/sessions/{id}/notifications"), READ)],
    ("/api/v1/sessions/<int:session_id>/notifications/<int:robot_id>", "DELETE"): [
        (robot_change("/api/v1", "", method="DELETE"), MANAGE)],
    ("/api/v1/sessions/<int:session_id>/notifications/deliveries", "GET"): [
        (on("ended", "/api/v1/sessions/{id}/notifications/deliveries"), READ)],
    ("/sessions/<int:session_id>/notifications", "POST"): [
        (page_form("live", "/notifications", {"kind": "wecom", "url": ROBOT_URL}), MANAGE)],
    ("/sessions/<int:session_id>/notifications/<int:robot_id>/delete", "POST"): [
        (robot_change("", "/delete", form={}), MANAGE)],
}


def _routes(app: Any) -> set[tuple[str, str]]:
    return {(rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_is_classified(app: Any) -> None:
    routes = _routes(app)
    unclassified = sorted(routes - set(MATRIX))
    assert not unclassified, f"new routes: add them to MATRIX with who may use them: {unclassified}"
    assert not sorted(set(MATRIX) - routes), "MATRIX names routes the app no longer has"


# --- running a cell ------------------------------------------------------------------------------


def outcome(response: Any) -> Any:
    if response.status_code in (301, 302, 303, 307, 308):
        location = response.headers["Location"]
        return "login" if re.search(r"/login\?next=", location) else "ok"
    return "ok" if 200 <= response.status_code < 300 else response.status_code


def send(w: World, request: Request, role: str, *, api_by_cookie: bool = False) -> Any:
    client = w.app.test_client()
    headers: dict[str, str] = {}
    is_api = request.path.startswith("/api/")
    if is_api and not api_by_cookie:
        if role != "anonymous":
            headers["Authorization"] = f"Bearer {w.tokens[role]}"
    elif not (is_api and role == "anonymous"):
        client.set_cookie("session", w.cookies[role])
        if is_api:
            headers["X-CSRFToken"] = w.csrf[role]
    kw: dict[str, Any] = {"method": request.method, "headers": headers}
    if request.json is not None:
        kw["json"] = request.json
    if request.form is not None:
        kw["data"] = {**request.form, "csrf_token": w.csrf[role]}
    response = client.open(request.path, **kw)
    response.close()
    return response


def run_cells(w: World, cells: list[tuple[tuple[str, str], Build, dict[str, Any]]], *,
              api_by_cookie: bool = False) -> list[str]:
    """Every cell × role; the mismatches, as readable lines."""
    store = backend.store_of(w.app)
    wrong = []
    for _key, build, who in cells:
        for role in ROLES:
            if api_by_cookie and role == "anonymous":
                continue  # no cookie and no token: the same request as without a token
            expected = who[role]
            request = build(w, expected == "ok")
            before = fingerprint(store) if request.method != "GET" and expected != "ok" else None
            response = send(w, request, role, api_by_cookie=api_by_cookie)
            if expected == "A":
                expected = 401 if request.path.startswith("/api/") else "login"
            got = outcome(response)
            if got != expected:
                wrong.append(f"{role:10} {request.method} {request.path}: expected {expected}, got {got} "
                             f"({response.status_code} {response.headers.get('Location', '')})")
            elif got != "ok" and before is not None and fingerprint(store) != before:
                wrong.append(f"{role:10} {request.method} {request.path}: refused ({got}) but changed the database")
    return wrong


def _cells(api: bool) -> list[tuple[tuple[str, str], Build, dict[str, Any]]]:
    return [(key, build, who) for key, cases in MATRIX.items() for build, who in cases
            if key[0].startswith("/api/") == api]


# --- missing things ------------------------------------------------------------------------------


def missing_things(world: World) -> list[str]:
    """A session id that does not exist (on every rule that takes one), an unknown widget key or file.

    One exception, by design: on the API a role that may never change a session (an official)
    is refused with 403 before the session is looked up — which says nothing about whether it exists.
    Anonymous API calls are left out: 401 whatever the id (the matrix and test_auth_roles check it).
    """
    wrong = []
    store = backend.store_of(world.app)
    for rule in world.app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            never_for_officials = False
            if "session_id" in rule.arguments:
                path = rule.rule.replace("<int:session_id>", str(MISSING)).replace("<any(start, end):step>", "end")
                path = path.replace("<order_id>", world.live["order_id"]).replace("<int:robot_id>", "1")
                is_api = path.startswith("/api/")
                body = {"enabled": False} if method == "PATCH" else {"sku": "APRICOT-5KG", "quantity": 1}
                request = Request(method, path, json=body if is_api and method != "GET" else None,
                                  form=None if is_api or method == "GET" else {})
                anonymous: Any = 401 if is_api else "login"
                never_for_officials = is_api and MATRIX[(rule.rule, method)][0][1]["official"] == 403
            elif "key" in rule.arguments:
                request, anonymous = Request(method, rule.rule.replace("<key>", "no-such-widget-key")), 404
            elif "filename" in rule.arguments:
                request, anonymous = Request(method, "/static/no/such/file.js"), 404
            else:
                continue
            before = fingerprint(store)
            for role in ROLES:
                if role == "anonymous" and request.path.startswith("/api/"):
                    continue
                got = outcome(send(world, request, role))
                expected = anonymous if role == "anonymous" else 403 if (
                    role == "official" and never_for_officials) else 404
                if got != expected:
                    wrong.append(f"{role:10} {method} {request.path}: expected {expected}, got {got}")
            if fingerprint(store) != before:
                wrong.append(f"{method} {request.path} changed the database")
    # An order of another session, refunded through this one: no such order here.
    path = f"/api/v1/sessions/{world.live['id']}/orders/{world.ended['order_id']}/refund"
    for role, expected in (("host", 404), ("admin", 404), ("other host", 403), ("official", 403)):
        got = outcome(send(world, Request("POST", path), role))
        if got != expected:
            wrong.append(f"{role:10} POST {path}: expected {expected}, got {got}")
    return wrong


@pytest.fixture
def world(app: Any, users: Users) -> World:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True  # robots' addresses are checked without DNS (none in tests)
    return World(app, users)


def test_every_route_by_role(world: World) -> None:
    """Pages and files with the login cookie; the API with bearer tokens, then with the cookie + X-CSRFToken
    (the pages' own API calls get exactly what the role's token gets); then things that do not exist.
    One test, one world: logging the four roles in is most of the setup."""
    wrong = run_cells(world, _cells(api=False))
    wrong += run_cells(world, _cells(api=True))
    wrong += ["(cookie) " + line for line in run_cells(world, _cells(api=True), api_by_cookie=True)]
    wrong += ["(missing) " + line for line in missing_things(world)]
    assert not wrong, "\n".join(wrong)


