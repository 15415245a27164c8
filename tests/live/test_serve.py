"""The README's run command: ``livesale serve`` on the embedded defaults, as a newcomer runs it.

An SQLite file and a Redis server that livesale starts itself, both under the
instance folder, and two gevent workers (``serve``'s default on two cores):
orders posted to either worker reach viewers on both through the embedded
Redis, and stopping ``serve`` stops that Redis too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from livesale import embedded_redis
from tests.conftest import APRICOT_SESSION, free_port
from tests.live.test_live_server import PRICE, Viewer, post_orders

LIVESALE = Path(sys.executable).with_name("livesale")


def test_serve_on_the_embedded_defaults_pushes_across_its_workers(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALE_")}
    env.update(LIVESALE_ENV="development", LIVESALE_INSTANCE_PATH=str(instance))

    def cli(*args: str, stdin: str = "") -> str:
        done = subprocess.run([str(LIVESALE), *args], env=env, input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    cli("db", "upgrade")
    cli("user", "add", "aygul", "--role", "host", stdin="apricots in june\n")
    token = cli("token", "issue", "aygul")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    watching: list[Viewer] = []
    serve = subprocess.Popen([str(LIVESALE), "serve", "--port", str(port), "--workers", "2"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert serve.poll() is None, serve.communicate()[0][-3000:]
            try:
                if requests.get(f"{url}/healthz", timeout=1).json() == {"db": "ok", "redis": "ok"}:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        assert (instance / "livesale.sqlite").exists()
        assert embedded_redis.socket_path(instance).exists()

        auth = {"Authorization": f"Bearer {token}"}
        sid = requests.post(f"{url}/api/v1/sessions", json=APRICOT_SESSION, headers=auth, timeout=5).json()["id"]
        assert requests.post(f"{url}/api/v1/sessions/{sid}/start", headers=auth, timeout=5).status_code == 200
        for _ in range(6):
            watching.append(Viewer().connect(url, token))
        for viewer in watching:
            viewer.join({"session": sid})
            viewer.wait_totals(lambda d: d["orders"] == 0)
        post_orders(url, token, sid, [1, 2, 3] * 8)
        for viewer in watching:
            assert viewer.wait_totals(lambda d: d["orders"] == 24, timeout=5)["amount_fen"] == 48 * PRICE
    finally:
        for viewer in watching:
            viewer.close()
        serve.send_signal(signal.SIGINT)  # Ctrl-C
        output = serve.communicate(timeout=40)[0]
    assert serve.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not embedded_redis.socket_path(instance).exists(), "serve left its Redis running"


def test_a_first_user_can_be_added_before_anything_else(tmp_path: Path) -> None:
    """The README's first step after installing: the database does not exist yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALE_")}
    env.update(LIVESALE_ENV="development", LIVESALE_INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run([str(LIVESALE), "user", "add", "gulnar", "--role", "admin"], env=env,
                          input="apricots in june\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "instance" / "livesale.sqlite").exists()
