"""The /live namespace with Flask-SocketIO's test client: join, snapshot, coalesced pushes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from livesale.extensions import socketio
from tests.conftest import Api, Users
from tests.web.test_database_outage import database_down


def events(client: Any, name: str) -> list[Any]:
    return [e["args"][0] for e in client.get_received("/live") if e["name"] == name]


def received(client: Any) -> list[dict[str, Any]]:
    return client.get_received("/live")


@pytest.fixture
def ticker(app: Any) -> Any:
    return app.extensions["livesale.ticker"]


def connect(app: Any, token: str | None = None) -> Any:
    auth = {"token": token} if token else None
    return socketio.test_client(app, namespace="/live", auth=auth)


def order(api: Api, session: dict[str, Any], quantity: int = 1, region: str = "浙江杭州") -> dict[str, Any]:
    r = api.post(f"/api/v1/sessions/{session['id']}/orders",
                 json={"sku": "APRICOT-5KG", "quantity": quantity, "buyer_region": region})
    assert r.status_code == 201, r.json
    return r.json


def test_join_gets_a_snapshot_at_once(app: Any, users: Users, host_api: Api, live_session: dict[str, Any]) -> None:
    order(host_api, live_session, 2)
    client = connect(app, users.token("host"))
    assert client.is_connected("/live")
    client.emit("join", {"session": live_session["id"]}, namespace="/live")
    got = received(client)
    totals = [e["args"][0] for e in got if e["name"] == "totals"]
    assert len(totals) == 1
    assert totals[0]["amount_fen"] == 2 * 6980 and totals[0]["session_id"] == live_session["id"]
    assert totals[0] == {**host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json,
                         "started_at": totals[0]["started_at"], "planned_duration_min": 120,
                         "timeline": totals[0]["timeline"]}
    assert sum(m["amount_fen"] for m in totals[0]["timeline"]) == 2 * 6980
    feed = [e["args"][0] for e in got if e["name"] == "orders"]
    assert feed and feed[0][-1]["name"] == "鲜杏 5斤" and feed[0][-1]["region"] == "浙江杭州"
    assert set(feed[0][-1]) == {"sku", "name", "unit", "quantity", "region", "at_ms"}  # no buyer, no order id


def test_a_burst_of_orders_is_pushed_as_one_exact_totals_event(
    app: Any, users: Users, host_api: Api, live_session: dict[str, Any], ticker: Any
) -> None:
    client = connect(app, users.token("host"))
    client.emit("join", {"session": live_session["id"]}, namespace="/live")
    first = events(client, "totals")[0]
    for i in range(100):
        order(host_api, live_session, 1 + i % 3)
    assert events(client, "totals") == []  # nothing is pushed per order
    ticker.tick()
    pushed = events(client, "totals")
    assert len(pushed) == 1
    expected = sum(1 + i % 3 for i in range(100)) * 6980
    assert pushed[0]["amount_fen"] == expected and pushed[0]["orders"] == 100
    assert pushed[0]["version"] > first["version"]
    ticker.tick()
    assert events(client, "totals") == []  # nothing changed: nothing sent (until the heartbeat)


def test_ended_session_pushes_final_results(
    app: Any, users: Users, host_api: Api, live_session: dict[str, Any], ticker: Any
) -> None:
    order(host_api, live_session, 3)
    client = connect(app, users.token("official"))
    client.emit("join", {"session": live_session["id"]}, namespace="/live")
    live_version = events(client, "totals")[0]["version"]
    host_api.post(f"/api/v1/sessions/{live_session['id']}/end")
    ticker.tick()
    final = events(client, "totals")
    assert final[-1]["status"] == "ended" and final[-1]["amount_fen"] == 3 * 6980
    assert final[-1]["version"] > live_version


def test_screens_waiting_for_a_scheduled_session_learn_its_start_without_an_order(
    app: Any, users: Users, host_api: Api, ticker: Any
) -> None:
    from tests.conftest import APRICOT_SESSION

    created = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    viewer = connect(app, users.token("official"))
    viewer.emit("join", {"session": created["id"]}, namespace="/live")
    widget = connect(app)
    widget.emit("join", {"widget": created["widget_key"]}, namespace="/live")
    assert events(viewer, "totals")[0]["status"] == "scheduled"
    assert events(widget, "totals")[0]["status"] == "scheduled"
    ticker.tick()  # whatever a first tick sends (a heartbeat) goes before the start
    events(viewer, "totals"), events(widget, "totals")
    assert host_api.post(f"/api/v1/sessions/{created['id']}/start").status_code == 200
    ticker.tick()
    assert [t["status"] for t in events(viewer, "totals")] == ["live"]
    assert [t["status"] for t in events(widget, "totals")] == ["live"]


def test_widget_key_joins_read_only_without_login(app: Any, live_session: dict[str, Any], host_api: Api,
                                                  ticker: Any) -> None:
    client = connect(app)
    client.emit("join", {"widget": live_session["widget_key"]}, namespace="/live")
    snapshot = events(client, "totals")[0]
    assert snapshot["title"] == live_session["title"] and snapshot["orders"] == 0
    order(host_api, live_session)
    ticker.tick()
    pushed = events(client, "totals")
    assert pushed and pushed[-1]["orders"] == 1
    # The public payloads: no regions, no ids, no buyer.
    for payload in [snapshot, *pushed, *events(client, "orders")]:
        text = json.dumps(payload, ensure_ascii=False)
        assert "region" not in text and "session_id" not in text and "浙江" not in text, text


def test_a_rotated_widget_key_lets_its_viewers_go(app: Any, live_session: dict[str, Any], host_api: Api) -> None:
    client = connect(app)
    client.emit("join", {"widget": live_session["widget_key"]}, namespace="/live")
    assert events(client, "totals")
    assert host_api.post(f"/api/v1/sessions/{live_session['id']}/widget/rotate").status_code == 200
    assert [e["name"] for e in received(client)] == ["revoked"]
    client.emit("join", {"widget": live_session["widget_key"]}, namespace="/live")
    assert [e["args"][0]["code"] for e in received(client) if e["name"] == "error"] == ["not_found"]


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"session": 999999}, "not_found"),
        ({"widget": "no-such-key"}, "not_found"),
        ({"session": "1"}, "invalid"),
        ({"session": 1, "widget": "x"}, "invalid"),
        ("join me", "invalid"),
    ],
)
def test_bad_join_gets_an_error_and_no_room(
    app: Any, users: Users, live_session: dict[str, Any], payload: Any, code: str, ticker: Any, host_api: Api
) -> None:
    client = connect(app, users.token("official"))
    client.emit("join", payload, namespace="/live")
    got = received(client)
    assert [e["name"] for e in got] == ["error"] and got[0]["args"][0]["code"] == code
    order(host_api, live_session)
    ticker.tick()
    assert events(client, "totals") == []  # it is in no room


def test_session_join_needs_a_person_and_the_right_host(app: Any, users: Users, live_session: dict[str, Any]) -> None:
    anonymous = connect(app)
    anonymous.emit("join", {"session": live_session["id"]}, namespace="/live")
    assert received(anonymous)[0]["args"][0]["code"] == "forbidden"
    other_host = connect(app, users.token("host", "other-host"))
    other_host.emit("join", {"session": live_session["id"]}, namespace="/live")
    assert received(other_host)[0]["args"][0]["code"] == "forbidden"


def test_a_bad_token_is_refused_at_connect(app: Any) -> None:
    client = connect(app, "ls_not-a-real-token")
    assert not client.is_connected("/live")


def test_joins_are_rate_limited(app: Any, users: Users, live_session: dict[str, Any]) -> None:
    client = connect(app, users.token("host"))
    for _ in range(12):
        client.emit("join", {"session": live_session["id"]}, namespace="/live")
    codes = [e["args"][0].get("code") for e in received(client) if e["name"] == "error"]
    assert codes == ["rate_limited", "rate_limited"]


def test_a_join_while_the_database_is_down_is_refused_as_unavailable_then_passes(
    app: Any, users: Users, live_session: dict[str, Any], host_api: Api, store: Any
) -> None:
    """Not left unanswered (the screen would wait in no room): an ``unavailable`` error, which the
    pages' live-join.js retries, and a join after the outage gets its snapshot."""
    order(host_api, live_session, 2)
    client = connect(app, users.token("host"))
    with database_down(store):
        client.emit("join", {"session": live_session["id"]}, namespace="/live")
        got = received(client)
        assert [e["name"] for e in got] == ["error"] and got[0]["args"][0]["code"] == "unavailable"
    client.emit("join", {"session": live_session["id"]}, namespace="/live")
    assert [t["amount_fen"] for t in events(client, "totals")] == [2 * 6980]
