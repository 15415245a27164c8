"""Concurrent repeats against a real server (``gunicorn -k gevent``, two workers).

Twenty threads released together POST one order with one Idempotency-Key
(or one external id). With the same payload exactly one gets 201 and the
others 200 with the same order id; with twenty different payloads one wins
and the others get 409 naming what they reused. Either way SQL holds one
row, and the totals — as the server serves them and as Redis holds them,
read without any rebuild — count it once.

``tests/core/test_concurrency.py`` races the core in one process; this goes
through the HTTP stack and two processes (each with its own group commit).
"""

from __future__ import annotations

import threading
import traceback
from typing import Any

import requests
import sqlalchemy as sa

from livesale.core import tables as t
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import PRICES, api_figures, expected_figures, headline, sql_figures

THREADS = 20


def _race(url: str, token: str, requests_to_send: list[tuple[dict[str, Any], dict[str, str]]]) -> list[requests.Response]:
    """Send every (body, headers) from its own thread and connection, all released at once."""
    barrier = threading.Barrier(len(requests_to_send))
    answers: list[requests.Response | None] = [None] * len(requests_to_send)
    errors: list[str] = []

    def send(i: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        try:
            with requests.Session() as http:
                # Connect before the barrier, so the requests leave together.
                assert http.get(url.split("/api/")[0] + "/livez", timeout=10).status_code == 200
                barrier.wait(timeout=30)
                answers[i] = http.post(url, json=body, headers={"Authorization": f"Bearer {token}", **headers},
                                       timeout=30)
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=send, args=(i, b, h)) for i, (b, h) in enumerate(requests_to_send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[0]
    assert all(a is not None for a in answers)
    return answers  # type: ignore[return-value]


def _new_session(server_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    with requests.Session() as http:
        created = http.post(f"{server_url}/api/v1/sessions", json=APRICOT_SESSION, headers=headers, timeout=10)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        assert http.post(f"{server_url}/api/v1/sessions/{sid}/start", headers=headers, timeout=10).status_code == 200
    return sid


def _rows(store: Any, session_id: int) -> list[tuple[str, int]]:
    o = t.orders
    with store.db.connect() as conn:
        return [(str(r[0]), r[1]) for r in conn.execute(
            sa.select(o.c.id, o.c.quantity).where(o.c.session_id == session_id)
        ).all()]


def _counted_once(server_url: str, token: str, store: Any, session_id: int, body: dict[str, Any]) -> None:
    """SQL, the server's totals and Redis as the server left it all hold exactly ``body``, once."""
    expected = headline(expected_figures([body]))
    assert headline(sql_figures(store.db, session_id)) == expected
    served = requests.get(f"{server_url}/api/v1/sessions/{session_id}/totals",
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert served.status_code == 200 and api_figures(served.json()) == expected
    # Read Redis directly: this process's engine would rebuild from SQL on first use and hide a double count.
    live = store.totals.read(session_id=session_id)
    assert live is not None and headline(live.figures) == expected


def test_twenty_concurrent_repeats_count_once_on_a_real_server(
    server_factory: Any, users: Users, store: Any
) -> None:
    # One server for every race below: starting two workers is most of this test's time.
    server = server_factory(workers=2)
    token = users.token("host")

    # The same order with the same key, twenty times at once: one 201, nineteen 200, one order.
    sid = _new_session(server.url, token)
    body = {"sku": "APRICOT-5KG", "quantity": 3, "buyer_region": "浙江杭州"}
    answers = _race(f"{server.url}/api/v1/sessions/{sid}/orders", token,
                    [(body, {"Idempotency-Key": "console-7f3a"})] * THREADS)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (THREADS - 1) + [201], statuses
    ids = {a.json()["order"]["id"] for a in answers}
    assert len(ids) == 1
    # No answer shows the order counted twice (a repeat may answer before the first one's totals moved).
    assert all(a.json()["totals"]["orders"] <= 1 for a in answers)
    assert next(a for a in answers if a.status_code == 201).json()["totals"]["orders"] == 1
    assert _rows(store, sid) == [(ids.pop(), 3)]
    _counted_once(server.url, token, store, sid, body)

    # The same external id (no key), twenty times at once: the same.
    sid = _new_session(server.url, token)
    body = {"sku": "DRIED-1KG", "quantity": 2, "external_id": "douyin-88231"}
    answers = _race(f"{server.url}/api/v1/sessions/{sid}/orders", token, [(body, {})] * THREADS)
    assert sorted(a.status_code for a in answers) == [200] * (THREADS - 1) + [201]
    assert len({a.json()["order"]["id"] for a in answers}) == 1
    assert len(_rows(store, sid)) == 1
    _counted_once(server.url, token, store, sid, body)

    # Twenty different orders under one key (then one external id) at once: one wins, nineteen 409s.
    for reused in ("Idempotency-Key", "external_id"):
        sid = _new_session(server.url, token)
        bodies = [{"sku": "APRICOT-5KG", "quantity": 1 + i} for i in range(THREADS)]
        if reused == "Idempotency-Key":
            sends = [(b, {"Idempotency-Key": "import-2026-11-29"}) for b in bodies]
        else:
            sends = [({**b, "external_id": "kuaishou-5512"}, {}) for b in bodies]
        answers = _race(f"{server.url}/api/v1/sessions/{sid}/orders", token, sends)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] + [409] * (THREADS - 1), (reused, statuses)
        winner = next(a.json()["order"] for a in answers if a.status_code == 201)
        for refused in (a.json()["error"] for a in answers if a.status_code == 409):
            assert refused["code"] == "idempotency_conflict" and refused["field"] == reused, refused
        assert _rows(store, sid) == [(winner["id"], winner["quantity"])]
        assert winner["amount_fen"] == winner["quantity"] * PRICES["APRICOT-5KG"]
        _counted_once(server.url, token, store, sid, {"sku": "APRICOT-5KG", "quantity": winner["quantity"]})
