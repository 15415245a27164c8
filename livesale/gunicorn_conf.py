"""gunicorn settings hooks for livesale (``gunicorn -c <this file>``; ``server.gunicorn_command`` adds it).

gunicorn loads this file by path in its master process, so it imports
nothing from livesale (its workers must import the app only after gevent
has patched them) and nothing heavy.

Metrics: with several workers, each worker is its own process and
``/metrics`` must add up all of them. prometheus_client's multiprocess mode
does that through files in ``PROMETHEUS_MULTIPROC_DIR``; the directory is
chosen and emptied here, before the first worker starts (so workers inherit
the variable), and the live gauges of a worker that exits are removed.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any


def _metrics_dir(server: Any) -> str:
    base = os.environ.get("LIVESALE_INSTANCE_PATH") or tempfile.gettempdir()
    port = next((str(a[1]) for a in server.address if isinstance(a, tuple)), "socket")
    return os.path.join(base, "metrics", f"gunicorn-{port}")


def on_starting(server: Any) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        if server.cfg.workers <= 1:
            return  # one worker: its own registry is the whole truth
        path = _metrics_dir(server)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    # Files of an earlier run would add stale counts to this one.
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its connected-viewers gauge no longer counts (prometheus_client's
    ``multiprocess.mark_process_dead``, without importing prometheus_client here)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        for name in glob.glob(os.path.join(path, f"gauge_live*_{worker.pid}.db")):
            os.remove(name)


def post_worker_init(worker: Any) -> None:
    """On SIGTERM (graceful shutdown), let this worker's viewers go at once.

    gunicorn stops accepting and waits up to the graceful timeout for open
    connections; viewers' WebSockets never end by themselves. A watcher
    closes them as soon as the worker is told to stop, so in-flight requests
    finish and viewers reconnect elsewhere without waiting.
    """
    try:
        import gevent
    except ImportError:  # pragma: no cover - the gevent worker is the one livesale runs
        return

    def watch() -> None:
        while worker.alive:
            gevent.sleep(0.2)
        from livesale.live import release_viewers

        count = release_viewers()
        if count:
            worker.log.info("shutting down: closed %s viewer connection(s)", count)

    gevent.spawn(watch)
