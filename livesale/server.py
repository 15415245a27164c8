"""Running livesale under gunicorn with gevent workers.

gevent is the production async mode: one worker holds thousands of idle
WebSocket viewers cheaply, psycopg 3 and redis-py cooperate with it once the
worker has monkey-patched the standard library, and it is maintained
(eventlet is not). gunicorn runs as a child process so its workers import
livesale only after gevent has patched (nothing is imported in the master).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


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
    """
    env = {
        "LIVESALE_INSTANCE_PATH": instance_path,
        "LIVESALE_DATABASE_URL": database_url,
        "LIVESALE_REDIS_URL": redis_url,
    }
    if message_queue or workers > 1:
        env["LIVESALE_SOCKETIO_MESSAGE_QUEUE"] = message_queue or redis_url
    return env


def gunicorn_command(*, host: str, port: int, workers: int = 1, worker_connections: int = 2000) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "gevent",
        "--workers", str(workers),
        "--worker-connections", str(worker_connections),
        "--bind", f"{host}:{port}",
        "--graceful-timeout", "20",
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


def run_gunicorn(command: list[str], env: Mapping[str, str]) -> int:
    """Run gunicorn until it exits; returns its exit code.

    SIGINT and SIGTERM are passed on as SIGTERM, gunicorn's graceful
    shutdown: in-flight requests finish before the workers exit.
    """
    raise_nofile()
    child = subprocess.Popen(command, env={**os.environ, **env})

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
