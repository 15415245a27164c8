"""Who may do what: bearer tokens (401), roles and ownership (403), missing things (404)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import auth
from livesale.core.db import write_transaction
from livesale.web import auth as web_auth
from tests.conftest import APRICOT_SESSION, Api, Users

ORDER = {"sku": "APRICOT-5KG", "quantity": 1}


def sid_url(session: dict[str, Any], tail: str = "") -> str:
    return f"/api/v1/sessions/{session['id']}{tail}"


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert "WWW-Authenticate" not in response.headers
    return error


def state(api: Api, session: dict[str, Any]) -> tuple[Any, ...]:
    """What a session holds, read by someone allowed to read it."""
    info = api.get(sid_url(session)).json
    orders = api.get(sid_url(session, "/orders")).json["orders"]
    totals = api.get(sid_url(session, "/totals")).json
    return info["status"], [(o["id"], o["status"]) for o in orders], totals["amount_fen"], totals["orders"]


@pytest.fixture
def official_api(users: Users) -> Api:
    return users.api("official")


@pytest.fixture
def admin_api(users: Users) -> Api:
    return users.api("admin")


@pytest.fixture
def other_host_api(users: Users) -> Api:
    return users.api("host", "host-2")


@pytest.fixture
def paid_order(host_api: Api, live_session: dict[str, Any]) -> dict[str, Any]:
    r = host_api.post(sid_url(live_session, "/orders"), json=ORDER)
    assert r.status_code == 201
    return r.json["order"]


# --- 401 --------------------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/v1/sessions"),
    ("POST", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/1"),
    ("POST", "/api/v1/sessions/1/start"),
    ("POST", "/api/v1/sessions/1/end"),
    ("GET", "/api/v1/sessions/1/orders"),
    ("POST", "/api/v1/sessions/1/orders"),
    ("POST", f"/api/v1/sessions/1/orders/{uuid.uuid4()}/refund"),
    ("GET", "/api/v1/sessions/1/totals"),
    ("GET", "/api/v1/sessions/1/results"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_on_every_endpoint(client: Any, method: str, path: str) -> None:
    r = client.open(path, method=method, json={"not": "validated before auth"})
    error = assert_error(r, 401, "unauthorized")
    assert "Bearer" in error["message"]


def test_no_token_is_401_even_for_an_out_of_range_session_id(client: Any) -> None:
    assert_error(client.get("/api/v1/sessions/99999999999999999999999"), 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer    ", id="blank-token"),
        pytest.param("Basic aG9zdDpjb3JyZWN0IGhvcnNlIGJhdHRlcnk=", id="basic"),
        pytest.param("Token {token}", id="other-scheme"),
        pytest.param("{token}", id="no-scheme"),
        pytest.param("Bearer {token} extra", id="trailing-junk"),
        pytest.param("Bearer\t{token}", id="tab-separator"),
    ],
)
def test_malformed_authorization_header_is_401(users: Users, live_session: dict[str, Any], header: str) -> None:
    token = users.token("host")
    r = users.app.test_client().get(sid_url(live_session), headers={"Authorization": header.format(token=token)})
    assert_error(r, 401, "unauthorized")


def test_scheme_is_case_insensitive(users: Users, live_session: dict[str, Any]) -> None:
    token = users.token("host")
    r = users.app.test_client().get(sid_url(live_session), headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("ls_" + "A" * 43, id="unknown"),
        pytest.param("not-a-livesale-token", id="no-prefix"),
        pytest.param("ls_" + "x" * 10_000, id="very-long"),
        pytest.param("ls_é", id="non-ascii"),
    ],
)
def test_unknown_token_is_401(client: Any, live_session: dict[str, Any], token: str) -> None:
    r = client.get(sid_url(live_session), headers={"Authorization": f"Bearer {token}"})
    assert_error(r, 401, "unauthorized")


def test_token_hash_is_not_a_token(users: Users, store: Any, live_session: dict[str, Any]) -> None:
    """Sending the stored hash instead of the token does not authenticate."""
    users.token("host")
    with store.db.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM api_tokens")).scalar_one()
    r = users.app.test_client().get(sid_url(live_session), headers={"Authorization": f"Bearer {stored}"})
    assert_error(r, 401, "unauthorized")


def test_auth_comes_before_validation(client: Any, live_session: dict[str, Any]) -> None:
    r = client.post(sid_url(live_session, "/orders"), data="not json", content_type="text/plain")
    assert_error(r, 401, "unauthorized")


def test_revoked_token_is_401(host_api: Api, store: Any, live_session: dict[str, Any]) -> None:
    assert host_api.get(sid_url(live_session)).status_code == 200
    with write_transaction(store.db) as conn:
        assert auth.revoke_tokens(conn, user_name="host") == 1
    # Lookups are cached in-process for up to TOKEN_CACHE_S; a revocation is
    # seen once the entry expires. Forget the cache rather than wait.
    web_auth.forget_cached_tokens()
    assert_error(host_api.get(sid_url(live_session)), 401, "unauthorized")
    assert_error(host_api.post(sid_url(live_session, "/orders"), json=ORDER), 401, "unauthorized")
    # A new token works; the revoked one stays revoked.
    with write_transaction(store.db) as conn:
        fresh = auth.issue_token(conn, user_name="host")
        assert auth.revoke_tokens(conn, user_name="nobody") == 0
    assert Api(host_api.client, fresh).get(sid_url(live_session)).status_code == 200
    assert_error(host_api.get(sid_url(live_session)), 401, "unauthorized")


def test_revocation_takes_effect_when_the_cache_entry_expires(
    host_api: Api, store: Any, live_session: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without forgetting the cache: the revoked token works for at most TOKEN_CACHE_S more."""
    now = [1000.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(web_auth, "time", Clock)
    web_auth.forget_cached_tokens()
    assert host_api.get(sid_url(live_session)).status_code == 200  # cached from here
    with write_transaction(store.db) as conn:
        auth.revoke_tokens(conn, user_name="host")
    now[0] += web_auth.TOKEN_CACHE_S - 0.5
    assert host_api.get(sid_url(live_session)).status_code == 200  # still cached: the documented window
    now[0] += 1.0
    assert_error(host_api.get(sid_url(live_session)), 401, "unauthorized")


def test_deactivated_user_is_401(host_api: Api, store: Any, live_session: dict[str, Any]) -> None:
    with write_transaction(store.db) as conn:
        conn.execute(sa.text("UPDATE users SET active = :f WHERE name = 'host'"), {"f": False})
    web_auth.forget_cached_tokens()
    assert_error(host_api.get(sid_url(live_session)), 401, "unauthorized")


def test_tokens_are_stored_hashed(users: Users, store: Any) -> None:
    tokens = [users.token("host"), users.token("official"), users.token("admin")]
    with store.db.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM api_tokens")).all()]
        user_rows = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM users")).all()]
    assert len(rows) == 3
    dumped = repr(rows)
    for token in tokens:
        assert token.startswith(auth.TOKEN_PREFIX) and len(token) >= 40
        assert token not in dumped
        assert token[len(auth.TOKEN_PREFIX):] not in dumped
    with store.db.connect() as conn:
        hashes = set(conn.execute(sa.text("SELECT token_hash FROM api_tokens")).scalars())
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    # Passwords are not stored as given either.
    assert "correct horse battery" not in repr(user_rows)


# --- 403: roles ----------------------------------------------------------------------------------------


def test_official_may_not_create_a_session(official_api: Api, host_api: Api) -> None:
    r = official_api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert_error(r, 403, "forbidden")
    assert official_api.get("/api/v1/sessions").json["total"] == 0


def test_official_may_not_start(official_api: Api, host_api: Api) -> None:
    created = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    assert_error(official_api.post(sid_url(created, "/start")), 403, "forbidden")
    assert host_api.get(sid_url(created)).json["status"] == "scheduled"


def test_official_may_not_record_refund_or_end(
    official_api: Api, host_api: Api, live_session: dict[str, Any], paid_order: dict[str, Any]
) -> None:
    before = state(host_api, live_session)
    assert_error(official_api.post(sid_url(live_session, "/orders"), json=ORDER), 403, "forbidden")
    assert_error(official_api.post(sid_url(live_session, "/orders"), json={"orders": [ORDER]}), 403, "forbidden")
    assert_error(official_api.post(sid_url(live_session, f"/orders/{paid_order['id']}/refund")), 403, "forbidden")
    assert_error(official_api.post(sid_url(live_session, "/end")), 403, "forbidden")
    assert_error(official_api.post(sid_url(live_session, "/start")), 403, "forbidden")
    assert state(host_api, live_session) == before


def test_official_may_read_everything(
    official_api: Api, host_api: Api, live_session: dict[str, Any], paid_order: dict[str, Any]
) -> None:
    assert official_api.get(sid_url(live_session)).status_code == 200
    orders = official_api.get(sid_url(live_session, "/orders"))
    assert orders.status_code == 200 and [o["id"] for o in orders.json["orders"]] == [paid_order["id"]]
    totals = official_api.get(sid_url(live_session, "/totals"))
    assert totals.status_code == 200 and totals.json["amount_fen"] == 6980
    assert host_api.post(sid_url(live_session, "/end")).status_code == 200
    results = official_api.get(sid_url(live_session, "/results"))
    assert results.status_code == 200 and results.json["amount_fen"] == 6980


# --- 403: ownership ---------------------------------------------------------------------------------------


def test_host_may_not_act_on_another_hosts_session(
    other_host_api: Api, host_api: Api, live_session: dict[str, Any], paid_order: dict[str, Any]
) -> None:
    before = state(host_api, live_session)
    assert_error(other_host_api.post(sid_url(live_session, "/orders"), json=ORDER), 403, "forbidden")
    assert_error(other_host_api.post(sid_url(live_session, f"/orders/{paid_order['id']}/refund")), 403, "forbidden")
    assert_error(other_host_api.post(sid_url(live_session, "/end")), 403, "forbidden")
    assert_error(other_host_api.post(sid_url(live_session, "/start")), 403, "forbidden")
    assert state(host_api, live_session) == before


def test_host_may_not_start_another_hosts_session(other_host_api: Api, host_api: Api) -> None:
    created = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    assert_error(other_host_api.post(sid_url(created, "/start")), 403, "forbidden")
    assert host_api.get(sid_url(created)).json["status"] == "scheduled"


@pytest.mark.parametrize("tail", ["", "/orders", "/totals", "/results"])
def test_host_may_not_read_another_hosts_session(
    other_host_api: Api, live_session: dict[str, Any], tail: str
) -> None:
    assert_error(other_host_api.get(sid_url(live_session, tail)), 403, "forbidden")


def test_session_list_is_scoped_by_role(
    users: Users, host_api: Api, other_host_api: Api, official_api: Api, admin_api: Api
) -> None:
    mine = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    theirs = other_host_api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "其他"}).json
    also_mine = host_api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "第二场"}).json

    def ids(api: Api, query: str = "") -> tuple[list[int], int]:
        r = api.get(f"/api/v1/sessions{query}")
        assert r.status_code == 200
        return [s["id"] for s in r.json["sessions"]], r.json["total"]

    assert ids(host_api) == ([also_mine["id"], mine["id"]], 2)
    assert ids(other_host_api) == ([theirs["id"]], 1)
    everything = ([also_mine["id"], theirs["id"], mine["id"]], 3)
    assert ids(official_api) == everything
    assert ids(admin_api) == everything
    # Filters never widen a host's view.
    assert ids(host_api, "?q=其他") == ([], 0)
    assert ids(official_api, "?q=其他") == ([theirs["id"]], 1)
    # A host with no sessions sees none.
    assert ids(users.api("host", "host-3")) == ([], 0)


def test_admin_may_act_on_any_session(admin_api: Api, host_api: Api, live_session: dict[str, Any]) -> None:
    r = admin_api.post(sid_url(live_session, "/orders"), json=ORDER)
    assert r.status_code == 201
    refund = admin_api.post(sid_url(live_session, f"/orders/{r.json['order']['id']}/refund"))
    assert refund.status_code == 200 and refund.json["order"]["status"] == "refunded"
    assert admin_api.post(sid_url(live_session, "/end")).status_code == 200
    assert host_api.get(sid_url(live_session)).json["status"] == "ended"


def test_admin_creates_own_sessions(admin_api: Api, host_api: Api) -> None:
    created = admin_api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert created.status_code == 201
    assert_error(host_api.get(sid_url(created.json)), 403, "forbidden")


# --- 404 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "tail"),
    [("GET", ""), ("GET", "/orders"), ("GET", "/totals"), ("GET", "/results"),
     ("POST", "/start"), ("POST", "/end"), ("POST", "/orders"),
     ("POST", f"/orders/{uuid.uuid4()}/refund")],
)
def test_missing_session_is_404(host_api: Api, method: str, tail: str) -> None:
    path = f"/api/v1/sessions/424242{tail}"
    r = host_api.client.open(path, method=method, json=ORDER, headers=host_api._headers(None))
    assert_error(r, 404, "not_found")


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_missing_order_is_404(host_api: Api, live_session: dict[str, Any], order_id: str) -> None:
    before = state(host_api, live_session)
    assert_error(host_api.post(sid_url(live_session, f"/orders/{order_id}/refund")), 404, "not_found")
    assert state(host_api, live_session) == before


def test_order_of_another_session_is_404(host_api: Api, live_session: dict[str, Any], paid_order: dict[str, Any]) -> None:
    other = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    assert host_api.post(sid_url(other, "/start")).status_code == 200
    assert_error(host_api.post(sid_url(other, f"/orders/{paid_order['id']}/refund")), 404, "not_found")
    assert host_api.get(sid_url(live_session, "/orders")).json["orders"][0]["status"] == "paid"


def test_unknown_api_path_is_json_404(host_api: Api) -> None:
    r = host_api.get("/api/v1/nothing-here")
    assert_error(r, 404, "not_found")
