"""Nothing an outsider sends causes a 5xx, and nothing they send is stored.

Every rule of ``app.url_map`` is enumerated (a new route is fuzzed without
anyone adding it here) and hit with hypothesis-generated requests: path
arguments (real ids and keys, huge and negative numbers, unicode, ``..``,
``%00``), query strings, methods, bodies (JSON, forms, multipart, garbage
bytes, one over the size limit) and headers (Authorization, Content-Type,
Accept, Accept-Language, cookies, CSRF, request ids), as an anonymous
visitor and as a logged-in host who has no CSRF token (what another site
can make a host's browser send).

For every request: the status is below 500; an API error is the JSON error
shape, and a 422 names its field; and no table gained or lost a row. After
the requests to each rule, every row of every table is exactly as it was (an
outsider changes nothing; a logged-in host's cookie without the page's CSRF
token changes nothing either).

The rate limits stay as configured: past ``RATE_LIMIT_BAD_TOKEN`` an anonymous
caller's API requests get 429 (a refusal like any other, checked the same way).

``tests/web/test_openapi.py`` (schemathesis) covers the API as documented
with a valid token; this covers every route, documented or not, without one.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livesale.models import Base
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_pages import login

#: Examples per rule and identity; ~40 rules.
EXAMPLES_PER_RULE = 8
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_RULE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND", "TRACE"]

# --- strategies ------------------------------------------------------------------------------------

nasty_strings = st.sampled_from([
    "..", "../..", "%00", "a%00b", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%ff", "%zz", "%", "\x00", "\ud800",
    "喀什", "🍑", " ", "", "a" * 5000, "<script>", "' OR 1=1 --", "${jndi:x}", "NaN", "-0", "1e309",
    "0x10", "00000000000000000000000001", "１２", "null", "[]", "{}",
])
any_text = st.text(st.characters(codec=None), max_size=30)
big_ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63, 2**64, 10**30]),
).map(str)
latin1 = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40)


def path_value(converter: str, real: list[str]) -> st.SearchStrategy[str]:
    """A value for one ``<…>`` of a rule: sometimes one that exists, often one that does not."""
    junk = st.one_of(nasty_strings, any_text, big_ints)
    if converter == "IntegerConverter":
        return st.one_of(st.sampled_from(real), st.sampled_from(real), big_ints, junk)
    if converter == "PathConverter":
        files = ["css/app.css", "js/console.js", "vendor/echarts/echarts.common.min.js", "../livesale/__init__.py",
                 "..%2f..%2fpyproject.toml", "js/%00.js", "css/", "/etc/passwd", "js/../../README.md"]
        return st.one_of(st.sampled_from(files), junk, st.lists(junk, min_size=1, max_size=4).map("/".join))
    return st.one_of(st.sampled_from(real), st.sampled_from(real), junk)


def encode_path(value: str, raw: bool) -> str:
    # Raw: as a hand-written URL would put it (``..`` and ``%00`` reach the router as is); else percent-encoded.
    return quote(value, safe="/%" if raw else "", errors="backslashreplace")


query_keys = st.one_of(
    st.sampled_from(["lang", "ids", "after", "limit", "offset", "status", "q", "village", "from", "to", "sort",
                     "dir", "page", "next", "theme", "show", "accent", "host", "product", "platform", "step"]),
    any_text,
)
query_values = st.one_of(nasty_strings, any_text, big_ints, st.sampled_from(["zh", "en", "1,2", "1,1,1,1,1,1,1"]))
query_strings = st.one_of(
    st.just(""),
    st.lists(st.tuples(query_keys, query_values), max_size=5).map(
        lambda pairs: urlencode([(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
                                 for k, v in pairs])),
    st.sampled_from(["%zz&&=&a=%ff", "ids=" + ",".join(["9"] * 500), "lang=zh&lang=en", "a[]=1&a[x]=2", "=",
                     "next=//evil.example/", "next=https://evil.example", "limit=-1", "after=%00"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["sku", "quantity", "orders", "title", "products", "enabled", "origins", "name", "x"]) | any_text,
        inner, max_size=4),
    max_leaves=8,
)
bodies = st.one_of(
    st.none().map(lambda _: {}),
    # Encoded here: the test client's encoder (orjson) refuses what a hostile client may well send.
    json_values.map(lambda v: {"data": json.dumps(v).encode(), "content_type": "application/json"}),
    st.dictionaries(st.sampled_from(["name", "password", "csrf_token", "role", "label", "active", "enabled",
                                     "origins", "milestone_yuan"]) | latin1, latin1, max_size=5).map(
        lambda d: {"data": d}),
    st.binary(max_size=300).map(lambda b: {"data": b}),
    st.sampled_from([b"{", b'{"sku": "APRICOT-5KG", "quantity": 1}', b"\xff\xfe{\x00}", b"[" * 5000, b"1e999999",
                     b'{"quantity": 1' + b"0" * 5000 + b"}"]).map(lambda b: {"data": b}),
    st.just({"data": b"x" * (1024 * 1024 + 10)}),  # over MAX_CONTENT_LENGTH: 413
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "application/json; charset=utf-16", "application/x-www-form-urlencoded",
                     "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=zz",
                     "text/plain", "application/xml", "*/*", "application/json;;;", "\x7f"]),
    latin1,
)
authorizations = st.one_of(
    st.none(),
    st.sampled_from(["", "Bearer", "Bearer ", "Bearer ls_" + "A" * 43, "Bearer ls_" + "x" * 300, "Basic Og==",
                     "Basic aG9zdDpjb3JyZWN0IGhvcnNlIGJhdHRlcnk=", "Token abc", "bearer\tls_x"]),
    latin1.map(lambda s: "Bearer " + s),
)
headers = st.fixed_dictionaries({}, optional={
    "Authorization": authorizations.filter(lambda v: v is not None),
    "Accept": st.sampled_from(["application/json", "text/html", "*/*", "text/html;q=abc", "", "application/json;q=2"])
    | latin1,
    "Accept-Language": st.sampled_from(["zh", "en", "*;q=2", "zh;q=abc", "xx-YY,,;", "en-US,en;q=0.9,zh;q=", ""])
    | latin1,
    "X-CSRFToken": st.sampled_from(["", "x", "IjEi.abc.def"]) | latin1,
    "X-Request-ID": latin1,
    "X-Forwarded-For": latin1,
    "Origin": st.sampled_from(["https://evil.example", "null", ""]) | latin1,
    "Idempotency-Key": latin1,
    "If-None-Match": latin1,
    "Range": st.sampled_from(["bytes=0-0", "bytes=-1", "bytes=999999999-", "bytes=a-b", "items=0-1"]),
})
cookies = st.dictionaries(
    st.sampled_from(["lang", "session", "remember_token", "csrf_token", "x"]),
    st.sampled_from(["en", "zh", "xx", "", "garbage", "eyJfZnJlc2giOmZhbHNlfQ.bad.sig", ".eJw", "\"\"", "1|abc",
                     "1|\xf1"]) | latin1,
    max_size=3,
)


# --- the world -------------------------------------------------------------------------------------


def row_counts(store: Any) -> tuple[int, ...]:
    """How many rows each table holds: one round trip, cheap enough for every request."""
    with store.db.connect() as conn:
        return tuple(conn.execute(sa.select(*(
            sa.select(sa.func.count()).select_from(table).scalar_subquery() for table in Base.metadata.sorted_tables
        ))).one())


#: Not data: the SQLite transaction counter, which a writer refused after it pinned the session
#: (another host's order, refused inside a group commit) may advance.
UNCOMPARED = {("live_sessions", "write_seq")}


def fingerprint(store: Any) -> list[Any]:
    """Every row of every table (but ``UNCOMPARED``), in a stable order."""
    out = []
    with store.db.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in UNCOMPARED]
            rows = conn.execute(sa.select(*columns)).all()
            out.append((table.name, sorted(repr(tuple(r)) for r in rows)))
    return out


@pytest.fixture
def world(users: Users, host_api: Api, live_session: dict[str, Any]) -> dict[str, list[str]]:
    """Real things to aim at: sessions (live, ended, scheduled), an order, widget keys, user names, static files."""
    sid = live_session["id"]
    order = host_api.post(f"/api/v1/sessions/{sid}/orders", json={"sku": "APRICOT-5KG", "quantity": 2})
    assert order.status_code == 201
    ended = host_api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "已结束"}).json
    assert host_api.post(f"/api/v1/sessions/{ended['id']}/start").status_code == 200
    assert host_api.post(f"/api/v1/sessions/{ended['id']}/orders", json={"sku": "DRIED-1KG", "quantity": 1}).status_code == 201
    assert host_api.post(f"/api/v1/sessions/{ended['id']}/end").status_code == 200
    scheduled = host_api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "未开始"}).json
    for name, role in (("official", "official"), ("admin", "admin"), ("host-2", "host")):
        users.token(role, name)
    return {
        "session_id": [str(sid), str(ended["id"]), str(scheduled["id"])],
        "order_id": [order.json["order"]["id"]],
        "key": [live_session["widget_key"], ended["widget_key"]],
        "name": ["host", "admin", "official", "host-2"],
        "filename": ["css/app.css"],
        "step": ["start", "end"],
    }


def host_cookie(app: Any) -> str:
    client = app.test_client()
    login(client, "host")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def check(response: Any, method: str, path: str) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data()[:500])
    if path.startswith("/api/") and 400 <= response.status_code < 500 and method != "HEAD":
        assert response.mimetype == "application/json", (response.status_code, response.get_data()[:300])
        error = response.get_json()["error"]
        assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str)
        if response.status_code == 422:
            assert isinstance(error.get("field"), str) and error["field"], error


def _rules(app: Any) -> list[Any]:
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, sorted(r.methods)))


def fuzz_rule(app: Any, store: Any, rule: Any, world: dict[str, list[str]], cookie: str | None,
              before: list[Any]) -> None:
    """Hypothesis-generated requests to one rule of the URL map."""
    converters = {name: type(conv).__name__ for name, conv in rule._converters.items()}

    def fuzz(args: dict[str, str], raw: bool, query: str, method: str, body: dict[str, Any],
             content_type: str | None, extra_headers: dict[str, str], extra_cookies: dict[str, str]) -> None:
        path = re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", lambda m: encode_path(args[m.group(1)], raw), rule.rule)
        client = app.test_client()
        for name, value in extra_cookies.items():
            client.set_cookie(name, value)
        if cookie is not None and "session" not in extra_cookies:
            client.set_cookie("session", cookie)
        kw: dict[str, Any] = {"method": method, "headers": extra_headers, **body}
        if content_type is not None:
            kw["content_type"] = content_type
        response = client.open(path + ("?" + query if query else ""), **kw)
        try:
            check(response, method, path)
        finally:
            response.close()
        assert row_counts(store) == counts, f"{method} {path} stored something ({response.status_code})"

    # One database key per rule and identity, as @pytest.mark.parametrize would give (hypothesis keys
    # its example database by the function's source, the same for every rule here).
    fuzz._hypothesis_internal_add_digest = f"{rule.rule} {sorted(rule.methods)} {cookie is None}".encode()
    strategies = dict(
        args=st.fixed_dictionaries({name: path_value(conv, world.get(name, ["1"])) for name, conv in converters.items()}),
        raw=st.booleans(),
        query=query_strings,
        # Mostly the rule's own methods (else most requests stop at a 405), often any other.
        method=st.one_of(st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})),
                         st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})), st.sampled_from(METHODS)),
        body=bodies,
        content_type=content_types,
        extra_headers=headers,
        extra_cookies=cookies,
    )
    counts = row_counts(store)
    FUZZ_SETTINGS(given(**strategies)(fuzz))()
    # Not a row changed either (a status, a widget key, a revoked token...): checked once per rule.
    assert fingerprint(store) == before, f"a request to {rule.rule} changed the database"


@pytest.mark.parametrize("identity", ["anonymous", "logged-in host without CSRF"])
def test_nothing_an_outsider_sends_causes_a_5xx_or_is_stored(
    app: Any, store: Any, world: dict[str, list[str]], identity: str
) -> None:
    cookie = host_cookie(app) if identity != "anonymous" else None
    if cookie is not None:
        # The identity is a working login (else this would fuzz the anonymous paths again)...
        client = app.test_client()
        client.set_cookie("session", cookie)
        assert client.get(f"/sessions/{world['session_id'][0]}").status_code == 200
        # ...that cannot change anything without the page's CSRF token.
        refused = client.post(f"/api/v1/sessions/{world['session_id'][0]}/end")
        assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf"
        assert client.post(f"/sessions/{world['session_id'][0]}/end").status_code == 400
    before = fingerprint(store)
    rules = _rules(app)
    assert len(rules) > 30  # every route, not a hand-picked few
    for rule in rules:
        fuzz_rule(app, store, rule, world, cookie, before)


@pytest.mark.parametrize("value", ["1|\xf1", "\xf1|\xf1", "1|abc"])
@pytest.mark.parametrize("path", ["/", "/live/1"])
def test_a_forged_remember_me_cookie_is_no_500(client: Any, value: str, path: str) -> None:
    """Found by the fuzz: Flask-Login compared a non-ASCII remember_token digest with
    ``hmac.compare_digest`` on str (a TypeError, so a 500 on every page). It is no login at all."""
    client.set_cookie("remember_token", value)
    response = client.get(path)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login?next=")

