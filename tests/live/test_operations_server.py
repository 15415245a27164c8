"""Operations of a real server with several workers: /metrics adds up every worker, logs carry ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Users
from tests.live.conftest import post_orders


def sample(url: str, name: str) -> float:
    # A new connection each time: successive scrapes land on different workers.
    text = requests.get(url + "/metrics", timeout=5, headers={"Connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and not s.labels:
                return s.value
    return 0.0


def wait_value(url: str, name: str, expected: float, timeout: float = 10) -> list[float]:
    """Scrapes until ``expected`` is read 6 times running; returns what was read."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(sample(url, name))
        if seen[-6:] == [expected] * 6:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{name}: wanted {expected} six times running, read {seen[-20:]}")


def open_connections(pid: int, port: int) -> int:
    """Established TCP connections process ``pid`` holds on its listening ``port``."""
    return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_metrics_add_up_every_worker_and_forget_a_dead_ones_viewers(
    server_factory: Any, users: Users, live_session: dict[str, Any], viewers: Any
) -> None:
    server = server_factory(workers=2)
    token = users.token("host")
    post_orders(server.url, token, live_session["id"], [1] * 20)
    wait_value(server.url, "livesale_orders_recorded_total", 20)

    watching = [viewers().connect(server.url, token) for _ in range(6)]
    wait_value(server.url, "livesale_viewers", 6)

    # A worker dies (kill -9): gunicorn replaces it; its viewers are gone and must not be counted.
    # The kernel spreads connections over the workers as it likes: the victim is one that holds viewers.
    held = {pid: open_connections(pid, server.port) for pid in worker_pids(server.proc.pid)}
    victim = max(held, key=lambda pid: held[pid])
    assert held[victim] > 0 and sum(held.values()) == 6, held
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(1 for v in watching if v.disconnects) < held[victim]:
        time.sleep(0.05)
    lost = sum(1 for v in watching if v.disconnects)
    assert lost == held[victim], (lost, held)
    wait_value(server.url, "livesale_viewers", 6 - lost)
    # Counters are cumulative: the dead worker's orders still count.
    wait_value(server.url, "livesale_orders_recorded_total", 20)
    # The workers' figures are files under the instance folder, one set per worker process.
    files = os.listdir(os.path.join(server.env["LIVESALE_INSTANCE_PATH"], "metrics", f"gunicorn-{server.port}"))
    assert any(f.startswith("counter_") for f in files) and any(f.startswith("gauge_livesum_") for f in files)


def test_server_logs_are_json_lines_with_the_request_id(
    server_factory: Any, users: Users, live_session: dict[str, Any]
) -> None:
    server = server_factory()
    r = requests.post(
        f"{server.url}/api/v1/sessions/{live_session['id']}/orders", json={"sku": "APRICOT-5KG", "quantity": 3},
        headers={"Authorization": f"Bearer {users.token('host')}", "X-Request-ID": "from-nginx-42"}, timeout=5,
    )
    assert r.status_code == 201 and r.headers["X-Request-ID"] == "from-nginx-42"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
        mine = [x for x in lines if x.get("request_id") == "from-nginx-42"]
        if mine:
            break
        time.sleep(0.05)
    assert [(x["logger"], x["method"], x["status"]) for x in mine] == [("livesale.access", "POST", 201)]
