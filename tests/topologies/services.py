"""Real Redis topologies on loopback, started and killed by the test run.

* ``RedisCluster``: three ``redis-server --cluster-enabled yes`` masters joined
  by ``redis-cli --cluster create … --cluster-replicas 0`` (or a replica each,
  for the failover test), ready once every node says ``cluster_state:ok``.
* ``SentinelGroup``: a master, a replica (``--replicaof``) and three sentinels
  (``redis-server sentinel.conf --sentinel``) monitoring it with quorum 2 and a
  short ``down-after-milliseconds``, so that a failover takes seconds.

Ports are chosen at run time: a random block between 10000 and 22760 (a
Cluster node's bus listens on its port + 10000, still below the ephemeral
ports from 32768) whose ports, and bus ports, can be bound right now. Another run can still take one before our redis-server binds it, so a
start whose server exits is retried on another block. No data on disk: no RDB
snapshots, no append-only file. Every process is a child of the test run that
also dies with it (``PR_SET_PDEATHSIG``): a run killed with ``kill -9`` leaves
no redis-server behind for the next one.
"""

from __future__ import annotations

import ctypes
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient
from redis.sentinel import Sentinel

from tests.chaos.services import redis_binary

#: The Sentinel service name (``redis+sentinel://…/<service>``).
SERVICE = "livesale"
#: Sentinel settings: a master unreachable for 1 s is down; a failover gives up after 3 s.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
#: Ports (and cluster bus ports, + 10000) below Linux's ephemeral range (32768 on): no outgoing
#: connection of another test takes one of them between our check and redis-server's bind.
_PORTS = (10000, 22768 - 8)
_START_ATTEMPTS = 5


class StartFailed(RuntimeError):
    """A redis-server exited while starting (most often: its port was taken meanwhile)."""


def unsupported() -> str:
    """Why Cluster and Sentinel cannot run here ('' if they can): no redis-server, one older
    than 3.0 (no cluster mode), or no redis-cli to create the cluster."""
    try:
        binary = redis_binary()
    except Exception as exc:  # noqa: BLE001 - whatever the reason, say it
        return f"no redis-server to start ({exc})"
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError as exc:
        return f"{binary} does not run ({exc})"
    match = re.search(r"v=(\d+)\.", version)
    if not match or int(match.group(1)) < 3:
        return f"{binary} has no cluster mode (Redis >= 3.0 needed): {version.strip()!r}"
    if _redis_cli(binary) is None:
        return "no redis-cli to create the cluster with (`redis-cli --cluster create`)"
    return ""


def skip_unless_supported() -> None:
    """``pytest.skip`` with the reason when this machine cannot run the topologies."""
    reason = unsupported()
    if reason:
        pytest.skip(f"Redis Cluster and Sentinel tests need redis-server >= 3.0 with redis-cli: {reason}")


def _redis_cli(binary: str) -> str | None:
    beside = Path(binary).with_name("redis-cli")
    return str(beside) if beside.exists() else shutil.which("redis-cli")


try:  # loaded here, not in the forked child (a dlopen there could deadlock on another thread's lock)
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not Linux/glibc: teardown still kills every child
    _LIBC = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test run (its parent) dies."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(count: int, *, bus: bool = False) -> list[int]:
    """``count`` consecutive free ports (and their bus ports, port + 10000, if ``bus``)."""
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(_PORTS[0], _PORTS[1] - count)
        ports = list(range(base, base + count))
        if all(_bindable(p) for p in ports) and (not bus or all(_bindable(p + 10000) for p in ports)):
            return ports
    raise RuntimeError(f"no {count} free ports found in {_PORTS}")


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, *, every_s: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
        except redis.RedisError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} (after {timeout_s:g} s)")
        time.sleep(every_s)


class RedisProcess:
    """One redis-server (data node or sentinel) as a child process."""

    def __init__(self, directory: Path, port: int, args: list[str], *, name: str):
        self.directory = directory
        self.port = port
        self.args = args
        self.name = name
        self.log = directory / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [redis_binary(), *self.args], cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads of ours run yet in this child
        )
        return self

    def wait_ready(self, timeout_s: float = 15) -> RedisProcess:
        """Until our process answers on its port (not another run's server that holds the port)."""
        deadline = time.monotonic() + timeout_s
        while not self.ours():
            if self.proc is None or self.proc.poll() is not None:
                raise StartFailed(f"{self.name} on port {self.port} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise StartFailed(f"{self.name} on port {self.port} did not answer: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def log_tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout_s: float = 2) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout_s,
                           socket_connect_timeout=timeout_s, decode_responses=True)

    def call(self, *args: Any) -> Any:
        """One command on a connection of its own."""
        client = self.client()
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def info(self, section: str) -> dict[str, Any]:
        client = self.client()
        try:
            return client.info(section)
        finally:
            client.close()

    def ours(self) -> bool:
        """This process answers on the port."""
        if not self.alive:
            return False
        try:
            return int(self.info("server")["process_id"]) == self.proc.pid  # type: ignore[union-attr]
        except redis.RedisError:
            return False

    def kill9(self) -> None:
        """``kill -9``: the process is gone, whatever it had not replicated with it."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    stop = kill9  # nothing on disk to save


def _data_args(directory: Path, port: int, *extra: str) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--daemonize", "no",
            "--save", "", "--appendonly", "no", "--logfile", str(directory / f"redis-{port}.log"), *extra]


class Topology:
    """What the tests need of either topology."""

    url = ""
    kind = ""
    processes: list[RedisProcess]

    def __enter__(self) -> Topology:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Topology:
        raise NotImplementedError

    def client(self) -> Any:
        """A redis-py client of the topology, built here (not by livesale) from the ports."""
        raise NotImplementedError

    def masters(self) -> list[RedisProcess]:
        raise NotImplementedError

    def flushall(self) -> None:
        for node in self.masters():
            node.call("FLUSHALL")

    def keys(self, pattern: str) -> dict[int, list[str]]:
        """Keys matching ``pattern`` on each master, by port."""
        return {node.port: sorted(node.call("KEYS", pattern)) for node in self.masters()}

    def stop(self) -> None:
        for process in getattr(self, "processes", []):
            process.stop()


class RedisCluster(Topology):
    kind = "cluster"

    def __init__(self, directory: Path, *, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 5000):
        self.directory = directory
        self.count = masters * (1 + replicas)
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.processes = []

    @property
    def url(self) -> str:  # type: ignore[override]
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.processes)

    def start(self) -> RedisCluster:
        for attempt in range(_START_ATTEMPTS):
            ports = free_block(self.count, bus=True)
            directory = self.directory / f"try-{attempt}"
            self.processes = [
                RedisProcess(directory, port, _data_args(
                    directory, port, "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms)), name=f"redis-{port}")
                for port in ports
            ]
            try:
                for node in self.processes:
                    node.start()
                for node in self.processes:
                    node.wait_ready()
                break
            except StartFailed:
                self.stop()
                if attempt == _START_ATTEMPTS - 1:
                    raise
        cli = _redis_cli(redis_binary())
        assert cli is not None
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.processes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr}")

        def formed() -> bool:
            for node in self.processes:
                info = node.call("CLUSTER", "INFO")
                if "cluster_state:ok" not in info or f"cluster_known_nodes:{self.count}" not in info:
                    return False
            return len(self.masters()) == self.count // (1 + self.replicas) and all(
                node.info("replication")["master_link_status"] == "up" for node in self.processes
                if node not in self.masters())

        wait_until(formed, 30, "the cluster never said cluster_state:ok on every node, replicas in sync")
        return self

    def masters(self) -> list[RedisProcess]:
        """The live nodes that are masters now (a replica promoted after a failure among them)."""
        if not self.replicas:
            return list(self.processes)
        return [node for node in self.processes if node.alive and node.info("replication")["role"] == "master"]

    def replica_of(self, port: int) -> RedisProcess:
        return next(node for node in self.processes if node.alive and node.port != port
                    and node.info("replication").get("master_port") == port)

    def node(self, port: int) -> RedisProcess:
        return next(node for node in self.processes if node.port == port)

    def wait_promoted(self, replica: RedisProcess, timeout_s: float = 30) -> float:
        """Until ``replica`` is a master and every live node says ``cluster_state:ok``; returns when (monotonic)."""

        def promoted() -> bool:
            return replica.info("replication")["role"] == "master" and all(
                "cluster_state:ok" in node.call("CLUSTER", "INFO") for node in self.processes if node.alive)

        wait_until(promoted, timeout_s, f"the replica {replica.port} was never promoted", every_s=0.02)
        return time.monotonic()

    def client(self) -> ClusterClient:
        return ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", node.port) for node in self.processes],
                             decode_responses=True, socket_timeout=2)

    def node_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        ask = next(node for node in self.processes if node.alive)
        slot = ask.call("CLUSTER", "KEYSLOT", key)
        for start, end, master, *_replicas in ask.call("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")


class SentinelGroup(Topology):
    """A master, a replica and three sentinels; ``failover`` and ``kill9_master`` for the fault tests."""

    kind = "sentinel"

    def __init__(self, directory: Path, *, service: str = SERVICE):
        self.directory = directory
        self.service = service
        self.data: list[RedisProcess] = []
        self.sentinels: list[RedisProcess] = []

    @property
    def processes(self) -> list[RedisProcess]:  # type: ignore[override]
        return [*self.sentinels, *self.data]

    @property
    def url(self) -> str:  # type: ignore[override]
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> SentinelGroup:
        for attempt in range(_START_ATTEMPTS):
            master_port, replica_port, *sentinel_ports = free_block(5)
            directory = self.directory / f"try-{attempt}"
            directory.mkdir(parents=True, exist_ok=True)
            self.data = [
                RedisProcess(directory, master_port, _data_args(directory, master_port), name=f"redis-{master_port}"),
                RedisProcess(directory, replica_port, _data_args(
                    directory, replica_port, "--replicaof", "127.0.0.1", str(master_port)), name=f"redis-{replica_port}"),
            ]
            self.sentinels = [self._sentinel(directory, port, master_port) for port in sentinel_ports]
            try:
                for process in self.data:
                    process.start()
                for process in self.data:
                    process.wait_ready()
                for process in self.sentinels:
                    process.start()
                for process in self.sentinels:
                    process.wait_ready()
                break
            except StartFailed:
                self.stop()
                if attempt == _START_ATTEMPTS - 1:
                    raise
        self.wait_replicas_synced()
        self.wait_sentinels_agree()
        return self

    def _sentinel(self, directory: Path, port: int, master_port: int) -> RedisProcess:
        # Sentinel rewrites its file (what it learns of replicas, other sentinels, epochs): one each.
        conf = directory / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {directory}\nlogfile {directory}/sentinel-{port}.log\n"
            f"sentinel monitor {self.service} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {self.service} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.service} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        process = RedisProcess(directory, port, [str(conf), "--sentinel"], name=f"sentinel-{port}")
        process.log = directory / f"sentinel-{port}.log"
        return process

    # --- what the sentinels and the nodes say ------------------------------------------

    def master_port(self) -> int | None:
        """The master the sentinels agree on (a majority of the live ones), else None."""
        seen: dict[int, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            try:
                addr = sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            except redis.RedisError:
                continue
            if addr:
                seen[int(addr[1])] = seen.get(int(addr[1]), 0) + 1
        if not seen:
            return None
        port, votes = max(seen.items(), key=lambda kv: kv[1])
        return port if votes >= 2 else None

    def node(self, port: int) -> RedisProcess:
        return next(node for node in self.data if node.port == port)

    def master(self) -> RedisProcess:
        port = self.master_port()
        assert port is not None, "the sentinels do not agree on a master"
        return self.node(port)

    def masters(self) -> list[RedisProcess]:
        return [self.master()]

    def client(self) -> redis.Redis:
        sentinel = Sentinel([("127.0.0.1", s.port) for s in self.sentinels], socket_timeout=2)
        return sentinel.master_for(self.service, decode_responses=True, socket_timeout=2)

    def wait_replicas_synced(self, timeout_s: float = 30) -> None:
        """Every live data node other than the master replicates it, link up."""

        def synced() -> bool:
            master = self.master_port() or self.data[0].port
            if self.node(master).info("replication")["role"] != "master":
                return False
            for node in self.data:
                if node.port == master or not node.alive:
                    continue
                info = node.info("replication")
                if info["role"] != "slave" or info["master_port"] != master or info["master_link_status"] != "up":
                    return False
            return True

        wait_until(synced, timeout_s, "the replica never got in sync with the master")

    def wait_sentinels_agree(self, timeout_s: float = 30) -> None:
        """Every sentinel knows the master, its live replicas and the two other sentinels."""
        replicas = sum(1 for node in self.data if node.alive) - 1

        def agree() -> bool:
            master = self.master_port()
            if master is None:
                return False
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    state = client.sentinel_master(self.service)
                if (int(state["port"]) != master or state["num-other-sentinels"] != 2
                        or state["num-slaves"] < replicas or not state["is_master"] or state["is_sdown"]):
                    return False
            return True

        wait_until(agree, timeout_s, "the sentinels never agreed on the master, its replica and each other",
                   every_s=0.1)

    def wait_promoted(self, old_port: int, timeout_s: float = 30) -> tuple[int, float]:
        """Until a node other than ``old_port`` is the master, for the sentinels and by its own role;
        returns its port and when that was first seen (monotonic)."""

        def promoted() -> int | None:
            port = self.master_port()
            if port is None or port == old_port:
                return None
            return port if self.node(port).info("replication")["role"] == "master" else None

        port = wait_until(promoted, timeout_s, f"no master other than {old_port} was promoted", every_s=0.02)
        return port, time.monotonic()

    # --- faults ---------------------------------------------------------------------------

    def failover(self) -> int:
        """``SENTINEL FAILOVER <service>``: the master hands over to the replica; returns the old master's port."""
        old = self.master_port()
        assert old is not None
        self.sentinels[0].call("SENTINEL", "FAILOVER", self.service)
        return old

    def kill9_master(self) -> int:
        """``kill -9`` of the master process; returns its port."""
        master = self.master()
        master.kill9()
        return master.port
