"""``livesale user …``, ``token …`` and ``session list`` as a user runs them: the real command in a child process,
against the tests' database and Redis (the same ones the in-process ``app`` fixture uses, to check the effects)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import auth
from tests.conftest import APRICOT_SESSION, Api
from tests.core.test_cli_failures import LIVESALE

PASSWORD = "apricots and almonds"


class Livesale:
    def __init__(self, env: dict[str, str], cwd: Path):
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(LIVESALE), *args], env=self.env, cwd=self.cwd, input=input, capture_output=True,
                              text=True, timeout=120)


@pytest.fixture
def livesale(app: Any, database_url: str, redis_url: str, tmp_path: Path) -> Livesale:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "LIVESALE_ENV": "development",
           "LIVESALE_INSTANCE_PATH": str(tmp_path / "instance"), "LIVESALE_DATABASE_URL": database_url,
           "LIVESALE_REDIS_URL": redis_url}
    return Livesale(env, cwd)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def refused(result: subprocess.CompletedProcess[str], *needles: str, code: int = 1) -> str:
    """A refusal about the data: ``Error: …`` on one line, exit code 1, nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") <= 2, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def table(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
    """stdout's rows split on runs of two spaces (a header line first)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines()]


def login(store: Any, name: str, password: str) -> auth.Actor | None:
    with store.db.connect() as conn:
        return auth.actor_for_login(conn, name=name, password=password)


def by_token(store: Any, token: str) -> auth.Actor | None:
    with store.db.connect() as conn:
        return auth.actor_for_token(conn, token=token)


def test_users_from_the_command_line(livesale: Livesale, store: Any) -> None:
    empty = ok(livesale("user", "list"))
    assert empty.stdout == "" and "livesale user add" in empty.stderr

    ok(livesale("user", "add", "阿依古丽", "--role", "admin", input=PASSWORD + "\n"))
    ok(livesale("user", "add", "xiaowang", "--role", "host", "--no-password"))
    rows = table(ok(livesale("user", "list")))
    assert rows[0] == ["name", "role", "active", "password", "tokens", "created"]
    assert [r[:5] for r in rows[1:]] == [["xiaowang", "host", "yes", "no", "0"], ["阿依古丽", "admin", "yes", "yes", "0"]]

    # set-role
    assert "xiaowang is now official" in ok(livesale("user", "set-role", "xiaowang", "official")).stderr
    with store.db.connect() as conn:
        assert {u.name: u.role for u in auth.list_users(conn)} == {"xiaowang": "official", "阿依古丽": "admin"}
    refused(livesale("user", "set-role", "nobody", "host"), "no user named 'nobody'")
    bad_role = livesale("user", "set-role", "xiaowang", "superuser")
    assert bad_role.returncode == 2 and "superuser" in bad_role.stderr and "Traceback" not in bad_role.stderr

    # set-password: xiaowang had none; the old password of 阿依古丽 stops working
    ok(livesale("user", "set-password", "xiaowang", input="a brand new password\n"))
    assert login(store, "xiaowang", "a brand new password") is not None
    ok(livesale("user", "set-password", "阿依古丽", input="another long password\r\n"))
    assert login(store, "阿依古丽", PASSWORD) is None
    assert login(store, "阿依古丽", "another long password") is not None
    refused(livesale("user", "set-password", "阿依古丽", input="short\n"), "at least 8 characters")
    assert login(store, "阿依古丽", "another long password") is not None
    refused(livesale("user", "set-password", "nobody", input=PASSWORD + "\n"), "no user named 'nobody'")

    # deactivate / activate: logins and tokens stop, then work again
    token = ok(livesale("token", "issue", "xiaowang")).stdout.strip()
    assert by_token(store, token) is not None
    assert "user activate xiaowang" in ok(livesale("user", "deactivate", "xiaowang")).stderr
    assert login(store, "xiaowang", "a brand new password") is None and by_token(store, token) is None
    assert table(ok(livesale("user", "list")))[1][:3] == ["xiaowang", "official", "no"]
    ok(livesale("user", "activate", "xiaowang"))
    assert login(store, "xiaowang", "a brand new password") is not None and by_token(store, token) is not None
    refused(livesale("user", "deactivate", "nobody"), "no user named 'nobody'")
    refused(livesale("user", "activate", "nobody"), "no user named 'nobody'")


def test_tokens_from_the_command_line(livesale: Livesale, store: Any) -> None:
    ok(livesale("user", "add", "host1", "--role", "host", "--no-password"))
    ok(livesale("user", "add", "host2", "--role", "host", "--no-password"))
    assert ok(livesale("token", "list")).stderr == "no tokens\n"
    first = ok(livesale("token", "issue", "host1", "--label", "抖音 import")).stdout.strip()
    second = ok(livesale("token", "issue", "host2")).stdout.strip()

    listing = ok(livesale("token", "list"))
    assert first not in listing.stdout and second not in listing.stdout  # never the tokens themselves
    rows = table(listing)
    assert rows[0] == ["id", "user", "issued", "revoked", "label"]
    assert [(r[1], r[-1]) for r in rows[1:]] == [("host1", "抖音 import"), ("host2", rows[2][-1])]
    assert [r[1] for r in table(ok(livesale("token", "list", "host2")))[1:]] == ["host2"]
    refused(livesale("token", "list", "nobody"), "no user named 'nobody'")

    # An unknown user is an error for every token command (it used to say "0 token(s) revoked").
    refused(livesale("token", "revoke", "nobody"), "no user named 'nobody'")
    refused(livesale("token", "issue", "nobody"), "no user named 'nobody'")

    assert "1 token(s) of host1 revoked" in ok(livesale("token", "revoke", "host1")).stderr
    assert by_token(store, first) is None and by_token(store, second) is not None
    assert "0 token(s) of host1 revoked" in ok(livesale("token", "revoke", "host1")).stderr
    assert [r[1] for r in table(ok(livesale("token", "list")))[1:]] == ["host2"]
    everything = table(ok(livesale("token", "list", "--all")))
    assert [r[1] for r in everything[1:]] == ["host1", "host2"]
    assert everything[1][3] != ""  # host1's token shows when it was revoked


def test_session_list(livesale: Livesale, users: Any, app: Any) -> None:
    assert ok(livesale("session", "list")).stderr == "no sessions\n"
    host: Api = users.api("host")
    live = host.post("/api/v1/sessions", json=APRICOT_SESSION).json
    assert host.post(f"/api/v1/sessions/{live['id']}/start").status_code == 200
    url = f"/api/v1/sessions/{live['id']}/orders"
    assert host.post(url, json={"sku": "APRICOT-5KG", "quantity": 3}).status_code == 201
    assert host.post(url, json={"sku": "DRIED-1KG", "quantity": 1}).status_code == 201
    scheduled = host.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "吐鲁番葡萄"}).json

    rows = table(ok(livesale("session", "list")))
    assert rows[0] == ["id", "status", "start", "orders", "total", "title"]
    by_id = {int(r[0]): r for r in rows[1:]}
    assert by_id[live["id"]][1] == "live" and by_id[live["id"]][3:] == ["2", "¥268.40", "喀什杏子直播"]
    assert by_id[scheduled["id"]][1] == "scheduled" and by_id[scheduled["id"]][3:5] == ["0", "¥0.00"]
    only_live = table(ok(livesale("session", "list", "--status", "live")))
    assert [int(r[0]) for r in only_live[1:]] == [live["id"]]
    limited = ok(livesale("session", "list", "--limit", "1"))
    assert len(table(limited)) == 2 and "1 of 2 shown" in limited.stderr
    assert livesale("session", "list", "--status", "paused").returncode == 2


def test_users_commands_use_the_same_database_as_the_app(livesale: Livesale, store: Any) -> None:
    """What the command line adds, the app sees (one data folder)."""
    ok(livesale("user", "add", "official1", "--role", "official", input=PASSWORD + "\n"))
    with store.db.connect() as conn:
        assert conn.execute(sa.text("SELECT role FROM users WHERE name = 'official1'")).scalar_one() == "official"


def test_demo_runs_until_ctrl_c_and_says_how_to_watch_it(livesale: Livesale, store: Any, app: Any) -> None:
    import signal
    import time

    proc = subprocess.Popen([str(LIVESALE), "demo", "--rate", "50", "--url", "http://127.0.0.1:5999"],
                            env=livesale.env, cwd=livesale.cwd, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        intro = [proc.stderr.readline() for _ in range(4)]
        assert "demo session" in intro[0] and "Ctrl-C ends it" in intro[0], intro
        with store.db.connect() as conn:
            sid = conn.execute(sa.text("SELECT max(id) FROM live_sessions")).scalar_one()
        assert f"http://127.0.0.1:5999/live/{sid}" in intro[1]
        token = intro[2].split("Bearer ")[1].split("'")[0]
        # The printed token reads the session's totals over the API.
        deadline = time.monotonic() + 30
        while True:
            totals = Api(app.test_client(), token).get(f"/api/v1/sessions/{sid}/totals")
            assert totals.status_code == 200, totals.json
            if totals.json["orders"] >= 3:
                break
            assert time.monotonic() < deadline, "the demo recorded no orders"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == 0, rest
    assert "Traceback" not in rest and f"demo session {sid} ended after" in rest
    with store.db.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM live_sessions WHERE id = :i"), {"i": sid}).scalar_one() == "ended"


def test_demo_for_some_minutes_ends_by_itself(livesale: Livesale, store: Any) -> None:
    result = ok(livesale("demo", "--minutes", "0.02", "--rate", "20"))
    assert "for 0.02 minute(s)" in result.stderr and "ended after" in result.stderr
    with store.db.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM live_sessions")).scalars().all() == ["ended"]
    assert livesale("demo", "--minutes", "0").returncode == 2  # a usage error, before anything is created
