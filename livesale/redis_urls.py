"""``LIVESALE_REDIS_URL`` and the clients made from it: one Redis, a Redis Cluster, or Redis behind Sentinel.

The forms (``rediss`` instead of ``redis`` for TLS in each):

``redis://[[user]:password@]host:port[/db]``, ``unix:///path/redis.sock[?db=N]``
    One Redis server, as redis-py's ``from_url`` reads it.

``redis+cluster://[[user]:password@]host:port[,host:port…]``
    A Redis Cluster through redis-py's ``RedisCluster``; the nodes listed are only where the client
    starts (it discovers the others). A cluster has only database 0, so there is no ``/db``. This is
    also the form of the ``limits`` library (Flask-Limiter's storage).

``redis+sentinel://[[user]:password@]host:port[,host:port…]/<service>[/db][?sentinel_password=…]``
    The master of ``<service>`` as the sentinels at ``host:port…`` name it, followed through
    failovers. The user and password are the Redis servers' (master and replicas); sentinels that
    require their own password take ``sentinel_password`` (and ``sentinel_username``) in the query.
    ``limits`` and python-socketio each read sentinel URLs their own way (``/service`` without a
    database, and ``/db/service``); livesale hands each what it expects (``limiter_storage``,
    ``socketio_queue``), so only this form matters to an operator.

Nothing here imports Flask: the totals engine, the CLI and the checks all use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

SINGLE, CLUSTER, SENTINEL = "single", "cluster", "sentinel"
_SCHEMES = {
    "redis": (SINGLE, False), "rediss": (SINGLE, True), "unix": (SINGLE, False),
    "redis+cluster": (CLUSTER, False), "rediss+cluster": (CLUSTER, True),
    "redis+sentinel": (SENTINEL, False), "rediss+sentinel": (SENTINEL, True),
}
FORMS = ("redis://host:6379/0, redis+cluster://host:7000,host:7001 or "
         "redis+sentinel://host:26379,host:26380/<service>")

#: The pool the app's clients get unless told otherwise: bounded and blocking, because with thousands
#: of greenlets (viewers joining at once) an unbounded pool opens a connection per greenlet and runs
#: the worker out of file descriptors; here they queue for a connection.
POOL_OPTIONS: dict[str, Any] = {
    "max_connections": 128,
    "timeout": 10,  # seconds a caller waits for a free connection
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
}
#: Behind Sentinel a command that meets the old master (gone, or now a read-only replica) is sent
#: again to whichever server the sentinels name next, for about a second and a half (redis-py also
#: retries the reconnection inside each attempt, so at worst several seconds); after that the caller
#: sees the error (an order is still durable in SQL: its totals are summed from SQL meanwhile).
FAILOVER_RETRIES = 5
FAILOVER_BACKOFF = {"base": 0.05, "cap": 0.5}


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """What a Redis URL names."""

    kind: str  # "single" | "cluster" | "sentinel"
    url: str = dataclasses.field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()  # cluster startup nodes or sentinels; one server's address
    service: str | None = None  # Sentinel's service name
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    ssl: bool = False
    socket_path: str | None = None  # unix://
    sentinel_username: str | None = None
    sentinel_password: str | None = dataclasses.field(default=None, repr=False)

    def auth(self) -> dict[str, str]:
        """The Redis servers' credentials as redis-py's keyword arguments."""
        out = {}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password
        return out

    def sentinel_auth(self) -> dict[str, str]:
        out = {}
        if self.sentinel_username:
            out["username"] = self.sentinel_username
        if self.sentinel_password:
            out["password"] = self.sentinel_password
        return out


def _nodes(netloc: str, kind: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    nodes = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"the {kind} URL has an empty host:port in its list")
        parts = urlsplit(f"//{item}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"the {kind} URL's {item!r} has no valid port (host:port)") from None
        if not parts.hostname or port is None:
            raise ValueError(f"the {kind} URL's {item!r} is not host:port")
        nodes.append((parts.hostname, port))
    return tuple(nodes)


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    from urllib.parse import unquote

    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def parse(url: str) -> RedisTarget:
    """Read a Redis URL; ``ValueError`` with a one-line reason if it is not one livesale can use."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ValueError(f"unknown scheme {scheme + '://' if scheme else '(none)'}: use {FORMS}")
    kind, ssl = _SCHEMES[scheme]
    if kind == SINGLE:
        try:
            options = redis.connection.parse_url(url)
        except ValueError as exc:
            raise ValueError(" ".join(str(exc).split())) from None
        if "path" in options:
            return RedisTarget(kind=SINGLE, url=url, socket_path=options["path"], db=int(options.get("db") or 0),
                               username=options.get("username"), password=options.get("password"))
        return RedisTarget(kind=SINGLE, url=url, nodes=((options.get("host", "localhost"),
                                                         int(options.get("port", 6379))),),
                           db=int(options.get("db") or 0), username=options.get("username"),
                           password=options.get("password"), ssl=ssl)
    parts = urlsplit(url)
    username, password = _credentials(parts.netloc)
    nodes = _nodes(parts.netloc, kind)
    query = parse_qs(parts.query)
    if kind == CLUSTER:
        if parts.path not in ("", "/", "/0"):
            raise ValueError(f"a Redis Cluster has only database 0: drop {parts.path!r} from the cluster URL")
        if query:
            raise ValueError(f"the cluster URL takes no options ({parts.query!r})")
        return RedisTarget(kind=CLUSTER, url=url, nodes=nodes, username=username, password=password, ssl=ssl)
    segments = [s for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ValueError("the sentinel URL must end with /<service> or /<service>/<db> "
                         "(redis+sentinel://host:26379,host:26380/mymaster/0)")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError(f"the sentinel URL's database must be a number, not {segments[1]!r} "
                             "(…/<service>/<db>)")
        db = int(segments[1])
    unknown = set(query) - {"sentinel_password", "sentinel_username"}
    if unknown:
        raise ValueError(f"the sentinel URL takes only sentinel_password and sentinel_username, not "
                         f"{', '.join(sorted(unknown))}")
    return RedisTarget(
        kind=SENTINEL, url=url, nodes=nodes, service=segments[0], db=db, username=username, password=password,
        ssl=ssl, sentinel_username=query.get("sentinel_username", [None])[0],
        sentinel_password=query.get("sentinel_password", [None])[0],
    )


class BlockingSentinelConnectionPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (connections follow the master the sentinels name), bounded and blocking as the
    single server's pool is."""


def client_from_url(url: str, **opts: Any) -> redis.Redis | redis.cluster.RedisCluster:
    """A client for ``url``; ``opts`` override ``POOL_OPTIONS`` (and may add redis-py options).

    Connects to nothing, except for a cluster: ``RedisCluster`` asks a startup node for the
    cluster's layout at once; if none answers this raises ``redis.ConnectionError`` (which the CLI
    and ``checks.redis_problem`` turn into one line), not redis-py's ``RedisClusterException``.
    """
    target = parse(url)
    options = {**POOL_OPTIONS, **opts}
    if target.kind == SINGLE:
        # from_pool: the client owns its pool, and close() closes the pool's connections too.
        return redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(url, **options))
    if target.kind == CLUSTER:
        options.pop("health_check_interval", None)  # per node, as redis-py's cluster client manages it
        first, *rest = target.nodes
        # ``url`` (one node, with the credentials) makes RedisCluster build each node's pool from
        # connection_pool_class: blocking and bounded per node, as for one server.
        scheme = "rediss" if target.ssl else "redis"
        userinfo = ""
        if target.username or target.password:
            userinfo = f"{quote(target.username or '', safe='')}:{quote(target.password or '', safe='')}@"
        try:
            return redis.cluster.RedisCluster(
                url=f"{scheme}://{userinfo}{first[0]}:{first[1]}/0",
                startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in rest],
                connection_pool_class=redis.BlockingConnectionPool,
                **options,
            )
        except (redis.exceptions.RedisClusterException, redis.RedisError) as exc:
            if isinstance(exc, redis.AuthenticationError):
                raise
            nodes = ",".join(f"{host}:{port}" for host, port in target.nodes)
            reason = " ".join(str(exc).split()).rstrip(".")
            raise redis.ConnectionError(f"no node of the Redis Cluster at {nodes} answers: {reason}") from exc
    sentinel_options = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options}
    # A sentinel that does not answer is skipped for the next one at once (no retries of its own).
    sentinel = redis.sentinel.Sentinel(
        list(target.nodes),
        sentinel_kwargs={**sentinel_options, "retry": Retry(NoBackoff(), 0), **target.sentinel_auth()},
    )
    options.setdefault("retry", Retry(ExponentialWithJitterBackoff(**FAILOVER_BACKOFF), FAILOVER_RETRIES))
    return sentinel.master_for(
        target.service, connection_pool_class=BlockingSentinelConnectionPool, db=target.db, ssl=target.ssl,
        **target.auth(), **options,
    )


def is_cluster(client: Any) -> bool:
    return isinstance(client, redis.cluster.RedisCluster)


def server_identity(client: Any) -> Any:
    """Something that changes when another server starts answering for the data: a Sentinel
    failover, a cluster master replaced by its replica, a server restarted empty.

    A promoted replica takes a new replication id (``master_replid``), and so does a restarted
    server. Behind Sentinel this first asks the sentinels where the master is: redis-py does so only
    when it opens a connection, so pooled connections would go on writing to a demoted master
    (which takes writes until the sentinels reconfigure it, and then loses them); when the master
    moved this drops the idle ones.
    """
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, redis.sentinel.SentinelConnectionPool):
        pool.get_master_address()
    if is_cluster(client):
        infos = client.info("replication", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        return frozenset((node, info.get("master_replid")) for node, info in infos.items())
    return client.info("replication").get("master_replid")


# --- the same Redis for the two libraries that make their own clients ------------------------------


def limiter_storage(url: str, client: Any) -> tuple[str, dict[str, Any]]:
    """Flask-Limiter's ``storage_uri`` and ``storage_options`` for the app's Redis ``client`` made from ``url``.

    One server and Sentinel: the client's own pool (bounded, with the app's timeouts, following
    failovers, closed with the app). A cluster: ``limits``' own cluster storage, which makes its own
    ``RedisCluster`` from the same nodes (it cannot take a client).
    """
    target = parse(url)
    if target.kind == CLUSTER:
        hosts = ",".join(f"{host}:{port}" for host, port in target.nodes)
        options: dict[str, Any] = {**target.auth(), "socket_timeout": POOL_OPTIONS["socket_timeout"],
                                   "socket_connect_timeout": POOL_OPTIONS["socket_connect_timeout"]}
        if target.ssl:
            options["ssl"] = True
        return f"redis+cluster://{hosts}", options
    # ``limits`` calls the embedded server's Unix socket redis+unix://; with a pool the URL only picks Redis.
    uri = "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else "redis://"
    return uri, {"connection_pool": client.connection_pool}


def socketio_queue(url: str) -> tuple[str, dict[str, Any]]:
    """The URL and ``redis_options`` for python-socketio's ``RedisManager`` (the Socket.IO message queue).

    ``ValueError`` for a cluster: Socket.IO's queue is pub/sub on one server.
    """
    target = parse(url)
    if target.kind == CLUSTER:
        raise ValueError(
            "Socket.IO's message queue cannot use a Redis Cluster URL: set LIVESALE_SOCKETIO_MESSAGE_QUEUE to "
            "a plain redis://host:port (one node of the cluster will do: PUBLISH reaches every node)"
        )
    if target.kind == SINGLE:
        return url, {}
    # python-socketio reads redis+sentinel://auth@hosts/<db>/<service> (database first).
    userinfo = ""
    if target.username or target.password:
        userinfo = f"{quote(target.username or '', safe='')}:{quote(target.password or '', safe='')}@"
    hosts = ",".join(f"{host}:{port}" for host, port in target.nodes)
    options: dict[str, Any] = {
        "socket_timeout": POOL_OPTIONS["socket_timeout"], "socket_connect_timeout": POOL_OPTIONS["socket_connect_timeout"],
        "sentinel_kwargs": {"socket_timeout": POOL_OPTIONS["socket_timeout"], **target.sentinel_auth()},
    }
    if target.ssl:
        options["ssl"] = True
    return f"redis+sentinel://{userinfo}{hosts}/{target.db}/{target.service}", options


def describe(url: str) -> str:
    """The URL for logs and ``livesale info``: its password replaced by ``***``."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        masked = url
    else:
        masked = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hosts}").geturl()
    if "sentinel_password=" in masked:
        query = "&".join("sentinel_password=***" if q.startswith("sentinel_password=") else q
                         for q in urlsplit(masked).query.split("&"))
        masked = urlsplit(masked)._replace(query=query).geturl()
    return masked
