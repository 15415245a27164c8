"""Starting and stopping ``livesale serve`` as a user does, with real processes.

Ctrl-C is SIGINT to the process group, as a terminal sends it. Times are
measured and printed (run with ``-s`` to see them) but compared only against
gunicorn's graceful timeout, the longest a stop may take by design: the
machine running the tests may be slow, a stop that waited out that timeout
is a bug on any machine.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from livesale import embedded_redis
from livesale.server import GRACEFUL_TIMEOUT_S
from tests.conftest import APRICOT_SESSION, free_port
from tests.live.conftest import PRICE, Viewer
from tests.live.serving import LIVESALE, Serve, cli, stop_embedded_redis, user_env, wait_until


@dataclass
class Folder:
    """One instance folder, and everything started on it."""

    instance: Path
    cwd: Path
    env: dict[str, str]
    servers: list[Serve]

    def serve(self, *, workers: int = 1, port: int | None = None) -> Serve:
        self.servers.append(Serve(self.env, self.cwd, port or free_port(), workers=workers).start())
        return self.servers[-1]

    def token(self) -> str:
        cli(self.env, self.cwd, "user", "add", "aygul", "--role", "host", stdin="apricots in june\n")
        return cli(self.env, self.cwd, "token", "issue", "aygul")


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Folder]:
    instance = tmp_path / "instance"
    cwd = tmp_path / "work"
    cwd.mkdir()
    made = Folder(instance, cwd, user_env(tmp_path / "home", instance), [])
    yield made
    for server in made.servers:
        server.cleanup()
    stop_embedded_redis(instance)


def live_session(url: str, token: str) -> int:
    auth = {"Authorization": f"Bearer {token}"}
    sid = requests.post(f"{url}/api/v1/sessions", json=APRICOT_SESSION, headers=auth, timeout=10).json()["id"]
    assert requests.post(f"{url}/api/v1/sessions/{sid}/start", headers=auth, timeout=10).status_code == 200
    return sid


def assert_clean_stop(server: Serve, elapsed: float, folder: Folder) -> None:
    print(f"\nCtrl-C → exit: {elapsed:.2f} s ({server.workers} worker(s))")
    assert server.proc is not None and server.proc.returncode == 0, server.output[-3000:]
    assert "Traceback" not in server.output, server.output[-3000:]
    assert "Worker graceful timeout" not in server.output, server.output[-3000:]
    assert elapsed < GRACEFUL_TIMEOUT_S, f"the stop waited out the graceful timeout: {elapsed:.1f} s"
    assert not server.leftovers(), "gunicorn processes outlived serve"
    assert not embedded_redis.is_running(folder.instance), "serve left its Redis running"
    assert embedded_redis.owner(folder.instance) is None


def test_ctrl_c_stops_serve_at_once_without_viewers(folder: Folder) -> None:
    server = folder.serve(workers=2).wait_healthy()
    assert embedded_redis.owner(folder.instance).pid == server.pid
    assert_clean_stop(server, server.ctrl_c(), folder)


def test_ctrl_c_stops_serve_at_once_with_viewers_connected(folder: Folder) -> None:
    token = folder.token()
    server = folder.serve(workers=2).wait_healthy()
    sid = live_session(server.url, token)
    watching = [Viewer().connect(server.url, token) for _ in range(4)]
    try:
        for viewer in watching:
            viewer.join({"session": sid})
            viewer.wait_totals(lambda d: d["orders"] == 0, timeout=10)
        elapsed = server.ctrl_c()
        for viewer in watching:
            assert viewer.wait_for(lambda v=viewer: v.disconnects >= 1, timeout=10), "a viewer was not let go"
    finally:
        for viewer in watching:
            viewer.close()
    assert_clean_stop(server, elapsed, folder)
    assert "closed" in server.output and "viewer connection(s)" in server.output


def _send_half_an_order(port: int, token: str, sid: int) -> tuple[socket.socket, bytes]:
    body = json.dumps({"sku": "APRICOT-5KG", "quantity": 3, "external_id": "in-flight"}).encode()
    head = (
        f"POST /api/v1/sessions/{sid}/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head + body[:10])
    return sock, body[10:]


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before an answer"
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_server_started_while_the_previous_one_stops_keeps_its_redis(folder: Folder) -> None:
    """Restart overlap: A is stopping (an order still in flight keeps it alive) when B starts on the same
    folder. B takes the embedded Redis over; A's exit leaves it running; B's /healthz says Redis ok."""
    token = folder.token()
    a = folder.serve().wait_healthy()
    sid = live_session(a.url, token)
    sock, rest = _send_half_an_order(a.port, token, sid)
    with sock:
        a.interrupt_only()
        wait_until(lambda: (embedded_redis.owner(folder.instance) or embedded_redis.Owner(0, 0)).stopping, 30,
                   "A did not say it is stopping")
        b = folder.serve().wait_healthy()
        assert a.proc is not None and a.proc.poll() is None, "A stopped before B started: no overlap tested"
        assert embedded_redis.owner(folder.instance).pid == b.pid
        sock.sendall(rest)  # A finishes its last order, then exits
        assert _read_status(sock) == 201
    assert a.wait() == 0, a.output[-3000:]
    assert "Traceback" not in a.output, a.output[-3000:]
    assert requests.get(f"{b.url}/healthz", timeout=5).json() == {"db": "ok", "redis": "ok"}
    totals = requests.get(f"{b.url}/api/v1/sessions/{sid}/totals", headers={"Authorization": f"Bearer {token}"},
                          timeout=10).json()
    assert (totals["orders"], totals["amount_fen"]) == (1, 3 * PRICE)
    assert_clean_stop(b, b.ctrl_c(), folder)


def test_a_killed_servers_lock_is_taken_over(folder: Folder) -> None:
    """kill -9 of serve: its gunicorn stops by itself, and the next serve takes the stale lock over."""
    a = folder.serve().wait_healthy()
    gunicorn = list(a.leftovers())
    assert gunicorn
    a.kill9()
    assert embedded_redis.owner(folder.instance) is None  # the lock's pid is dead: nobody owns it
    wait_until(lambda: not a.leftovers(), GRACEFUL_TIMEOUT_S + 10, "A's gunicorn outlived serve")
    b = folder.serve().wait_healthy()
    assert embedded_redis.owner(folder.instance).pid == b.pid
    assert_clean_stop(b, b.ctrl_c(), folder)


def _refused(folder: Folder, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LIVESALE), "serve", "--port", str(port)], env=folder.env, cwd=folder.cwd,
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def test_a_second_serve_on_the_same_folder_is_refused_in_one_line(folder: Folder) -> None:
    a = folder.serve().wait_healthy()
    done = _refused(folder, free_port())
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "already serving" in lines[0] and str(a.pid) in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not done.stdout
    # The first one did not notice.
    assert requests.get(f"{a.url}/healthz", timeout=5).json() == {"db": "ok", "redis": "ok"}
    assert embedded_redis.owner(folder.instance).pid == a.pid
    assert_clean_stop(a, a.ctrl_c(), folder)


def test_a_port_in_use_is_one_line_at_once(folder: Folder) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _refused(folder, port)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "gunicorn" not in done.stderr.lower()
    # Refused before anything started: no Redis running, no lock left.
    assert not embedded_redis.is_running(folder.instance)
    assert embedded_redis.owner(folder.instance) is None
    assert not list(folder.cwd.iterdir()), "a stray file in the working directory"

