"""Signed pushes over real HTTP (``gunicorn -k gevent``): the README's own Python and curl + openssl recipes
push orders to a real server; single, batch and repeats count once; bad, old, future and missing signatures
and unknown or deleted hooks are 401 with nothing stored (checked in SQL and in the served totals);
a rotated secret is refused at once; the secret and signatures never reach the server's log."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from livesale.core import tables as t
from tests.conftest import APRICOT_SESSION, Users

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->`` in the README."""
    text = README.read_text()
    found = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)\n```", text, re.S)
    assert found, marker
    return found.group(1)


def readme_push() -> Any:
    """The README's Python ``push`` function, run as written."""
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("signed-push-python"), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["push"]


def header(secret: str, body: bytes, t_: int) -> str:
    return f"t={t_},v1={hmac.new(secret.encode(), f'{t_}.'.encode() + body, hashlib.sha256).hexdigest()}"


def sql_orders(store: Any, session_id: int) -> list[tuple[Any, ...]]:
    o = t.orders
    with store.db.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(o.c.external_id, o.c.sku, o.c.quantity, o.c.channel, o.c.amount_fen)
            .where(o.c.session_id == session_id).order_by(o.c.external_id))]


class Live:
    def __init__(self, url: str, token: str):
        self.url, self.http = url, requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        created = self.http.post(f"{url}/api/v1/sessions", json=APRICOT_SESSION, timeout=10)
        assert created.status_code == 201, created.text
        self.sid = created.json()["id"]
        assert self.http.post(f"{url}/api/v1/sessions/{self.sid}/start", timeout=10).status_code == 200

    def new_hook(self) -> dict[str, str]:
        r = self.http.post(f"{self.url}/api/v1/sessions/{self.sid}/hooks", timeout=10)
        assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store", r.text
        return r.json()

    def totals(self) -> tuple[int, int]:
        got = self.http.get(f"{self.url}/api/v1/sessions/{self.sid}/totals", timeout=10).json()
        return got["orders"], got["amount_fen"]


def test_signed_pushes_over_http(server_factory: Any, users: Users, store: Any) -> None:
    server = server_factory()
    live = Live(server.url, users.token("host"))
    hook = live.new_hook()
    assert hook["url"] == f"{server.url}/hooks/orders/{hook['hook_id']}"
    push = readme_push()
    one = {"sku": "APRICOT-5KG", "quantity": 2, "channel": "douyin", "external_id": "dy-1001"}
    status, answer = push(hook["url"], hook["secret"], one)
    assert status == 201 and answer["order"]["channel"] == "douyin", answer
    status, answer = push(hook["url"], hook["secret"], one)  # a repeat: counted once
    assert status == 200 and answer["totals"]["orders"] == 1
    batch = {"orders": [one, {"sku": "DRIED-1KG", "quantity": 3, "channel": "视频号", "external_id": "wx-7"}]}
    status, answer = push(hook["url"], hook["secret"], batch)
    assert status == 201 and [o["external_id"] for o in answer["orders"]] == ["dy-1001", "wx-7"]
    expected = [("dy-1001", "APRICOT-5KG", 2, "douyin", 13960), ("wx-7", "DRIED-1KG", 3, "视频号", 17700)]
    assert sql_orders(store, live.sid) == expected
    assert live.totals() == (2, 13960 + 17700)

    # Refusals: 401, JSON, and nothing stored.
    body = json.dumps({"sku": "APRICOT-5KG", "quantity": 9, "external_id": "bad-1"}).encode()
    now = int(time.time())
    good = header(hook["secret"], body, now)
    refused = {
        "no signature": ({}, hook["url"]),
        "wrong secret": ({"X-Livesale-Signature": header("not-the-secret", body, now)}, hook["url"]),
        "old (6 min)": ({"X-Livesale-Signature": header(hook["secret"], body, now - 360)}, hook["url"]),
        "future (6 min)": ({"X-Livesale-Signature": header(hook["secret"], body, now + 360)}, hook["url"]),
        "garbled": ({"X-Livesale-Signature": "t=now,v1=zz"}, hook["url"]),
        "unknown hook": ({"X-Livesale-Signature": good}, f"{server.url}/hooks/orders/{'Q' * 22}"),
    }
    for name, (extra, url) in refused.items():
        r = requests.post(url, data=body, headers={"Content-Type": "application/json", **extra}, timeout=10)
        assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/json"), (name, r.text)
        assert hook["secret"] not in r.text
    assert sql_orders(store, live.sid) == expected and live.totals() == (2, 13960 + 17700)

    # Rotation: the old secret is refused at once; the new one works. Deletion: refused from then on.
    rotated = live.http.post(f"{server.url}/api/v1/sessions/{live.sid}/hooks/{hook['hook_id']}/rotate", timeout=10)
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    second = {**one, "external_id": "dy-1002"}
    assert push(hook["url"], hook["secret"], second)[0] == 401
    assert push(hook["url"], new_secret, second)[0] == 201
    gone = live.http.delete(f"{server.url}/api/v1/sessions/{live.sid}/hooks/{hook['hook_id']}", timeout=10)
    assert gone.status_code == 204
    status, answer = push(hook["url"], new_secret, {**one, "external_id": "dy-1003"})
    assert status == 401 and answer["error"]["code"] == "unknown_hook"
    assert [r[0] for r in sql_orders(store, live.sid)] == ["dy-1001", "dy-1002", "wx-7"]
    assert live.totals() == (3, 2 * 13960 + 17700)

    # Nothing secret in the server's log (its access lines name the path and status only).
    log = server.log.read_text()
    assert f"/hooks/orders/{hook['hook_id']}" in log  # the access log did record the pushes
    for secret in (hook["secret"], new_secret, good.split("v1=")[1]):
        assert secret not in log


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("curl") is None, reason="needs openssl and curl")
def test_the_readmes_curl_and_openssl_recipe(server_factory: Any, users: Users, store: Any) -> None:
    server = server_factory()
    live = Live(server.url, users.token("host"))
    hook = live.new_hook()
    script = readme_block("signed-push-shell")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "URL": hook["url"], "SECRET": hook["secret"]}
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["order"]["external_id"] == "dy-1001" and answer["order"]["channel"] == "douyin", answer
    again = json.loads(subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                                      timeout=60).stdout)
    assert again["order"]["id"] == answer["order"]["id"]
    assert sql_orders(store, live.sid) == [("dy-1001", "APRICOT-5KG", 2, "douyin", 13960)]
    assert live.totals() == (1, 13960)
    # With another secret the same recipe is refused, and nothing more is stored.
    wrong = subprocess.run(["bash", "-c", script.replace("dy-1001", "dy-1002")], env={**env, "SECRET": "x" * 43},
                           capture_output=True, text=True, timeout=60)
    assert json.loads(wrong.stdout)["error"]["code"] == "bad_signature"
    assert live.totals() == (1, 13960)
