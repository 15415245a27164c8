"""The widget behind a real nginx with the microcache of ``livesale cluster --nginx`` (docs/deploy.md).

One app process (gunicorn, one gevent worker) and Debian's nginx with the
configuration ``livesale.cluster`` generates. Fifty readers of one widget for
three seconds, some of them logged in elsewhere (they send cookies): the
app's own metrics show about one request per second for that widget, every
reader got the exact totals, the cacheable headers and no cookie; turning the
widget off while they read reaches them all within a second or two (a 404
replaces the cached figures).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from livesale import cluster
from tests.conftest import Api, free_port
from tests.live.serving import wait_until

READERS = 50
SECONDS = 3.0


def widget_requests(metrics_url: str) -> int:
    """``livesale_http_requests_total`` of the widget's JSON, every status, from the app's /metrics."""
    text = requests.get(metrics_url, timeout=5).text
    return int(sum(float(v) for v in re.findall(
        r'^livesale_http_requests_total\{endpoint="widget\.widget_json",status="\w+"\} (\S+)$', text, re.M)))


@pytest.fixture
def nginx(server_factory: Any, tmp_path: Path) -> Any:
    """The app behind nginx (the generated config); yields ``(nginx_url, app_url)``."""
    try:
        binary = cluster.find_nginx()
    except cluster.ClusterError as exc:
        pytest.skip(f"no nginx binary: {exc}")
    app = server_factory()
    port = free_port()
    conf = cluster.write_nginx_config(instance_path=tmp_path / "nginx-instance", host="127.0.0.1", port=port,
                                      upstreams=[f"127.0.0.1:{app.port}"], worker_processes="1")
    cluster.check_nginx_config(binary=binary, conf=conf)
    log = tmp_path / "nginx.out"
    with log.open("ab") as out:
        proc = subprocess.Popen(cluster.nginx_command(binary=binary, conf=conf), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return requests.get(f"{url}/nginx-health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, 10, "nginx answers")
        yield url, app.url
    finally:
        proc.terminate()  # SIGTERM: fast shutdown
        proc.wait(timeout=15)


def read_for(url: str, seconds: float, *, readers: int = READERS, stop: threading.Event | None = None
             ) -> list[requests.Response]:
    """``readers`` threads GET ``url`` for ``seconds`` (or until ``stop``); every third sends cookies."""
    got: list[requests.Response] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def reader(i: int) -> None:
        with requests.Session() as http:
            if i % 3 == 0:  # logged in on the news site and on livesale: cookies must not matter
                http.cookies.update({"session": f"someone-{i}", "lang": "en"})
            while time.monotonic() < until and not (stop and stop.is_set()):
                r = http.get(url, timeout=10)
                with lock:
                    got.append(r)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_readers_of_one_widget_reach_the_app_about_once_a_second(
    nginx: Any, host_api: Api, live_session: dict[str, Any]
) -> None:
    url, app_url = nginx
    sid, key = live_session["id"], live_session["widget_key"]
    for quantity in (2, 1):
        assert host_api.post(f"/api/v1/sessions/{sid}/orders",
                             json={"sku": "APRICOT-5KG", "quantity": quantity}).status_code == 201
    exact = host_api.get(f"/api/v1/sessions/{sid}/totals").json
    widget = f"{url}/widget/{key}.json"
    before = widget_requests(f"{app_url}/metrics")
    started = time.monotonic()
    got = read_for(widget, SECONDS)
    elapsed = time.monotonic() - started
    reached = widget_requests(f"{app_url}/metrics") - before

    assert {r.status_code for r in got} == {200}
    assert {(r.json()["orders"], r.json()["amount_fen"]) for r in got} == {(exact["orders"], exact["amount_fen"])}
    for r in got:
        assert r.headers["Cache-Control"] == "public, max-age=1"
        assert "Set-Cookie" not in r.headers
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    statuses = Counter(r.headers["X-Cache-Status"] for r in got)
    assert statuses["HIT"] > len(got) // 2, statuses
    # About one a second (the entry lives 1 s; a refresh may straddle the start and the end).
    assert reached <= elapsed * 2 + 2, f"{reached} requests reached the app in {elapsed:.1f} s for {len(got)} reads"
    assert len(got) > 5 * reached, (len(got), reached)

    # The page and embed.js go through the same cache, with the same headers.
    for path in (f"/widget/{key}?lang=en", "/embed.js"):
        r = requests.get(url + path, cookies={"session": "someone"}, timeout=5)
        assert r.status_code == 200 and "Set-Cookie" not in r.headers and "X-Cache-Status" in r.headers, path
        assert r.headers["Cache-Control"].startswith("public, max-age="), path
    # Pages and the API are never cached.
    assert "X-Cache-Status" not in requests.get(f"{url}/login", timeout=5).headers

    # Turned off while they read: within a second or two every reader gets the 404, not the last figures.
    stop = threading.Event()
    reading: list[list[requests.Response]] = []
    background = threading.Thread(target=lambda: reading.append(read_for(widget, 30, readers=20, stop=stop)))
    background.start()
    try:
        assert host_api.patch(f"/api/v1/sessions/{sid}/widget", json={"enabled": False}).status_code == 200
        wait_until(lambda: requests.get(widget, timeout=5).status_code == 404, 10, "the widget's 404 through nginx")
        time.sleep(0.5)  # the readers go on: not one of them may still get the figures
        recent = [requests.get(widget, timeout=5).status_code for _ in range(20)]
    finally:
        stop.set()
        background.join()
    assert recent == [404] * 20, "the cache kept the turned-off widget's figures"
