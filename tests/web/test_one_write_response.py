"""gunicorn's responses as the workers send them (gunicorn_conf.one_write_response): the head and the
first body bytes in one ``sendall`` (one system call, one TCP segment); bodies a response must not have
and chunked bodies as gunicorn sends them. Real sockets, gunicorn's own request parser."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from livesale.gunicorn_conf import one_write_response


class Counted:
    """A real connected socket that also keeps what each ``sendall`` call sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def respond(request: bytes, status: str, headers: list[tuple[str, str]], body: list[bytes],
            response_class: type) -> tuple[list[bytes], bytes]:
    cfg = Config()
    req = next(iter(RequestParser(cfg, [request], ("127.0.0.1", 5000))))
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sock = Counted(ours)
        resp = response_class(req, sock, cfg)
        resp.start_response(status, headers)
        for chunk in body:
            resp.write(chunk)
        resp.close()
        ours.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
    return sock.sends, received


GET = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
JSON = [("Content-Type", "application/json"), ("Content-Length", "15")]


def test_head_and_body_go_in_one_write() -> None:
    sends, received = respond(GET, "200 OK", JSON, [b'{"status":"ok"}'], one_write_response(wsgi.Response))
    assert len(sends) == 1
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 15" in head.split(b"\r\n")
    assert body == b'{"status":"ok"}'
    # gunicorn's own response sends the same bytes in two writes.
    plain_sends, plain = respond(GET, "200 OK", JSON, [b'{"status":"ok"}'], wsgi.Response)
    assert len(plain_sends) == 2
    assert plain.split(b"\r\n", 3)[3] == received.split(b"\r\n", 3)[3]  # the same but for the Date line


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n", "200 OK"),
    (GET, "304 Not Modified"),
])
def test_a_response_without_a_body_sends_its_head_alone(request_bytes: bytes, status: str) -> None:
    sends, received = respond(request_bytes, status, JSON, [b'{"status":"ok"}'], one_write_response(wsgi.Response))
    assert received.endswith(b"\r\n\r\n") and b'{"status"' not in received
    assert len(sends) == 1


def test_an_empty_body_sends_the_head() -> None:
    headers = [("Content-Type", "application/json"), ("Content-Length", "0")]
    sends, received = respond(GET, "200 OK", headers, [], one_write_response(wsgi.Response))
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"Content-Length: 0\r\n\r\n")
    sends, received = respond(GET, "200 OK", headers, [b""], one_write_response(wsgi.Response))
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"Content-Length: 0\r\n\r\n")
    assert len(sends) == 1


def test_a_streamed_body_is_chunked_as_gunicorn_does() -> None:
    parts = [b"a,b\r\n", b"1,2\r\n"]
    sends, received = respond(GET, "200 OK", [("Content-Type", "text/csv")], parts, one_write_response(wsgi.Response))
    _, plain = respond(GET, "200 OK", [("Content-Type", "text/csv")], parts, wsgi.Response)
    assert b"Transfer-Encoding: chunked" in received
    assert received.partition(b"\r\n\r\n")[2] == plain.partition(b"\r\n\r\n")[2] == b"5\r\na,b\r\n\r\n5\r\n1,2\r\n\r\n0\r\n\r\n"
