"""The ``livesale`` command: a thin layer over the core.

A plain click group, not Flask's ``FlaskGroup``: ``--help`` and ``--version``
need no settings and create nothing, and only livesale's own options and
commands are shown. The app is built lazily, by the commands that need it,
after the settings, the database URL and (for the commands that read data)
the database itself have been checked, so a mistake is refused before any
folder or file is written.

Every configuration or environment problem ends the command with one or two
lines on stderr saying what is wrong and what to do, and exit code 2
(``--debug`` or ``LIVESALE_DEBUG=1`` prints the traceback too). A refusal
about the data itself (an unknown user, a name taken) is exit code 1.

Commands that need Redis start the embedded server first when no
``LIVESALE_REDIS_URL`` is set, and stop it again if they started it (except
that ``serve`` keeps it for as long as it serves).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import random
import subprocess
import sys
import time
import traceback
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from flask import Flask

from . import checks, cli_data, cli_imports, config, embedded_redis
from .config import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

#: What a command needs of the database before it runs.
#: "create": it may create the database (it migrates); "existing": livesale's tables must be there already
#: (reading or changing users must not silently start an empty database somewhere else).
DATA_CREATE, DATA_EXISTING = "create", "existing"


class Problem(click.ClickException):
    """A configuration or environment problem: its message on stderr, exit code 2."""

    exit_code = 2


class _State:
    """What the commands of one invocation share: the app, built on first use.

    ``given`` is an app handed in by a test (a Flask app, or Flask's ``ScriptInfo``
    that ``app.test_cli_runner()`` passes); otherwise the app is built from the
    ``LIVESALE_*`` environment.
    """

    def __init__(self, given: Any, *, debug: bool) -> None:
        self.given = given
        self.debug = debug
        self.app: Flask | None = None
        self.database_url: str | None = None
        self.redis_url: str | None = None

    def load(self, data: str, *, redis: bool = False) -> Flask:
        if self.app is None:
            if isinstance(self.given, Flask):
                app = self.given
            elif hasattr(self.given, "load_app"):
                app = self.given.load_app()
            else:
                app = _build_app(data, redis=redis)
            self.app = app
            self.database_url = app.config["DATABASE_URL"]
            self.redis_url = app.config["REDIS_URL"]
        if data == DATA_EXISTING and not checks.has_tables(self.database_url or ""):
            raise ConfigError(checks.no_tables_message(self.database_url or ""))
        return self.app


def _build_app(data: str, *, redis: bool) -> Flask:
    """The app from the environment, once every check that needs no folder has passed.

    ``redis``: the command needs Redis, so a ``LIVESALE_REDIS_URL`` that does not answer is refused here,
    before the instance folder is created (the embedded one is started by ``redis_ready``).
    """
    from . import create_app

    settings = config.load_settings()
    config.check_settings(settings)
    instance = config.instance_path(settings)
    url = config.database_url(settings, instance)
    # The default SQLite file's folder is the instance folder, created below.
    checks.check_database_url(url, folder_must_exist=bool(settings["DATABASE_URL"]))
    if settings["REDIS_URL"]:
        checks.check_redis_url(settings["REDIS_URL"])
    if data == DATA_EXISTING:
        path = checks.sqlite_path(url)
        if path is not None and not path.exists():
            raise ConfigError(checks.no_tables_message(url))
    checks.probe_database(url)
    if redis and settings["REDIS_URL"]:
        checks.probe_redis(settings["REDIS_URL"])
    return create_app({"INSTANCE_PATH": str(instance)})


class LivesaleGroup(click.Group):
    """Turns environment errors raised by any command into a plain :class:`Problem`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            state = ctx.obj if isinstance(ctx.obj, _State) else None
            message = checks.problem(exc, database_url=state.database_url if state else None,
                                     redis_url=state.redis_url if state else None)
            if message is None:
                raise  # not the environment: a bug, with its traceback
            if state is not None and state.debug:
                traceback.print_exception(exc)
            raise Problem(message) from None


@click.group(cls=LivesaleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="livesale", prog_name="livesale", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="LIVESALE_DEBUG",
              help="Print the traceback of an error too (also LIVESALE_DEBUG=1).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """livesale — live sales tracking for livestream selling sessions.

    Settings come from LIVESALE_* environment variables (see the README); the
    data live in ./instance unless LIVESALE_INSTANCE_PATH says otherwise.
    `livesale info` shows what is used.
    """
    if not isinstance(ctx.obj, _State):
        ctx.obj = _State(ctx.obj, debug=debug)


def with_app(data: str = DATA_EXISTING, *, redis: bool = False) -> Callable[[F], F]:
    """Pass the app to the command as ``app``, inside its app context (``redis``: the command needs Redis)."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def run(*args: Any, **kwargs: Any) -> Any:
            state = click.get_current_context().find_object(_State)
            assert state is not None, "livesale commands run under livesale.cli.main"
            app = state.load(data, redis=redis)
            with app.app_context():
                return f(*args, app=app, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def store_of(app: Flask) -> Any:
    from .extensions import backend

    return backend.store_of(app)


@contextlib.contextmanager
def redis_ready(app: Flask, *, keep: bool = False) -> Iterator[None]:
    """Make sure Redis answers: start the embedded one when the app uses it (and stop it after, unless ``keep``)."""
    started = False
    if app.config.get("EMBEDDED_REDIS"):
        try:
            started = embedded_redis.ensure_running(app.instance_path)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            raise ConfigError(
                f"the embedded Redis did not start ({' '.join(str(exc).split())}): see "
                f"{embedded_redis.data_dir(app.instance_path)}/, or set LIVESALE_REDIS_URL to a running Redis"
            ) from exc
    else:
        checks.probe_redis(app.config["REDIS_URL"])
    try:
        yield
    finally:
        if started and not keep:
            embedded_redis.stop(app.instance_path)


def fail(exc: Any) -> None:
    """A refusal about the data (a DomainError): ``Error: …``, exit code 1."""
    where = f" ({exc.field})" if exc.field else ""
    raise click.ClickException(f"{exc.message}{where}")


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    # One line; its line ending (\n or \r\n) is not part of the password.
    return sys.stdin.readline().rstrip("\r\n")


def _width(text: str) -> int:
    # Chinese characters take two columns in a terminal.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows as aligned columns on stdout (the last column is not padded)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row[:-1])]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


# --- info ---------------------------------------------------------------------


@main.command()
def info() -> None:
    """Show livesale's version, the instance folder, the database and Redis, and whether each answers.

    Creates nothing and starts nothing. Exit code 2 when something is wrong.
    """
    import os

    problems = 0

    def line(label: str, text: str) -> None:
        click.echo(f"{label + ':':<17}{text}")

    line("livesale", f"{importlib.metadata.version('livesale')} (Python {sys.version.split()[0]})")
    try:
        settings = config.load_settings()
        config.check_settings(settings)
        line("settings", f"LIVESALE_ENV={settings['ENV']}")
    except ConfigError as exc:
        problems += 1
        line("settings", f"PROBLEM: {exc}")
        settings = dict(config.DEFAULTS)
        for key in ("INSTANCE_PATH", "DATABASE_URL", "REDIS_URL"):
            settings[key] = os.environ.get(config.ENV_PREFIX + key) or None
    instance = config.instance_path(settings)
    source = "LIVESALE_INSTANCE_PATH" if settings.get("INSTANCE_PATH") else "./instance in the current folder"
    line("instance folder", f"{instance} ({'exists' if instance.is_dir() else 'not created yet'}; {source})")

    url = config.database_url(settings, instance)
    problems += _info_database(line, url, explicit=bool(settings.get("DATABASE_URL")))
    problems += _info_redis(line, settings.get("REDIS_URL"), instance)
    if problems:
        raise SystemExit(2)


def _info_database(line: Callable[[str, str], None], url: str, *, explicit: bool) -> int:
    from .core import schema

    try:
        checks.check_database_url(url, folder_must_exist=explicit)
        path = checks.sqlite_path(url)
        if path is not None and not path.exists():
            line("database", f"{checks.mask_database_url(url)} — not created yet (`livesale db upgrade` or "
                             "`livesale serve` creates it)")
            return 0
        checks.probe_database(url)
        if not checks.has_tables(url):
            line("database", f"{checks.mask_database_url(url)} — answers; no livesale data yet "
                             "(`livesale db upgrade` creates the tables)")
            return 0
        engine = sa.create_engine(checks.engine_url(url))
        try:
            with engine.connect() as conn:
                at = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        finally:
            engine.dispose()
        state = "up to date" if at == schema.head_revision() else f"at {at}, older: run `livesale db upgrade`"
        line("database", f"{checks.mask_database_url(url)} — answers; schema {state}")
        return 0
    except ConfigError as exc:
        line("database", f"{checks.mask_database_url(url)} — PROBLEM: {exc}")
        return 1


def _info_redis(line: Callable[[str, str], None], url: str | None, instance: Path) -> int:
    if not url:
        local = embedded_redis.redis_url(instance)
        try:
            server = embedded_redis.describe_server()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            line("redis", f"embedded — PROBLEM: {' '.join(str(exc).split())}")
            return 1
        try:
            checks.probe_redis(local)
            running = f"running on {local} ({checks.redis_server_version(local)})"
        except ConfigError:
            running = "not running (`livesale serve` starts it)"
        line("redis", f"embedded, {server} — {running}")
        return 0
    try:
        checks.check_redis_url(url)
        checks.probe_redis(url)
    except ConfigError as exc:
        line("redis", f"{checks.mask_redis_url(url)} — PROBLEM: {exc}")
        return 1
    line("redis", f"{checks.mask_redis_url(url)} — answers ({checks.redis_server_version(url)})")
    return 0


# --- db ---------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database: schema migrations (Alembic), backup and restore."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_app(DATA_CREATE)
def db_upgrade(revision: str, app: Flask) -> None:
    """Create or migrate the schema."""
    from .core import schema

    schema.upgrade(app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


# --- users and tokens ---------------------------------------------------------


@main.group()
def user() -> None:
    """People who use livesale (the same as the admin page /admin/users)."""


@user.command("list")
@with_app()
def user_list(app: Flask) -> None:
    """Every user: role, whether they may log in, how many live tokens they hold."""
    from .core import auth

    with store_of(app).db.connect() as conn:
        users = auth.list_users(conn)
    if not users:
        click.echo("no users yet: livesale user add NAME --role admin", err=True)
        return
    _table(
        ("name", "role", "active", "password", "tokens", "created"),
        [(u.name, u.role, "yes" if u.active else "no", "yes" if u.can_log_in else "no", u.active_tokens,
          _when(u.created_at)) for u in users],
    )


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(("admin", "host", "official")), required=True)
@click.option("--no-password", is_flag=True, help="API token only; no page login.")
@with_app(DATA_CREATE)
def user_add(name: str, role: str, no_password: bool, app: Flask) -> None:
    """Add a user. The password is read from standard input, or prompted for."""
    from .core import auth, schema
    from .core.db import write_transaction
    from .core.errors import DomainError

    password = None if no_password else _read_password()
    # Often a newcomer's first command, before any `serve`: the schema may not exist yet.
    schema.upgrade(app.config["DATABASE_URL"])
    try:
        with write_transaction(store_of(app).db) as conn:
            auth.create_user(conn, name=name, role=role, password=password)
    except DomainError as exc:
        fail(exc)
    click.echo(f"user {name} ({role}) added", err=True)


@user.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(("admin", "host", "official")))
@with_app()
def user_set_role(name: str, role: str, app: Flask) -> None:
    """Give user NAME another ROLE (admin, host or official)."""
    from .core import auth
    from .core.db import write_transaction
    from .core.errors import DomainError

    try:
        with write_transaction(store_of(app).db) as conn:
            auth.set_role(conn, user_name=name, role=role)
    except DomainError as exc:
        fail(exc)
    click.echo(f"user {name} is now {role}", err=True)


@user.command("set-password")
@click.argument("name")
@with_app()
def user_set_password(name: str, app: Flask) -> None:
    """Set the page-login password of user NAME (read from standard input, or prompted for)."""
    from .core import auth
    from .core.db import write_transaction
    from .core.errors import DomainError

    password = _read_password()
    try:
        with write_transaction(store_of(app).db) as conn:
            auth.set_password(conn, user_name=name, password=password)
    except DomainError as exc:
        fail(exc)
    click.echo(f"password of {name} set", err=True)


def _set_active(name: str, active: bool, app: Flask) -> None:
    from .core import auth
    from .core.db import write_transaction
    from .core.errors import DomainError

    try:
        with write_transaction(store_of(app).db) as conn:
            auth.set_active(conn, actor=None, user_name=name, active=active)
    except DomainError as exc:
        fail(exc)


@user.command("deactivate")
@click.argument("name")
@with_app()
def user_deactivate(name: str, app: Flask) -> None:
    """Keep user NAME out: their logins and tokens stop working (nothing is deleted)."""
    _set_active(name, False, app)
    click.echo(f"user {name} deactivated; `livesale user activate {name}` lets them in again", err=True)


@user.command("activate")
@click.argument("name")
@with_app()
def user_activate(name: str, app: Flask) -> None:
    """Let user NAME in again (their tokens that were not revoked work again)."""
    _set_active(name, True, app)
    click.echo(f"user {name} activated", err=True)


@main.group()
def token() -> None:
    """API tokens (stored hashed: a token is shown once, when issued)."""


@token.command("list")
@click.argument("name", required=False)
@click.option("--all", "show_all", is_flag=True, help="Revoked tokens too.")
@with_app()
def token_list(name: str | None, show_all: bool, app: Flask) -> None:
    """Tokens of user NAME, or of everyone: what each is for and when it was issued (never the token)."""
    from .core import auth
    from .core.errors import DomainError

    try:
        with store_of(app).db.connect() as conn:
            tokens = auth.list_tokens(conn, user_name=name, revoked=show_all)
    except DomainError as exc:
        fail(exc)
    if not tokens:
        click.echo("no tokens" + (f" for {name}" if name else ""), err=True)
        return
    _table(("id", "user", "issued", "revoked", "label"),
           [(t.id, t.user_name, _when(t.created_at), _when(t.revoked_at) if t.revoked_at else "",
             t.label or "") for t in tokens])


@token.command("issue")
@click.argument("name")
@click.option("--label", default=None, help="What the token is for.")
@with_app()
def token_issue(name: str, label: str | None, app: Flask) -> None:
    """Issue an API token for user NAME and print it (only the token)."""
    from .core import auth
    from .core.db import write_transaction
    from .core.errors import DomainError

    try:
        with write_transaction(store_of(app).db) as conn:
            value = auth.issue_token(conn, user_name=name, label=label)
    except DomainError as exc:
        fail(exc)
    click.echo(value)


@token.command("revoke")
@click.argument("name")
@with_app()
def token_revoke(name: str, app: Flask) -> None:
    """Revoke every token of user NAME."""
    from .core import auth
    from .core.db import write_transaction
    from .core.errors import DomainError

    try:
        with write_transaction(store_of(app).db) as conn:
            auth.user_id(conn, name)  # an unknown name is an error here, not "0 tokens revoked"
            count = auth.revoke_tokens(conn, user_name=name)
    except DomainError as exc:
        fail(exc)
    click.echo(f"{count} token(s) of {name} revoked", err=True)


# --- sale sessions --------------------------------------------------------------


@main.group()
def session() -> None:
    """Sale sessions (livestreams)."""


@session.command("list")
@click.option("--status", type=click.Choice(("scheduled", "live", "ended")), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@with_app(redis=True)
def session_list(status: str | None, limit: int, app: Flask) -> None:
    """Sale sessions, newest first, with their orders and total (a live one's running total from Redis)."""
    from .core import auth
    from .core.review import ReviewFilters, review_list

    # The operator of the machine reads everything, as an official does.
    reader = auth.Actor(user_id=0, name="livesale", role="official")
    with redis_ready(app):
        rows, total = review_list(store_of(app), actor=reader, filters=ReviewFilters(status=status or ""),
                                  limit=limit)
    if not rows:
        click.echo("no sessions" + (f" {status}" if status else ""), err=True)
        return
    _table(("id", "status", "start", "orders", "total", "title"),
           [(r.info.id, r.info.status, _when(r.info.started_at or r.info.scheduled_start), r.figures["orders"],
             _yuan(r.figures["amount_fen"]), r.info.title) for r in rows])
    if total > len(rows):
        click.echo(f"{len(rows)} of {total} shown (--limit)", err=True)


# --- totals -------------------------------------------------------------------


@main.group()
def totals() -> None:
    """Running totals in Redis."""


@totals.command("rebuild")
@click.argument("session", type=int, required=False)
@with_app(redis=True)
def totals_rebuild(session: int | None, app: Flask) -> None:
    """Recompute Redis totals from SQL for SESSION, or for every live session."""
    from .core import sessions as session_service
    from .core import tables

    store = store_of(app)
    with redis_ready(app):
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
@with_app(DATA_CREATE, redis=True)
def serve(host: str, port: int, workers: int | None, worker_connections: int, app: Flask) -> None:
    """Run livesale with gunicorn and gevent workers; stop it with Ctrl-C.

    Migrates the database first (workers must not race to create it), and
    starts the embedded Redis if no LIVESALE_REDIS_URL is set.
    """
    from . import server

    # server.serve claims the embedded Redis (one server per instance folder), checks the port,
    # migrates and runs gunicorn; its refusals are ConfigErrors (one line, exit 2).
    code = server.serve(app, host=host, port=port, workers=workers, worker_connections=worker_connections,
                        echo=lambda line: click.echo(line, err=True))
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
    try:
        # Fail before starting anything (the embedded Redis included) or even loading the settings.
        topology.check_options(processes=processes, base_port=base_port, nginx_port=nginx_port)
        if nginx_port is not None:
            topology.find_nginx(nginx_binary)
    except topology.ClusterError as exc:  # a port in use, an option out of range, nginx missing: exit 2
        raise Problem(str(exc)) from exc
    _run_cluster(processes=processes, base_port=base_port, host=host, nginx_port=nginx_port,
                 nginx_host=nginx_host, nginx_binary=nginx_binary, worker_connections=worker_connections)


@with_app(DATA_CREATE, redis=True)
def _run_cluster(*, app: Flask, **options: Any) -> None:
    from . import cluster as topology

    try:
        with redis_ready(app):
            code = topology.run(
                database_url=app.config["DATABASE_URL"], redis_url=app.config["REDIS_URL"],
                instance_path=app.instance_path, message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"],
                echo=lambda line: click.echo(line, err=True), **options,
            )
    except topology.ClusterError as exc:  # a port in use, an option out of range, nginx missing: exit 2
        raise Problem(str(exc)) from exc
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
DEMO_HOST = "demo-host"


@main.command()
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Minutes to run, then end the session (default: until Ctrl-C).")
@click.option("--rate", default=2.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Orders per second, on average.")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True,
              help="Where the server runs (`livesale serve`), for the links it prints.")
@with_app(DATA_CREATE, redis=True)
def demo(minutes: float | None, rate: float, url: str, app: Flask) -> None:
    """Create a demo session modelled on a Kashgar apricot broadcast and feed it orders.

    It prints the big screen's address and a token of the demo's host with
    which to watch it over the API; Ctrl-C (or --minutes) ends the session.
    """
    from .core import auth, schema, tables
    from .core import orders as order_service
    from .core import sessions as session_service
    from .core.db import write_transaction
    from .core.validation import OrderInput, parse_session

    store = store_of(app)
    url = url.rstrip("/")
    with redis_ready(app):
        schema.upgrade(app.config["DATABASE_URL"])
        with write_transaction(store.db) as conn:
            host_id = conn.execute(sa.select(tables.users.c.id).where(tables.users.c.name == DEMO_HOST)).scalar()
            if host_id is None:
                host_id = auth.create_user(conn, name=DEMO_HOST, role="host")
            token = auth.issue_token(conn, user_name=DEMO_HOST, label="livesale demo")
        actor = auth.Actor(user_id=host_id, name=DEMO_HOST, role="host")
        info = session_service.create_session(store, actor=actor, data=parse_session(DEMO_SESSION))
        session_service.start_session(store, actor=actor, session_id=info.id)
        sid = info.id
        for text in (
            f"demo session {sid} is live" + (f" for {minutes:g} minute(s)" if minutes else "; Ctrl-C ends it"),
            f"  big screen: {url}/live/{sid}  (log in as an admin or official; `livesale user add NAME --role "
            "official` makes one)",
            f"  its totals: curl -H 'Authorization: Bearer {token}' {url}/api/v1/sessions/{sid}/totals",
            f"  (that token belongs to {DEMO_HOST}; `livesale token revoke {DEMO_HOST}` revokes it)",
        ):
            click.echo(text, err=True)
        weights = [5, 2, 3, 2]
        progress = sys.stderr.isatty()
        deadline = time.monotonic() + minutes * 60 if minutes else None
        count = 0
        try:
            while deadline is None or time.monotonic() < deadline:
                product = random.choices(DEMO_SESSION["products"], weights=weights)[0]
                order = OrderInput(
                    sku=product["sku"], quantity=random.choice([1, 1, 1, 2, 2, 3, 5]), unit_price_fen=None,
                    buyer_region=random.choice(DEMO_REGIONS), channel="demo", external_id=None, field="",
                )
                recorded = order_service.record_orders(store, actor=actor, session_id=sid, orders=[order])
                count += 1
                if progress:  # one line rewritten in place on a terminal; nothing per order in a log
                    click.echo(f"\r{count} orders · {_yuan(recorded.totals['amount_fen'])}", nl=False, err=True)
                pause = random.expovariate(rate)
                if deadline is not None:
                    pause = max(0.0, min(pause, deadline - time.monotonic()))
                time.sleep(pause)
        except KeyboardInterrupt:
            pass
        if progress:
            click.echo("", err=True)
        session_service.end_session(store, actor=actor, session_id=sid)
        click.echo(f"demo session {sid} ended after {count} orders; its report: {url}/sessions/{sid}", err=True)


# --- backup, restore, export (livesale/cli_data.py) ------------------------------------------

cli_data.register(main, db, existing_data=with_app(DATA_EXISTING), any_data=with_app(DATA_CREATE),
                  redis_ready=redis_ready)
cli_imports.register(main, existing_data=with_app(DATA_EXISTING))  # livesale import (livesale/cli_imports.py)
