"""Rate limits on a real Redis: 429 with Retry-After and the app's error shape, per key, shared by
every process on the Redis, nothing stored by a refused order, and no 500s when Redis is down.

Each test builds its apps with small limits of its own; the defaults are generous enough for the
rest of the suite (which logs in and posts a lot from 127.0.0.1).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa
from flask import Flask

from livesale import create_app
from livesale.core import auth
from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.extensions import backend
from tests.conftest import APRICOT_SESSION, free_port
from tests.live.conftest import post_orders

PASSWORD = "correct horse battery"
ALL_OFF = {"RATE_LIMIT_LOGIN_IP": "off", "RATE_LIMIT_LOGIN_NAME": "off", "RATE_LIMIT_BAD_TOKEN": "off",
           "RATE_LIMIT_API_TOKEN": "off", "RATE_LIMIT_WIDGET": "off"}


@pytest.fixture
def make_app(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Apps on the test database and Redis with their own limits (every other limit off)."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app({
            "ENV": "testing",
            "SECRET_KEY": "test-secret-not-for-production",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_PATH": str(tmp_path / f"instance-{len(made)}"),
            "ASYNC_MODE": "threading",
            "PUSH_TICK_S": 0,
            **ALL_OFF,
            **overrides,
        })
        made.append(app)
        return app

    yield make
    for app in made:
        backend.close(app)


def add_user(app: Flask, name: str, role: str = "host") -> str:
    """A user with ``PASSWORD`` and an API token (returned)."""
    with write_transaction(backend.store_of(app).db) as conn:
        auth.create_user(conn, name=name, role=role, password=PASSWORD)
        return auth.issue_token(conn, user_name=name)


def client_from(app: Flask, ip: str) -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def try_login(client: Any, name: str, password: str, **headers: str) -> Any:
    page = client.get("/login")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token.group(1)},
                       headers=headers)


def assert_limited_json(response: Any, window_s: int) -> None:
    assert response.status_code == 429, response.text
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == "rate_limited" and error["message"], response.json
    assert set(error) <= {"code", "message", "field"}
    # Seconds until the window ends: at most the window (plus Redis's whole-second TTL).
    assert 1 <= int(response.headers["Retry-After"]) <= window_s + 1, response.headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_failed_logins_are_limited_per_user_name_and_per_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_LOGIN_NAME="3 per minute", RATE_LIMIT_LOGIN_IP="5 per minute")
    add_user(app, "aygul")
    add_user(app, "erkin")
    attacker = client_from(app, "203.0.113.7")
    for _ in range(3):
        assert try_login(attacker, "aygul", "guess").status_code == 200  # the form again: wrong password
    # The name is locked for the window, even with the right password and from another address.
    refused = try_login(attacker, "aygul", PASSWORD, Accept="text/html")
    assert refused.status_code == 429
    assert refused.mimetype == "text/html" and "请求过于频繁" in refused.text  # a page, in Chinese by default
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert try_login(client_from(app, "198.51.100.2"), "Aygul ", PASSWORD).status_code == 429
    # Another name from the same address still has tries left until the address's limit (5 failures).
    assert try_login(attacker, "erkin", "guess").status_code == 200
    assert try_login(attacker, "erkin", "guess").status_code == 200
    assert try_login(attacker, "erkin", PASSWORD).status_code == 429
    # Other people, elsewhere, log in as usual.
    assert try_login(client_from(app, "198.51.100.9"), "erkin", PASSWORD).status_code == 302


def test_successful_logins_do_not_count(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_LOGIN_NAME="2 per minute", RATE_LIMIT_LOGIN_IP="2 per minute")
    add_user(app, "aygul")
    for _ in range(6):
        client = client_from(app, "192.0.2.1")
        assert try_login(client, "aygul", PASSWORD).status_code == 302


def test_bad_tokens_are_limited_per_address_valid_tokens_are_not(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_BAD_TOKEN="3 per minute")
    token = add_user(app, "host")
    prober = client_from(app, "203.0.113.7")
    answers = [prober.get("/api/v1/sessions", headers=bearer(f"guess-{i}")).status_code for i in range(2)]
    answers.append(prober.get("/api/v1/sessions").status_code)  # no token at all counts too
    assert answers == [401, 401, 401]
    refused = prober.get("/api/v1/sessions", headers=bearer("guess-3"))
    assert_limited_json(refused, 60)
    assert "WWW-Authenticate" not in refused.headers
    assert client_from(app, "203.0.113.8").get("/api/v1/sessions").status_code == 401  # another address
    # A working integration elsewhere is not slowed, and its requests are never counted here.
    integration = client_from(app, "198.51.100.2")
    for _ in range(5):
        assert integration.get("/api/v1/sessions", headers=bearer(token)).status_code == 200


def test_order_refused_by_the_token_limit_stores_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_API_TOKEN="4 per minute")
    token = add_user(app, "host")
    other = add_user(app, "other")
    api = client_from(app, "198.51.100.2")
    session = api.post("/api/v1/sessions", json=APRICOT_SESSION, headers=bearer(token)).json
    assert api.post(f"/api/v1/sessions/{session['id']}/start", headers=bearer(token)).status_code == 200
    url = f"/api/v1/sessions/{session['id']}/orders"
    for quantity in (1, 2):
        r = api.post(url, json={"sku": "APRICOT-5KG", "quantity": quantity}, headers=bearer(token))
        assert r.status_code == 201, r.json
    store = backend.store_of(app)
    before = store.totals.read(session_id=session["id"])
    key = str(uuid.uuid4())
    single = api.post(url, json={"sku": "APRICOT-5KG", "quantity": 5},
                      headers={**bearer(token), "Idempotency-Key": key})
    assert_limited_json(single, 60)
    batch = api.post(url, json={"orders": [{"sku": "DRIED-1KG", "quantity": 1}] * 3}, headers=bearer(token))
    assert_limited_json(batch, 60)
    # The same token from another address is the same budget; another token has its own.
    assert client_from(app, "192.0.2.4").get("/api/v1/sessions", headers=bearer(token)).status_code == 429
    assert api.get("/api/v1/sessions", headers=bearer(other)).status_code == 200
    with store.db.connect() as conn:
        rows = conn.execute(sa.select(t.orders.c.quantity, t.orders.c.idempotency_key)
                            .where(t.orders.c.session_id == session["id"])).all()
    assert sorted(q for q, _ in rows) == [1, 2] and all(k != key for _, k in rows)
    after = store.totals.read(session_id=session["id"])
    assert (after.figures.orders, after.figures.amount_fen, after.version) == (
        before.figures.orders, before.figures.amount_fen, before.version) == (2, 3 * 6980, before.version)


def test_the_public_widget_is_limited_per_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_WIDGET="3 per minute")
    token = add_user(app, "host")
    owner = client_from(app, "198.51.100.2")
    key = owner.post("/api/v1/sessions", json=APRICOT_SESSION, headers=bearer(token)).json["widget_key"]
    viewer = client_from(app, "203.0.113.7")
    assert viewer.get(f"/widget/{key}.json").status_code == 200
    assert viewer.get(f"/widget/{key}").status_code == 200  # page and JSON share the address's budget
    assert viewer.get(f"/widget/{key}.json").status_code == 200
    refused = viewer.get(f"/widget/{key}.json")
    assert_limited_json(refused, 60)
    assert refused.headers["Access-Control-Allow-Origin"] == "*"  # the partner's page can read why
    assert "Set-Cookie" not in refused.headers
    page = viewer.get(f"/widget/{key}?lang=en", headers={"Accept": "text/html"})
    assert page.status_code == 429 and "Too many requests" in page.text and "Set-Cookie" not in page.headers
    assert client_from(app, "203.0.113.8").get(f"/widget/{key}.json").status_code == 200


def test_the_widget_limit_is_shared_by_apps_on_the_same_redis(make_app: Callable[..., Flask]) -> None:
    """Widget reads take the lean path (``_brake``): counted in Flask-Limiter's Redis keys all the same."""
    one, two = (client_from(make_app(RATE_LIMIT_WIDGET="4 per minute"), "203.0.113.7") for _ in range(2))
    assert [c.get("/widget/no-such-key.json").status_code for c in (one, two, one, two)] == [404] * 4
    assert_limited_json(one.get("/widget/no-such-key.json"), 60)
    assert two.get("/widget/no-such-key").status_code == 429
    assert client_from(make_app(RATE_LIMIT_WIDGET="4 per minute"), "203.0.113.8").get(
        "/widget/no-such-key.json").status_code == 404


def test_redis_down_the_widget_limit_counts_in_memory(make_app: Callable[..., Flask]) -> None:
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_WIDGET="2 per minute")
    reader = client_from(app, "203.0.113.7")
    assert [reader.get("/widget/no-such-key.json").status_code for _ in range(2)] == [404, 404]
    assert_limited_json(reader.get("/widget/no-such-key.json"), 60)
    assert client_from(app, "203.0.113.8").get("/widget/no-such-key.json").status_code == 404


def test_probes_metrics_and_static_files_are_never_limited(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_LOGIN_IP="1 per minute", RATE_LIMIT_LOGIN_NAME="1 per minute",
                   RATE_LIMIT_BAD_TOKEN="1 per minute", RATE_LIMIT_API_TOKEN="1 per minute",
                   RATE_LIMIT_WIDGET="1 per minute")
    client = client_from(app, "203.0.113.7")
    for _ in range(4):
        assert client.get("/healthz").status_code == 200
        assert client.get("/livez").status_code == 200
        assert client.get("/metrics").status_code == 200
        with client.get("/static/css/app.css", headers={"Accept-Encoding": "identity"}) as static:
            assert static.status_code == 200
    # ...while the limits themselves are on: the second bad token is refused.
    assert client.get("/api/v1/sessions").status_code == 401
    assert client.get("/api/v1/sessions").status_code == 429


def test_forwarded_addresses_count_only_behind_trusted_proxies(make_app: Callable[..., Flask]) -> None:
    direct = make_app(RATE_LIMIT_BAD_TOKEN="2 per minute")
    client = client_from(direct, "127.0.0.1")
    # Without trusted proxies a client cannot pick its address with X-Forwarded-For.
    codes = [client.get("/api/v1/sessions", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
             for i in range(3)]
    assert codes == [401, 401, 429]

    proxied = make_app(RATE_LIMIT_BAD_TOKEN="2 per minute", TRUSTED_PROXIES=1)
    nginx = client_from(proxied, "127.0.0.1")
    # Behind one proxy the address it appended is the client's (whatever the client claimed before it).
    codes = [nginx.get("/api/v1/sessions", headers={"X-Forwarded-For": f"1.2.3.4, 10.0.1.{i}"}).status_code
             for i in range(3)]
    assert codes == [401, 401, 401]
    same = [nginx.get("/api/v1/sessions", headers={"X-Forwarded-For": f"10.0.{i}.1, 10.0.2.2"}).status_code
            for i in range(3)]
    assert same == [401, 401, 429]


def test_limits_are_shared_by_apps_on_the_same_redis(make_app: Callable[..., Flask]) -> None:
    one = client_from(make_app(RATE_LIMIT_BAD_TOKEN="4 per minute"), "203.0.113.7")
    two = client_from(make_app(RATE_LIMIT_BAD_TOKEN="4 per minute"), "203.0.113.7")
    assert [c.get("/api/v1/sessions").status_code for c in (one, two, one, two)] == [401] * 4
    assert_limited_json(one.get("/api/v1/sessions"), 60)
    assert_limited_json(two.get("/api/v1/sessions"), 60)


def test_counters_live_in_redis_and_expire(make_app: Callable[..., Flask], redis_client: redis.Redis) -> None:
    app = make_app(RATE_LIMIT_BAD_TOKEN="3 per minute")
    client_from(app, "203.0.113.7").get("/api/v1/sessions")
    keys = redis_client.keys("LIMITS:*")
    assert len(keys) == 1 and b"203.0.113.7" in keys[0], keys
    assert 0 < redis_client.ttl(keys[0]) <= 60
    assert redis_client.get(keys[0]) == b"1"


def test_redis_down_limits_in_memory_instead_of_failing(make_app: Callable[..., Flask]) -> None:
    # Nothing listens there: every Redis call fails at once (connection refused).
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_LOGIN_NAME="2 per minute",
                   RATE_LIMIT_BAD_TOKEN="30 per minute", RATE_LIMIT_API_TOKEN="1000 per minute")
    token = add_user(app, "aygul")
    client = client_from(app, "203.0.113.7")
    assert client.get("/livez").status_code == 200
    assert client.get("/healthz").json == {"db": "ok", "redis": "down"}
    assert client.get("/api/v1/sessions", headers=bearer(token)).status_code == 200  # the database only
    assert client.get("/api/v1/sessions", headers=bearer("wrong")).status_code == 401
    assert try_login(client, "aygul", "guess").status_code == 200
    assert try_login(client, "aygul", "guess").status_code == 200
    # The process still counts, in its own memory, until Redis answers again.
    assert try_login(client, "aygul", PASSWORD).status_code == 429


def test_limits_can_be_turned_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_ENABLED=False, RATE_LIMIT_BAD_TOKEN="1 per minute", RATE_LIMIT_LOGIN_NAME="1 per minute")
    add_user(app, "aygul")
    client = client_from(app, "203.0.113.7")
    assert [client.get("/api/v1/sessions").status_code for _ in range(3)] == [401] * 3
    assert [try_login(client, "aygul", "guess").status_code for _ in range(3)] == [200] * 3


def test_a_large_token_limit_is_counted_in_blocks_and_still_holds(
    make_app: Callable[..., Flask], redis_client: redis.Redis
) -> None:
    """300 per minute: each process takes 3 hits per Redis call; two processes together serve at
    most the limit, and refuse at most a block each early."""
    apps = [make_app(RATE_LIMIT_API_TOKEN="300 per minute") for _ in range(2)]
    token = add_user(apps[0], "host")
    clients = [client_from(app, "198.51.100.2") for app in apps]
    served = [0, 0]
    refused = [False, False]
    while not all(refused):
        for i, client in enumerate(clients):
            if refused[i]:
                continue
            status = client.get("/api/v1/sessions", headers=bearer(token)).status_code
            if status == 429:
                refused[i] = True
            else:
                assert status == 200
                served[i] += 1
    assert 300 - 2 * 3 <= sum(served) <= 300, served
    assert min(served) > 100, served  # both processes served, interleaved
    (key,) = redis_client.keys("LIMITS:*api-token*")
    assert int(redis_client.get(key)) <= 300 + 2 * 3 + 2 * 3  # the blocks taken, including the refused ones


def test_concurrent_orders_of_one_token_on_a_real_server(
    server_factory: Any, users: Any, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    """Two gevent workers, 32 connections, one token: counted in blocks (600 per minute: blocks of 6),
    none lost to concurrent block-taking, and the limit holds across the workers."""
    monkeypatch.setenv("LIVESALE_RATE_LIMIT_API_TOKEN", "600 per minute")
    server = server_factory(workers=2)
    token = users.token("host")
    session = requests.post(f"{server.url}/api/v1/sessions", json=APRICOT_SESSION, headers=bearer(token), timeout=5)
    sid = session.json()["id"]
    assert requests.post(f"{server.url}/api/v1/sessions/{sid}/start", headers=bearer(token), timeout=5).ok
    post_orders(server.url, token, sid, [1] * 400, threads=32)  # asserts a 201 for each
    (key,) = redis_client.keys("LIMITS:*api-token*")
    # 402 requests counted, plus at most a block held by each worker (the window is a minute).
    assert 402 <= int(redis_client.get(key)) <= 402 + 2 * 6

    def status(_: int) -> int:
        with requests.Session() as http:
            r = http.post(f"{server.url}/api/v1/sessions/{sid}/orders", json={"sku": "APRICOT-5KG", "quantity": 1},
                          headers=bearer(token), timeout=10)
            return r.status_code

    with ThreadPoolExecutor(32) as pool:
        more = Counter(pool.map(status, range(300)))
    assert set(more) == {201, 429}, more
    assert 600 - 2 * 6 <= 402 + more[201] <= 600, more
