"""``livesale cluster``: the production topology without Docker, run as a user runs it.

Two app processes (gunicorn, one gevent worker each) on the test database and
Redis, behind Debian's nginx started by the command itself: orders posted
through nginx are counted exactly, viewers through nginx and on each process
get the exact totals, ``/metrics`` is refused from outside, and SIGTERM stops
every process it started.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from livesale import cluster
from livesale.cli import main
from tests.conftest import Users, free_port
from tests.live.conftest import PRICE, Viewer, post_orders

LIVESALE = Path(sys.executable).with_name("livesale")
ROOT = Path(__file__).resolve().parents[2]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(50):
        base = free_port()
        if base + count <= 65535 and all(_bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range")


def cluster_env(*, database_url: str, redis_url: str, instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALE_")}
    env.update(
        LIVESALE_ENV="testing", LIVESALE_SECRET_KEY="test-secret-not-for-production",
        LIVESALE_DATABASE_URL=database_url, LIVESALE_REDIS_URL=redis_url, LIVESALE_INSTANCE_PATH=str(instance),
    )
    return env


def start_cluster(args: list[str], env: dict[str, str], log: Path, timeout_s: float = 30) -> subprocess.Popen[bytes]:
    """``livesale cluster ARGS`` in the background; returns once it says it is ready."""
    with log.open("ab") as out:
        proc = subprocess.Popen([str(LIVESALE), "cluster", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT)
    deadline = time.monotonic() + timeout_s
    while "livesale cluster: ready at" not in log.read_text():
        if proc.poll() is not None:
            pytest.fail(f"livesale cluster exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"livesale cluster did not get ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children…)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += kids - found
            found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()  # its children get SIGTERM (PR_SET_PDEATHSIG)
        proc.wait()
        raise


def test_two_processes_behind_nginx(
    database_url: str, redis_url: str, tmp_path: Path, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    try:
        cluster.find_nginx()
    except cluster.ClusterError as exc:
        pytest.skip(f"no nginx binary: {exc}")
    instance = tmp_path / "instance"
    base = free_port_range(3)
    nginx_port, ports = base + 2, [base, base + 1]
    log = tmp_path / "cluster.log"
    env = cluster_env(database_url=database_url, redis_url=redis_url, instance=instance)
    proc = start_cluster(["--processes", "2", "--base-port", str(base), "--nginx", str(nginx_port)], env, log)
    url = f"http://127.0.0.1:{nginx_port}"
    token = users.token("host")
    sid = live_session["id"]
    watching: list[Viewer] = []
    children = descendants(proc.pid)
    try:
        output = log.read_text()
        for i, port in enumerate(ports, start=1):
            assert f"process {i} on http://127.0.0.1:{port}/" in output
        assert f"nginx on {url}/" in output
        # Two gunicorn masters with a worker each, nginx's master and its workers.
        assert len(children) >= 6, (children, output)

        health = requests.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"db": "ok", "redis": "ok"}
        assert health.headers["Server"] == "nginx"
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 403
        for port in ports:  # each process answers on its own port
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200

        # A viewer through nginx (WebSocket, upgraded by nginx) and one on each process.
        for where in [url, *(f"http://127.0.0.1:{p}" for p in ports)]:
            viewer = viewers().connect(where, token)
            watching.append(viewer)
            assert viewer.client.transport() == "websocket"
            viewer.join({"session": sid})
            viewer.wait_totals(lambda d: d["orders"] == 0)

        quantities = [1 + i % 3 for i in range(45)]
        post_orders(url, token, sid, quantities, threads=8)
        expected = sum(quantities) * PRICE
        for viewer in watching:
            assert viewer.wait_totals(lambda d: d["orders"] == 45, timeout=5)["amount_fen"] == expected
        totals_response = requests.get(f"{url}/api/v1/sessions/{sid}/totals",
                                       headers={"Authorization": f"Bearer {token}"}, timeout=5)
        totals = totals_response.json()
        assert (totals["orders"], totals["amount_fen"]) == (45, expected)
        # nginx's $request_id reaches the app, which answers with it (and logs it).
        request_id = totals_response.headers["X-Request-ID"]
        logged = rf'"GET /api/v1/sessions/{sid}/totals [^\n]* id={request_id} '
        access_log = instance / "nginx" / "access.log"
        deadline = time.monotonic() + 3  # nginx writes the line once the response has gone
        while not re.search(logged, access_log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        access = access_log.read_text()
        assert re.search(logged, access), (request_id, access[-2000:])
        assert f"POST /api/v1/sessions/{sid}/orders" in access
    finally:
        # Stopped while the viewers watch, as in production: they are let go at once.
        stopping = time.monotonic()
        code = stop(proc)
    stop_s = time.monotonic() - stopping
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert stop_s < 15, f"stopping took {stop_s:.1f} s"
    for viewer in watching:
        assert viewer.wait_for(lambda v=viewer: v.disconnects == 1, 5), "a viewer was not let go"
    assert "livesale cluster: stopped" in output and "Traceback" not in output, output[-3000:]
    left = [pid for pid in children if alive(pid)]
    assert not left, f"processes left behind: {left}"


def test_a_process_that_dies_stops_the_cluster(database_url: str, redis_url: str, tmp_path: Path) -> None:
    base = free_port_range(2)
    log = tmp_path / "cluster.log"
    env = cluster_env(database_url=database_url, redis_url=redis_url, instance=tmp_path / "instance")
    proc = start_cluster(["--processes", "2", "--base-port", str(base)], env, log)
    try:
        children = descendants(proc.pid)
        masters = [int(p) for p in re.findall(r"process \d on \S+ \(pid (\d+)\)", log.read_text())]
        assert len(masters) == 2 and set(masters) <= children
        os.kill(masters[1], signal.SIGKILL)
        code = proc.wait(timeout=45)
    finally:
        stop(proc)
    output = log.read_text()
    assert code == 1, output[-3000:]
    assert f"process 2 (pid {masters[1]}) exited unexpectedly" in output
    assert not [pid for pid in children if alive(pid)]


def invoke(args: list[str], env: dict[str, str]) -> Any:
    """``livesale ARGS`` in this process (the refusals come before any child starts)."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LIVESALE_")}
    return CliRunner().invoke(main, args, env={**unset, **env})


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--processes", "0"], 2, "Invalid value for '--processes'"),
        (["--base-port", "65535"], 2, "outside 1–65535"),
        (["--base-port", "9001", "--nginx", "9002"], 2, "is one of the app processes' ports"),
        (["--nginx", "9100", "--nginx-binary", "/nonexistent/nginx"], 2, "not found"),
        (["--nginx-binary", "/usr/sbin/nginx"], 2, "need --nginx PORT"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    # Unreachable backends: the refusal must come before any of them is touched.
    env = {k: v for k, v in cluster_env(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
                                        redis_url="redis://127.0.0.1:1/0", instance=tmp_path / "instance").items()
           if k.startswith("LIVESALE_")}
    result = invoke(["cluster", *args], env)
    assert result.exit_code == code, result.output
    assert message in result.output, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a clear error, not a crash


def test_a_port_in_use_is_refused(database_url: str, redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in cluster_env(database_url=database_url, redis_url=redis_url,
                                        instance=tmp_path / "instance").items() if k.startswith("LIVESALE_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke(["cluster", "--processes", "1", "--base-port", str(port)], env)
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert isinstance(result.exception, SystemExit), result.exception


def test_the_nginx_config_makes_docker_nginx_confs_choices(tmp_path: Path) -> None:
    instance = tmp_path / "an instance"  # a space in the path: every path is quoted
    conf_path = cluster.write_nginx_config(instance_path=instance, host="127.0.0.1", port=free_port(),
                                           upstreams=["127.0.0.1:8001", "127.0.0.1:8002"])
    conf = conf_path.read_text()
    assert re.search(r"upstream livesale \{\s*ip_hash;\s*server 127.0.0.1:8001 [^;]*;\s*server 127.0.0.1:8002 ", conf)
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;\s*''\s+close;", conf)
    socket_io = re.search(r"location /socket\.io/ \{(.*?)\n    \}", conf, re.S)
    assert socket_io is not None
    for line in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                 "proxy_set_header Connection $connection_upgrade;", "proxy_read_timeout 3600s;",
                 "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                 "proxy_set_header X-Request-ID $request_id;"):
        assert line in socket_io.group(1), line
    assert "location = /metrics { deny all; }" in conf
    # Nothing outside the instance folder: nginx runs as an ordinary user.
    prefix = str((instance / "nginx").resolve())
    for directive in ("pid", "lock_file", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path",
                      "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"):
        assert re.search(rf'^\s*{directive} "{re.escape(prefix)}/', conf, re.M), directive
    assert "daemon off;" in conf
    try:
        binary = cluster.find_nginx()
    except cluster.ClusterError:
        return
    cluster.check_nginx_config(binary=binary, conf=conf_path)  # nginx -t: it parses, its modules are built in
