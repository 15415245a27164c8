"""The host screen and the order console in a real browser (Chromium) against a real server.

Debian's Chromium is driven by Playwright (see ``conftest.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import APRICOT_SESSION, Users

PASSWORD = "correct horse battery"
PRICE = APRICOT_SESSION["products"][0]["unit_price_fen"]


@pytest.fixture
def server(server_factory: Any) -> Any:
    # Two workers, as ``livesale serve`` runs on this two-core machine: the page's
    # WebSocket lands on either one and pushes cross between them through Redis.
    return server_factory(workers=2)


@pytest.fixture
def context(browser: Any, server: Any) -> Iterator[Any]:
    """A phone-sized page, closed before the server stops (open websockets slow its shutdown)."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 412, "height": 860})
    context.set_default_timeout(10_000)
    yield context
    context.close()


class ServerApi:
    """The real server's API with the host's bearer token."""

    def __init__(self, url: str, token: str, session_id: int):
        self.url = f"{url}/api/v1/sessions/{session_id}"
        self.headers = {"Authorization": f"Bearer {token}"}

    def order(self, quantity: int, region: str = "浙江杭州") -> dict[str, Any]:
        r = requests.post(f"{self.url}/orders", json={"sku": "APRICOT-5KG", "quantity": quantity, "buyer_region": region},
                          headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())}, timeout=5)
        assert r.status_code == 201, r.text
        return r.json()

    def totals(self) -> dict[str, Any]:
        r = requests.get(f"{self.url}/totals", headers=self.headers, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def api(server: Any, users: Users, live_session: dict[str, Any]) -> ServerApi:
    return ServerApi(server.url, users.token("host"), live_session["id"])


def login(page: Any, server: Any, next_path: str) -> None:
    page.goto(f"{server.url}/login?next={next_path}")
    page.fill('input[name="name"]', "host")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{server.url}{next_path}")


def test_host_screen_shows_a_new_total_within_a_second(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any]
) -> None:
    api.order(3)
    page = context.new_page()
    login(page, server, f"/live/{live_session['id']}")
    # Server-rendered: the figures are there before any push.
    assert page.locator("#total").get_attribute("data-fen") == str(3 * PRICE)
    assert "总销售额" in page.content()
    page.wait_for_selector('#conn[data-state="ok"]')
    started = time.monotonic()
    api.order(2, "新疆喀什")
    # Predicates are functions: the pages' CSP forbids the eval of a plain expression after its first poll.
    page.wait_for_function(f"() => document.getElementById('total').dataset.fen === '{5 * PRICE}'", timeout=1000)
    assert time.monotonic() - started < 1.0
    assert page.locator("#orders").inner_text() == "2"
    page.wait_for_function("() => document.getElementById('feed').innerText.includes('2 × 鲜杏 5斤 — 新疆喀什')",
                           timeout=2000)
    assert page.locator('#products [data-sku="APRICOT-5KG"] [data-field="stock"]').inner_text() == "剩余 95"


def test_host_screen_reads_totals_over_http_when_websockets_are_blocked(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any]
) -> None:
    """A proxy that refuses WebSockets: the indicator says so, and the figures still move (5 s polling)."""
    refused: list[str] = []

    def refuse(ws: Any) -> None:
        refused.append(ws.url)
        ws.close(code=1011, reason="blocked by a proxy")

    page = context.new_page()
    page.route_web_socket("**/socket.io/**", refuse)
    login(page, server, f"/live/{live_session['id']}")
    page.wait_for_selector('#conn[data-state="stale"]')
    api.order(4)
    page.wait_for_function(f"() => document.getElementById('total').dataset.fen === '{4 * PRICE}'", timeout=8000)
    assert refused, "the page never tried its WebSocket"
    assert page.locator("#conn").get_attribute("data-state") == "stale"


def test_host_screen_turns_stale_when_updates_stop_on_a_live_connection(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any]
) -> None:
    """Connected, but nothing arrives (a stuck proxy, a frozen server): after 10 s the screen says "stale"."""
    state = {"mute": False}

    def relay(ws: Any) -> None:
        upstream = ws.connect_to_server()
        ws.on_message(lambda message: upstream.send(message))

        def down(message: Any) -> None:
            # Engine.IO pings still pass (the connection stays up); events stop.
            if not state["mute"] or not str(message).startswith("42"):
                ws.send(message)

        upstream.on_message(down)

    page = context.new_page()
    page.route_web_socket("**/socket.io/**", relay)
    login(page, server, f"/live/{live_session['id']}")
    page.wait_for_selector('#conn[data-state="ok"]')
    state["mute"] = True
    started = time.monotonic()
    page.wait_for_selector('#conn[data-state="stale"]', timeout=15_000)
    assert time.monotonic() - started >= 9.0  # not before 10 s without an update (1 s ticks)
    assert page.locator("#conn").inner_text().strip() == "数据未更新：已超过 10 秒"
    state["mute"] = False
    api.order(1)  # the next push brings it back
    page.wait_for_selector('#conn[data-state="ok"]', timeout=5_000)
    assert page.locator("#total").get_attribute("data-fen") == str(PRICE)


def test_host_screen_joins_again_when_a_join_is_refused_for_a_while(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any]
) -> None:
    """Connected, but the join refused (Redis down when the screen (re)connected): the screen must not
    wait forever in an empty room. It tries again (2 s, then doubling) and goes live when a join passes."""
    state = {"refuse": 2, "joins": 0}

    def relay(ws: Any) -> None:
        upstream = ws.connect_to_server()

        def up(message: Any) -> None:
            if str(message).startswith('42/live,["join"'):
                state["joins"] += 1
                if state["refuse"] > 0:  # answer as the server does while Redis is down
                    state["refuse"] -= 1
                    ws.send('42/live,["error",{"code":"unavailable",'
                            '"message":"the totals store (Redis) is unavailable","field":null}]')
                    return
            upstream.send(message)

        ws.on_message(up)
        upstream.on_message(lambda message: ws.send(message))

    page = context.new_page()
    page.route_web_socket("**/socket.io/**", relay)
    login(page, server, f"/live/{live_session['id']}")
    api.order(2)  # while the room is not joined: the 5 s polling shows it meanwhile
    page.wait_for_function(f"() => document.getElementById('total').dataset.fen === '{2 * PRICE}'", timeout=10_000)
    deadline = time.monotonic() + 10  # tries after 2 s, then 4 s more
    while state["joins"] < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert state["joins"] == 3 and state["refuse"] == 0  # refused twice, then joined
    page.wait_for_selector('#conn[data-state="ok"]', timeout=3000)
    api.order(1)  # and now it is in the room: pushed within a second
    page.wait_for_function(f"() => document.getElementById('total').dataset.fen === '{3 * PRICE}'", timeout=1500)
    assert page.locator("#conn").get_attribute("data-state") == "ok"


def test_console_records_an_order_by_clicking(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any]
) -> None:
    page = context.new_page()
    login(page, server, f"/console/{live_session['id']}")
    page.click('.pbtn[data-sku="APRICOT-5KG"]')
    page.click('.step[data-step="1"]')  # quantity 2
    page.fill("#region", "浙江杭州")
    page.click("#submit")
    page.wait_for_selector('#mine .mine-item[data-state="sent"]')
    totals = api.totals()
    assert (totals["orders"], totals["amount_fen"]) == (1, 2 * PRICE)
    page.wait_for_function(f"() => document.getElementById('c-total').dataset.fen === '{2 * PRICE}'")
    # Undo: a refund through the API.
    page.click("#undo")
    page.wait_for_selector('#mine .mine-item[data-state="refunded"]')
    assert api.totals()["orders"] == 0


def test_offline_orders_survive_a_reload_and_are_counted_exactly_once(
    context: Any, server: Any, api: ServerApi, live_session: dict[str, Any]
) -> None:
    api.order(1)
    page = context.new_page()
    login(page, server, f"/console/{live_session['id']}")
    page.wait_for_selector('.pbtn[data-sku="APRICOT-5KG"]')
    # The console's service worker takes the page and keeps what it needs to open offline.
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.reload()  # once controlled, the page itself passes through the worker and is kept
    page.wait_for_selector('.pbtn[data-sku="APRICOT-5KG"]')

    # Offline. Chromium's offline emulation has let a request through right after it
    # was switched on (seen about once in ten runs): every request is refused as well.
    network: list[str] = []

    def no_network(route: Any) -> None:
        network.append(route.request.url)
        route.abort("internetdisconnected")

    # The page's route sees its own requests (the orders' POSTs fall through the
    # service worker to the network); the context's sees the service worker's.
    page.route("**/*", no_network)
    context.route("**/*", no_network)
    context.set_offline(True)
    for quantity in (1, 2, 3):
        page.click('.pbtn[data-sku="APRICOT-5KG"]')
        for _ in range(quantity - 1):
            page.click('.step[data-step="1"]')
        page.click("#submit")
    page.wait_for_selector('#pending[data-count="3"]')
    assert page.locator('#mine .mine-item[data-state="pending"]').count() == 3
    assert page.locator('#net[data-state="offline"]').count() == 1

    # Reload while offline: the page comes from the service worker, the orders from localStorage.
    page.reload()
    page.wait_for_selector('#pending[data-count="3"]')
    assert page.locator('.pbtn[data-sku="APRICOT-5KG"]').count() == 1
    assert any("/console/" in url for url in network), "the reload did not even try the network"
    assert api.totals()["orders"] == 1  # nothing reached the server
    page.unroute("**/*", no_network)
    context.unroute("**/*", no_network)

    context.set_offline(False)  # the "online" event sends the pending orders
    page.wait_for_selector('#pending[data-count="0"]', state="attached")
    assert page.locator('#mine .mine-item[data-state="sent"]').count() == 3
    totals = api.totals()
    assert (totals["orders"], totals["amount_fen"]) == (4, (1 + 1 + 2 + 3) * PRICE)
    # Once: neither a reload nor the retry timer sends them again.
    page.reload()
    page.wait_for_selector('#mine .mine-item[data-state="sent"]')
    page.wait_for_timeout(500)
    assert api.totals()["orders"] == 4
