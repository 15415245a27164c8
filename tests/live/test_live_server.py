"""The /live namespace over the wire: a real python-socketio client against ``gunicorn -k gevent``.

What the test-client tests (test_live_namespace.py) cannot see: the background
ticker's coalescing in real time, reconnection, and the refusals done by
Engine.IO itself (origin, message size) and at connect (token).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import socketio
import sqlalchemy as sa

from tests.conftest import Api, Users
from tests.live.conftest import NS, PRICE, Viewer, post_orders  # noqa: F401 (used by other modules)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_join_gets_a_snapshot(
    server_factory: Any, users: Users, host_api: Api, live_session: dict[str, Any], viewers: Any, transport: str
) -> None:
    server = server_factory()
    token = users.token("host")
    post_orders(server.url, token, live_session["id"], [2, 1])
    viewer = viewers().connect(server.url, token, transport=transport)
    assert viewer.client.transport() == transport
    viewer.join({"session": live_session["id"]})
    snap = viewer.wait_totals(lambda d: True, timeout=5)
    assert snap["session_id"] == live_session["id"]
    assert snap["orders"] == 2 and snap["amount_fen"] == 3 * PRICE
    assert snap["started_at"] and snap["planned_duration_min"] == 120
    api_totals = host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json
    assert {k: snap[k] for k in api_totals} == api_totals
    assert viewer.wait_for(lambda: bool(viewer.of("orders")), 2)
    assert sorted(e["quantity"] for e in viewer.of("orders")[0]) == [1, 2]
    assert viewer.of("error") == []


def _pushed_versions_rise(viewer: Viewer) -> None:
    """Versions never go back, and change with the figures: no ticker's push is delivered twice."""
    seen = viewer.of("totals")
    for before, after in zip(seen, seen[1:], strict=False):
        assert after["version"] >= before["version"], (before, after)
        if (after["orders"], after["amount_fen"]) != (before["orders"], before["amount_fen"]):
            assert after["version"] > before["version"], (before, after)
        assert after["orders"] >= before["orders"], (before, after)
    # A repeat of one version is the 5 s heartbeat; two tickers would repeat most of them.
    versions = [d["version"] for d in seen]
    assert len(versions) - len(set(versions)) <= 1, versions


def test_a_burst_is_coalesced_into_a_few_exact_totals_with_rising_versions(
    server_factory: Any, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    server = server_factory()
    token = users.token("host")
    viewer = viewers().connect(server.url, token)
    viewer.join({"session": live_session["id"]})
    first = viewer.wait_totals(lambda d: True)
    assert first["orders"] == 0

    quantities = [1 + i % 3 for i in range(100)]
    started = time.monotonic()
    acks = post_orders(server.url, token, live_session["id"], quantities)
    burst_s = max(acks) - started
    # The exact totals arrive without any further order (a generous deadline, not a speed claim).
    final = viewer.wait_totals(lambda d: d["orders"] == 100, timeout=20)
    # A marker order after the burst: everything pushed before its totals belongs to the burst,
    # so the count below is complete without sleeping for stragglers.
    post_orders(server.url, token, live_session["id"], [1])
    viewer.wait_totals(lambda d: d["orders"] == 101, timeout=20)

    pushed = [d for d in viewer.of("totals")[1:] if d["orders"] <= 100]
    # One tick (0.1 s) coalesces whatever came in it: a burst of ~1 s gives ~10 events, not 100.
    # Bounded by the burst's own duration, so a slow machine (more ticks) does not fail it.
    assert 1 <= len(pushed) <= max(20, 2 * int(burst_s / 0.1) + 2), (len(pushed), f"burst took {burst_s:.2f} s")
    assert pushed[-1] == final  # the last one is the exact one
    assert final["amount_fen"] == sum(quantities) * PRICE

    _pushed_versions_rise(viewer)
    # The feed ticker got the new orders too, at most 20 per event.
    assert viewer.of("orders") and all(0 < len(batch) <= 20 for batch in viewer.of("orders"))


def test_reconnecting_gets_a_fresh_snapshot(
    server_factory: Any, users: Users, host_api: Api, live_session: dict[str, Any], viewers: Any
) -> None:
    server = server_factory()
    token = users.token("host")
    sid = live_session["id"]
    viewer = viewers().connect(server.url, token)
    viewer.join({"session": sid})
    viewer.wait_totals(lambda d: d["orders"] == 0)

    # Away for a while: orders come in meanwhile; back, it joins again and is up to date.
    viewer.client.disconnect()
    post_orders(server.url, token, sid, [1, 2, 3])
    viewer.events.clear()
    viewer.connect(server.url, token)
    viewer.join({"session": sid})
    snap = viewer.wait_totals(lambda d: True)
    assert snap["orders"] == 3 and snap["amount_fen"] == 6 * PRICE


def test_automatic_reconnection_after_a_server_restart_on_the_same_port(
    server_factory: Any, users: Users, host_api: Api, live_session: dict[str, Any], viewers: Any
) -> None:
    server = server_factory()
    token = users.token("host")
    sid = live_session["id"]
    viewer = viewers(reconnection=True).connect(server.url, token)
    viewer.join({"session": sid})
    viewer.wait_totals(lambda d: d["orders"] == 0)

    server.kill()
    assert viewer.wait_for(lambda: viewer.disconnects == 1, 5)
    # An order taken while the server is down (by another process on the same backends).
    assert host_api.post(f"/api/v1/sessions/{sid}/orders",
                         json={"sku": "APRICOT-5KG", "quantity": 4, "buyer_region": "上海"}).status_code == 201
    restarted = server_factory(port=server.port)
    assert restarted.url == server.url
    assert viewer.wait_for(lambda: viewer.connects == 2, 10), "python-socketio did not reconnect"
    viewer.join({"session": sid})  # rooms do not survive a restart: the client joins again
    snap = viewer.wait_totals(lambda d: d["orders"] == 1, timeout=5)
    assert snap["amount_fen"] == 4 * PRICE
    # And pushes flow again from the new server's ticker.
    post_orders(restarted.url, token, sid, [1])
    viewer.wait_totals(lambda d: d["orders"] == 2, timeout=3)


def test_a_viewer_on_one_process_sees_orders_posted_to_another(
    server_factory: Any, users: Users, live_session: dict[str, Any], viewers: Any, database_url: str
) -> None:
    """Two servers on the same database and Redis, as behind a load balancer: one ticker
    (elected in Redis) pushes through the Socket.IO message queue to viewers of both."""
    server_a = server_factory(shared=True)
    server_b = server_factory(shared=True)
    token = users.token("host")
    sid = live_session["id"]
    on_a = viewers().connect(server_a.url, token)
    on_b = viewers().connect(server_b.url, token)
    for viewer in (on_a, on_b):
        viewer.join({"session": sid})
        viewer.wait_totals(lambda d: d["orders"] == 0)

    quantities = [1 + i % 4 for i in range(60)]
    post_orders(server_a.url, token, sid, quantities[:40])
    post_orders(server_b.url, token, sid, quantities[40:])
    expected = sum(quantities) * PRICE
    for viewer in (on_a, on_b):
        final = viewer.wait_totals(lambda d: d["orders"] == 60, timeout=3)
        assert final["amount_fen"] == expected
    time.sleep(0.3)
    for viewer in (on_a, on_b):
        assert viewer.of("totals")[-1]["amount_fen"] == expected  # nothing older arrived after it
        _pushed_versions_rise(viewer)

    # Process A crashes: nothing it acknowledged is lost, and B keeps serving and pushing.
    server_a.kill()
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*), sum(amount_fen) FROM orders WHERE session_id = :s"),
                                  {"s": sid}).one()
    finally:
        engine.dispose()
    assert tuple(stored) == (60, expected)
    post_orders(server_b.url, token, sid, [5])
    after = on_b.wait_totals(lambda d: d["orders"] == 61, timeout=5)
    assert after["amount_fen"] == expected + 5 * PRICE


def test_a_two_worker_server_pushes_to_every_viewer(
    server_factory: Any, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    """``livesale serve`` on two cores: viewers land on either worker; all see the exact total."""
    server = server_factory(workers=2)
    token = users.token("host")
    sid = live_session["id"]
    watching = [viewers().connect(server.url, token) for _ in range(6)]
    for viewer in watching:
        viewer.join({"session": sid})
        viewer.wait_totals(lambda d: d["orders"] == 0)
    quantities = [2] * 30
    post_orders(server.url, token, sid, quantities)
    for viewer in watching:
        assert viewer.wait_totals(lambda d: d["orders"] == 30, timeout=3)["amount_fen"] == 60 * PRICE
        _pushed_versions_rise(viewer)


def test_a_bad_join_gets_an_error_and_no_room(
    server_factory: Any, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    server = server_factory()
    token = users.token("host")
    sid = live_session["id"]
    viewer = viewers().connect(server.url, token)
    anonymous = viewers().connect(server.url)
    viewer.join({"session": 999_999})
    viewer.join({"sessions": sid})
    viewer.join({"widget": "no-such-widget"})
    anonymous.join({"session": sid})
    assert viewer.wait_for(lambda: len(viewer.of("error")) == 3, 5)
    assert anonymous.wait_for(lambda: len(anonymous.of("error")) == 1, 5)
    # Events are handled concurrently (a greenlet each): the errors may come in any order.
    assert sorted(e["code"] for e in viewer.of("error")) == ["invalid", "not_found", "not_found"]
    assert anonymous.of("error")[0]["code"] in {"forbidden", "unauthorized"}

    post_orders(server.url, token, sid, [1, 1])
    time.sleep(0.6)  # several ticks
    assert viewer.of("totals") == [] and viewer.of("orders") == []
    assert anonymous.of("totals") == [] and anonymous.of("orders") == []
    assert viewer.client.connected and anonymous.client.connected  # an error, not a disconnect


def test_a_bad_token_is_refused_at_connect(server_factory: Any, users: Users, viewers: Any) -> None:
    server = server_factory()
    users.token("host")
    with pytest.raises(socketio.exceptions.ConnectionError):
        viewers().connect(server.url, "not-a-token")
    with pytest.raises(socketio.exceptions.ConnectionError):
        viewers().connect(server.url, "not-a-token", transport="polling")


def test_a_foreign_origin_is_refused(server_factory: Any, users: Users, viewers: Any) -> None:
    server = server_factory()
    token = users.token("host")
    for transport in ("websocket", "polling"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            viewers(origin="http://evil.example").connect(server.url, token, transport=transport)
        # The app's own origin is fine.
        assert viewers(origin=server.url).connect(server.url, token, transport=transport).client.connected


def test_an_oversized_message_disconnects(
    server_factory: Any, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    server = server_factory()
    token = users.token("host")
    viewer = viewers().connect(server.url, token)
    viewer.join({"widget": "x" * 17_000})  # > 16 KB, the configured cap
    assert viewer.wait_for(lambda: viewer.disconnects == 1, 5), "an oversized message was accepted"
    assert viewer.of("error") == [] and viewer.of("totals") == []
    # A message under the cap is handled (and answered with an error, it is not a valid key).
    other = viewers().connect(server.url, token)
    other.join({"widget": "x" * 15_000})
    assert other.wait_for(lambda: bool(other.of("error")), 5)
    assert other.client.connected


def test_installations_on_other_redis_databases_do_not_hear_each_others_pushes() -> None:
    """Pub/sub ignores the database number: the message queue's channel carries it."""
    from livesale.extensions import socketio_channel

    names = {socketio_channel(url) for url in ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/14",
                                                "redis://127.0.0.1:6379/15", "unix:///tmp/r.sock?db=15")}
    assert names == {"livesale-socketio", "livesale-socketio-db14", "livesale-socketio-db15"}
