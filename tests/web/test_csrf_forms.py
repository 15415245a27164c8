"""Every HTML form of every page is CSRF-protected: found by rendering the pages, not listed by hand.

Each role (anonymous, the host, another host, an official, an admin) renders
every page of the URL map it may see (each session page for a scheduled, a
live and an ended session); the ``<form>`` elements are parsed with
``html.parser``, so a new form on any page is covered without a change here.

For every POST form (once per role and kind of form):

* it carries a ``csrf_token`` field;
* posted without it, with a garbage token, or with a valid token of another
  browser session, it is refused with 400 and changes nothing (every row of
  every table, and who the browser is logged in as);
* posted as the page rendered it, with the page's token, it succeeds.

A GET form must target a route that only reads, and submitting it changes nothing.

``WTF_CSRF_ENABLED`` is not turned off for testing (Flask-WTF's default,
True, is what the app runs with): the first test checks it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import MethodNotAllowed, NotFound

from livesale.core import auth, validation
from livesale.core import orders as order_service
from livesale.core import sessions as session_service
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import host_actor, order_input
from tests.web.test_outsider_fuzz import fingerprint
from tests.web.test_pages import PASSWORD, login

ROLES = ("anonymous", "host", "other host", "official", "admin")
USER_OF = {"host": ("host", "host"), "other host": ("host-2", "host"), "official": ("official", "official"),
           "admin": ("admin", "admin")}
#: Values for fields a person types (the page leaves them empty), by (endpoint, field).
TYPED = {
    ("admin.add_user", "name"): lambda n: f"new-user-{n}",
    ("admin.add_user", "password"): lambda n: "a long password",
    ("admin.issue_token", "label"): lambda n: "手机",
    ("review.widget_settings", "origins"): lambda n: "https://news.example.cn",
    ("robots.page_add", "url"): lambda n: f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=csrf-form-{n:06d}",
}


# --- parsing forms ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Form:
    method: str
    action: str  # absolute path, query included
    attrs: dict[str, str]
    fields: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, value) as a browser sends
    empty: list[str] = dataclasses.field(default_factory=list)  # text fields left empty


class FormParser(HTMLParser):
    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.textarea: tuple[str, list[str]] | None = None
        self.select: tuple[str, list[tuple[str, bool]]] | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        if tag == "form":
            action = urljoin(self.page_url, attrs.get("action") or self.page_url)
            self.form = Form(method=(attrs.get("method") or "get").upper(), action=action, attrs=attrs)
            # A ``method="dialog"`` form only closes its <dialog> in the browser: nothing is sent.
            if self.form.method != "DIALOG":
                self.forms.append(self.form)
            return
        if tag == "option" and self.select is not None:
            self.select[1].append((attrs.get("value", ""), "selected" in attrs))
            return
        if self.form is None or "name" not in attrs or "disabled" in attrs:
            return
        name = attrs["name"]
        if tag == "input":
            kind = attrs.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.form.fields.append((name, attrs.get("value", "on")))
            elif kind not in ("submit", "button", "reset", "image", "file"):
                self.form.fields.append((name, attrs.get("value", "")))
                if not attrs.get("value"):
                    self.form.empty.append(name)
        elif tag == "textarea":
            self.textarea = (name, [])
        elif tag == "select":
            self.select = (name, [])

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "textarea" and self.textarea is not None and self.form is not None:
            name, parts = self.textarea
            text = "".join(parts).removeprefix("\n")
            self.form.fields.append((name, text))
            if not text:
                self.form.empty.append(name)
            self.textarea = None
        elif tag == "select" and self.select is not None and self.form is not None:
            name, options = self.select
            chosen = next((v for v, selected in options if selected), options[0][0] if options else "")
            self.form.fields.append((name, chosen))
            self.select = None


def forms_of(html: str, page_url: str) -> list[Form]:
    parser = FormParser(page_url)
    parser.feed(html)
    parser.close()
    return parser.forms


# --- the world ---------------------------------------------------------------------------------------


class World:
    """Users logged in through the real form; for each role its own sessions (scheduled, live, ended) of
    the host, so that what one role's forms change is not what another role's forms are tested on."""

    def __init__(self, app: Any, users: Users):
        self.app = app
        self.store = backend.store_of(app)
        for name, role in USER_OF.values():
            users.token(role, name)
        users.token("host", "bystander")  # the admin forms act on this user (a token: the revoke form shows)
        self.cookies: dict[str, str] = {}
        for role in ROLES:
            client = app.test_client()
            if role == "anonymous":
                client.get("/login")
            else:
                login(client, USER_OF[role][0])
                client.get("/")
            self.cookies[role] = client.get_cookie("session").value
        actor = host_actor(self.store.db)
        self.widget_keys: dict[int, str] = {}
        self.sessions = {role: [self._session(actor, status) for status in ("scheduled", "live", "ended")]
                         for role in ROLES}
        self.counter = itertools.count()

    def _session(self, actor: Any, status: str) -> int:
        info = session_service.create_session(self.store, actor=actor, data=validation.parse_session(APRICOT_SESSION))
        self.widget_keys[info.id] = info.widget_key
        if status != "scheduled":
            session_service.start_session(self.store, actor=actor, session_id=info.id)
            order_service.record_orders(self.store, actor=actor, session_id=info.id,
                                        orders=[order_input({"sku": "DRIED-1KG", "quantity": 3})])
        if status == "ended":
            session_service.end_session(self.store, actor=actor, session_id=info.id)
        return info.id

    def client(self, role: str) -> Any:
        client = self.app.test_client()
        client.set_cookie("session", self.cookies[role])
        return client

    def pages(self, role: str) -> list[str]:
        """Every GET route of the URL map but the API and static files, with this role's sessions
        (and their widget keys) as arguments; what is not an HTML page is skipped when fetched."""
        urls = []
        sids = self.sessions[role]
        for rule in self.app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/static/")):
                continue
            if set(rule.arguments) - {"session_id", "key"}:
                continue
            if "session_id" in rule.arguments:
                urls += [rule.rule.replace("<int:session_id>", str(sid)) for sid in sids]
            elif "key" in rule.arguments:
                urls += [rule.rule.replace("<key>", self.widget_keys[sid]) for sid in sids]
            else:
                urls.append(rule.rule)
        urls.append(f"/compare?ids={sids[1]},{sids[2]}")
        return sorted(urls)

    def whoami(self, client: Any) -> str | None:
        page = client.get("/")
        found = re.search(r'<span class="who">([^<]*)</span>', page.text)
        return found.group(1) if found else None

    def state(self, client: Any) -> tuple[Any, ...]:
        return fingerprint(self.store), self.whoami(client)


def endpoint_of(app: Any, form: Form) -> tuple[str, dict[str, Any]]:
    adapter = app.url_map.bind("localhost")
    path = urlsplit(form.action).path
    try:
        return adapter.match(path, method=form.method)
    except MethodNotAllowed:
        pytest.fail(f"a {form.method} form targets {path}, which has no {form.method} route")
    except NotFound:
        pytest.fail(f"a form targets {path}, which is no route")


def kind_of(app: Any, form: Form) -> tuple[str, str, str]:
    endpoint, args = endpoint_of(app, form)
    return form.method, endpoint, str(args.get("step", ""))


def discover(w: World) -> dict[tuple[str, tuple[str, str, str]], str]:
    """(role, kind of form) -> the page it was found on (the first)."""
    found: dict[tuple[str, tuple[str, str, str]], str] = {}
    for role in ROLES:
        client = w.client(role)
        for url in w.pages(role):
            page = client.get(url)
            if page.status_code != 200 or page.mimetype != "text/html":
                page.close()
                continue
            for form in forms_of(page.text, url):
                found.setdefault((role, kind_of(w.app, form)), url)
    return found


def find_form(w: World, client: Any, url: str, kind: tuple[str, str, str]) -> Form:
    """The form of ``kind`` on the page as it is now (on admin pages: the one about the bystander)."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    candidates = [f for f in forms_of(page.text, url) if kind_of(w.app, f) == kind]
    assert candidates, f"{kind} is no longer on {url}"
    return next((f for f in candidates if "/bystander/" in f.action), candidates[0])


def filled(w: World, form: Form, role: str) -> list[tuple[str, str]]:
    endpoint = kind_of(w.app, form)[1]
    n = next(w.counter)
    out = []
    for name, value in form.fields:
        if endpoint == "login.login" and name in ("name", "password"):
            value = {"name": USER_OF.get(role, ("host",))[0], "password": PASSWORD}[name]
        elif name in form.empty and (endpoint, name) in TYPED:
            value = TYPED[(endpoint, name)](n)
        out.append((name, value))
    return out


def post(client: Any, form: Form, fields: list[tuple[str, str]]) -> Any:
    response = client.post(form.action, data=MultiDict(fields))
    response.close()
    return response


@pytest.fixture
def world(app: Any, users: Users) -> World:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True  # a robot's address is checked without DNS (none in tests)
    return World(app, users)


def test_csrf_protection_is_on_in_tests(app: Any) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    assert app.config["TESTING"] is True  # and that does not turn it off (Flask-WTF ignores TESTING)


def test_every_form_on_every_page_needs_its_csrf_token(world: World) -> None:
    found = discover(world)
    kinds = {kind for _, kind in found}
    # The discovery found the forms that exist today (a smoke check that it parses at all; new ones join in).
    for expected in [("POST", "login.login", ""), ("POST", "login.logout", ""), ("POST", "review.lifecycle", "start"),
                     ("POST", "review.lifecycle", "end"), ("POST", "review.widget_settings", ""),
                     ("POST", "review.widget_rotate", ""), ("POST", "admin.add_user", ""),
                     ("POST", "admin.issue_token", ""), ("POST", "admin.revoke_tokens", ""),
                     ("POST", "admin.set_active", ""), ("GET", "review.sessions", ""), ("GET", "review.compare", "")]:
        assert expected in kinds, f"no {expected} form found: {sorted(kinds)}"

    # Another browser's valid token: right format and signature, wrong session.
    stranger = world.app.test_client()
    stranger_token = re.search(r'name="csrf-token" content="([^"]+)"', stranger.get("/login").text).group(1)

    tested = []
    # Log out last: it ends the role's browser session that the other forms use.
    for (role, kind), url in sorted(found.items(), key=lambda item: (item[0][1][1] == "login.logout", item[0])):
        client = world.client(role)
        form = find_form(world, client, url, kind)
        fields = filled(world, form, role)
        if form.method == "GET":
            endpoint, _ = endpoint_of(world.app, form)
            for rule in world.app.url_map.iter_rules(endpoint):
                assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, f"a GET form targets {rule.rule}, which changes things"
            before = world.state(client)
            query = urlencode(fields)
            r = client.get(form.action + ("&" if "?" in form.action else "?") + query if query else form.action)
            r.close()
            assert r.status_code < 400, (role, kind, r.status_code)
            assert world.state(client) == before, (role, kind)
            continue
        names = [name for name, _ in fields]
        assert names.count("csrf_token") == 1, f"{role}: the {kind} form on {url} has no CSRF token field"
        page_token = dict(fields)["csrf_token"]
        assert page_token
        before = world.state(client)
        without = [(k, v) for k, v in fields if k != "csrf_token"]
        for label, attempt in [
            ("without a token", without),
            ("with a garbage token", [*without, ("csrf_token", "x" * len(page_token))]),
            ("with an empty token", [*without, ("csrf_token", "")]),
            ("with another browser's token", [*without, ("csrf_token", stranger_token)]),
        ]:
            r = post(client, form, attempt)
            assert r.status_code == 400, f"{role}: {kind} {label}: {r.status_code}"
            assert world.state(client) == before, f"{role}: {kind} {label} changed something"
        r = post(client, form, fields)
        ok = r.status_code in (200, 302, 303) and "/login?next=" not in r.headers.get("Location", "")
        assert ok, f"{role}: {kind} with the page's token: {r.status_code} {r.headers.get('Location')}"
        tested.append((role, kind))

    # Every role that can log in met the logout form, and only the host and the admin the owner's forms.
    assert {role for role, kind in tested if kind[1] == "login.logout"} == set(ROLES) - {"anonymous"}
    assert {role for role, kind in tested if kind[1] == "review.lifecycle"} == {"host", "admin"}
    assert {role for role, kind in tested if kind[1].startswith("admin.")} == {"admin"}
    # The success legs really acted: e.g. the add-user form (typed name "new-user-<n>") added its user.
    with world.store.db.connect() as conn:
        assert [u.name for u in auth.list_users(conn) if u.name.startswith("new-user-")]
