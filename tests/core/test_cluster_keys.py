"""Redis Cluster readiness: each session's keys share one hash tag, so one slot.

A Lua script may only touch keys of one slot on a cluster. The totals
engine's scripts take a session's keys together (totals, pending, rebuild
lock, feed); this checks, on the keys a real workload leaves in Redis, that
they all carry the session's hash tag and land in one slot, and that the
only other keys are the two single cross-session keys.
"""

from __future__ import annotations

import re
from typing import Any

from redis.crc import key_slot

from livesale.core.totals import DIRTY_KEY, TICKER_KEY
from tests.conftest import APRICOT_SESSION, Api


def test_every_key_of_a_session_is_in_its_hash_tag_slot(
    app: Any, host_api: Api, live_session: dict[str, Any], redis_client: Any
) -> None:
    other = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    host_api.post(f"/api/v1/sessions/{other['id']}/start")
    for session in (live_session, other):
        url = f"/api/v1/sessions/{session['id']}/orders"
        order = host_api.post(url, json={"sku": "APRICOT-5KG", "quantity": 2}).json["order"]
        host_api.post(url, json={"orders": [{"sku": "DRIED-1KG", "quantity": 1}] * 3})
        host_api.post(f"{url}/{order['id']}/refund")
    redis_client.delete(f"ls:{{s:{other['id']}}}:totals")  # lost: the next read rebuilds (takes the lock)
    assert host_api.get(f"/api/v1/sessions/{other['id']}/totals").json["orders"] == 3
    app.extensions["livesale.ticker"].tick()  # the ticker's lease and the changed set

    keys = sorted(k.decode() for k in redis_client.keys("ls:*"))
    per_session: dict[str, set[int]] = {}
    for key in keys:
        if key in (DIRTY_KEY, TICKER_KEY):
            continue
        match = re.fullmatch(r"ls:\{s:(\d+)\}:[a-z]+", key)
        assert match, f"{key} is not in a session's hash tag"
        per_session.setdefault(match.group(1), set()).add(key_slot(key.encode()))
    assert set(per_session) == {str(live_session["id"]), str(other["id"])}, keys
    assert all(len(slots) == 1 for slots in per_session.values()), per_session
    assert {f"ls:{{s:{live_session['id']}}}:totals", f"ls:{{s:{live_session['id']}}}:feed"} <= set(keys)
