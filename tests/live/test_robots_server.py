"""Group-chat robots against a real server (``gunicorn -k gevent``, whose workers run the sender) and a real
receiver on 127.0.0.1: a server killed while it delivers a session's end delivers it after its restart, and
orders are answered while a robot's request hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.models import utcnow
from tests.conftest import APRICOT_SESSION, Users
from tests.live.conftest import post_orders
from tests.robot_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(mode="hang").start()
    yield r
    r.stop()


@pytest.fixture
def robot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the servers started after this see (``ServerProcess`` copies the environment)."""
    monkeypatch.setenv("LIVESALE_WEBHOOK_ALLOW_HTTP", "1")
    monkeypatch.setenv("LIVESALE_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("LIVESALE_PUBLIC_URL", "https://sales.example.cn")


def _api(server: Any, token: str, method: str, path: str, **kw: Any) -> Any:
    r = requests.request(method, f"{server.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"},
                         timeout=30, **kw)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _add_robot(store: Any, session_id: int, url: str) -> None:
    with write_transaction(store.db) as conn:
        conn.execute(sa.insert(t.robots).values(session_id=session_id, kind="wecom", url=url, lang="zh",
                                                created_at=utcnow()))


def _delivery(store: Any, session_id: int, key: str) -> Any:
    d, e = t.robot_deliveries, t.outbox_events
    with store.db.connect() as conn:
        return conn.execute(sa.select(d, e.c.id.label("event")).join(e, e.c.id == d.c.event_id)
                            .where(d.c.session_id == session_id, e.c.key == key)).one()


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_server_killed_while_it_delivers_the_end_delivers_it_after_restart(
        robot_env: None, server_factory: Any, users: Users, store: Any, receiver: Receiver) -> None:
    token = users.token("host")
    server = server_factory()
    sid = _api(server, token, "POST", "/sessions", json=APRICOT_SESSION)["id"]
    _api(server, token, "POST", f"/sessions/{sid}/start")
    _add_robot(store, sid, receiver.url("wecom", "?key=k"))
    _api(server, token, "POST", f"/sessions/{sid}/end")
    # The sender took the end's message to the receiver, which holds it unanswered: the server dies then.
    assert receiver.wait_for(lambda: len(receiver.requests) == 1), "the end was sent"
    event = _delivery(store, sid, "ended").event
    assert receiver.requests[0].event_tag == f"#{event}"
    server.kill()  # SIGKILL: no shutdown, no outcome recorded
    assert receiver.wait_for(lambda: receiver.requests[0].closed_at is not None), "the killed server's request ended"
    assert _delivery(store, sid, "ended").status == "pending"

    receiver.mode = "ok"
    server_factory()  # a new server on the same database: its sender takes the delivery once the claim runs out
    wait_until(lambda: _delivery(store, sid, "ended").status == "sent", 90, "the end delivered after the restart")
    taken = [r for r in receiver.requests if r.answered == "ok"]
    assert [r.event_tag for r in taken] == [f"#{event}"]
    assert taken[0].text == receiver.requests[0].text  # the repeat is the same message, with the same event id
    assert "直播结束：喀什杏子直播" in taken[0].text and f"https://sales.example.cn/sessions/{sid}/poster" in taken[0].text


def test_orders_are_answered_while_a_robot_request_hangs(
        robot_env: None, server_factory: Any, users: Users, store: Any, receiver: Receiver) -> None:
    token = users.token("host")
    server = server_factory()
    session = {**APRICOT_SESSION, "goal_fen": 6980 * 30}  # the orders below pass the goal: an event of their own
    sid = _api(server, token, "POST", "/sessions", json=session)["id"]
    _add_robot(store, sid, receiver.url("wecom", "?key=k"))
    _api(server, token, "POST", f"/sessions/{sid}/start")
    assert receiver.wait_for(lambda: len(receiver.requests) == 1), "the start was sent"
    held = receiver.requests[0]

    answered_at = post_orders(server.url, token, sid, [1] * 60)  # one order per request, 16 at a time

    # Every order was answered while the robot's request was still outstanding (the receiver still held it
    # open): no order waited for it. The sender's own deadline (10 s) would have ended it otherwise.
    assert len(answered_at) == 60 and held.closed_at is None, "an order answer waited for the robot"
    goal = _delivery(store, sid, "goal")  # written by an order, waiting behind the held message
    assert goal.status == "pending"

    receiver.mode = "ok"
    receiver.release.set()
    wait_until(lambda: _delivery(store, sid, "goal").status == "sent", 60, "the goal told once the receiver answers")
    assert [r.event_tag for r in receiver.requests if r.answered == "ok"][-1] == f"#{goal.event}"
