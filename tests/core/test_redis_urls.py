"""``LIVESALE_REDIS_URL``'s three kinds (redis_urls): what each URL says, the plain line a bad one
gets, what the two libraries with their own URL forms are handed, and the totals engine noticing
that another server now answers for the data.

Clients of a real Cluster and Sentinel group are in tests/topologies/test_redis_clients.py (they
share that folder's servers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from socketio.redis_manager import parse_redis_sentinel_url

from livesale import checks, redis_urls, server
from livesale.config import ConfigError, check_settings
from livesale.core.db import Snapshot
from livesale.core.figures import Figures
from livesale.core.totals import TotalsEngine
from tests.chaos.services import PrivateRedis

DEV = {"ENV": "development", "LOG_FORMAT": "json"}


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/3", dict(kind="single", nodes=(("127.0.0.1", 6379),), db=3)),
    ("rediss://:s3cret@cache.example:6380/0", dict(kind="single", ssl=True, password="s3cret")),
    ("unix:///run/redis.sock?db=2", dict(kind="single", socket_path="/run/redis.sock", db=2)),
    ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001", dict(kind="cluster", nodes=(("10.0.0.1", 7000),
                                                                               ("10.0.0.2", 7001)))),
    ("rediss+cluster://app:pw@10.0.0.1:7000/", dict(kind="cluster", ssl=True, username="app", password="pw")),
    ("redis+sentinel://s1:26379,s2:26380/mymaster", dict(kind="sentinel", service="mymaster", db=0,
                                                        nodes=(("s1", 26379), ("s2", 26380)))),
    ("redis+sentinel://:p%40ss@s1:26379/mymaster/4?sentinel_password=sp",
     dict(kind="sentinel", service="mymaster", db=4, password="p@ss", sentinel_password="sp")),
])
def test_each_kind_of_url_is_read(url: str, expected: dict[str, Any]) -> None:
    target = redis_urls.parse(url)
    for name, value in expected.items():
        assert getattr(target, name) == value, name
    assert "pw" not in repr(target) and "s3cret" not in repr(target)  # passwords stay out of logs


@pytest.mark.parametrize(("url", "says"), [
    ("nonsense", "unknown scheme (none)"),
    ("http://127.0.0.1:6379", "unknown scheme http://"),
    ("redis+cluster://10.0.0.1:7000,10.0.0.2", "'10.0.0.2' is not host:port"),
    ("redis+cluster://10.0.0.1:7000,,10.0.0.2:7001", "empty host:port"),
    ("redis+cluster://10.0.0.1:7000/3", "only database 0"),
    ("redis+cluster://10.0.0.1:port", "no valid port"),
    ("redis+sentinel://s1:26379", "must end with /<service>"),
    ("redis+sentinel://s1:26379/mymaster/zero", "database must be a number"),
    ("redis+sentinel://s1:26379/mymaster?db=3", "takes only sentinel_password"),
])
def test_a_bad_url_gets_one_plain_line(url: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        redis_urls.parse(url)
    message = str(caught.value)
    assert says in message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("key", ["REDIS_URL", "SOCKETIO_MESSAGE_QUEUE"])
def test_settings_name_the_bad_url_without_its_password(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_settings({**DEV, key: "redis+cluster://:hunter2@10.0.0.1:7000/2"})
    message = str(caught.value)
    assert message.startswith(f"LIVESALE_{key} ") and "only database 0" in message
    assert "hunter2" not in message and "\n" not in message


def test_the_socketio_queue_refuses_a_cluster_in_one_line() -> None:
    with pytest.raises(ConfigError, match="LIVESALE_SOCKETIO_MESSAGE_QUEUE is a Redis Cluster URL"):
        check_settings({**DEV, "SOCKETIO_MESSAGE_QUEUE": "redis+cluster://10.0.0.1:7000"})
    check_settings({**DEV, "REDIS_URL": "redis+cluster://10.0.0.1:7000",
                    "SOCKETIO_MESSAGE_QUEUE": "redis+sentinel://s1:26379/mymaster"})  # both fine


def test_several_workers_on_a_cluster_need_their_own_queue() -> None:
    shared = dict(instance_path="/tmp/x", database_url="sqlite:////tmp/x.sqlite",
                  redis_url="redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
    with pytest.raises(ConfigError, match="set LIVESALE_SOCKETIO_MESSAGE_QUEUE to a plain redis://"):
        server.worker_env(**shared, workers=2)
    env = server.worker_env(**shared, workers=2, message_queue="redis://10.0.0.1:7000")
    assert env["LIVESALE_SOCKETIO_MESSAGE_QUEUE"] == "redis://10.0.0.1:7000"
    assert "LIVESALE_SOCKETIO_MESSAGE_QUEUE" not in server.worker_env(**shared, workers=1)
    sentinel = server.worker_env(**{**shared, "redis_url": "redis+sentinel://s1:26379/m"}, workers=2)
    assert sentinel["LIVESALE_SOCKETIO_MESSAGE_QUEUE"] == "redis+sentinel://s1:26379/m"


def test_python_socketio_reads_the_sentinel_url_it_is_handed_as_livesale_means_it() -> None:
    """python-socketio's form is /<db>/<service>: livesale's /<service>/<db> is rewritten for it."""
    url, options = redis_urls.socketio_queue("redis+sentinel://app:pw@s1:26379,s2:26380/mymaster/4"
                                             "?sentinel_password=sp")
    sentinels, service, kwargs = parse_redis_sentinel_url(url)
    assert sentinels == [("s1", 26379), ("s2", 26380)] and service == "mymaster"
    assert kwargs == {"username": "app", "password": "pw", "db": 4}
    assert options["sentinel_kwargs"]["password"] == "sp" and "password" not in options
    assert redis_urls.socketio_queue("redis://h:6379/2") == ("redis://h:6379/2", {})
    with pytest.raises(ValueError, match="cannot use a Redis Cluster URL"):
        redis_urls.socketio_queue("redis+cluster://h:7000")


def test_the_limiter_is_handed_the_cluster_in_limits_own_form() -> None:
    uri, options = redis_urls.limiter_storage("rediss+cluster://app:pw@h1:7000,h2:7001", client=None)
    assert uri == "redis+cluster://h1:7000,h2:7001"
    assert options["username"] == "app" and options["password"] == "pw" and options["ssl"] is True


def test_masked_urls_hide_every_password() -> None:
    masked = checks.mask_redis_url("redis+sentinel://app:pw@s1:26379,s2:26380/m/1?sentinel_password=sp")
    assert masked == "redis+sentinel://app:***@s1:26379,s2:26380/m/1?sentinel_password=***"
    assert checks.mask_redis_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert checks.mask_redis_url("redis://h:6379/0") == "redis://h:6379/0"


def test_one_server_gets_a_bounded_blocking_pool(redis_url: str) -> None:
    client = redis_urls.client_from_url(redis_url, max_connections=1, timeout=0.2)
    try:
        assert isinstance(client, redis.Redis) and client.ping()
        pool = client.connection_pool
        assert isinstance(pool, redis.BlockingConnectionPool) and pool.max_connections == 1
        held = pool.get_connection()
        try:
            with pytest.raises(redis.ConnectionError, match="No connection available"):
                client.ping()  # waits for the one connection, then gives up: never a second one
        finally:
            pool.release(held)
    finally:
        client.close()
    checks.probe_redis(redis_url)
    assert checks.redis_server_version(redis_url).split()[0] in ("Redis", "Valkey")


def test_a_cluster_that_does_not_answer_is_one_line() -> None:
    with pytest.raises(redis.ConnectionError) as caught:
        redis_urls.client_from_url("redis+cluster://127.0.0.1:1,127.0.0.1:2", socket_connect_timeout=1)
    assert str(caught.value).startswith("no node of the Redis Cluster at 127.0.0.1:1,127.0.0.1:2 answers")
    with pytest.raises(ConfigError, match="does not answer"):
        checks.probe_redis("redis+cluster://127.0.0.1:1")
    with pytest.raises(ConfigError, match="does not answer"):
        checks.probe_redis("redis+sentinel://127.0.0.1:1/livesale")


# --- another server answers: the engine stops vouching for what it verified ---------------------------


def _call(private: PrivateRedis, *args: Any) -> Any:
    client = private.client()
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def _engine_on(url: str) -> TotalsEngine:
    return TotalsEngine(redis_urls.client_from_url(url), watch_s=0)


def test_figures_of_a_server_that_came_back_older_are_rebuilt(tmp_path: Path) -> None:
    """A server restarted from an older snapshot (as a promoted replica that missed the last writes)
    still has figures, stale ones: the engine notices the new replication id and rebuilds."""
    private = PrivateRedis(tmp_path / "redis").start()
    engine = _engine_on(private.url)
    sold = Figures(amount_fen=100, orders=1, items=1)
    try:
        engine.rebuild(session_id=7, load=lambda: (Snapshot(xmin=10, xmax=10), sold))
        assert engine.verified(7)
        _call(private, "SAVE")  # the snapshot the server will come back with
        engine.apply(session_id=7, txid=11, delta=Figures(amount_fen=50, orders=1, items=1))
        sold = Figures(amount_fen=150, orders=2, items=2)  # what SQL now holds
        private.stop()
        private.start()
        assert _call(private, "HGET", "ls:{s:7}:totals", "amount_fen") == b"100"  # stale: txid 11 is lost
        # What a request does (live_totals): figures this engine vouches for are served as they are.
        again = engine.rebuild(session_id=7, load=lambda: (Snapshot(xmin=12, xmax=12), sold), force=False)
        assert again.figures.amount_fen == 150 and engine.verified(7)
    finally:
        engine.redis.close()
        private.stop()
