"""The ``livesale`` command: a thin layer over the core.

Commands that need Redis start the embedded server first when no
``LIVESALE_REDIS_URL`` is set, and stop it again if they started it (except
that ``serve`` keeps it for as long as it serves).
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from . import create_app, embedded_redis
from .core import auth, schema, tables
from .core import orders as order_service
from .core import sessions as session_service
from .core.db import write_transaction
from .core.errors import DomainError
from .core.validation import OrderInput, parse_session
from .extensions import backend


def _app() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_app, add_default_commands=False, load_dotenv=False)
def main() -> None:
    """livesale — live sales tracking for livestream selling sessions."""


@contextlib.contextmanager
def _redis_ready(app: Flask, *, keep: bool = False) -> Iterator[None]:
    """Make sure the embedded Redis runs when the app uses it."""
    started = False
    if app.config.get("EMBEDDED_REDIS"):
        started = embedded_redis.ensure_running(app.instance_path)
    try:
        yield
    finally:
        if started and not keep:
            embedded_redis.stop(app.instance_path)


def _fail(exc: DomainError) -> None:
    where = f" ({exc.field})" if exc.field else ""
    raise click.ClickException(f"{exc.message}{where}")


# --- db ---------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema."""
    schema.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


# --- users and tokens ---------------------------------------------------------


@main.group()
def user() -> None:
    """People who use livesale."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(auth.ROLES), required=True)
@click.option("--no-password", is_flag=True, help="API token only; no page login.")
@with_appcontext
def user_add(name: str, role: str, no_password: bool) -> None:
    """Add a user. The password is read from standard input, or prompted for."""
    password = None
    if not no_password:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            # One line; its line ending (\n or \r\n) is not part of the password.
            password = sys.stdin.readline().rstrip("\r\n")
    # Often a newcomer's first command, before any `serve`: the schema may not exist yet.
    schema.upgrade(current_app.config["DATABASE_URL"])
    try:
        with write_transaction(backend.store.db) as conn:
            auth.create_user(conn, name=name, role=role, password=password)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"user {name} ({role}) added", err=True)


@main.group()
def token() -> None:
    """API tokens."""


@token.command("issue")
@click.argument("name")
@click.option("--label", default=None, help="What the token is for.")
@with_appcontext
def token_issue(name: str, label: str | None) -> None:
    """Issue an API token for user NAME and print it (only the token)."""
    try:
        with write_transaction(backend.store.db) as conn:
            value = auth.issue_token(conn, user_name=name, label=label)
    except DomainError as exc:
        _fail(exc)
    click.echo(value)


@token.command("revoke")
@click.argument("name")
@with_appcontext
def token_revoke(name: str) -> None:
    """Revoke every token of user NAME."""
    with write_transaction(backend.store.db) as conn:
        count = auth.revoke_tokens(conn, user_name=name)
    click.echo(f"{count} token(s) revoked", err=True)


# --- totals -------------------------------------------------------------------


@main.group()
def totals() -> None:
    """Running totals in Redis."""


@totals.command("rebuild")
@click.argument("session", type=int, required=False)
@with_appcontext
def totals_rebuild(session: int | None) -> None:
    """Recompute Redis totals from SQL for SESSION, or for every live session."""
    store = backend.store
    with _redis_ready(current_app._get_current_object()):  # type: ignore[attr-defined]
        if session is None:
            with store.db.connect() as conn:
                ids = conn.execute(
                    sa.select(tables.live_sessions.c.id).where(tables.live_sessions.c.status == "live")
                ).scalars().all()
        else:
            with store.db.connect() as conn:
                status = conn.execute(
                    sa.select(tables.live_sessions.c.status).where(tables.live_sessions.c.id == session)
                ).scalar()
            if status is None:
                raise click.ClickException(f"no session {session}")
            if status != "live":
                # Only live sessions have running totals: a scheduled one has
                # none yet, an ended one has its final results in SQL.
                raise click.ClickException(f"session {session} is {status}; only a live session has running totals")
            ids = [session]
        for sid in ids:
            started = time.perf_counter()
            live = session_service.rebuild_totals(store, session_id=sid)
            click.echo(
                f"session {sid}: {live.figures.orders} orders, {live.figures.amount_fen} fen, "
                f"version {live.version} ({time.perf_counter() - started:.2f} s)"
            )


# --- serve --------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default: one per core, at most 8). Several share push through Redis.")
@click.option("--worker-connections", default=2000, show_default=True, type=int,
              help="Concurrent sockets per worker (viewers and API calls together).")
@with_appcontext
def serve(host: str, port: int, workers: int | None, worker_connections: int) -> None:
    """Run livesale with gunicorn and gevent workers.

    Migrates the database first (workers must not race to create it), and
    starts the embedded Redis if no LIVESALE_REDIS_URL is set.
    """
    from .server import default_workers, gunicorn_command, run_gunicorn, worker_env

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _redis_ready(app):
        schema.upgrade(app.config["DATABASE_URL"])
        workers = workers or default_workers()
        click.echo(
            f"livesale on http://{host}:{port}/  ({workers} worker(s), database {app.config['DATABASE_URL']})",
            err=True,
        )
        env = worker_env(
            instance_path=app.instance_path, database_url=app.config["DATABASE_URL"],
            redis_url=app.config["REDIS_URL"], workers=workers, message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"],
        )
        code = run_gunicorn(
            gunicorn_command(host=host, port=port, workers=workers, worker_connections=worker_connections), env
        )
    if code:
        raise SystemExit(code)


@main.command()
@click.option("--processes", type=click.IntRange(1, 64), default=2, show_default=True,
              help="App processes (gunicorn, one gevent worker each).")
@click.option("--base-port", type=click.IntRange(1, 65535), default=8001, show_default=True,
              help="Process i (from 0) listens on BASE_PORT + i.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the processes (and nginx) listen.")
@click.option("--nginx", "nginx_port", type=click.IntRange(1, 65535), default=None,
              help="Also run nginx in front, listening on this port (config under INSTANCE/nginx/).")
@click.option("--nginx-host", default=None, help="Where nginx listens (default: --host).")
@click.option("--nginx-binary", default=None,
              help="The nginx executable (default: nginx on the PATH, else /usr/sbin/nginx).")
@click.option("--worker-connections", default=2000, show_default=True, type=int,
              help="Concurrent sockets per process (viewers and API calls together).")
@with_appcontext
def cluster(processes: int, base_port: int, host: str, nginx_port: int | None, nginx_host: str | None,
            nginx_binary: str | None, worker_connections: int) -> None:
    """Run N app processes on N ports against the shared database and Redis, optionally behind nginx.

    The production topology without Docker (docs/deploy.md). Migrates once
    before any process starts; starts the embedded Redis once if no
    LIVESALE_REDIS_URL is set (the processes share it). Ctrl-C or SIGTERM
    stops everything; if one process dies, the rest are stopped (exit 1).
    """
    from . import cluster as topology

    if (nginx_binary or nginx_host) and nginx_port is None:
        raise click.UsageError("--nginx-binary and --nginx-host need --nginx PORT")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        # Fail before starting anything (the embedded Redis included).
        topology.check_options(processes=processes, base_port=base_port, nginx_port=nginx_port)
        if nginx_port is not None:
            topology.find_nginx(nginx_binary)
        with _redis_ready(app):
            code = topology.run(
                processes=processes, base_port=base_port, host=host, database_url=app.config["DATABASE_URL"],
                redis_url=app.config["REDIS_URL"], instance_path=app.instance_path,
                message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"], nginx_port=nginx_port, nginx_host=nginx_host,
                nginx_binary=nginx_binary, worker_connections=worker_connections,
                echo=lambda line: click.echo(line, err=True),
            )
    except topology.ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    if code:
        raise SystemExit(code)


# --- demo ---------------------------------------------------------------------

DEMO_SESSION: dict[str, Any] = {
    "title": "喀什杏子丰收直播 · Kashgar apricot harvest live",
    "village": "喀什疏附县托克扎克镇",
    "hosts": ["阿依古丽", "小王"],
    "platform": "douyin",
    "goal_fen": 6_000_000,
    "planned_duration_min": 120,
    "products": [
        {"sku": "APRICOT-5KG", "name": "吊干杏 5斤装", "unit": "2.5 kg box", "unit_price_fen": 6980, "stock": 600},
        {"sku": "APRICOT-10KG", "name": "鲜杏 10斤装", "unit": "5 kg box", "unit_price_fen": 12800, "stock": 300},
        {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit": "1 kg bag", "unit_price_fen": 5900, "stock": None},
        {"sku": "NUTS-500G", "name": "巴旦木 500克", "unit": "500 g jar", "unit_price_fen": 4500, "stock": 800},
    ],
}
DEMO_REGIONS = ["浙江杭州", "浙江宁波", "上海", "广东深圳", "北京", "江苏苏州", "新疆乌鲁木齐", "四川成都", "山东青岛"]


@main.command()
@click.option("--rate", default=2.0, show_default=True, help="Orders per second, on average.")
@click.option("--duration", default=0, show_default=True, type=int, help="Seconds to run; 0 runs until Ctrl-C.")
@with_appcontext
def demo(rate: float, duration: int) -> None:
    """Create a demo session modelled on a Kashgar apricot broadcast and feed it orders."""
    store = backend.store
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _redis_ready(app):
        schema.upgrade(app.config["DATABASE_URL"])
        with write_transaction(store.db) as conn:
            host_id = conn.execute(sa.select(tables.users.c.id).where(tables.users.c.name == "demo-host")).scalar()
            if host_id is None:
                host_id = auth.create_user(conn, name="demo-host", role="host")
        actor = auth.Actor(user_id=host_id, name="demo-host", role="host")
        info = session_service.create_session(store, actor=actor, data=parse_session(DEMO_SESSION))
        session_service.start_session(store, actor=actor, session_id=info.id)
        click.echo(f"demo session {info.id} is live; totals at /api/v1/sessions/{info.id}/totals", err=True)
        weights = [5, 2, 3, 2]
        deadline = time.monotonic() + duration if duration else None
        count = 0
        try:
            while deadline is None or time.monotonic() < deadline:
                product = random.choices(DEMO_SESSION["products"], weights=weights)[0]
                order = OrderInput(
                    sku=product["sku"], quantity=random.choice([1, 1, 1, 2, 2, 3, 5]), unit_price_fen=None,
                    buyer_region=random.choice(DEMO_REGIONS), channel="demo", external_id=None, field="",
                )
                recorded = order_service.record_orders(store, actor=actor, session_id=info.id, orders=[order])
                count += 1
                total = recorded.totals["amount_fen"]
                click.echo(f"\r{count} orders · ¥{total / 100:,.2f}", nl=False, err=True)
                time.sleep(random.expovariate(rate))
        except KeyboardInterrupt:
            pass
        click.echo("", err=True)
        session_service.end_session(store, actor=actor, session_id=info.id)
        click.echo(f"demo session {info.id} ended after {count} orders", err=True)
