"""A real group-chat robot receiver for tests: a threaded HTTP server on 127.0.0.1 that records
every request and answers as told (each robot's "ok", an HTTP 500, a redirect, or never).

Its port can be closed and opened again (``stop`` / ``start``) to play a receiver that is down.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: What each kind's robot answers when it took the message.
OK_ANSWERS = {
    "wecom": {"errcode": 0, "errmsg": "ok"},
    "dingtalk": {"errcode": 0, "errmsg": "ok"},
    "feishu": {"code": 0, "msg": "success", "data": {}},
}


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    answered: str = ""  # what the receiver did: ok, 500, redirect, hung
    #: When the sender closed its connection while the receiver held the request (hang mode).
    closed_at: float | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def kind(self) -> str:
        return self.path.strip("/").split("/")[0]

    @property
    def text(self) -> str:
        """The message's text, whatever the kind (for finding the ``#<event id>`` line)."""
        data = self.json
        if "markdown" in data:
            return data["markdown"].get("content") or data["markdown"]["text"]
        post = data["content"]["post"]["zh_cn"]
        return "\n".join("".join(e["text"] for e in row) for row in post["content"])

    @property
    def event_tag(self) -> str:
        return self.text.strip().splitlines()[-1].strip()


@dataclass
class Receiver:
    """``mode``: ``ok``, ``500``, ``hang`` (hold the request until ``release`` or the client gives up),
    ``trickle`` (an answer whose headers never end),
    ``redirect`` (302 to ``redirect_to``), or a callable ``(Received) -> (status, body bytes)``."""

    mode: str | Callable[[Received], tuple[int, bytes]] = "ok"
    redirect_to: str = ""
    port: int = 0
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cond = threading.Condition()
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                got = Received(path=parts.path, query=parse_qs(parts.query), headers=dict(self.headers.items()),
                               body=body, at=time.monotonic())
                receiver._record(got)
                mode = receiver.mode
                if callable(mode):
                    status, answer = mode(got)
                    got.answered = str(status)
                    self._answer(status, answer)
                elif mode == "ok":
                    got.answered = "ok"
                    self._answer(200, json.dumps(OK_ANSWERS.get(got.kind, OK_ANSWERS["wecom"])).encode())
                elif mode == "500":
                    got.answered = "500"
                    self._answer(500, b"<html>internal error</html>")
                elif mode == "redirect":
                    got.answered = "redirect"
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif mode == "trickle":  # an answer that never ends: a header byte every 20 ms
                    got.answered = "trickle"
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    try:
                        while not receiver.release.wait(0.02):
                            self.wfile.write(b"a")
                            self.wfile.flush()
                    except OSError:
                        with receiver.cond:
                            got.closed_at = time.monotonic()
                            receiver.cond.notify_all()
                    self.close_connection = True
                elif mode == "hang":
                    got.answered = "hung"
                    receiver._hold(self.connection, got)
                    if receiver.release.is_set() and got.closed_at is None:
                        self._answer(200, json.dumps(OK_ANSWERS.get(got.kind, OK_ANSWERS["wecom"])).encode())
                    self.close_connection = True

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port (a receiver that is down: connections are refused)."""
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def url(self, kind: str, tail: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/hook{tail}"

    # --- what arrived ------------------------------------------------------------------

    def _record(self, got: Received) -> None:
        with self.cond:
            self.requests.append(got)
            self.cond.notify_all()

    def _hold(self, conn: socket.socket, got: Received) -> None:
        """Hold the request until released, noticing when the client closes its end."""
        while not self.release.wait(0.02):
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                try:
                    eof = conn.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    eof = True
                if eof:
                    with self.cond:
                        got.closed_at = time.monotonic()
                        self.cond.notify_all()
                    return

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout=timeout)

    def of(self, kind: str) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.kind == kind]
