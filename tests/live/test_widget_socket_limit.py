"""LIVESALE_WIDGET_SOCKET_LIMIT on a real server: past it widgets are told to poll, hosts never are.

A server allowed one widget socket: the first widget joins; the second is
refused with "poll" (the widget then reads its JSON, tests/browser); a host
with a token and a host logged in with the page's cookie still connect and
get their session's totals; when the first widget leaves, its slot is free.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
import socketio

from tests.conftest import Users
from tests.live.conftest import NS, PRICE
from tests.live.serving import wait_until
from tests.web.test_pages import PASSWORD


@pytest.fixture
def server(server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LIVESALE_WIDGET_SOCKET_LIMIT", "1")
    return server_factory()


def refusal(url: str) -> Any:
    """Connect as a widget does (no token, no cookie); the refusal's data, or None if it connected."""
    client = socketio.Client(reconnection=False)
    refused: list[Any] = []
    done = threading.Event()
    client.on("connect_error", lambda data: (refused.append(data), done.set()), namespace=NS)
    client.on("connect", done.set, namespace=NS)
    try:
        try:
            client.connect(url, namespaces=[NS], transports=["websocket"], wait_timeout=5)
        except socketio.exceptions.ConnectionError:
            pass
        assert done.wait(5), "neither connected nor refused"
        return refused[0] if refused else None
    finally:
        client.disconnect()
        client.shutdown()


def test_widgets_past_the_limit_are_told_to_poll_hosts_never(
    server: Any, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    sid, key = live_session["id"], live_session["widget_key"]
    first = viewers().connect(server.url)
    first.join({"widget": key})
    assert first.wait_totals(lambda d: d["orders"] == 0)["amount_fen"] == 0

    # What widget.js reads: the message "poll" (the data say it to people).
    assert refusal(server.url) == {"message": "poll", "data": {"code": "poll", "message": (
        "this server holds as many widget connections as it may: read the JSON")}}
    # Hosts and officials: with a token, or logged in (the page's cookie), never refused nor counted.
    host = viewers().connect(server.url, users.token("host"))
    host.join({"session": sid})
    with requests.Session() as http:
        page = http.get(f"{server.url}/login", timeout=5).text
        csrf = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        logged = http.post(f"{server.url}/login", data={"name": "host", "password": PASSWORD, "csrf_token": csrf},
                           allow_redirects=False, timeout=5)
        assert logged.status_code == 302, logged.text
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    page_viewer = viewers()
    page_viewer.client.connect(server.url, namespaces=[NS], transports=["websocket"], headers={"Cookie": cookie},
                               wait_timeout=5)
    page_viewer.join({"session": sid})
    r = requests.post(f"{server.url}/api/v1/sessions/{sid}/orders", json={"sku": "APRICOT-5KG", "quantity": 2},
                      headers={"Authorization": f"Bearer {users.token('host')}"}, timeout=5)
    assert r.status_code == 201, r.text
    for viewer in (first, host, page_viewer):
        assert viewer.wait_totals(lambda d: d["orders"] == 1)["amount_fen"] == 2 * PRICE
    # Still one widget socket held: the next widget is told to poll; once the first leaves, it may connect.
    assert refusal(server.url) is not None
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert "livesale_widget_sockets_refused_total 2.0" in metrics
    first.close()
    assert first.wait_for(lambda: first.disconnects == 1)
    # The server sees the first widget leave a moment after it closed: asked again until then.
    wait_until(lambda: refusal(server.url) is None, 10, "a widget connects once the first one left")


def test_the_default_is_half_of_the_worker_connections() -> None:
    from livesale.config import load_settings, widget_socket_limit

    assert widget_socket_limit(load_settings({})) == 1000
    assert widget_socket_limit(load_settings({"LIVESALE_WORKER_CONNECTIONS": "4000"})) == 2000
    assert widget_socket_limit(load_settings({"LIVESALE_WORKER_CONNECTIONS": "4000",
                                              "LIVESALE_WIDGET_SOCKET_LIMIT": "7"})) == 7


def test_joins_per_connection_are_limited(app: Any, live_session: dict[str, Any]) -> None:
    """JOIN_RATE_LIMIT (10) joins per connection per 10 s; the 11th is refused, the connection stays."""
    from livesale.extensions import socketio as server_io

    client = server_io.test_client(app, namespace=NS)
    try:
        for _ in range(10):
            client.emit("join", {"widget": live_session["widget_key"]}, namespace=NS)
        assert [e["name"] for e in client.get_received(NS)].count("totals") == 10
        client.emit("join", {"widget": live_session["widget_key"]}, namespace=NS)
        received = client.get_received(NS)
        assert [(e["name"], e["args"][0]["code"]) for e in received] == [("error", "rate_limited")]
        assert client.is_connected(NS)
    finally:
        client.disconnect(namespace=NS)
