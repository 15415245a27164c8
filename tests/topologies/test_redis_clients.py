"""The clients livesale makes from ``redis+cluster://`` and ``redis+sentinel://`` URLs (redis_urls), on
this folder's real Cluster and Sentinel group: their kind and pools, the totals engine's every
command on a cluster, Socket.IO's queue and the rate limiter's storage behind Sentinel, and the
probe ``livesale info`` on each (``/healthz``: test_app_paths.py).

URL parsing and the plain lines for bad URLs are in tests/core/test_redis_urls.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from limits.storage import storage_from_string
from redis.cluster import RedisCluster as ClusterClient
from socketio import RedisManager

from livesale import checks, redis_urls
from livesale.cli import main
from livesale.core.db import Snapshot
from livesale.core.figures import Figures
from livesale.core.totals import DIRTY_KEY, TICKER_KEY, FeedEntry, TotalsEngine
from livesale.extensions import socketio_channel

from .services import RedisCluster, SentinelGroup, Topology, wait_until


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    redis_cluster.flushall()
    return redis_cluster


@pytest.fixture
def sentinel(redis_sentinel: SentinelGroup) -> SentinelGroup:
    redis_sentinel.flushall()
    return redis_sentinel


def _load(figures: Figures, xmax: int = 100) -> Any:
    return lambda: (Snapshot(xmin=xmax, xmax=xmax), figures)


def test_a_cluster_url_gives_a_cluster_client_with_a_bounded_pool_per_node(cluster: RedisCluster) -> None:
    client = redis_urls.client_from_url(cluster.url, max_connections=3)
    try:
        assert isinstance(client, ClusterClient)
        assert client.ping(target_nodes=ClusterClient.PRIMARIES)
        pools = [node.redis_connection.connection_pool for node in client.get_primaries()]
        assert len(pools) == 3
        assert all(isinstance(p, redis.BlockingConnectionPool) and p.max_connections == 3 for p in pools)
    finally:
        client.close()
    checks.probe_redis(cluster.url)
    assert checks.redis_server_version(cluster.url).endswith(", cluster of 3 masters")


def test_every_command_of_the_totals_engine_works_on_a_cluster(cluster: RedisCluster) -> None:
    engine = TotalsEngine(redis_urls.client_from_url(cluster.url))
    try:
        # Sessions whose hash tags land on different masters.
        sessions = {}
        for sid in range(1, 60):
            sessions.setdefault(cluster.node_of(f"ls:{{s:{sid}}}:totals"), sid)
        assert len(sessions) == 3
        for port, sid in sessions.items():
            engine.rebuild(session_id=sid, load=_load(Figures(amount_fen=100, orders=1, items=1)))
            sold = engine.apply(session_id=sid, txid=200, delta=Figures(amount_fen=50, orders=1, items=2),
                                feed=[FeedEntry(sku="APRICOT-5KG", quantity=2, region="上海", at_ms=1)])
            assert sold is not None and (sold.figures.amount_fen, sold.figures.orders) == (150, 2)
            assert engine.read(session_id=sid).figures.items == 3
            assert [e.quantity for e in engine.read_feed(session_id=sid)] == [2]
            assert cluster.keys(f"ls:{{s:{sid}}}:*")[port] == [
                f"ls:{{s:{sid}}}:{name}" for name in ("feed", "totals")]
        assert engine.take_changed() == sorted(sessions.values())
        assert engine.hold_ticker(token="a", ttl_ms=5000) and not engine.hold_ticker(token="b", ttl_ms=5000)
        assert engine.clock_us() > 1_700_000_000 * 1_000_000
        first = next(iter(sessions.values()))
        # Redis forgot the scripts (a restart, SCRIPT FLUSH): the next change loads the script again.
        for node in cluster.masters():
            node.call("SCRIPT", "FLUSH")
        again = engine.apply(session_id=first, txid=201, delta=Figures(amount_fen=1, orders=1, items=1))
        assert again is not None and again.figures.amount_fen == 151
        engine.invalidate(session_id=first)  # totals and lock of one slot, in one DEL
        assert engine.read(session_id=first) is None
        engine.discard(session_id=first)
        assert not any(cluster.keys(f"ls:{{s:{first}}}:*").values())
        assert any(DIRTY_KEY in keys or TICKER_KEY in keys for keys in cluster.keys("ls:*").values())
    finally:
        engine.redis.close()


def test_a_sentinel_url_gives_its_master_through_a_bounded_pool(sentinel: SentinelGroup) -> None:
    client = redis_urls.client_from_url(f"{sentinel.url}/2", max_connections=2)
    try:
        assert isinstance(client.connection_pool, redis_urls.BlockingSentinelConnectionPool)
        assert client.connection_pool.max_connections == 2
        client.set("ls:probe", "on the master, database 2")
        master = sentinel.master()
        assert client.connection_pool.master_address == ("127.0.0.1", master.port)
        direct = redis.Redis(port=master.port, db=2)
        try:
            assert direct.get("ls:probe") == b"on the master, database 2"
        finally:
            direct.close()
    finally:
        client.close()
    checks.probe_redis(sentinel.url)
    assert checks.redis_server_version(sentinel.url).endswith(f"Sentinel's master at 127.0.0.1:{master.port}")
    with pytest.raises(checks.ConfigError, match="No master found for 'nobody'"):
        checks.probe_redis(sentinel.url.replace("/livesale", "/nobody"))


def test_socketio_publishes_through_the_sentinel_master(sentinel: SentinelGroup) -> None:
    """The queue's URL is rewritten into python-socketio's own sentinel form; its pushes reach the master."""
    url, options = redis_urls.socketio_queue(f"{sentinel.url}/3")
    channel = socketio_channel(f"{sentinel.url}/3")
    assert channel == "livesale-socketio-db3"
    listener = sentinel.master().client().pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel)
    manager = RedisManager(url, channel=channel, write_only=True, redis_options=options)
    try:
        manager.emit("totals", {"orders": 3}, namespace="/live", room="s:1")

        def published() -> Any:
            message = listener.get_message(timeout=0.2)
            return message and json.loads(message["data"])

        got = wait_until(published, 10, "nothing was published on the master")
        assert got["event"] == "totals" and got["data"] == [{"orders": 3}]
    finally:
        listener.close()
        if manager.redis is not None:
            manager.redis.close()


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_the_rate_limiter_storage_counts_in_the_topology(
    kind: str, request: pytest.FixtureRequest
) -> None:
    topology: Topology = request.getfixturevalue(kind)
    client = redis_urls.client_from_url(topology.url)
    uri, options = redis_urls.limiter_storage(topology.url, client)
    storage = storage_from_string(uri, key_prefix="livesale", **options)
    try:
        assert storage.check()
        assert [storage.incr("h3:limit", 60) for _ in range(3)] == [1, 2, 3]
        assert any("livesale:h3:limit" in keys for keys in topology.keys("livesale:*").values())
    finally:
        storage.reset() if kind == "cluster" else None
        client.close()


def test_livesale_info_probes_each_topology(topology: Topology, tmp_path: Path) -> None:
    env = {"LIVESALE_ENV": "development", "LIVESALE_REDIS_URL": topology.url,
           "LIVESALE_INSTANCE_PATH": str(tmp_path / "instance"), "LIVESALE_DATABASE_URL": ""}
    result = CliRunner().invoke(main, ["info"], env=env)
    line = next(x for x in result.output.splitlines() if x.startswith("redis:"))
    assert f"{topology.url} — answers (Redis" in line, result.output
