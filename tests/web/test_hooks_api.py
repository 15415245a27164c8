"""Signed pushes through the app (test client, real database and Redis): the hooks' API, the push endpoint
answering as the orders API does, refusals that store nothing, the rate limits, and the session page's panel."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import tables as t
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_outsider_fuzz import fingerprint
from tests.web.test_pages import login, page_csrf

ORDER = {"sku": "APRICOT-5KG", "quantity": 2, "buyer_region": "浙江杭州", "channel": "kuaishou", "external_id": "ks-1"}


def signed(secret: str, body: bytes, t_: int | None = None) -> dict[str, str]:
    """Headers as the README's recipe makes them (HMAC-SHA256 of "<t>.<raw body>", hex)."""
    t_ = int(time.time()) if t_ is None else t_
    v1 = hmac.new(secret.encode(), f"{t_}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Livesale-Signature": f"t={t_},v1={v1}"}


def raw(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


class Hook:
    def __init__(self, client: Any, hook_id: str, secret: str):
        self.client, self.hook_id, self.secret = client, hook_id, secret

    @property
    def path(self) -> str:
        return f"/hooks/orders/{self.hook_id}"

    def push(self, body: Any, *, secret: str | None = None, t_: int | None = None,
             headers: dict[str, str] | None = None) -> Any:
        data = body if isinstance(body, bytes) else raw(body)
        sent = {**signed(secret or self.secret, data, t_), **(headers or {})}
        return self.client.post(self.path, data=data, headers=sent)


def make_hook(host_api: Api, session_id: int) -> Hook:
    r = host_api.post(f"/api/v1/sessions/{session_id}/hooks")
    assert r.status_code == 201, r.json
    assert set(r.json) == {"hook_id", "secret", "url"} and r.headers["Cache-Control"] == "no-store"
    assert r.json["url"].endswith(f"/hooks/orders/{r.json['hook_id']}")
    return Hook(host_api.client.application.test_client(), r.json["hook_id"], r.json["secret"])


def stored(store: Any, session_id: int) -> list[tuple[Any, ...]]:
    o = t.orders
    with store.db.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(o.c.external_id, o.c.sku, o.c.quantity, o.c.channel, o.c.buyer_region, o.c.amount_fen)
            .where(o.c.session_id == session_id).order_by(o.c.external_id))]


@pytest.fixture
def hook(host_api: Api, live_session: dict[str, Any]) -> Hook:
    return make_hook(host_api, live_session["id"])


def test_a_signed_push_is_an_order_like_the_apis(app: Any, host_api: Api, live_session: dict[str, Any],
                                                 hook: Hook) -> None:
    sid = live_session["id"]
    first = hook.push(ORDER)
    assert first.status_code == 201, first.json
    assert set(first.json) == {"order", "totals"}
    order = first.json["order"]
    assert (order["sku"], order["quantity"], order["channel"], order["external_id"], order["amount_fen"]) == (
        "APRICOT-5KG", 2, "kuaishou", "ks-1", 2 * 6980)
    # The same order again (a retry, or a replay inside the window): 200, the stored order, counted once.
    again = hook.push(ORDER)
    assert again.status_code == 200 and again.json["order"]["id"] == order["id"]
    assert again.json["totals"]["amount_fen"] == first.json["totals"]["amount_fen"] == 2 * 6980
    batch = hook.push({"orders": [ORDER, {**ORDER, "external_id": "ks-2", "sku": "DRIED-1KG", "quantity": 1,
                                           "channel": "douyin"}]})
    assert batch.status_code == 201 and set(batch.json) == {"orders", "totals"}
    assert [o["external_id"] for o in batch.json["orders"]] == ["ks-1", "ks-2"]
    assert batch.json["orders"][0]["id"] == order["id"]
    assert stored(backend.store_of(app), sid) == [
        ("ks-1", "APRICOT-5KG", 2, "kuaishou", "浙江杭州", 13960), ("ks-2", "DRIED-1KG", 1, "douyin", "浙江杭州", 5900)]
    totals = host_api.get(f"/api/v1/sessions/{sid}/totals").json
    assert (totals["orders"], totals["amount_fen"]) == (2, 13960 + 5900)
    # The API itself sees the same orders: an external_id first pushed is a repeat through the API too.
    api_repeat = host_api.post(f"/api/v1/sessions/{sid}/orders", json=ORDER)
    assert api_repeat.status_code == 200 and api_repeat.json["order"]["id"] == order["id"]


def test_conflicts_and_bad_orders_answer_as_the_api_does(app: Any, host_api: Api, live_session: dict[str, Any],
                                                         hook: Hook) -> None:
    store = backend.store_of(app)
    assert hook.push(ORDER).status_code == 201
    before = fingerprint(store)
    changed = hook.push({**ORDER, "quantity": 3})  # the same external_id with another payload
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_conflict")
    for body, field in (({**ORDER, "external_id": None}, "external_id"),
                        ({k: v for k, v in ORDER.items() if k != "external_id"}, "external_id"),
                        ({"orders": [{**ORDER, "external_id": "ks-9"}, {"sku": "DRIED-1KG", "quantity": 1}]},
                         "orders[1].external_id"),
                        ({**ORDER, "sku": "NOPE", "external_id": "ks-8"}, "sku"),
                        ({**ORDER, "quantity": 0, "external_id": "ks-8"}, "quantity")):
        r = hook.push(body)
        assert (r.status_code, r.json["error"]["field"]) == (422, field), (body, r.json)
    not_json = hook.push(b"sku=APRICOT-5KG")
    assert not_json.status_code == 400 and not_json.json["error"]["field"] == "body"
    assert fingerprint(store) == before
    # After the end: new orders 409 session_ended, a repeat still 200.
    assert host_api.post(f"/api/v1/sessions/{live_session['id']}/end").status_code == 200
    ended = hook.push({**ORDER, "external_id": "ks-late"})
    assert (ended.status_code, ended.json["error"]["code"]) == (409, "session_ended")
    assert hook.push(ORDER).status_code == 200


def test_refused_pushes_are_401_json_and_store_nothing(app: Any, host_api: Api, live_session: dict[str, Any],
                                                       hook: Hook) -> None:
    app.config["RATE_LIMIT_BAD_TOKEN"] = "10000 per minute"
    store = backend.store_of(app)
    body = raw(ORDER)
    now = int(time.time())
    client = hook.client
    before = fingerprint(store)
    good = signed(hook.secret, body, now)
    refusals = {
        "no signature": client.post(hook.path, data=body, headers={"Content-Type": "application/json"}),
        "wrong secret": hook.push(body, secret="x" * 43),
        "6 minutes old": hook.push(body, t_=now - 360),
        "6 minutes ahead": hook.push(body, t_=now + 360),
        "body changed after signing": client.post(hook.path, data=body.replace(b"2", b"9"), headers=good),
        "a space added": client.post(hook.path, data=body + b" ", headers=good),
        "unknown hook": client.post("/hooks/orders/" + "A" * 22, data=body, headers=good),
        "bearer token, no signature": client.post(hook.path, data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {host_api.token}"}),
    }
    for name, r in refusals.items():
        assert r.status_code == 401, (name, r.status_code)
        assert r.mimetype == "application/json" and r.json["error"]["code"] in (
            "bad_signature", "stale_signature", "unknown_hook"), name
        assert r.headers["WWW-Authenticate"].startswith("X-Livesale-Signature")
        assert hook.secret not in r.text and good["X-Livesale-Signature"].split("v1=")[1] not in r.text
    assert fingerprint(store) == before
    assert stored(store, live_session["id"]) == []
    assert host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json["orders"] == 0
    # Not a page: no cookie, no CSRF token needed, nothing but JSON.
    ok = hook.push(ORDER)
    assert ok.status_code == 201 and "Set-Cookie" not in ok.headers


def test_rotation_and_deletion_through_the_api(app: Any, host_api: Api, live_session: dict[str, Any],
                                               hook: Hook) -> None:
    app.config["RATE_LIMIT_BAD_TOKEN"] = "10000 per minute"
    sid = live_session["id"]
    second = make_hook(host_api, sid)
    listed = host_api.get(f"/api/v1/sessions/{sid}/hooks")
    assert listed.status_code == 200
    assert [h["hook_id"] for h in listed.json["hooks"]] == [hook.hook_id, second.hook_id]
    assert all(set(h) == {"hook_id", "created_by", "created_at", "url"} for h in listed.json["hooks"])
    assert hook.secret not in listed.text and second.secret not in listed.text
    rotated = host_api.post(f"/api/v1/sessions/{sid}/hooks/{hook.hook_id}/rotate")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    assert rotated.json["hook_id"] == hook.hook_id and rotated.json["secret"] != hook.secret
    assert hook.push(ORDER).status_code == 401  # the old secret, at once
    assert hook.push(ORDER, secret=rotated.json["secret"]).status_code == 201
    gone = host_api.client.delete(f"/api/v1/sessions/{sid}/hooks/{second.hook_id}",
                                  headers={"Authorization": f"Bearer {host_api.token}"})
    assert gone.status_code == 204
    assert second.push({**ORDER, "external_id": "ks-2"}).status_code == 401
    assert [h["hook_id"] for h in host_api.get(f"/api/v1/sessions/{sid}/hooks").json["hooks"]] == [hook.hook_id]
    again = host_api.client.delete(f"/api/v1/sessions/{sid}/hooks/{second.hook_id}",
                                   headers={"Authorization": f"Bearer {host_api.token}"})
    assert again.status_code == 404


def test_officials_and_other_hosts_cannot_see_or_make_hooks(users: Users, live_session: dict[str, Any],
                                                            hook: Hook) -> None:
    sid = live_session["id"]
    for api in (users.api("official"), users.api("host", "host-2")):
        for r in (api.get(f"/api/v1/sessions/{sid}/hooks"), api.post(f"/api/v1/sessions/{sid}/hooks"),
                  api.post(f"/api/v1/sessions/{sid}/hooks/{hook.hook_id}/rotate")):
            assert r.status_code == 403, r.json
            assert hook.secret not in r.text
    assert users.api("admin").get(f"/api/v1/sessions/{sid}/hooks").status_code == 200


def test_pushes_are_rate_limited_per_hook(app: Any, host_api: Api, live_session: dict[str, Any], hook: Hook) -> None:
    app.config["RATE_LIMIT_API_TOKEN"] = "3 per minute"
    store = backend.store_of(app)
    other = make_hook(host_api, live_session["id"])
    for i in range(3):
        assert hook.push({**ORDER, "external_id": f"r-{i}"}).status_code == 201
    before = fingerprint(store)
    limited = hook.push({**ORDER, "external_id": "r-over"})
    assert limited.status_code == 429 and limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert fingerprint(store) == before
    assert other.push({**ORDER, "external_id": "r-other"}).status_code == 201  # another hook: its own budget


def test_refused_signatures_are_rate_limited_per_address(app: Any, hook: Hook) -> None:
    app.config["RATE_LIMIT_BAD_TOKEN"] = "3 per minute"
    for _ in range(3):
        assert hook.push(ORDER, secret="wrong" * 9).status_code == 401
    r = hook.push(ORDER, secret="wrong" * 9)
    assert r.status_code == 429 and r.mimetype == "application/json"


# --- the session page's panel ---------------------------------------------------------------------


def _page(users: Users, app: Any, name: str, role: str) -> Any:
    users.token(role, name)  # the user, with the tests' password
    client = app.test_client()
    login(client, name)
    return client


def test_the_host_makes_rotates_and_deletes_hooks_on_the_session_page(
        app: Any, users: Users, live_session: dict[str, Any]) -> None:
    app.config["RATE_LIMIT_BAD_TOKEN"] = "10000 per minute"
    sid = live_session["id"]
    client = _page(users, app, "host", "host")
    page = client.get(f"/sessions/{sid}")
    assert 'id="hooks"' in page.text and 'id="no-hooks"' in page.text
    made = client.post(f"/sessions/{sid}/hooks", data={"csrf_token": page_csrf(page.text)})
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    secret = re.search(r'<code id="hook-secret-value">([^<]+)</code>', made.text).group(1)
    url = re.search(r'<code id="hook-url">([^<]+)</code>', made.text).group(1)
    hook_id = url.rsplit("/", 1)[1]
    assert "Set-Cookie" not in made.headers or secret not in made.headers["Set-Cookie"]
    hook = Hook(app.test_client(), hook_id, secret)
    assert hook.push(ORDER).status_code == 201
    # Listed on the page from now on, without its secret.
    page = client.get(f"/sessions/{sid}")
    assert f'data-hook="{hook_id}"' in page.text and secret not in page.text
    assert "data-confirm" in page.text.split(f'data-hook="{hook_id}"')[1]
    # Without the page's CSRF token: refused, nothing changes.
    assert client.post(f"/sessions/{sid}/hooks/{hook_id}/rotate", data={}).status_code == 400
    rotated = client.post(f"/sessions/{sid}/hooks/{hook_id}/rotate", data={"csrf_token": page_csrf(page.text)})
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = re.search(r'<code id="hook-secret-value">([^<]+)</code>', rotated.text).group(1)
    assert new_secret != secret
    assert hook.push({**ORDER, "external_id": "ks-2"}).status_code == 401
    assert hook.push({**ORDER, "external_id": "ks-2"}, secret=new_secret).status_code == 201
    deleted = client.post(f"/sessions/{sid}/hooks/{hook_id}/delete", data={"csrf_token": page_csrf(page.text)})
    assert deleted.status_code == 302 and deleted.headers["Location"].endswith(f"/sessions/{sid}#hooks")
    assert hook.push({**ORDER, "external_id": "ks-3"}, secret=new_secret).status_code == 401
    assert f'data-hook="{hook_id}"' not in client.get(f"/sessions/{sid}").text


def test_officials_see_no_hook_panel(app: Any, users: Users, live_session: dict[str, Any], hook: Hook) -> None:
    sid = live_session["id"]
    official = _page(users, app, "official", "official")
    page = official.get(f"/sessions/{sid}")
    assert page.status_code == 200 and 'id="hooks"' not in page.text and hook.hook_id not in page.text
    r = official.post(f"/sessions/{sid}/hooks", data={"csrf_token": page_csrf(page.text)})
    assert r.status_code == 403
    admin = _page(users, app, "admin", "admin")
    assert f'data-hook="{hook.hook_id}"' in admin.get(f"/sessions/{sid}").text


def test_the_readme_documents_the_signing_the_server_checks() -> None:
    """The README's Python and shell recipes compute HMAC-SHA256 over "<t>.<body>" and send the header as the
    server parses it (tests/live/test_hooks_server.py runs both for real)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Signed pushes", 1)[1].split("\n## ", 1)[0]
    assert "X-Livesale-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>" in section
    assert 'f"t={t},v1={v1}"' in section and '"X-Livesale-Signature: t=$t,v1=$v1"' in section
    assert "external_id" in section and "5 minutes" in section
    _ = APRICOT_SESSION  # the README's example SKU is the tests' catalogue
    assert "APRICOT-5KG" in section
