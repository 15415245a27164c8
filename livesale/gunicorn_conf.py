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
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from http import HTTPStatus
from typing import Any

#: What gunicorn refuses before the app sees it (its own defaults, named because the API documents them):
#: a request line (method, path and query) over ``limit_request_line`` bytes is a 414; more header fields
#: than ``limit_request_fields``, or one over ``limit_request_field_size`` bytes, a 431. They keep a worker
#: from buffering whatever a client sends; ``LivesaleWorker.handle_error`` answers them in the API's JSON.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190


def _metrics_dir(server: Any) -> str:
    base = os.environ.get("LIVESALE_INSTANCE_PATH") or tempfile.gettempdir()
    port = next((str(a[1]) for a in server.address if isinstance(a, tuple)), "socket")
    return os.path.join(base, "metrics", f"gunicorn-{port}")


def on_starting(server: Any) -> None:
    # The workers inherit it: the app gives public widgets a share of it (config.WIDGET_SOCKET_LIMIT).
    os.environ["LIVESALE_WORKER_CONNECTIONS"] = str(server.cfg.worker_connections)
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
    from gunicorn.util import write_nonblock
    from gunicorn.workers.ggevent import GeventWorker

    class LivesaleWorker(GeventWorker):
        def init_process(self) -> None:
            _send_head_with_body()
            super().init_process()

        def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
            """gunicorn's refusals (a request it could not or would not read) in the API's JSON error shape.

            gunicorn still decides the status and logs the refusal (given a stand-in socket that keeps
            what it would send); the client gets ``{"error": {"code", "message"}}`` instead of its HTML
            page. JSON for every path: when the request line itself is refused the path is not known.
            """
            kept = _Kept()
            super().handle_error(req, kept, addr, exc)
            status = kept.status()
            if status is None:
                return  # gunicorn sent nothing (it could not): neither do we
            try:
                write_nonblock(client, refusal(status, _refusal_message(self.cfg, status, exc)))
            except Exception:
                self.log.debug("Failed to send error message.")

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


def _send_head_with_body() -> None:
    """In a worker: gunicorn's HTTP/1 responses put their head and their first body bytes on the wire in one
    ``sendall`` instead of two (a JSON answer is one write: one system call and one TCP segment, not two).

    gunicorn builds its responses with ``gunicorn.http.wsgi.Response`` (``wsgi.create``): the subclass it
    gets keeps the head that ``send_headers`` would send (gunicorn still builds it) and sends it before the
    first body bytes. Chunked bodies, bodies a response must not have (HEAD, 204, 304) and files sent with
    ``sendfile`` go gunicorn's own way; so does HTTP/2 (its own response class).
    """
    from gunicorn.http import wsgi

    if not getattr(wsgi.Response, "_livesale_one_write", False):
        wsgi.Response = one_write_response(wsgi.Response)


def one_write_response(base: type) -> type:
    """``base`` (gunicorn's ``Response``) sending its head with its first body bytes (see above)."""
    from gunicorn import util

    class OneWriteResponse(base):  # type: ignore[misc, valid-type]
        _livesale_one_write = True
        _holding = False
        _head: bytes | None = None

        def send_headers(self) -> None:
            if not self._holding or self.headers_sent:
                return super().send_headers()
            real, kept = self.sock, _Kept()
            self.sock = kept
            try:
                super().send_headers()
            finally:
                self.sock = real
            self._head = kept.sent

        def _emit_body(self, data: bytes) -> None:
            head, self._head = self._head, None
            super()._emit_body(head + data if head else data)

        def write(self, arg: bytes) -> None:
            if self.headers_sent or self.chunked or self._omits_body:
                return super().write(arg)
            self._holding = True
            try:
                super().write(arg)
            finally:
                self._holding = False
                head, self._head = self._head, None
                if head:  # write() sent no body bytes (it had none to send): the head alone
                    util.write(self.sock, head)

    return OneWriteResponse


class _Kept:
    """A stand-in for a client socket that keeps what gunicorn sends it (its refusal page)."""

    def __init__(self) -> None:
        self.sent = b""

    def gettimeout(self) -> float:
        return 0.0  # "non-blocking already": gunicorn then just sends

    def sendall(self, data: bytes) -> None:
        self.sent += bytes(data)

    def status(self) -> int | None:
        """The status of what was sent (``HTTP/1.1 414 URI Too Long``), or None if nothing was."""
        parts = self.sent.split(b"\r\n", 1)[0].split(b" ", 2)
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def _refusal_message(cfg: Any, status: int, exc: BaseException) -> str:
    """What the client is told: the limit it went over, in one line; else gunicorn's own reason."""
    if status == 414:
        return (f"the request line (method, path and query) is longer than {cfg.limit_request_line} bytes: "
                "send fewer or shorter query parameters")
    if status == 431:
        return (f"the request has more than {cfg.limit_request_fields} header fields or one longer than "
                f"{cfg.limit_request_field_size} bytes")
    if status >= 500:
        return "internal error; the request was not completed"
    detail = " ".join(str(exc).split())[:200]  # it may quote what the client sent: one short line
    return f"the request could not be read: {detail}" if detail else "the request could not be read"


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response: the API's JSON error for ``status``; the connection then closes."""
    from livesale.web.errors import HTTP_CODES  # in a worker, where the app is loaded already

    # ASCII with escapes: the message may quote what the client sent, lone surrogates included.
    body = json.dumps({"error": {"code": HTTP_CODES.get(status, "error"), "message": message}}).encode("ascii")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n")
    return head.encode("latin-1") + body
