"""Running livesale under gunicorn with gevent workers.

gevent is the production async mode: one worker holds thousands of idle
WebSocket viewers cheaply, psycopg 3 and redis-py cooperate with it once the
worker has monkey-patched the standard library, and it is maintained
(eventlet is not). gunicorn runs as a child process so its workers import
livesale only after gevent has patched (nothing is imported in the master).

Start and stop (:func:`serve`): the instance folder's embedded Redis is
claimed first (one server per folder), the port is checked before gunicorn
is started (one line at once instead of gunicorn's retries), and gunicorn
runs in its own process group: a terminal's Ctrl-C reaches only ``livesale
serve``, which turns it into gunicorn's graceful stop. Sent to the whole
group, SIGINT would make gunicorn's master quit at once and interrupt every
worker's gevent hub with a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import embedded_redis, redis_urls
from .config import ConfigError

#: Seconds gunicorn lets in-flight requests finish after a stop (viewers are let go at once).
GRACEFUL_TIMEOUT_S = 20


def default_workers() -> int:
    """One worker per core (at most 8): SQLite and the HTTP stack use a core each."""
    return max(1, min(os.cpu_count() or 1, 8))


def worker_env(
    *, instance_path: str, database_url: str, redis_url: str, workers: int, message_queue: str = ""
) -> dict[str, str]:
    """What every worker must share: database, Redis, instance folder and, with
    several workers, the Socket.IO message queue.

    Workers are separate processes: a viewer connected to one must receive
    the totals that another process's ticker emits, so with more than one
    worker Socket.IO publishes through Redis (the same server as the totals,
    unless ``LIVESALE_SOCKETIO_MESSAGE_QUEUE`` names another). The pages'
    clients connect over WebSocket directly, one long-lived connection to
    one worker, so no sticky sessions are needed.

    The queue is pub/sub on one server: a Redis Cluster ``redis_url`` needs a
    ``message_queue`` of its own (a ``ConfigError`` says so); Sentinel's is fine.
    """
    env = {
        "LIVESALE_INSTANCE_PATH": instance_path,
        "LIVESALE_DATABASE_URL": database_url,
        "LIVESALE_REDIS_URL": redis_url,
    }
    if message_queue or workers > 1:
        queue = message_queue or redis_url
        try:
            clustered = redis_urls.parse(queue).kind == redis_urls.CLUSTER
        except ValueError:
            clustered = False  # config.check_settings names the bad URL
        if clustered:
            raise ConfigError(
                "LIVESALE_REDIS_URL is a Redis Cluster, which Socket.IO's message queue cannot use: with several "
                "processes set LIVESALE_SOCKETIO_MESSAGE_QUEUE to a plain redis://host:port (one node of the "
                "cluster will do)"
            )
        env["LIVESALE_SOCKETIO_MESSAGE_QUEUE"] = queue
    return env


def gunicorn_command(*, host: str, port: int, workers: int = 1, worker_connections: int = 2000) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        # The worker class (gevent, stopping at once) is set by gunicorn_conf.py.
        "--workers", str(workers),
        "--worker-connections", str(worker_connections),
        "--bind", f"{host}:{port}",
        "--graceful-timeout", str(GRACEFUL_TIMEOUT_S),
        "--no-control-socket",
        # By path: gunicorn's master must not import livesale (see gunicorn_conf.py).
        "--config", str(Path(__file__).with_name("gunicorn_conf.py")),
        "livesale.wsgi:app",
    ]


def raise_nofile() -> None:
    """Viewers are sockets: let the children (who inherit it) open as many files as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if want > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def check_port(host: str, port: int) -> None:
    """Refuse at once, in one line, a port that gunicorn could not bind (it would retry for 5 s)."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port: choose one from 1024 to 65535")
    # As gunicorn binds: IPv6 for an IPv6 literal, else IPv4 (a name is resolved as IPv4);
    # with SO_REUSEADDR, so that only a listening socket makes the port busy.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except socket.gaierror as exc:
            raise ConfigError(f"cannot listen on {host}: {exc.strerror}; use --host 127.0.0.1 or 0.0.0.0") \
                from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is in use (another livesale or program listens there): "
                    "stop it, or choose another port with --port"
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise ConfigError(f"no permission to listen on port {port}: choose one above 1023 with --port") \
                    from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"{host} is not an address of this machine: use --host 127.0.0.1 or 0.0.0.0") \
                    from None
            raise


def serve(app: Any, *, host: str, port: int, workers: int | None, worker_connections: int,
          echo: Callable[[str], None]) -> int:
    """``livesale serve``: claim the embedded Redis, check the port, migrate, run gunicorn
    until Ctrl-C or SIGTERM; returns gunicorn's exit code.

    ``app`` is the Flask app whose settings are served (read here, never imported by gunicorn's master).
    """
    from .core import schema

    instance = app.instance_path
    ownership = None
    if app.config.get("EMBEDDED_REDIS"):
        try:
            ownership = embedded_redis.claim(instance)
        except embedded_redis.AlreadyServing as exc:
            raise ConfigError(str(exc)) from None
    try:
        check_port(host, port)
        if ownership is not None:
            try:
                embedded_redis.ensure_running(instance)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                raise ConfigError(
                    f"the embedded Redis did not start ({' '.join(str(exc).split())}): see "
                    f"{embedded_redis.data_dir(instance)}/, or set LIVESALE_REDIS_URL to a running Redis"
                ) from None
            echo(f"redis: embedded {embedded_redis.describe_server()} on {app.config['REDIS_URL']}")
        schema.upgrade(app.config["DATABASE_URL"])
        workers = workers or default_workers()
        env = worker_env(
            instance_path=instance, database_url=app.config["DATABASE_URL"], redis_url=app.config["REDIS_URL"],
            workers=workers, message_queue=app.config.get("SOCKETIO_MESSAGE_QUEUE", ""),
        )
        command = gunicorn_command(host=host, port=port, workers=workers, worker_connections=worker_connections)
        from .checks import mask_database_url

        echo(f"livesale on http://{host}:{port}/  ({workers} worker(s), database "
             f"{mask_database_url(app.config['DATABASE_URL'])}, data in {instance}); stop it with Ctrl-C")
        return run_gunicorn(command, env, on_stop=ownership.stopping if ownership is not None else None)
    finally:
        if ownership is not None:
            ownership.release()


def run_gunicorn(command: list[str], env: Mapping[str, str], *, on_stop: Callable[[], None] | None = None) -> int:
    """Run gunicorn until it exits; returns its exit code.

    SIGINT and SIGTERM are passed on as SIGTERM, gunicorn's graceful
    shutdown: in-flight requests finish before the workers exit (viewers are
    let go at once, see gunicorn_conf.py). ``on_stop`` runs at the first one.
    gunicorn runs in a process group of its own (see the module's docstring)
    and stops by itself if this process dies (``LIVESALE_SERVE_PID``).
    """
    raise_nofile()
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if child is not None:
            child.send_signal(signal.SIGTERM)
        if not stopping:
            stopping = True
            if on_stop is not None:
                on_stop()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        child = subprocess.Popen(command, env={**os.environ, **env, "LIVESALE_SERVE_PID": str(os.getpid())},
                                 start_new_session=True)
        if stopping:  # told to stop while gunicorn was being started
            child.send_signal(signal.SIGTERM)
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
