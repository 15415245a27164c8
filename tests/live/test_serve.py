"""The README's run command: ``livesale serve`` on the embedded defaults, as a newcomer runs it.

An SQLite file and a Redis server that livesale starts itself, both under the
instance folder, and two gevent workers (``serve``'s default on two cores):
orders posted to either worker reach viewers on both through the embedded
Redis, and stopping ``serve`` stops that Redis too.
"""

from __future__ import annotations

from pathlib import Path

import requests

from livesale import embedded_redis
from tests.conftest import APRICOT_SESSION, free_port
from tests.live.serving import Serve, cli, stop_embedded_redis, user_env
from tests.live.test_live_server import PRICE, Viewer, post_orders


def test_serve_on_the_embedded_defaults_pushes_across_its_workers(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = user_env(tmp_path / "home", instance)

    cli(env, tmp_path, "db", "upgrade")
    cli(env, tmp_path, "user", "add", "aygul", "--role", "host", stdin="apricots in june\n")
    token = cli(env, tmp_path, "token", "issue", "aygul")
    serve = Serve(env, tmp_path, free_port(), workers=2).start()
    url = serve.url
    watching: list[Viewer] = []
    try:
        serve.wait_healthy()
        assert (instance / "livesale.sqlite").exists()
        assert embedded_redis.socket_path(instance).exists()
        assert "redis: embedded Valkey" in serve.output or "redis: embedded Redis" in serve.output

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
        serve.ctrl_c()  # SIGINT to the process group, as a terminal sends it
    finally:
        for viewer in watching:
            viewer.close()
        serve.cleanup()
        stop_embedded_redis(instance)
    assert serve.proc is not None and serve.proc.returncode == 0, serve.output[-3000:]
    assert "Traceback" not in serve.output, serve.output[-3000:]
    assert not embedded_redis.socket_path(instance).exists(), "serve left its Redis running"


def test_a_first_user_can_be_added_before_anything_else(tmp_path: Path) -> None:
    """The README's first step after installing: the database does not exist yet."""
    instance = tmp_path / "instance"
    cli(user_env(tmp_path / "home", instance), tmp_path, "user", "add", "gulnar", "--role", "admin",
        stdin="apricots in june\n")
    assert (instance / "livesale.sqlite").exists()
