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
import signal
import tempfile
import threading
import time
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


def when_ready(server: Any) -> None:
    """Stop gracefully if ``livesale serve`` dies (killed with SIGKILL, say).

    gunicorn runs in its own process group (so that a terminal's Ctrl-C goes
    to ``serve`` alone), so nothing else would stop it: it would keep the
    port and the embedded Redis busy for a server that no longer exists.
    """
    parent = os.environ.get("LIVESALE_SERVE_PID")
    if not parent or not parent.isdigit():
        return  # started by hand or by `livesale cluster`

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        server.log.warning("livesale serve (pid %s) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="livesale-parent-watch", daemon=True).start()


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its connected-viewers gauge no longer counts (prometheus_client's
    ``multiprocess.mark_process_dead``, without importing prometheus_client here)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        for name in glob.glob(os.path.join(path, f"gauge_live*_{worker.pid}.db")):
            os.remove(name)


def worker_class() -> type:
    """gunicorn's gevent worker, stopping at once on SIGTERM (gunicorn resolves this function to the class).

    gunicorn's own checks for a stop once a second, then once a second for
    open connections to end: a Ctrl-C took about two seconds, more with
    viewers. This one looks every 50 ms, closes its viewers' connections as
    soon as it stops accepting (viewers' WebSockets never end by themselves;
    their clients reconnect to a server that stays), lets the requests in
    flight finish within the graceful timeout, and exits.

    Built when gunicorn reads the setting, so that the master imports
    gunicorn's gevent worker module only (which gevent-patches nothing).
    """
    from functools import partial

    import gevent
    from gevent.pool import Pool
    from gevent.server import StreamServer
    from gunicorn.sock import ssl_context
    from gunicorn.workers.ggevent import GeventWorker

    class LivesaleWorker(GeventWorker):
        def run(self) -> None:
            ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
            servers = []
            for listener in self.sockets:
                listener.setblocking(1)
                server = StreamServer(listener, handle=partial(self.handle, listener),
                                      spawn=Pool(self.worker_connections), **ssl_args)
                if self.cfg.workers > 1:
                    server.max_accept = 1  # share new connections between the workers
                server.start()
                servers.append(server)
            self._every(0.05, lambda: self.alive)
            for server in servers:
                server.close()  # stop accepting; the connections open go on
            from livesale.live import release_viewers

            released = release_viewers()
            if released:
                self.log.info("shutting down: closed %s viewer connection(s)", released)
            from livesale.core import robot_sender

            robot_sender.stop_all(wait=False)  # ends after its request in flight (10 s at most)
            deadline = time.monotonic() + self.cfg.graceful_timeout
            self._every(0.05, lambda: time.monotonic() < deadline and any(
                server.pool.free_count() != server.pool.size for server in servers))
            if any(server.pool.free_count() != server.pool.size for server in servers):
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for server in servers:
                    server.stop(timeout=1)
            robot_sender.stop_all(timeout_s=max(0.0, deadline - time.monotonic()))

        def _every(self, interval_s: float, condition: Any) -> None:
            """Sleep ``interval_s`` at a time while ``condition()``; tell the master we live once a second."""
            told = 0.0
            while condition():
                if time.monotonic() - told >= 1.0:
                    self.notify()
                    told = time.monotonic()
                gevent.sleep(interval_s)

    return LivesaleWorker
