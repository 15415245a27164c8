"""livesale on Redis Cluster and Redis Sentinel, for real (issue 16).

``services`` starts, inside the test run and on loopback ports chosen at run
time, a 3-master Redis Cluster and a Sentinel group (a master, a replica and
three sentinels) from the ``redis-server`` on the PATH; ``conftest`` makes
them session fixtures and points the app's ``LIVESALE_REDIS_URL`` at them.
"""
