"""The app on a Redis Cluster and behind Sentinel: orders, refunds, totals, rebuilds, the push tick
and the rate limiter, each run once per topology (``topology`` in conftest.py).

Every check also looks into the topology with a client made here, not by
livesale, to see that the figures really live there: on the cluster, a
session's keys all sit on the one master that serves their hash tag's slot;
behind Sentinel, on the master, and the replica has them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livesale.extensions import backend
from tests.conftest import Api, Users
from tests.ledger import api_figures, expected_figures, headline, payload_for, sql_figures
from tests.live.test_live_namespace import connect, events
from tests.web.test_operations import delta, scrape
from tests.web.test_rate_limits import ALL_OFF, assert_limited_json, client_from

from .services import RedisCluster, SentinelGroup, Topology, wait_until


def session_keys(topology: Topology, session_id: int) -> dict[int, list[str]]:
    """The session's keys on each master that holds any."""
    return {port: keys for port, keys in topology.keys(f"ls:{{s:{session_id}}}:*").items() if keys}


def assert_lives_in(topology: Topology, session_id: int) -> None:
    where = session_keys(topology, session_id)
    totals_key = f"ls:{{s:{session_id}}}:totals"
    if isinstance(topology, RedisCluster):
        # One hash tag, one slot, one master: the Lua scripts' keys never cross slots.
        assert list(where) == [topology.node_of(totals_key)], where
    else:
        assert isinstance(topology, SentinelGroup)
        master = topology.master()
        assert list(where) == [master.port] and totals_key in where[master.port], where
        replica = next(node for node in topology.data if node.port != master.port and node.alive)
        wait_until(lambda: replica.call("EXISTS", totals_key) == 1, 10, "the replica never got the totals")


def sql_headline(app: Any, session_id: int) -> dict[str, Any]:
    return headline(sql_figures(backend.store_of(app).db, session_id))


def test_orders_refunds_and_a_rebuild_keep_the_totals_exact(
    topology: Topology, app: Any, client: Any, host_api: Api, live_session: dict[str, Any]
) -> None:
    sid = live_session["id"]
    url = f"/api/v1/sessions/{sid}"
    bodies = {name: payload_for(name) for name in ("single", "refunded", *(f"batch-{i}" for i in range(6)))}
    single = host_api.post(f"{url}/orders", json=bodies["single"])
    assert single.status_code == 201, single.json
    to_refund = host_api.post(f"{url}/orders", json=bodies["refunded"])
    assert to_refund.status_code == 201, to_refund.json
    batch = host_api.post(f"{url}/orders", json={"orders": [bodies[f"batch-{i}"] for i in range(6)]})
    assert batch.status_code == 201 and len(batch.json["orders"]) == 6, batch.json
    refund = host_api.post(f"{url}/orders/{to_refund.json['order']['id']}/refund")
    assert refund.status_code == 200, refund.json

    kept = [body for name, body in bodies.items() if name != "refunded"]
    sql = sql_headline(app, sid)
    assert sql == headline(expected_figures(kept))
    assert api_figures(refund.json["totals"]) == sql  # the refund's own answer
    assert api_figures(host_api.get(f"{url}/totals").json) == sql
    assert_lives_in(topology, sid)

    # Redis loses the figures (an eviction, a FLUSHALL, a failover to an empty replica): rebuilt from SQL.
    before = scrape(client)
    raw = topology.client()
    try:
        assert raw.delete(f"ls:{{s:{sid}}}:totals") == 1
    finally:
        raw.close()
    assert api_figures(host_api.get(f"{url}/totals").json) == sql
    assert delta(before, scrape(client), "livesale_redis_rebuilds_total{}") == 1
    assert_lives_in(topology, sid)

    # And the rebuilt figures go on counting, single orders and batches alike.
    more = [payload_for(f"after-{i}") for i in range(4)]
    assert host_api.post(f"{url}/orders", json=more[0]).status_code == 201
    assert host_api.post(f"{url}/orders", json={"orders": more[1:]}).status_code == 201
    sql = sql_headline(app, sid)
    assert sql == headline(expected_figures([*kept, *more]))
    assert api_figures(host_api.get(f"{url}/totals").json) == sql


def test_the_push_tick_reads_the_topology_and_holds_its_lease_there(
    topology: Topology, app: Any, users: Users, host_api: Api, live_session: dict[str, Any]
) -> None:
    ticker = app.extensions["livesale.ticker"]
    viewer = connect(app, users.token("host"))
    viewer.emit("join", {"session": live_session["id"]}, namespace="/live")
    assert events(viewer, "totals")[0]["orders"] == 0
    for quantity in (1, 2, 3):
        r = host_api.post(f"/api/v1/sessions/{live_session['id']}/orders",
                          json={"sku": "APRICOT-5KG", "quantity": quantity, "buyer_region": "上海"})
        assert r.status_code == 201, r.json
    assert ticker.tick() == 1  # the changed set and the lease live in the topology
    got = viewer.get_received("/live")  # each call takes what arrived: read once, then sort out
    pushed = [e["args"][0] for e in got if e["name"] == "totals"]
    assert len(pushed) == 1 and pushed[0]["orders"] == 3 and pushed[0]["amount_fen"] == 6 * 6980
    feed = [e["args"][0] for e in got if e["name"] == "orders"]
    assert feed and sorted(e["quantity"] for e in feed[-1]) == [1, 2, 3]
    assert ticker.tick() == 0
    assert any("ls:ticker" in keys for keys in topology.keys("ls:ticker").values())
    viewer.disconnect(namespace="/live")


def test_the_rate_limiter_counts_in_the_topology_for_every_app(
    topology: Topology, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    from livesale import create_app

    apps = [create_app({
        "ENV": "testing", "SECRET_KEY": "test-secret-not-for-production", "DATABASE_URL": database_url,
        "REDIS_URL": redis_url, "INSTANCE_PATH": str(tmp_path / f"instance-{n}"), "ASYNC_MODE": "threading",
        "PUSH_TICK_S": 0, **ALL_OFF, "RATE_LIMIT_BAD_TOKEN": "4 per minute",
    }) for n in range(2)]
    try:
        one, two = (client_from(app, "203.0.113.7") for app in apps)
        # Two processes, one budget: counted in the topology, not in each process's memory.
        assert [c.get("/api/v1/sessions").status_code for c in (one, two, one, two)] == [401] * 4
        assert_limited_json(one.get("/api/v1/sessions"), 60)
        assert_limited_json(two.get("/api/v1/sessions"), 60)
        counters = [key for keys in topology.keys("LIMITS:*").values() for key in keys]
        assert len(counters) == 1 and "203.0.113.7" in counters[0], counters
        assert client_from(apps[0], "203.0.113.8").get("/api/v1/sessions").status_code == 401  # another address
    finally:
        for app in apps:
            backend.close(app)


def test_healthz_probes_the_topology(topology: Topology, client: Any) -> None:
    assert client.get("/healthz").json == {"db": "ok", "redis": "ok"}
