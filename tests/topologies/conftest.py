"""The Redis topologies as fixtures: one Cluster and one Sentinel group per test run.

``topology`` runs a test once on each; under it, ``redis_url`` (the fixture
that ``tests.conftest`` builds ``app``, ``users``, ``live_session`` and
``server_factory`` on) is the topology's ``redis+cluster://`` or
``redis+sentinel://`` URL, emptied before and after each test. The database
stays the suite's (a SQLite file per test, or the PostgreSQL pass's).

Both are skipped with the reason when this machine's redis-server has no
cluster mode (or is missing); nothing else skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .services import RedisCluster, SentinelGroup, Topology, skip_unless_supported

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The Redis topologies do not depend on the database engine: they run in the SQLite pass only
    # (CI time budget), as the browser tests do; the PostgreSQL pass covers SQL through core, web, live, chaos.
    if not os.environ.get("LIVESALE_TEST_DATABASE_URL"):
        return
    skip = pytest.mark.skip(reason="Redis Cluster/Sentinel tests run in the SQLite pass (CI time budget): "
                                   "see tests/topologies/conftest.py")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three cluster masters on loopback for the whole run, killed at its end (even after a failure)."""
    skip_unless_supported()
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A master, a replica and three sentinels for the whole run (the failover test has its own)."""
    skip_unless_supported()
    with SentinelGroup(tmp_path_factory.mktemp("redis-sentinel")) as group:
        yield group


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return request.getfixturevalue(f"redis_{request.param}")


@pytest.fixture
def redis_url(topology: Topology) -> Iterator[str]:
    """The app's ``LIVESALE_REDIS_URL``: the topology, empty (overrides ``tests.conftest.redis_url``)."""
    topology.flushall()
    yield topology.url
    topology.flushall()
