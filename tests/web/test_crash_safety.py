"""A real server killed with SIGKILL under load: nothing acknowledged is lost, nothing counts twice.

Client threads POST single orders with unique Idempotency-Keys to a real
gunicorn+gevent server and keep a ledger of every acknowledged (2xx) order.
The server is killed mid-load, a new one is started on the same database
and Redis, and every request that got no answer is retried with the same
key. Then SQL must hold every acknowledged order, each key once, and the
totals API must equal the SQL sums.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa

from livesale.core import tables as t
from tests.conftest import APRICOT_SESSION, ServerProcess
from tests.ledger import api_figures, duplicate_keys, expected_figures, headline, payload_for, sql_figures

CLIENTS = 6


class Ledger:
    """What the clients sent and what the server acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, dict[str, Any]] = {}
        self.acked: dict[str, str] = {}  # key -> order id from a 2xx answer
        self.unanswered: list[str] = []  # no answer at all (or not a 2xx): retry with the same key
        self.refused: list[tuple[str, int, str]] = []  # non-2xx answers, for the report
        self.errors: list[str] = []

    def ack(self, key: str, response: requests.Response) -> None:
        order_id = response.json()["order"]["id"]
        with self.lock:
            known = self.acked.setdefault(key, order_id)
            assert known == order_id, f"{key} was acknowledged as two orders"


def _headers(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


def _client(server: ServerProcess, token: str, session_id: int, tag: str, ledger: Ledger, stop: threading.Event) -> None:
    """Send orders one after another until told to stop or the server stops answering."""
    url = f"{server.url}/api/v1/sessions/{session_id}/orders"
    i = 0
    try:
        with requests.Session() as http:
            while not stop.is_set():
                key = f"{tag}-{i}"
                i += 1
                body = payload_for(key)
                with ledger.lock:
                    ledger.sent[key] = body
                try:
                    r = http.post(url, json=body, headers=_headers(token, key), timeout=(2, 20))
                except requests.RequestException:
                    with ledger.lock:
                        ledger.unanswered.append(key)
                    return  # the server is gone
                if 200 <= r.status_code < 300:
                    ledger.ack(key, r)
                else:
                    with ledger.lock:
                        ledger.unanswered.append(key)
                        ledger.refused.append((key, r.status_code, r.text[:300]))
    except Exception:
        with ledger.lock:
            ledger.errors.append(traceback.format_exc())


def _load(server: ServerProcess, token: str, session_id: int, tag: str, ledger: Ledger) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=_client, args=(server, token, session_id, f"{tag}{n}", ledger, stop))
               for n in range(CLIENTS)]
    for th in threads:
        th.start()
    return stop, threads


def _join(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for th in threads:
        th.join(timeout=60)
        assert not th.is_alive(), "a client is stuck"


def _wait_for_acks(ledger: Ledger, count: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while len(ledger.acked) < count:
        assert time.monotonic() < deadline, f"only {len(ledger.acked)} orders acknowledged"
        assert not ledger.errors, ledger.errors[0]
        time.sleep(0.02)


@pytest.mark.parametrize("flush", [False, True], ids=["kill", "kill-and-flush"])
def test_kill_9_mid_load_loses_nothing_and_counts_nothing_twice(
    server_factory: Any, users: Any, store: Any, redis_client: redis.Redis, flush: bool
) -> None:
    token = users.token("host")
    server = server_factory()
    with requests.Session() as http:
        created = http.post(f"{server.url}/api/v1/sessions", json=APRICOT_SESSION, headers=_headers(token))
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        started = http.post(f"{server.url}/api/v1/sessions/{session_id}/start", headers=_headers(token))
        assert started.status_code == 200, started.text

    ledger = Ledger()
    stop, threads = _load(server, token, session_id, "a", ledger)
    _wait_for_acks(ledger, 150)
    if flush:
        redis_client.flushdb()  # Redis loses the figures while orders keep coming
        _wait_for_acks(ledger, len(ledger.acked) + 150)
    server.kill()  # SIGKILL, mid-request for most clients
    _join(stop, threads)
    assert not ledger.errors, ledger.errors[0]
    killed_acks = len(ledger.acked)
    assert ledger.unanswered, "the kill should have cut some requests short"

    server = server_factory()
    # Every request without an answer is sent again, same key, same payload.
    retried = {}
    with requests.Session() as http:
        url = f"{server.url}/api/v1/sessions/{session_id}/orders"
        for key in list(ledger.unanswered):
            r = http.post(url, json=ledger.sent[key], headers=_headers(token, key), timeout=(2, 20))
            assert r.status_code in (200, 201), r.text
            retried[key] = r.status_code
            ledger.ack(key, r)
    # Business as usual on the new server for a moment (with another flush).
    ledger.unanswered.clear()
    stop, threads = _load(server, token, session_id, "b", ledger)
    _wait_for_acks(ledger, len(ledger.acked) + 100)
    if flush:
        redis_client.flushdb()
        _wait_for_acks(ledger, len(ledger.acked) + 100)
    _join(stop, threads)
    assert not ledger.errors, ledger.errors[0]
    assert not ledger.unanswered and not ledger.refused, (ledger.unanswered, ledger.refused)

    # Every acknowledged order is in SQL, under its key, exactly once; nothing else is.
    o = t.orders
    with store.db.connect() as conn:
        stored = {key: str(order_id) for key, order_id in conn.execute(
            sa.select(o.c.idempotency_key, o.c.id).where(o.c.session_id == session_id)
        )}
        rows = conn.execute(sa.select(sa.func.count()).where(o.c.session_id == session_id)).scalar_one()
    assert duplicate_keys(store.db, session_id) == []
    assert rows == len(stored) == len(ledger.sent)
    assert stored == ledger.acked
    assert killed_acks >= 150

    # The totals API (Redis) == SQL == what the clients sent, each key once.
    with requests.Session() as http:
        totals = http.get(f"{server.url}/api/v1/sessions/{session_id}/totals", headers=_headers(token)).json()
    sql = sql_figures(store.db, session_id)
    assert api_figures(totals) == headline(sql)
    assert headline(sql) == headline(expected_figures(ledger.sent.values()))
    print(f"acked before the kill: {killed_acks}, retried: {len(retried)} "
          f"({sum(1 for s in retried.values() if s == 200)} had been stored before the kill), total: {rows}")
