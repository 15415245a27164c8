"""What the server refuses before the app sees it, over the wire against real gunicorn.

gunicorn reads the request line and headers itself and refuses, before Flask
is called, a request line over ``limit_request_line`` (414), too many or too
large header fields (431) and what it cannot parse (400). Those refusals come
in the API's JSON error shape with a status the OpenAPI document lists
(``LivesaleWorker.handle_error``), and the worker goes on serving. nginx in
front (``livesale cluster --nginx``, ``docker/nginx.conf``) refuses a request
line or a header over 8 KB itself, in the same shape, and passes gunicorn's on.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from livesale import cluster, gunicorn_conf
from livesale.web import openapi
from tests.conftest import Users, free_port

DOC = openapi.openapi_document()
SCHEMA = schemathesis.openapi.from_dict(DOC)
LONG_QUERY = "village=" + "x" * 5000  # schemathesis found a 4,312-byte one


def exchange(url: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a new connection; the status, headers and body of the answer (read until it closes)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return int(lines[0].split(" ")[1]), headers, body


def request(path: str, *headers: str) -> bytes:
    """A GET as bytes; ``Connection: close`` so that the answer ends with the connection (nginx keeps it else)."""
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers])
            + "\r\n\r\n").encode()


def assert_api_error(headers: dict[str, str], body: bytes, code: str) -> str:
    """The API's error shape (``components/schemas/Error``): returns the message."""
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == code
    assert error["message"] and "\n" not in error["message"] and "<" not in error["message"]
    return error["message"]


def still_serving(server: Any, token: str) -> None:
    answer = requests.get(f"{server.url}/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200 and "sessions" in answer.json()


CASES = [
    # (what, request, status, code, what the message names)
    ("a 5,000-byte query", request(f"/api/v1/sessions?{LONG_QUERY}"), 414, "uri_too_long",
     str(gunicorn_conf.limit_request_line)),
    ("a page's over-long query too", request(f"/sessions?{LONG_QUERY}"), 414, "uri_too_long", "request line"),
    ("150 header fields", request("/api/v1/sessions", *(f"X-Filler-{i}: {i}" for i in range(150))), 431,
     "headers_too_large", str(gunicorn_conf.limit_request_fields)),
    ("a 9 KB header", request("/api/v1/sessions", "X-Big: " + "b" * 9 * 1024), 431, "headers_too_large",
     str(gunicorn_conf.limit_request_field_size)),
    ("a malformed request line", b"GET /api/v1/sessions HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, "bad_request",
     "could not be read"),
    ("a method in raw bytes", b"G\xc3\xa9\xff / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request",
     "could not be read"),
    ("a header without a colon", request("/api/v1/sessions", "No colon here"), 400, "bad_request",
     "could not be read"),
]


def test_refusals_before_the_app_speak_the_api_json_and_the_worker_goes_on(server_factory: Any, users: Users) -> None:
    server = server_factory()  # one worker: the one that refused must serve the next request
    token = users.token("host")
    for what, raw, status, code, named in CASES:
        got, headers, body = exchange(server.url, raw)
        assert got == status, (what, body)
        assert named in assert_api_error(headers, body, code), what
        still_serving(server, token)

    # schemathesis's case: status, content type and body as the document says.
    case = SCHEMA["/api/v1/sessions"]["GET"].Case(query={"village": "x" * 5000})
    response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 414
    case.validate_response(response)
    still_serving(server, token)
    # gunicorn still logs each refusal.
    log = server.log.read_text()
    assert log.count("Invalid request from ip=127.0.0.1") >= len(CASES), log[-3000:]


def test_every_status_the_server_refuses_with_is_documented_on_every_operation() -> None:
    for item in DOC["paths"].values():
        for method in {"get", "post", "put", "patch", "delete"} & set(item):
            assert {"414", "431"} <= set(item[method]["responses"]), (method, item[method]["operationId"])


def test_nginx_in_front_refuses_in_the_same_shape_and_passes_gunicorns_on(
    server_factory: Any, users: Users, tmp_path: Path
) -> None:
    try:
        binary = cluster.find_nginx()
    except cluster.ClusterError as exc:
        pytest.skip(f"no nginx binary: {exc}")
    server = server_factory()
    token = users.token("host")
    port = free_port()
    conf = cluster.write_nginx_config(instance_path=tmp_path / "front", host="127.0.0.1", port=port,
                                      upstreams=[f"127.0.0.1:{server.port}"], worker_processes="1")
    nginx = subprocess.Popen(cluster.nginx_command(binary=binary, conf=conf), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{url}/nginx-health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert nginx.poll() is None and time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        for what, raw, status, code in [
            ("nginx: a 9 KB request line", request(f"/api/v1/sessions?{LONG_QUERY}{'y' * 4096}"), 414,
             "uri_too_long"),
            ("nginx: a 9 KB header", request("/api/v1/sessions", "X-Big: " + "b" * 9 * 1024), 431,
             "headers_too_large"),
            ("nginx: a malformed request line", b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, "bad_request"),
            ("gunicorn's, through nginx", request(f"/api/v1/sessions?{LONG_QUERY}"), 414, "uri_too_long"),
        ]:
            got, headers, body = exchange(url, raw)
            assert got == status, (what, body)
            assert_api_error(headers, body, code)
            answer = requests.get(f"{url}/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 200, what
    finally:
        nginx.terminate()
        nginx.wait(timeout=20)


def test_docker_nginx_conf_refuses_as_the_clusters_does() -> None:
    docker = (Path(__file__).parents[2] / "docker" / "nginx.conf").read_text()
    for line in cluster.REFUSALS.strip().splitlines():
        assert line.strip() in docker, line
