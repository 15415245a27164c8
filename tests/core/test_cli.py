"""The ``livesale`` command, run in-process against the test app's database and Redis.

``livesale.cli.main`` is a plain click group that builds its app lazily; given an app (or the
``ScriptInfo`` that Flask's ``app.test_cli_runner()`` passes) it uses that one instead of building
one from the environment. ``tests/core/test_cli_failures.py`` and ``test_cli_users.py`` run the real
command in a child process, as a user does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask.cli import ScriptInfo

from livesale import create_app
from livesale.cli import main
from livesale.core import auth
from livesale.extensions import backend
from livesale.models import Base
from tests.conftest import APRICOT_SESSION, Api

PASSWORD = "apricots and almonds"


@pytest.fixture
def cli(runner: Any) -> Callable[..., Result]:
    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, args=list(args), input=input)

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def failed(result: Result, *needles: str) -> Result:
    """A clean failure: exit code 1 and an ``Error:`` line, not a traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ")
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result


def user_rows(store: Any) -> list[tuple[Any, ...]]:
    with store.db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT name, role, active FROM users ORDER BY id"))]


def test_the_app_cli_group_does_not_carry_the_commands(runner: Any) -> None:
    """Why these tests pass ``main``: ``app.test_cli_runner().invoke()`` alone targets ``app.cli``."""
    assert runner.invoke(args=["user", "add", "x", "--role", "host"]).exit_code == 2
    assert {"db", "user", "token", "totals"} <= set(main.commands)


def test_explicit_script_info_works_too(app: Any, store: Any) -> None:
    result = app.test_cli_runner().invoke(
        main, ["user", "add", "ayi", "--role", "host"], input=PASSWORD + "\n", obj=ScriptInfo(create_app=lambda: app)
    )
    ok(result)
    assert user_rows(store) == [("ayi", "host", True)]


# --- user add ------------------------------------------------------------------------------------------


def test_user_add_reads_the_password_from_stdin(cli: Callable[..., Result], store: Any) -> None:
    result = ok(cli("user", "add", "阿依古丽", "--role", "host", input=PASSWORD + "\n"))
    assert result.stdout == ""
    assert "阿依古丽" in result.stderr and "host" in result.stderr
    assert user_rows(store) == [("阿依古丽", "host", True)]
    with store.db.connect() as conn:
        actor = auth.actor_for_login(conn, name="阿依古丽", password=PASSWORD)
        assert actor is not None and actor.role == "host"
        assert auth.actor_for_login(conn, name="阿依古丽", password=PASSWORD + "\n") is None
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar_one()
    assert PASSWORD not in stored


def test_user_add_strips_a_windows_line_ending(cli: Callable[..., Result], store: Any) -> None:
    ok(cli("user", "add", "xiaowang", "--role", "official", input=PASSWORD + "\r\n"))
    with store.db.connect() as conn:
        assert auth.actor_for_login(conn, name="xiaowang", password=PASSWORD) is not None


def test_user_add_without_password(cli: Callable[..., Result], store: Any) -> None:
    ok(cli("user", "add", "bot", "--role", "host", "--no-password"))
    with store.db.connect() as conn:
        assert conn.execute(sa.text("SELECT password_hash FROM users")).scalar_one() is None
        assert auth.actor_for_login(conn, name="bot", password="") is None


def test_duplicate_user_fails_cleanly(cli: Callable[..., Result], store: Any) -> None:
    ok(cli("user", "add", "host1", "--role", "host", input=PASSWORD + "\n"))
    failed(cli("user", "add", "host1", "--role", "official", input="another password\n"), "host1", "exists")
    assert user_rows(store) == [("host1", "host", True)]
    # Names are compared after trimming, like every text field.
    failed(cli("user", "add", " host1 ", "--role", "admin", input=PASSWORD + "\n"), "exists")
    assert len(user_rows(store)) == 1


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (["user", "add", "short", "--role", "host"], "1234567\n", "password"),
        (["user", "add", "empty", "--role", "host"], "", "password"),
        (["user", "add", "   ", "--role", "host"], PASSWORD + "\n", "name"),
        (["user", "add", "n" * 65, "--role", "host"], PASSWORD + "\n", "name"),
        (["user", "add", "bell\x07", "--role", "host"], PASSWORD + "\n", "name"),
    ],
)
def test_user_add_refuses_bad_input_cleanly(
    cli: Callable[..., Result], store: Any, args: list[str], stdin: str, needle: str
) -> None:
    failed(cli(*args, input=stdin), needle)
    assert user_rows(store) == []


def test_user_add_unknown_role_is_a_usage_error(cli: Callable[..., Result], store: Any) -> None:
    result = cli("user", "add", "x", "--role", "superuser", input=PASSWORD + "\n")
    assert result.exit_code == 2 and "superuser" in result.stderr
    assert user_rows(store) == []


# --- tokens ------------------------------------------------------------------------------------------------------


def test_token_issue_prints_only_a_token_that_authenticates(cli: Callable[..., Result], app: Any, store: Any) -> None:
    ok(cli("user", "add", "host1", "--role", "host", input=PASSWORD + "\n"))
    result = ok(cli("token", "issue", "host1", "--label", "douyin import"))
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert result.stderr == ""
    assert token.startswith(auth.TOKEN_PREFIX) and " " not in token and len(token) >= 40
    api = Api(app.test_client(), token)
    created = api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert created.status_code == 201
    assert api.get("/api/v1/sessions").json["total"] == 1
    with store.db.connect() as conn:
        label, token_hash = conn.execute(sa.text("SELECT label, token_hash FROM api_tokens")).one()
    assert label == "douyin import" and token_hash == auth.hash_token(token) and token not in token_hash


def test_each_issue_is_a_new_token(cli: Callable[..., Result]) -> None:
    ok(cli("user", "add", "host1", "--role", "host", "--no-password"))
    first = ok(cli("token", "issue", "host1")).stdout.strip()
    second = ok(cli("token", "issue", "host1")).stdout.strip()
    assert first != second


def test_token_issue_for_unknown_user_fails_cleanly(cli: Callable[..., Result], store: Any) -> None:
    result = failed(cli("token", "issue", "nobody"), "nobody")
    assert result.stdout == ""
    with store.db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM api_tokens")).scalar_one() == 0


def test_token_label_too_long_fails_cleanly(cli: Callable[..., Result]) -> None:
    ok(cli("user", "add", "host1", "--role", "host", "--no-password"))
    result = failed(cli("token", "issue", "host1", "--label", "l" * 101), "label")
    assert result.stdout == ""


def test_token_revoke(cli: Callable[..., Result], app: Any) -> None:
    from livesale.web.auth import forget_cached_tokens

    ok(cli("user", "add", "host1", "--role", "host", "--no-password"))
    token = ok(cli("token", "issue", "host1")).stdout.strip()
    api = Api(app.test_client(), token)
    assert api.get("/api/v1/sessions").status_code == 200
    result = ok(cli("token", "revoke", "host1"))
    assert "1 token" in result.stderr and result.stdout == ""
    forget_cached_tokens()  # the API caches lookups for a few seconds
    assert api.get("/api/v1/sessions").status_code == 401


# --- totals rebuild --------------------------------------------------------------------------------------------------


def test_totals_rebuild_restores_totals_after_flushdb(
    cli: Callable[..., Result], host_api: Api, live_session: dict[str, Any], redis_client: Any, store: Any
) -> None:
    sid = live_session["id"]
    url = f"/api/v1/sessions/{sid}/orders"
    for quantity, region in ((1, "上海"), (2, "浙江杭州"), (3, "上海")):
        assert host_api.post(url, json={"sku": "APRICOT-5KG", "quantity": quantity, "buyer_region": region}).status_code == 201
    assert host_api.post(url, json={"sku": "DRIED-1KG", "quantity": 4}).status_code == 201
    before = store.totals.read(session_id=sid)
    assert before is not None and before.figures.amount_fen == 6 * 6980 + 4 * 5900

    redis_client.flushdb()
    assert store.totals.read(session_id=sid) is None
    result = ok(cli("totals", "rebuild", str(sid)))
    assert f"session {sid}: 4 orders, {6 * 6980 + 4 * 5900} fen" in result.stdout

    after = store.totals.read(session_id=sid)
    assert after is not None
    assert after.figures == before.figures
    assert after.version > before.version
    # The API serves the rebuilt figures, and the next order adds to them.
    r = host_api.post(url, json={"sku": "DRIED-1KG", "quantity": 1})
    assert r.json["totals"]["amount_fen"] == 6 * 6980 + 5 * 5900 and r.json["totals"]["orders"] == 5


def test_totals_rebuild_without_argument_rebuilds_every_live_session(
    cli: Callable[..., Result], host_api: Api, live_session: dict[str, Any], redis_client: Any, store: Any
) -> None:
    other = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json  # scheduled: no running totals
    host_api.post(f"/api/v1/sessions/{live_session['id']}/orders", json={"sku": "DRIED-1KG", "quantity": 2})
    redis_client.flushdb()
    result = ok(cli("totals", "rebuild"))
    assert result.stdout.count("session ") == 1 and f"session {live_session['id']}: 1 orders" in result.stdout
    assert store.totals.read(session_id=other["id"]) is None


def test_totals_rebuild_of_a_missing_session_fails_cleanly(cli: Callable[..., Result], redis_client: Any) -> None:
    failed(cli("totals", "rebuild", "4242"), "no session 4242")
    assert redis_client.keys("*") == []  # no figures invented for a session that does not exist


def test_totals_rebuild_refuses_sessions_that_are_not_live(
    cli: Callable[..., Result], host_api: Api, live_session: dict[str, Any], redis_client: Any
) -> None:
    scheduled = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json
    failed(cli("totals", "rebuild", str(scheduled["id"])), "scheduled")
    assert host_api.post(f"/api/v1/sessions/{live_session['id']}/end").status_code == 200
    redis_client.flushdb()
    failed(cli("totals", "rebuild", str(live_session["id"])), "ended")
    assert redis_client.keys("*") == []


# --- db upgrade -----------------------------------------------------------------------------------------------------


def test_db_upgrade_is_idempotent(cli: Callable[..., Result], store: Any) -> None:
    first = ok(cli("db", "upgrade"))
    second = ok(cli("db", "upgrade"))
    assert first.stdout == second.stdout == "database at head\n"
    with store.db.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert len(versions) == 1


def test_db_upgrade_creates_a_fresh_database_once(tmp_path: Path, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    fresh = create_app({"ENV": "testing", "SECRET_KEY": "x" * 32, "DATABASE_URL": url, "REDIS_URL": redis_url,
                        "INSTANCE_PATH": str(tmp_path / "fresh-instance")})
    try:
        runner = fresh.test_cli_runner()
        for _ in range(2):
            result = runner.invoke(main, ["db", "upgrade"])
            assert result.exit_code == 0, (result.output, result.exception)
        names = set(sa.inspect(backend.store_of(fresh).db).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"} <= names
        # The migrated database is usable by the other commands.
        result = runner.invoke(main, ["user", "add", "first", "--role", "admin"], input=PASSWORD + "\n")
        assert result.exit_code == 0, result.output
    finally:
        backend.close(fresh)
